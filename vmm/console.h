// Reading what a guest printed on its serial console (VMDIR/console.log):
// the host keys it announces and whether it is ready (docs/VMM.md), and the
// tail that `logs VM` shows. Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vmm {

// "TYPE BASE64" of every `exed-hostkey: TYPE BASE64` line, last boot's last.
std::vector<std::string> AnnouncedHostKeys(std::string_view console);
// The last `n` lines of the file at `path` (at most `max_bytes` read from its end).
std::string TailFile(const std::string& path, size_t n, size_t max_bytes = 256 * 1024);

}  // namespace vmm
