#include "sshd/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "control/commands.h"
#include "control/pubkey.h"
#include "control/names.h"
#include "sshd/gateway.h"
#include "sshd/hostkeys.h"
#include "sshd/lobby.h"
#include "sshd/terminal.h"

// libssh 0.10 marks the ssh_message_* API deprecated in favour of server
// callbacks. It still works and keeps one connection a straight-line blocking
// program on its own thread; the move to callbacks comes with the VM gateway,
// which needs an event loop per connection anyway.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace sshd {

namespace {

using Clock = std::chrono::steady_clock;

std::string PeerAddress(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "unknown";
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  }
  return buf;
}

// Tells the client why it is being turned away, then disconnects. libssh
// 0.10 drops the reason of ssh_disconnect() when the socket is not writable
// at that instant, so the reason also goes first as an authentication banner
// (OpenSSH prints it at its default log level) and is flushed explicitly.
// Closing a socket that still has unread bytes makes the kernel send a reset
// that can overtake both, so first swallow what the client already sent.
void DisconnectWith(ssh_session s, const std::string& why) {
  int fd = ssh_get_fd(s);
  char buf[4096];
  for (int quiet_polls = 0, rounds = 0; quiet_polls < 2 && rounds < 20; ++rounds) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0 && ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
      quiet_polls = 0;
    } else {
      ++quiet_polls;
    }
  }
  std::string line = "exed: " + why + "\r\n";
  if (ssh_string banner = ssh_string_from_char(line.c_str())) {
    ssh_send_issue_banner(s, banner);
    ssh_string_free(banner);
  }
  ssh_blocking_flush(s, 1000);
  ssh_session_set_disconnect_message(s, why.c_str());
  ssh_disconnect(s);
}

// "TYPE BASE64" of a key presented in authentication, parsed and validated
// the same way as keys users add.
control::Result<control::PublicKey> KeyOf(ssh_key key) {
  char* b64 = nullptr;
  if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) return control::InvalidError("unreadable public key");
  std::string base64(b64);
  ssh_string_free_char(b64);
  const char* type = ssh_key_type_to_char(ssh_key_type(key));
  // libssh names ECDSA keys "ecdsa-sha2-nistpNNN" only for some versions;
  // the blob itself names its type, so try what libssh says, then the blob's.
  auto parsed = control::ParsePublicKey(std::string(type ? type : "?") + " " + base64);
  if (parsed) return parsed;
  for (const char* t : {"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa",
                        "ssh-ed25519", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"}) {
    auto p = control::ParsePublicKey(std::string(t) + " " + base64);
    if (p) return p;
  }
  return parsed.error();
}

}  // namespace

struct Server::Conn {
  ssh_session session;
  std::string addr;
  std::string user;
  control::PublicKey key;
  Clock::time_point started;
};

Server::Server(ServerConfig config) : config_(std::move(config)) {}

Server::~Server() {
  if (bind_) ssh_bind_free(bind_);
}

