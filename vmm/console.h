// Reading what a guest printed on its serial console (VMDIR/console.log):
// the host keys it announces and whether it is ready (docs/VMM.md), and the
// tail that `logs VM` shows. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vmm {

// "TYPE BASE64" of every `exed-hostkey: TYPE BASE64` line, last boot's last.
std::vector<std::string> AnnouncedHostKeys(std::string_view console);

// The markers of one boot, fed the console's bytes as they arrive (in any
// pieces). Keeps only the marker lines, so a chatty console costs nothing.
class ConsoleMarkers {
 public:
  void Feed(std::string_view bytes);
  // As AnnouncedHostKeys of the whole console.
  std::vector<std::string> host_keys() const { return AnnouncedHostKeys(marker_lines_); }
  // Whether a whole `exed-ready` line has come: the guest's sshd listens.
  bool ready() const { return ready_; }

 private:
  void Line(std::string_view line);
  std::string partial_;  // the unfinished last line, up to kMaxLine bytes
  bool overlong_ = false;
  std::string marker_lines_;  // the `exed-hostkey:` lines, each ending in "\n"
  bool ready_ = false;
};

// Follows VMDIR/console.log as QEMU appends to it, from byte `offset` on (the
// file's size before this boot's QEMU started: the console appends across
// boots). Each Poll reads what was appended since the last (at most 1 MiB). A
// file shorter than what was read was replaced: its markers start over from
// its beginning. Not thread-safe.
class ConsoleWatch {
 public:
  explicit ConsoleWatch(std::string path, uint64_t offset = 0) : path_(std::move(path)), offset_(offset) {}
  void Poll();
  const ConsoleMarkers& markers() const { return markers_; }

 private:
  std::string path_;
  uint64_t offset_ = 0;
  ConsoleMarkers markers_;
};
// The last `n` non-empty lines written to the file at `path` after byte
// `offset` (at most 64 KiB read), joined into one line with "; " (carriage
// returns dropped): what one boot printed, for an error message.
std::string LinesSince(const std::string& path, uint64_t offset, size_t n);
// The size of the file at `path`; 0 if there is none.
uint64_t ConsoleSize(const std::string& path);
// The last `n` lines of the file at `path` (at most `max_bytes` read from its end).
std::string TailFile(const std::string& path, size_t n, size_t max_bytes = 256 * 1024);

}  // namespace vmm
