// sshd::Gateway: relays one authenticated client connection into a VM.
//
// exed has already checked the user's key and that the account may enter the
// VM. The gateway opens its own SSH client connection (libssh) to the
// guest's sshd with the host's gateway key, checking the guest's host key
// against the one pinned at first boot, and mirrors the client's channels
// onto it one for one: session channels with pty-req, env, shell, exec,
// subsystem, window-change and signal; exit-status, exit-signal, EOF and
// close coming back; stdout and stderr apart; direct-tcpip (ssh -L);
// tcpip-forward with its forwarded-tcpip channels (ssh -R); and agent
// forwarding (ssh -A: the guest's agent channels become channels to the
// user's client).
//
// One thread per connection (the server's), one ssh_event for both
// sessions. Flow control: a data callback forwards at most what the other
// side's window allows and leaves the rest in libssh's channel buffer, which
// stops growing our window once it holds ~WINDOWLIMIT bytes, so a fast
// sender is slowed to the pace of the slow receiver instead of filling
// exed's memory. After every poll, Pump() moves what was held back.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>

#include "control/service.h"

namespace sshd {

class Gateway {
 public:
  // `client` is authenticated; `vm` is one the caller may enter; `user` the
  // login user in the guest (empty: the image's).
  Gateway(ssh_session client, control::Service& service, control::Caller caller, db::Vm vm, std::string user);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Relays until the client disconnects.
  void Run();

  struct Pair;  // a client channel and its guest twin (gateway.cc)

 private:
  bool EnsureGuest(ssh_channel notices);
  void DropGuest(const std::string& why);
  int OnMessage(ssh_message msg);
  int OnChannelOpen(ssh_message msg);
  int OnChannelRequest(ssh_message msg);
  int OnGlobalRequest(ssh_message msg);
  // Channels the guest opens towards the user (-R connections, agent).
  int OnGuestMessage(ssh_message msg);
  ssh_channel OnGuestAgentOpen();
  Pair* NewPair(ssh_channel client, ssh_channel guest);
  void Pump();
  static int MessageThunk(ssh_session, ssh_message msg, void* self);
  static int GuestMessageThunk(ssh_session, ssh_message msg, void* self);
  static ssh_channel AgentThunk(ssh_session, void* self);

  ssh_session client_;
  control::Service& service_;
  control::Caller caller_;
  db::Vm vm_;
  std::string user_;
  ssh_session guest_ = nullptr;
  ssh_callbacks_struct guest_callbacks_{};
  ssh_event event_ = nullptr;
  std::map<ssh_channel, std::unique_ptr<Pair>> pairs_;  // keyed by the client channel
};

}  // namespace sshd
