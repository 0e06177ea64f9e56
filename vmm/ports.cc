#include "vmm/ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace vmm {
namespace {

class Socket {
 public:
  Socket() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&&) = delete;
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Binds a new socket to address:port (port 0: the kernel picks). Returns the
// bound port, 0 if the port is in use, or -errno for other failures.
int TryBind(const Socket& s, const in_addr& address, int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr = address;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(s.fd(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    return errno == EADDRINUSE || errno == EACCES ? 0 : -errno;
  }
  socklen_t len = sizeof sa;
  if (::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) return -errno;
  return ntohs(sa.sin_port);
}

}  // namespace

control::Result<int> PickFreePort(const std::set<int>& taken, PortRange range,
                                  const std::string& address) {
  in_addr addr{};
  if (::inet_pton(AF_INET, address.c_str(), &addr) != 1) {
    return control::InternalError(fmt::format("'{}' is not an IPv4 address", address));
  }
  auto os_error = [&](int err) {
    return control::InternalError(
        fmt::format("cannot bind a port on {}: {}", address, std::strerror(err)));
  };

  if (range.first == 0) {
    // The kernel may hand back a port that is in `taken` (a stopped VM's);
    // holding each rejected socket open makes the next bind get another.
    std::vector<Socket> held;
    for (int attempt = 0; attempt < 64; ++attempt) {
      Socket s;
      if (s.fd() < 0) return os_error(errno);
      int port = TryBind(s, addr, 0);
      if (port < 0) return os_error(-port);
      if (port > 0 && taken.count(port) == 0) return port;
      held.push_back(std::move(s));
    }
    return control::DeniedError(
        fmt::format("no free port on {}: the kernel kept choosing taken ones", address));
  }

  if (range.first < 1 || range.last > 65535 || range.first > range.last) {
    return control::InternalError(
        fmt::format("port range {}-{} is not within 1-65535", range.first, range.last));
  }
  for (int port = range.first; port <= range.last; ++port) {
    if (taken.count(port)) continue;
    Socket s;
    if (s.fd() < 0) return os_error(errno);
    int got = TryBind(s, addr, port);
    if (got < 0) return os_error(-got);
    if (got == port) return port;
  }
  return control::DeniedError(fmt::format(
      "no free port left in {}-{} on {}; widen the range or remove unused VMs", range.first,
      range.last, address));
}

}  // namespace vmm
