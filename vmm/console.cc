#include "vmm/console.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

namespace vmm {

std::vector<std::string> AnnouncedHostKeys(std::string_view console) {
  std::vector<std::string> out;
  constexpr std::string_view kMarker = "exed-hostkey: ";
  size_t pos = 0;
  while ((pos = console.find(kMarker, pos)) != std::string_view::npos) {
    // Only at the start of a line: a guest program echoing the marker mid-line is not the init.
    bool line_start = pos == 0 || console[pos - 1] == '\n';
    size_t end = console.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) break;  // incomplete line: not yet fully written
    std::string_view line = console.substr(pos + kMarker.size(), end - pos - kMarker.size());
    size_t space = line.find(' ');
    if (line_start && space != std::string_view::npos && line.find(' ', space + 1) == std::string_view::npos) {
      std::string key(line);
      auto it = std::find_if(out.begin(), out.end(),
                             [&](const std::string& k) { return k.substr(0, k.find(' ')) == key.substr(0, space); });
      if (it != out.end()) out.erase(it);
      out.push_back(key);
    }
    pos = end;
  }
  return out;
}

void ConsoleMarkers::Feed(std::string_view bytes) {
  constexpr size_t kMaxLine = 4096;  // a host key line is ~100 bytes
  while (!bytes.empty()) {
    size_t nl = bytes.find('\n');
    std::string_view piece = bytes.substr(0, nl);
    if (!overlong_) {
      if (partial_.size() + piece.size() > kMaxLine) {
        overlong_ = true;
        partial_.clear();
      } else {
        partial_.append(piece);
      }
    }
    if (nl == std::string_view::npos) return;
    if (!overlong_) Line(partial_);
    partial_.clear();
    overlong_ = false;
    bytes.remove_prefix(nl + 1);
  }
}

void ConsoleMarkers::Line(std::string_view line) {
  while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line == "exed-ready") ready_ = true;
  if (line.rfind("exed-hostkey: ", 0) == 0) {
    marker_lines_.append(line);
    marker_lines_.push_back('\n');
  }
}

void ConsoleWatch::Poll() {
  std::ifstream in(path_, std::ios::binary | std::ios::ate);
  if (!in) return;
  auto size = static_cast<uint64_t>(in.tellg());
  if (size < offset_) {  // replaced or truncated: start over
    offset_ = 0;
    markers_ = ConsoleMarkers();
  }
  if (size == offset_) return;
  std::string data(std::min<uint64_t>(size - offset_, 1 << 20), '\0');
  in.seekg(static_cast<std::streamoff>(offset_));
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<size_t>(in.gcount()));
  offset_ += data.size();
  markers_.Feed(data);
}

std::string LinesSince(const std::string& path, uint64_t offset, size_t n) {
  uint64_t size = ConsoleSize(path);
  if (size <= offset) return "";
  constexpr uint64_t kMax = 64 * 1024;
  uint64_t from = size - offset > kMax ? size - kMax : offset;
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(from));
  std::string data(size - from, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<size_t>(in.gcount()));
  if (from > offset) data.erase(0, data.find('\n') + 1);  // a cut first line
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < data.size()) {
    size_t nl = data.find('\n', start);
    if (nl == std::string::npos) nl = data.size();
    std::string line = data.substr(start, nl - start);
    line.erase(std::remove(line.begin(), line.end(), '\r'), line.end());
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(line);
    start = nl + 1;
  }
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    out += (out.empty() ? "" : "; ") + lines[i];
  }
  return out;
}

uint64_t ConsoleSize(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<uint64_t>(n);
}

std::string TailFile(const std::string& path, size_t n, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  auto size = static_cast<size_t>(in.tellg());
  size_t from = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(from));
  std::string data(size - from, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  if (from > 0) data.erase(0, data.find('\n') + 1);  // the first line read is cut: drop it
  size_t cut = data.size();
  if (!data.empty() && data.back() == '\n') --cut;
  for (size_t lines = 0; cut > 0; --cut) {
    if (data[cut - 1] == '\n' && ++lines == n) break;
  }
  return data.substr(cut);
}

}  // namespace vmm
