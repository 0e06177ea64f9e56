#include "sshd/terminal.h"

namespace sshd {

Terminal::ReadStatus ChannelTerminal::Read(std::string* out, std::chrono::milliseconds timeout) {
  char buf[4096];
  int n = ssh_channel_read_timeout(channel_, buf, sizeof buf, 0, static_cast<int>(timeout.count()));
  if (n == SSH_ERROR) return ReadStatus::kError;
  if (n > 0) {
    out->append(buf, static_cast<size_t>(n));
    return ReadStatus::kData;
  }
  if (ssh_channel_is_eof(channel_) || !ssh_channel_is_open(channel_)) return ReadStatus::kEof;
  return ReadStatus::kTimeout;
}

namespace {
bool WriteAll(ssh_channel c, std::string_view data, bool err) {
  while (!data.empty()) {
    int n = err ? ssh_channel_write_stderr(c, data.data(), static_cast<uint32_t>(data.size()))
                : ssh_channel_write(c, data.data(), static_cast<uint32_t>(data.size()));
    if (n == SSH_ERROR) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}
}  // namespace

bool ChannelTerminal::Alive() {
  // Polling processes pending packets (so a close is noticed) without
  // consuming channel data; EOF on stdin is not "gone".
  if (ssh_channel_poll_timeout(channel_, 0, 0) == SSH_ERROR) return false;
  return ssh_channel_is_open(channel_) && !ssh_channel_is_closed(channel_);
}

bool ChannelTerminal::Write(std::string_view data) { return WriteAll(channel_, data, false); }
bool ChannelTerminal::WriteErr(std::string_view data) { return WriteAll(channel_, data, true); }

}  // namespace sshd
