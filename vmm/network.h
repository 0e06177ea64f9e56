// User-mode networking for one VM with passt: one passt process per VM,
// connected to QEMU over a unix socket, forwarding two loopback TCP ports
// (ssh, web) to the guest, and giving the guest outbound TCP/UDP/ICMP through
// ordinary host sockets. No root, no tap device, no bridge.
//
// Why passt and not QEMU's slirp (-netdev user): slirp maps its gateway
// address (10.0.2.2) to the host's 127.0.0.1, so any guest reaches the
// host's loopback services (PostgreSQL, exed's own ports, other VMs'
// forwards) and no QEMU 7.2 option turns that off; restrict=on turns off all
// outbound traffic instead. passt --no-map-gw stops the gateway mapping.
//
// KNOWN HOLE (passt 0.0~git20230309, Debian 12), verified with a guest: a
// guest user with root can route 127.0.0.0/8 out of its NIC (sysctl
// route_localnet=1, a route via the gateway); passt then connect()s to the
// host's 127.0.0.1 and the guest reaches host loopback services after all.
// No passt option closes it: passt skips --outbound-if4's SO_BINDTODEVICE
// for addresses it finds local (seen with strace), and a bound source
// address (--outbound) does not stop a connect to 127.0.0.1. The host must
// refuse it, e.g. with nftables on the uid
// passt runs as (QEMU, same uid, opens no IP sockets; exed must run as
// another uid), verified to block it while the forwards keep working:
//   table inet exed_guard { chain output {
//     type filter hook output priority 0; policy accept;
//     meta skuid "exed" fib daddr type local ct state new reject } }
// ("fib daddr type local": every address of this host, loopback or not;
// replies on the forwarded ports are "established" and pass). Without such
// a rule this backend isolates only guests whose users have no root.
//
// Process model: passt runs in the foreground (-f) so the pid the launcher
// returns is passt's own; with -1 it exits when QEMU closes the socket, so
// a VM's passt never outlives its QEMU. Start passt first and wait for its
// socket (SocketExists): QEMU 7.2's stream client tries once, at start-up,
// and if nobody listens QEMU runs on silently with the NIC never connected
// (reconnect= came in QEMU 8.0). QMP's NETDEV_STREAM_CONNECTED event
// confirms the link. passt must run as the same user as QEMU: its socket
// is created under the launcher's umask, writable by its owner only, and
// connect(2) on a unix socket needs write permission.
//
// Pure functions except RemoveStaleSocket and SocketExists; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "control/result.h"

namespace vmm {

struct NetSpec {
  int ssh_host_port = 0;  // on 127.0.0.1, forwarded to guest_ssh_port
  int web_host_port = 0;  // on 127.0.0.1, forwarded to guest_web_port
  int guest_ssh_port = 22;
  int guest_web_port = 80;
  std::string passt_socket;    // VMDIR/passt.sock
  std::string passt_log;       // VMDIR/passt.log (passt caps it at 1 MiB); "" = stderr
  std::string passt_pid_file;  // VMDIR/passt.pid, for re-attaching after a restart; "" = none
};

// Longest unix socket path (sun_path holds 108 bytes with the NUL).
inline constexpr size_t kMaxUnixSocketPath = 107;

// Returns the sentence to show when `net` cannot work (ports out of range or
// equal, socket path empty or too long for a unix socket), else nullopt.
std::optional<std::string> CheckNetSpec(const NetSpec& net);

// passt's argv, argv[0] = `passt_binary`.
// REQUIRES: CheckNetSpec(net) passed.
std::vector<std::string> PasstArgs(const NetSpec& net, const std::string& passt_binary);

// QEMU's -netdev/-device arguments connecting the guest's virtio-net
// (virtio-mmio, for microvm) to passt's socket.
// REQUIRES: CheckNetSpec(net) passed.
std::vector<std::string> QemuNetArgs(const NetSpec& net);

// Arguments that identify this VM's passt on its command line (for
// launcher's HasArgs/Terminate, so a reused pid is never taken for it).
std::vector<std::string> PasstIdentity(const NetSpec& net);

// True if `path` exists and is a unix socket (passt has bound it; it binds
// after its forwarded ports, so they are listening too). Never connects:
// with -1, passt's first client is the only one it will ever serve.
bool SocketExists(const std::string& path);

// Removes a socket file left by a passt that died (passt does not remove it
// on exit, and refuses to start over it). Ok if absent; refuses to remove
// anything that is not a socket.
control::Status RemoveStaleSocket(const std::string& path);

}  // namespace vmm
