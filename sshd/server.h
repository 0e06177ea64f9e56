// sshd::Server: the SSH front. Accepts connections on one address, does the
// key exchange and public-key authentication (nothing else is accepted), and
// runs each session's lobby.
//
// Threading: Serve() runs the accept loop on the caller's thread; every
// connection gets its own thread from the first byte, so a client stalled
// mid-handshake or a slow query holds only its own thread. Limits (login
// grace time, auth attempts, connections per address and account) are
// enforced per connection with a message the client sees. Stop() may be
// called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include <libssh/libssh.h>
#include <libssh/server.h>

#include "control/service.h"
#include "sshd/limits.h"
#include "sshd/watchdog.h"

namespace sshd {

struct ServerConfig {
  std::string listen_addr = "127.0.0.1";
  int port = 2222;  // 0: any free port (tests)
  std::string hostkey_dir;
  Limits limits;
};

class Server {
 public:
  explicit Server(ServerConfig config);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Makes host keys if needed and binds. After it, port() is the real port.
  control::Status Listen();
  int port() const { return port_; }
  // Accepts until Stop(), running sessions against `service`. Returns after
  // the listening socket is closed; live sessions continue until they end or
  // the process exits. REQUIRES: `service` outlives every session.
  void Serve(control::Service& service);
  void Stop();
  int active_connections() const { return active_.load(); }

 private:
  struct Conn;
  void Handle(ssh_session session, std::string addr);
  bool Authenticate(Conn& c, bool over_address_limit);
  // After authentication: into a VM through the gateway, or the lobby.
  void Route(Conn& c);
  // The lobby. `no_entry`, when set, is why the VM the login name asked for
  // cannot be entered: said instead of running anything when `refuse`, and
  // instead of the lobby's answer to file transfers; after it, to a command
  // that is not the lobby's.
  void RunSession(Conn& c, const control::Result<control::Caller>& caller, const std::string& no_entry, bool refuse);

  const ServerConfig config_;
  control::Service* service_ = nullptr;  // set by Serve()
  ssh_bind bind_ = nullptr;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_{0};
  ConnectionTracker tracker_;
  Watchdog watchdog_;
};

}  // namespace sshd
