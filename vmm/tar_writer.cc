#include "vmm/tar_writer.h"

#include <cstdio>
#include <algorithm>
#include <cstring>

namespace vmm {

namespace {

void Octal(char* field, size_t width, uint64_t value) {
  // width includes the terminating NUL
  std::snprintf(field, width, "%0*llo", static_cast<int>(width - 1), static_cast<unsigned long long>(value));
}

std::string Header(const std::string& path, size_t size, int mode, char type) {
  char h[512];
  std::memset(h, 0, sizeof h);
  std::memcpy(h, path.data(), path.size());
  Octal(h + 100, 8, static_cast<uint64_t>(mode));
  Octal(h + 108, 8, 0);  // uid
  Octal(h + 116, 8, 0);  // gid
  Octal(h + 124, 12, size);
  Octal(h + 136, 12, 0);  // mtime: fixed, so the same config gives the same bytes
  h[156] = type;
  std::memcpy(h + 257, "ustar", 6);  // magic with NUL
  std::memcpy(h + 263, "00", 2);
  std::memset(h + 148, ' ', 8);  // checksum is computed with its own field as spaces
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  return std::string(h, sizeof h);
}

}  // namespace

control::Result<std::string> MakeTar(const std::vector<TarFile>& files) {
  std::string out;
  std::vector<std::string> dirs;
  for (const auto& f : files) {
    if (f.path.empty() || f.path.size() > 99 || f.path[0] == '/' || f.path.find("..") != std::string::npos) {
      return control::InvalidError("config file path '" + f.path + "' cannot go in a tar archive");
    }
    // Parent directories first, once each, so every tar extracts it.
    for (size_t slash = f.path.find('/'); slash != std::string::npos; slash = f.path.find('/', slash + 1)) {
      std::string dir = f.path.substr(0, slash + 1);
      if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) {
        dirs.push_back(dir);
        out += Header(dir, 0, 0755, '5');
      }
    }
    out += Header(f.path, f.data.size(), f.mode, '0');
    out += f.data;
    out.append((512 - f.data.size() % 512) % 512, '\0');
  }
  out.append(1024, '\0');  // end of archive: two zero blocks
  out.append((10240 - out.size() % 10240) % 10240, '\0');
  return out;
}

}  // namespace vmm
