#include "sshd/gateway.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

// Channel opens and requests arrive as ssh_message (deprecated in 0.10, see
// server.cc): the message API is the one that gives the pty's terminal type
// and size, env pairs, commands and subsystems in one place.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace sshd {

namespace {

constexpr auto kGuestTimeout = std::chrono::seconds(20);  // connect, and each request's reply

// Requests that want the guest's answer are made blocking; the rest of the
// time the guest session is non-blocking, so a slow guest never stalls the
// client's side of this thread.
class Blocking {
 public:
  explicit Blocking(ssh_session s) : s_(s) { ssh_set_blocking(s_, 1); }
  ~Blocking() { ssh_set_blocking(s_, 0); }
  Blocking(const Blocking&) = delete;
  Blocking& operator=(const Blocking&) = delete;

 private:
  ssh_session s_;
};

// One line from exed itself, on the channel's stderr. "\r\n": the client's
// terminal may already be in raw mode.
void Say(ssh_channel ch, const std::string& line) {
  std::string s = "exed: " + line + "\r\n";
  ssh_channel_write_stderr(ch, s.data(), static_cast<uint32_t>(s.size()));
}

}  // namespace

struct Gateway::Pair {
  ssh_channel client = nullptr;
  ssh_channel guest = nullptr;  // null: the guest side could not be opened
  ssh_channel_callbacks_struct client_cb{};
  ssh_channel_callbacks_struct guest_cb{};
  // Bytes a data callback left in libssh's channel buffer for lack of window
  // on the other side: client -> guest, and guest -> client stdout/stderr.
  uint32_t held_up = 0;
  std::array<uint32_t, 2> held_down{0, 0};
  bool client_eof = false, guest_eof = false;        // received
  bool client_closed = false, guest_closed = false;  // received
  bool eof_to_guest = false, eof_to_client = false;  // sent
  bool close_to_guest = false, close_to_client = false;
};

namespace {

using Pair = Gateway::Pair;

int ClientData(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr, void* u) {
  auto* p = static_cast<Pair*>(u);
  if (is_stderr || !p->guest || p->guest_closed || p->close_to_guest) return static_cast<int>(len);  // nowhere to go
  uint32_t n = std::min(len, ssh_channel_window_size(p->guest));
  if (n > 0) {
    int w = ssh_channel_write(p->guest, data, n);
    if (w < 0) return static_cast<int>(len);
    n = static_cast<uint32_t>(w);
  }
  p->held_up = len - n;
  return static_cast<int>(n);
}

int GuestData(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr, void* u) {
  auto* p = static_cast<Pair*>(u);
  if (p->client_closed || p->close_to_client) return static_cast<int>(len);
  uint32_t n = std::min(len, ssh_channel_window_size(p->client));
  if (n > 0) {
    int w = is_stderr ? ssh_channel_write_stderr(p->client, data, n) : ssh_channel_write(p->client, data, n);
    if (w < 0) return static_cast<int>(len);
    n = static_cast<uint32_t>(w);
  }
  p->held_down[is_stderr ? 1 : 0] = len - n;
  return static_cast<int>(n);
}

void ClientEof(ssh_session, ssh_channel, void* u) { static_cast<Pair*>(u)->client_eof = true; }
void ClientClose(ssh_session, ssh_channel, void* u) { static_cast<Pair*>(u)->client_closed = true; }
void GuestEof(ssh_session, ssh_channel, void* u) { static_cast<Pair*>(u)->guest_eof = true; }
void GuestClose(ssh_session, ssh_channel, void* u) { static_cast<Pair*>(u)->guest_closed = true; }

void ClientAgentRequest(ssh_session, ssh_channel, void* u) {
  auto* p = static_cast<Pair*>(u);
  if (p->guest && !p->guest_closed) ssh_channel_request_auth_agent(p->guest);
}

void ClientSignal(ssh_session, ssh_channel, const char* signal, void* u) {
  auto* p = static_cast<Pair*>(u);
  if (p->guest && !p->guest_closed) ssh_channel_request_send_signal(p->guest, signal);
}

void GuestExitStatus(ssh_session, ssh_channel, int status, void* u) {
  auto* p = static_cast<Pair*>(u);
  if (!p->client_closed) ssh_channel_request_send_exit_status(p->client, status);
}

void GuestExitSignal(ssh_session, ssh_channel, const char* signal, int core, const char* errmsg, const char* lang,
                     void* u) {
  auto* p = static_cast<Pair*>(u);
  if (!p->client_closed) {
    ssh_channel_request_send_exit_signal(p->client, signal, core, errmsg ? errmsg : "", lang ? lang : "");
  }
}

// Moves up to `held` bytes that libssh holds in `from`'s buffer to `to`, as
// far as `to`'s window allows. REQUIRES: held > 0 means the buffer has them,
// so the read never waits or processes packets.
void Drain(ssh_channel from, ssh_channel to, uint32_t* held, int is_stderr) {
  std::array<char, 32768> buf;
  while (*held > 0) {
    uint32_t n = std::min<uint32_t>({*held, ssh_channel_window_size(to), static_cast<uint32_t>(buf.size())});
    if (n == 0) return;
    int r = ssh_channel_read_nonblocking(from, buf.data(), n, is_stderr);
    if (r <= 0) {
      *held = 0;  // the buffer is gone (channel closed): nothing left to move
      return;
    }
    *held -= static_cast<uint32_t>(r);
    int w = is_stderr ? ssh_channel_write_stderr(to, buf.data(), r) : ssh_channel_write(to, buf.data(), r);
    if (w < 0) {
      *held = 0;
      return;
    }
  }
}

}  // namespace

