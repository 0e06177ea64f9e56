// Terminal: the client's end of a lobby session, as the lobby sees it.
// ChannelTerminal implements it on a libssh channel; tests use a fake.
// Not thread-safe: owned by the session's thread.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include <libssh/libssh.h>

namespace sshd {

class Terminal {
 public:
  enum class ReadStatus { kData, kTimeout, kEof, kError };
  virtual ~Terminal() = default;
  // Appends what arrived within `timeout` to *out.
  virtual ReadStatus Read(std::string* out, std::chrono::milliseconds timeout) = 0;
  virtual bool Write(std::string_view data) = 0;
  virtual bool WriteErr(std::string_view data) = 0;
  // False once the client has gone (closed the channel or the connection).
  virtual bool Alive() = 0;
};

class ChannelTerminal : public Terminal {
 public:
  explicit ChannelTerminal(ssh_channel channel) : channel_(channel) {}
  ReadStatus Read(std::string* out, std::chrono::milliseconds timeout) override;
  bool Write(std::string_view data) override;
  bool WriteErr(std::string_view data) override;
  bool Alive() override;

 private:
  ssh_channel channel_;  // not owned
};

}  // namespace sshd
