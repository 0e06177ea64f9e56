#include "sshd/terminal.h"

#include <poll.h>

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
  if (!ssh_channel_is_open(channel_) || ssh_channel_is_closed(channel_)) return false;
  // libssh learns of a vanished client only when it next reads; the socket
  // knows now. A peer that closed its side (killed, disconnected) shows as
  // RDHUP/HUP; an SSH-level EOF on stdin (`new < /dev/null`) does not.
  pollfd p{ssh_get_fd(ssh_channel_get_session(channel_)), POLLRDHUP, 0};
  if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) return false;
  return true;
}

bool ChannelTerminal::Write(std::string_view data) { return WriteAll(channel_, data, false); }
bool ChannelTerminal::WriteErr(std::string_view data) { return WriteAll(channel_, data, true); }

}  // namespace sshd