Gateway::Gateway(ssh_session client, control::Service& service, control::Caller caller, db::Vm vm, std::string user)
    : client_(client), service_(service), caller_(std::move(caller)), vm_(std::move(vm)), user_(std::move(user)) {}

Gateway::~Gateway() {
  for (auto& [ch, p] : pairs_) {
    if (p->guest) ssh_channel_free(p->guest);
    ssh_channel_free(p->client);
  }
  pairs_.clear();
  if (event_) {
    if (guest_) ssh_event_remove_session(event_, guest_);
    ssh_event_remove_session(event_, client_);
    ssh_event_free(event_);
  }
  if (guest_) {
    ssh_disconnect(guest_);
    ssh_free(guest_);
  }
}

int Gateway::MessageThunk(ssh_session, ssh_message msg, void* self) {
  return static_cast<Gateway*>(self)->OnMessage(msg);
}

int Gateway::GuestMessageThunk(ssh_session, ssh_message msg, void* self) {
  return static_cast<Gateway*>(self)->OnGuestMessage(msg);
}

ssh_channel Gateway::AgentThunk(ssh_session, void* self) { return static_cast<Gateway*>(self)->OnGuestAgentOpen(); }

void Gateway::Run() {
  spdlog::info("event=gateway-open account={} vm={} user={} source={}", caller_.account_name, vm_.name,
               user_.empty() ? "(image)" : user_, caller_.source_addr);
  event_ = ssh_event_new();
  ssh_set_message_callback(client_, &Gateway::MessageThunk, this);
  ssh_set_blocking(client_, 0);
  ssh_event_add_session(event_, client_);
  while (ssh_is_connected(client_) && !(ssh_get_status(client_) & (SSH_CLOSED | SSH_CLOSED_ERROR))) {
    ssh_event_dopoll(event_, 1000);
    Pump();
  }
  spdlog::info("event=gateway-close account={} vm={}", caller_.account_name, vm_.name);
}

bool Gateway::EnsureGuest(ssh_channel notices) {
  if (guest_) return true;
  auto say = [&](const std::string& line) {
    if (notices) Say(notices, line);
  };
  auto ep = service_.PrepareEntry(caller_, vm_, user_, say);
  if (!ep) {
    say(ep.error().message);
    spdlog::warn("event=gateway-unavailable vm={} error=\"{}\"", vm_.name, ep.error().message);
    return false;
  }
  auto s = vmm::ConnectGuest(*ep, kGuestTimeout);
  if (!s) {
    if (s.error().kind == control::ErrorKind::kDenied) {
      spdlog::error("event=guest-hostkey-mismatch vm={} error=\"{}\"", vm_.name, s.error().message);
      say(fmt::format("VM {} presented an SSH host key that differs from the one pinned at its first boot; "
                      "refusing to connect",
                      vm_.name));
    } else {
      spdlog::warn("event=gateway-connect-failed vm={} user={} error=\"{}\"", vm_.name, ep->user, s.error().message);
      say(fmt::format("cannot log in to VM {} as {}: {}", vm_.name, ep->user, s.error().message));
    }
    return false;
  }
  guest_ = *s;
  ssh_callbacks_init(&guest_callbacks_);
  guest_callbacks_.userdata = this;
  guest_callbacks_.channel_open_request_auth_agent_function = &Gateway::AgentThunk;
  ssh_set_callbacks(guest_, &guest_callbacks_);
  ssh_set_message_callback(guest_, &Gateway::GuestMessageThunk, this);
  ssh_set_blocking(guest_, 0);
  ssh_event_add_session(event_, guest_);
  return true;
}