control::Status Server::Listen() {
  auto keys = EnsureHostKeys(config_.hostkey_dir);
  if (!keys) return keys.error();
  bind_ = ssh_bind_new();
  ssh_bind_options_set(bind_, SSH_BIND_OPTIONS_BINDADDR, config_.listen_addr.c_str());
  std::string port = std::to_string(config_.port);
  ssh_bind_options_set(bind_, SSH_BIND_OPTIONS_BINDPORT_STR, port.c_str());
  for (const auto& k : *keys) {
    if (ssh_bind_options_set(bind_, SSH_BIND_OPTIONS_HOSTKEY, k.c_str()) != SSH_OK) {
      return control::InternalError(fmt::format("cannot load host key {}: {}", k, ssh_get_error(bind_)));
    }
  }
  if (ssh_bind_listen(bind_) != SSH_OK) {
    return control::InternalError(fmt::format("cannot listen for SSH on {}:{}: {}; is another exed running, or "
                                              "set EXED_SSH_PORT to a free port",
                                              config_.listen_addr, config_.port, ssh_get_error(bind_)));
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(ssh_bind_get_fd(bind_), reinterpret_cast<sockaddr*>(&ss), &len);
  port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                         : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return control::Ok{};
}

void Server::Stop() {
  stopping_ = true;
  if (bind_) ::shutdown(ssh_bind_get_fd(bind_), SHUT_RDWR);
}

void Server::Serve(control::Service& service) {
  service_ = &service;
  bool failing = false;  // logged once until an accept succeeds again
  while (!stopping_) {
    ssh_session session = ssh_new();
    if (ssh_bind_accept(bind_, session) != SSH_OK) {
      ssh_free(session);
      if (stopping_) break;
      if (!failing) spdlog::warn("event=accept-failed error=\"{}\" retry_every_ms=50", ssh_get_error(bind_));
      failing = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // e.g. EMFILE: don't spin
      continue;
    }
    failing = false;
    std::string addr = PeerAddress(ssh_get_fd(session));
    // SSH is request/response during the handshake: with Nagle's algorithm
    // each of its round trips waits ~40 ms for a delayed ACK.
    int one = 1;
    ::setsockopt(ssh_get_fd(session), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (active_.load() >= config_.limits.max_connections) {
      spdlog::warn("limit=max_connections source={} limit={}", addr, config_.limits.max_connections);
      ssh_free(session);  // no thread to spare for a handshake: close at once
      continue;
    }
    ++active_;
    std::thread([this, session, addr] {
      Handle(session, addr);
      --active_;
    }).detach();
  }
}

void Server::Handle(ssh_session session, std::string addr) {
  Conn c{session, addr, "", {}, Clock::now()};
  int fd = ssh_get_fd(session);
  uint64_t grace = watchdog_.Arm(fd, c.started + config_.limits.login_grace);
  auto address_slot = tracker_.AcquireAddress(addr, config_.limits.max_sessions_per_address);
  bool ok = ssh_handle_key_exchange(session) == SSH_OK;
  if (!ok) spdlog::info("event=kex-failed source={} error={}", addr, ssh_get_error(session));
  if (ok) ok = Authenticate(c, !address_slot);
  bool late = watchdog_.Disarm(grace);
  if (late) {
    spdlog::warn("limit=login_grace source={} seconds={}", addr, config_.limits.login_grace.count());
    DisconnectWith(session, fmt::format("not logged in within {} s; reconnect to try again",
                                        config_.limits.login_grace.count()));
    ok = false;
  }
  if (ok) Route(c);
  ssh_disconnect(session);
  ssh_free(session);
}

bool Server::Authenticate(Conn& c, bool over_address_limit) {
  ssh_set_auth_methods(c.session, SSH_AUTH_METHOD_PUBLICKEY);
  int failures = 0;
  while (true) {
    ssh_message msg = ssh_message_get(c.session);
    if (!msg) return false;  // client gone, or the grace time shut the socket
    bool done = false;
    if (ssh_message_type(msg) == SSH_REQUEST_AUTH && over_address_limit) {
      // Refused here, not right after the key exchange: the client shows a
      // reason only once it is authenticating.
      ssh_message_free(msg);
      spdlog::warn("limit=max_sessions_per_address source={} limit={}", c.addr,
                   config_.limits.max_sessions_per_address);
      DisconnectWith(c.session, fmt::format("too many connections from {} (limit {}); close some and try again",
                                            c.addr, config_.limits.max_sessions_per_address));
      return false;
    }
    if (ssh_message_type(msg) == SSH_REQUEST_AUTH) {
      if (ssh_message_subtype(msg) == SSH_AUTH_METHOD_PUBLICKEY) {
        auto key = KeyOf(ssh_message_auth_pubkey(msg));
        auto state = ssh_message_auth_publickey_state(msg);
        if (!key) {
          ++failures;
          spdlog::info("event=auth-key-refused source={} reason=\"{}\"", c.addr, key.error().message);
          ssh_message_auth_set_methods(msg, SSH_AUTH_METHOD_PUBLICKEY);
          ssh_message_reply_default(msg);
        } else if (state == SSH_PUBLICKEY_STATE_NONE) {
          // The client asks whether this key would do; any valid key does:
          // an unknown one is offered registration once it proves possession.
          ssh_message_auth_reply_pk_ok_simple(msg);
        } else if (state == SSH_PUBLICKEY_STATE_VALID) {
          c.key = *key;
          c.user = ssh_message_auth_user(msg) ? ssh_message_auth_user(msg) : "";
          ssh_message_auth_reply_success(msg, 0);
          done = true;
        } else {
          ++failures;
          ssh_message_auth_set_methods(msg, SSH_AUTH_METHOD_PUBLICKEY);
          ssh_message_reply_default(msg);
        }
      } else {
        // "none" probes, passwords, keyboard-interactive: only keys open exed.
        if (ssh_message_subtype(msg) != SSH_AUTH_METHOD_NONE) ++failures;
        ssh_message_auth_set_methods(msg, SSH_AUTH_METHOD_PUBLICKEY);
        ssh_message_reply_default(msg);
      }
    } else {
      ssh_message_reply_default(msg);
    }
    ssh_message_free(msg);
    if (done) return true;
    if (failures >= config_.limits.max_auth_attempts) {
      spdlog::warn("limit=max_auth_attempts source={} limit={}", c.addr, config_.limits.max_auth_attempts);
      DisconnectWith(c.session, fmt::format("too many authentication attempts (limit {}); only SSH public keys are "
                                            "accepted here",
                                            config_.limits.max_auth_attempts));
      return false;
    }
  }
}

void Server::Route(Conn& c) {
  auto caller = service_->Identify(c.key.fingerprint, c.key.Authorized(), c.addr);
  auto login = control::ParseGatewayLogin(c.user);
  if (!login || !caller || !caller->account_id) {
    RunSession(c, caller, "", false);
    return;
  }
  auto vm = service_->EnterableVm(*caller, login->vm);
  if (!vm) {
    // Not a VM this account may use, which includes one that does not exist:
    // a plain name is just the lobby; "USER+VM" clearly meant a VM.
    RunSession(c, caller, vm.error().message, login->explicit_user);
    return;
  }
  auto slot = tracker_.AcquireAccount(caller->account_name, config_.limits.max_sessions_per_account);
  if (!slot) {
    spdlog::warn("limit=max_sessions_per_account account={} limit={}", caller->account_name,
                 config_.limits.max_sessions_per_account);
    RunSession(c, caller,
               fmt::format("too many sessions for account {} (limit {}); close some and try again",
                           caller->account_name, config_.limits.max_sessions_per_account),
               true);
    return;
  }
  Gateway gateway(c.session, *service_, *caller, *vm, login->user);
  gateway.Run();
}

void Server::RunSession(Conn& c, const control::Result<control::Caller>& caller, const std::string& no_entry,
                        bool refuse) {
  // Until the client opens a session and asks for a shell or a command, the
  // idle timeout applies to the socket as a whole.
  uint64_t idle = watchdog_.Arm(ssh_get_fd(c.session), Clock::now() + config_.limits.idle_timeout);
  ssh_channel channel = nullptr;
  bool pty = false;
  std::string term;
  std::string command;
  enum { kNone, kShell, kExec, kSubsystem } mode = kNone;
  while (mode == kNone) {
    ssh_message msg = ssh_message_get(c.session);
    if (!msg) break;
    int type = ssh_message_type(msg);
    int sub = ssh_message_subtype(msg);
    if (type == SSH_REQUEST_CHANNEL_OPEN && sub == SSH_CHANNEL_SESSION && !channel) {
      channel = ssh_message_channel_request_open_reply_accept(msg);
    } else if (type == SSH_REQUEST_CHANNEL && channel) {
      if (sub == SSH_CHANNEL_REQUEST_PTY) {
        pty = true;
        const char* t = ssh_message_channel_request_pty_term(msg);
        term = t ? t : "";
        ssh_message_channel_request_reply_success(msg);
      } else if (sub == SSH_CHANNEL_REQUEST_ENV) {
        ssh_message_channel_request_reply_success(msg);  // accepted and ignored: the lobby has no environment
      } else if (sub == SSH_CHANNEL_REQUEST_SHELL) {
        ssh_message_channel_request_reply_success(msg);
        mode = kShell;
      } else if (sub == SSH_CHANNEL_REQUEST_EXEC) {
        const char* cmd = ssh_message_channel_request_command(msg);
        command = cmd ? cmd : "";
        ssh_message_channel_request_reply_success(msg);
        mode = kExec;
      } else if (sub == SSH_CHANNEL_REQUEST_SUBSYSTEM) {
        ssh_message_channel_request_reply_success(msg);
        mode = kSubsystem;
      } else {
        ssh_message_reply_default(msg);
      }
    } else {
      ssh_message_reply_default(msg);
    }
    ssh_message_free(msg);
  }
  bool idled = watchdog_.Disarm(idle);
  if (mode == kNone || !channel) {
    if (idled) {
      spdlog::info("limit=idle_timeout source={} stage=before-session", c.addr);
      DisconnectWith(c.session, "idle too long without opening a session");
    }
    return;
  }
  ChannelTerminal terminal(channel);
  int exit_code = 1;
  ConnectionTracker::Slot account_slot;
  bool file_transfer = mode == kSubsystem || (mode == kExec && command.rfind("scp ", 0) == 0);
  if (!caller) {
    terminal.WriteErr(caller.error().message + "\n");
  } else if (!no_entry.empty() && (refuse || file_transfer)) {
    terminal.WriteErr(no_entry + "\n");
  } else if (mode == kSubsystem) {
    terminal.WriteErr("the lobby does no file transfer; scp and sftp go to a VM: sftp VM@host\n");
  } else if (caller->account_id &&
             !(account_slot = tracker_.AcquireAccount(caller->account_name, config_.limits.max_sessions_per_account))) {
    spdlog::warn("limit=max_sessions_per_account account={} limit={}", caller->account_name,
                 config_.limits.max_sessions_per_account);
    terminal.WriteErr(fmt::format("too many sessions for account {} (limit {}); close some and try again\n",
                                  caller->account_name, config_.limits.max_sessions_per_account));
  } else {
    LobbyOptions opts;
    opts.pty = pty;
    opts.colour = pty && term != "dumb";
    opts.max_line_bytes = config_.limits.max_line_bytes;
    opts.max_stdin_bytes = config_.limits.max_stdin_bytes;
    opts.idle_timeout = config_.limits.idle_timeout;
    control::Caller who = *caller;  // `register` fills in the account
    Lobby lobby(*service_, terminal, who, opts);
    auto t0 = Clock::now();
    if (mode == kExec) {
      exit_code = lobby.RunOneShot(command);
      // `ssh nosuchvm@host uname`: after the lobby's "unknown command
      // 'uname'", why it was not run in a VM.
      if (!no_entry.empty() && !control::StartsWithLobbyCommand(command)) terminal.WriteErr(no_entry + "\n");
    } else if (pty) {
      exit_code = lobby.RunInteractive();
    } else {
      exit_code = lobby.RunPlain();
    }
    spdlog::info("event=session account={} source={} mode={} exit={} ms={}", lobby.caller().account_name, c.addr,
                 mode == kExec ? "exec" : (pty ? "interactive" : "plain"), exit_code,
                 std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
  }
  ssh_channel_request_send_exit_status(channel, exit_code);
  ssh_channel_send_eof(channel);
  ssh_channel_close(channel);
  // Let the client close its end and disconnect first: cutting the TCP
  // connection now makes OpenSSH print "closed by remote host".
  uint64_t linger = watchdog_.Arm(ssh_get_fd(c.session), Clock::now() + std::chrono::seconds(5));
  while (ssh_message msg = ssh_message_get(c.session)) {
    ssh_message_reply_default(msg);
    ssh_message_free(msg);
  }
  watchdog_.Disarm(linger);
  ssh_channel_free(channel);
}

}  // namespace sshd
