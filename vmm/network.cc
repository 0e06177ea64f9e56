#include "vmm/network.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "vmm/qemu_args.h"

namespace vmm {
namespace {

bool ValidPort(int p) { return p > 0 && p < 65536; }

}  // namespace

std::optional<std::string> CheckNetSpec(const NetSpec& net) {
  if (!ValidPort(net.ssh_host_port) || !ValidPort(net.web_host_port)) {
    return fmt::format("host ports {} and {} must be between 1 and 65535", net.ssh_host_port,
                       net.web_host_port);
  }
  if (net.ssh_host_port == net.web_host_port) {
    return fmt::format("ssh and web forwards cannot share host port {}", net.ssh_host_port);
  }
  if (!ValidPort(net.guest_ssh_port) || !ValidPort(net.guest_web_port)) {
    return fmt::format("guest ports {} and {} must be between 1 and 65535", net.guest_ssh_port,
                       net.guest_web_port);
  }
  if (net.passt_socket.empty()) return "the passt socket path is empty";
  if (net.passt_socket.size() > kMaxUnixSocketPath) {
    return fmt::format("passt socket path '{}' is longer than {} bytes; use a shorter state directory",
                       net.passt_socket, kMaxUnixSocketPath);
  }
  return std::nullopt;
}

std::vector<std::string> PasstArgs(const NetSpec& net, const std::string& passt_binary) {
  std::vector<std::string> a = {
      passt_binary,
      "--foreground",  // the launcher's pid is passt's; no daemonizing
      "--quiet",
      "--one-off",     // exit when QEMU disconnects: passt never outlives its VM
      "--no-map-gw",   // the gateway address is a real gateway, not the host's loopback
      // UDP forwarding follows the TCP ports unless told otherwise; the guest
      // needs none inbound.
      "--udp-ports", "none",
      "--socket", net.passt_socket,
      // Bound to 127.0.0.1 only: the fronts (sshd/, httpfront/) reach them;
      // nothing off the machine does.
      "--tcp-ports", fmt::format("127.0.0.1/{}:{}", net.ssh_host_port, net.guest_ssh_port),
      "--tcp-ports", fmt::format("127.0.0.1/{}:{}", net.web_host_port, net.guest_web_port),
  };
  if (!net.passt_log.empty()) {
    // Without a log file passt also tries syslog, one "Failed to send"
    // line per message on hosts without /dev/log.
    a.insert(a.end(), {"--log-file", net.passt_log});
  }
  if (!net.passt_pid_file.empty()) a.insert(a.end(), {"--pid", net.passt_pid_file});
  return a;
}

std::vector<std::string> QemuNetArgs(const NetSpec& net) {
  // -netdev stream (QEMU 7.2+) speaks passt's protocol: a 32-bit length
  // before each Ethernet frame.
  return {"-netdev",
          "stream,id=n0,server=off,addr.type=unix,addr.path=" + QemuOptEscape(net.passt_socket),
          "-device", "virtio-net-device,netdev=n0"};
}

std::vector<std::string> PasstIdentity(const NetSpec& net) { return {"--socket", net.passt_socket}; }

bool SocketExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

control::Status RemoveStaleSocket(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return control::Ok{};
    return control::InternalError(fmt::format("cannot inspect {}: {}", path, std::strerror(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return control::InternalError(fmt::format("{} exists and is not a socket; not removing it", path));
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return control::InternalError(fmt::format("cannot remove {}: {}", path, std::strerror(errno)));
  }
  return control::Ok{};
}

}  // namespace vmm