void Gateway::DropGuest(const std::string& why) {
  spdlog::warn("event=gateway-guest-lost vm={} reason=\"{}\"", vm_.name, why);
  for (auto& [ch, p] : pairs_) {
    if (!p->guest) continue;
    if (!p->close_to_client && !p->client_closed) {
      Say(p->client, fmt::format("the connection to VM {} was lost: {}", vm_.name, why));
      if (!p->eof_to_client) ssh_channel_send_eof(p->client);
      ssh_channel_close(p->client);
      p->eof_to_client = p->close_to_client = true;
    }
    ssh_channel_free(p->guest);
    p->guest = nullptr;
    p->guest_closed = true;
    p->held_up = 0;
    p->held_down = {0, 0};
  }
  ssh_event_remove_session(event_, guest_);
  ssh_disconnect(guest_);
  ssh_free(guest_);
  guest_ = nullptr;
}

Gateway::Pair* Gateway::NewPair(ssh_channel client, ssh_channel guest) {
  auto p = std::make_unique<Pair>();
  p->client = client;
  p->guest = guest;
  ssh_callbacks_init(&p->client_cb);
  p->client_cb.userdata = p.get();
  p->client_cb.channel_data_function = ClientData;
  p->client_cb.channel_eof_function = ClientEof;
  p->client_cb.channel_close_function = ClientClose;
  p->client_cb.channel_signal_function = ClientSignal;
  p->client_cb.channel_auth_agent_req_function = ClientAgentRequest;
  ssh_set_channel_callbacks(client, &p->client_cb);
  if (guest) {
    ssh_callbacks_init(&p->guest_cb);
    p->guest_cb.userdata = p.get();
    p->guest_cb.channel_data_function = GuestData;
    p->guest_cb.channel_eof_function = GuestEof;
    p->guest_cb.channel_close_function = GuestClose;
    p->guest_cb.channel_exit_status_function = GuestExitStatus;
    p->guest_cb.channel_exit_signal_function = GuestExitSignal;
    ssh_set_channel_callbacks(guest, &p->guest_cb);
  }
  Pair* raw = p.get();
  pairs_[client] = std::move(p);
  return raw;
}

int Gateway::OnMessage(ssh_message msg) {
  switch (ssh_message_type(msg)) {
    case SSH_REQUEST_CHANNEL_OPEN:
      return OnChannelOpen(msg);
    case SSH_REQUEST_CHANNEL:
      return OnChannelRequest(msg);
    case SSH_REQUEST_GLOBAL:
      return OnGlobalRequest(msg);
    default:
      return 1;
  }
}

int Gateway::OnGlobalRequest(ssh_message msg) {
  int kind = ssh_message_subtype(msg);
  if (kind != SSH_GLOBAL_REQUEST_TCPIP_FORWARD && kind != SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD) return 1;
  const char* addr = ssh_message_global_request_address(msg);
  int port = ssh_message_global_request_port(msg);
  if (!EnsureGuest(nullptr)) return 1;
  Blocking b(guest_);
  if (kind == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD) {
    if (ssh_channel_cancel_forward(guest_, addr, port) != SSH_OK) return 1;
    ssh_message_global_request_reply_success(msg, 0);
    return 0;
  }
  // The guest's sshd listens (on its side) and opens forwarded-tcpip
  // channels to us for each connection, which OnGuestMessage passes on.
  int bound = 0;
  if (ssh_channel_listen_forward(guest_, addr, port, &bound) != SSH_OK) {
    spdlog::info("event=gateway-listen-refused vm={} port={} error=\"{}\"", vm_.name, port, ssh_get_error(guest_));
    return 1;
  }
  ssh_message_global_request_reply_success(msg, static_cast<uint16_t>(bound));
  return 0;
}

int Gateway::OnGuestMessage(ssh_message msg) {
  if (ssh_message_type(msg) != SSH_REQUEST_CHANNEL_OPEN || ssh_message_subtype(msg) != SSH_CHANNEL_FORWARDED_TCPIP) {
    return 1;
  }
  const char* addr = ssh_message_channel_request_open_destination(msg);
  int port = ssh_message_channel_request_open_destination_port(msg);
  const char* orig = ssh_message_channel_request_open_originator(msg);
  int orig_port = ssh_message_channel_request_open_originator_port(msg);
  ssh_channel up = ssh_channel_new(client_);
  {
    Blocking b(client_);
    if (!up || ssh_channel_open_reverse_forward(up, addr ? addr : "localhost", port, orig ? orig : "127.0.0.1",
                                                orig_port) != SSH_OK) {
      if (up) ssh_channel_free(up);
      return 1;
    }
  }
  ssh_channel guest = ssh_message_channel_request_open_reply_accept(msg);
  if (!guest) {
    ssh_channel_close(up);
    ssh_channel_free(up);
    return 0;
  }
  NewPair(up, guest);
  return 0;
}

ssh_channel Gateway::OnGuestAgentOpen() {
  // Only asked for after the user's client sent auth-agent-req (ssh -A); the
  // client then accepts agent channels.
  ssh_channel up = ssh_channel_new(client_);
  {
    Blocking b(client_);
    if (!up || ssh_channel_open_auth_agent(up) != SSH_OK) {
      if (up) ssh_channel_free(up);
      return nullptr;
    }
  }
  ssh_channel guest = ssh_channel_new(guest_);
  if (!guest) {
    ssh_channel_close(up);
    ssh_channel_free(up);
    return nullptr;
  }
  NewPair(up, guest);
  return guest;
}

int Gateway::OnChannelOpen(ssh_message msg) {
  int kind = ssh_message_subtype(msg);
  if (kind == SSH_CHANNEL_SESSION) {
    // Accept first: the channel is where the user reads why the VM is
    // starting, or why it cannot be reached.
    ssh_channel client = ssh_message_channel_request_open_reply_accept(msg);
    if (!client) return 0;
    ssh_channel guest = nullptr;
    if (EnsureGuest(client)) {
      Blocking b(guest_);
      guest = ssh_channel_new(guest_);
      if (guest && ssh_channel_open_session(guest) != SSH_OK) {
        Say(client, fmt::format("VM {} refused a session: {}", vm_.name, ssh_get_error(guest_)));
        ssh_channel_free(guest);
        guest = nullptr;
      }
    }
    Pair* p = NewPair(client, guest);
    if (!guest) {
      ssh_channel_request_send_exit_status(client, 255);
      ssh_channel_send_eof(client);
      ssh_channel_close(client);
      p->eof_to_client = p->close_to_client = true;
    }
    return 0;
  }
  if (kind == SSH_CHANNEL_DIRECT_TCPIP) {
    const char* host = ssh_message_channel_request_open_destination(msg);
    int port = ssh_message_channel_request_open_destination_port(msg);
    const char* orig = ssh_message_channel_request_open_originator(msg);
    int orig_port = ssh_message_channel_request_open_originator_port(msg);
    if (!host || !EnsureGuest(nullptr)) return 1;
    ssh_channel guest = nullptr;
    {
      Blocking b(guest_);
      guest = ssh_channel_new(guest_);
      if (guest && ssh_channel_open_forward(guest, host, port, orig ? orig : "127.0.0.1", orig_port) != SSH_OK) {
        spdlog::info("event=gateway-forward-refused vm={} to={}:{} error=\"{}\"", vm_.name, host, port,
                     ssh_get_error(guest_));
        ssh_channel_free(guest);
        guest = nullptr;
      }
    }
    if (!guest) return 1;  // the client sees "open failed"
    ssh_channel client = ssh_message_channel_request_open_reply_accept(msg);
    if (!client) {
      ssh_channel_close(guest);
      ssh_channel_free(guest);
      return 0;
    }
    NewPair(client, guest);
    return 0;
  }
  return 1;  // x11, auth-agent, forwarded-tcpip from a client: not offered
}

int Gateway::OnChannelRequest(ssh_message msg) {
  auto it = pairs_.find(ssh_message_channel_request_channel(msg));
  if (it == pairs_.end()) return 1;
  Pair* p = it->second.get();
  if (!p->guest || p->guest_closed) return 1;
  int kind = ssh_message_subtype(msg);
  if (kind == SSH_CHANNEL_REQUEST_WINDOW_CHANGE) {
    ssh_channel_change_pty_size(p->guest, ssh_message_channel_request_pty_width(msg),
                                ssh_message_channel_request_pty_height(msg));
    ssh_message_channel_request_reply_success(msg);
    return 0;
  }
  int rc = SSH_ERROR;
  {
    Blocking b(guest_);
    switch (kind) {
      case SSH_CHANNEL_REQUEST_PTY: {
        const char* term = ssh_message_channel_request_pty_term(msg);
        rc = ssh_channel_request_pty_size(p->guest, term ? term : "xterm", ssh_message_channel_request_pty_width(msg),
                                          ssh_message_channel_request_pty_height(msg));
        break;
      }
      case SSH_CHANNEL_REQUEST_ENV: {
        const char* name = ssh_message_channel_request_env_name(msg);
        const char* value = ssh_message_channel_request_env_value(msg);
        if (name && value) rc = ssh_channel_request_env(p->guest, name, value);
        break;
      }
      case SSH_CHANNEL_REQUEST_SHELL:
        rc = ssh_channel_request_shell(p->guest);
        break;
      case SSH_CHANNEL_REQUEST_EXEC: {
        const char* cmd = ssh_message_channel_request_command(msg);
        if (cmd) rc = ssh_channel_request_exec(p->guest, cmd);
        break;
      }
      case SSH_CHANNEL_REQUEST_SUBSYSTEM: {
        const char* sub = ssh_message_channel_request_subsystem(msg);
        if (sub) rc = ssh_channel_request_subsystem(p->guest, sub);
        break;
      }
      default:
        return 1;  // x11-req and the like
    }
  }
  if (rc != SSH_OK) return 1;  // the guest said no (or is gone): so do we
  ssh_message_channel_request_reply_success(msg);
  return 0;
}

void Gateway::Pump() {
  if (guest_ && !ssh_is_connected(guest_)) {
    DropGuest(ssh_get_error(guest_));
  }
  for (auto it = pairs_.begin(); it != pairs_.end();) {
    Pair& p = *it->second;
    if (p.guest) {
      if (!p.guest_closed && !p.close_to_guest) Drain(p.client, p.guest, &p.held_up, 0);
      if (!p.client_closed && !p.close_to_client) {
        Drain(p.guest, p.client, &p.held_down[0], 0);
        Drain(p.guest, p.client, &p.held_down[1], 1);
      }
      if (p.client_eof && p.held_up == 0 && !p.eof_to_guest && !p.guest_closed) {
        ssh_channel_send_eof(p.guest);
        p.eof_to_guest = true;
      }
      bool down_empty = p.held_down[0] == 0 && p.held_down[1] == 0;
      if (p.guest_eof && down_empty && !p.eof_to_client && !p.client_closed) {
        ssh_channel_send_eof(p.client);
        p.eof_to_client = true;
      }
      if (p.guest_closed && down_empty && !p.close_to_client && !p.client_closed) {
        if (!p.eof_to_client) ssh_channel_send_eof(p.client);
        ssh_channel_close(p.client);
        p.eof_to_client = p.close_to_client = true;
      }
      if ((p.client_closed || p.close_to_client) && !p.close_to_guest) {
        // Whoever closed first, the guest side closes too.
        if (p.client_closed || p.guest_closed) {
          ssh_channel_close(p.guest);
          p.close_to_guest = true;
        }
      }
    }
    // Done when both ends have closed and said so to each other.
    bool client_done = p.client_closed && p.close_to_client;
    bool guest_done = !p.guest || (p.guest_closed && p.close_to_guest);
    if (p.client_closed && !p.close_to_client) {
      ssh_channel_close(p.client);
      p.close_to_client = true;
      client_done = true;
    }
    if (client_done && guest_done) {
      if (p.guest) ssh_channel_free(p.guest);
      ssh_channel_free(p.client);
      it = pairs_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace sshd
