// The VM host's own SSH client into guests (libssh): proves a guest is ready
// (its sshd accepts the gateway key) and runs host-initiated commands in it
// (a clean `poweroff`). The guest's host key is checked against the one
// pinned at first boot; a mismatch is refused, never accepted.
// Blocking; each call has its own session, so calls are thread-safe.
#pragma once

#include <chrono>
#include <string>

#include <libssh/libssh.h>

#include "control/result.h"

namespace vmm {

struct GuestEndpoint {
  int port = 0;               // the loopback port forwarded to the guest's sshd
  std::string key_path;       // the gateway's private key
  std::string user = "root";
  std::string pinned_host_key;  // "ssh-ed25519 BASE64"; empty accepts any (and returns it)
};

// Connects and authenticates. Returns the host key the guest presented.
control::Result<std::string> ProbeGuest(const GuestEndpoint& ep, std::chrono::milliseconds timeout);
// A connected session authenticated as ep.user, for the SSH gateway's relay.
// The caller owns it (ssh_disconnect, then ssh_free). A host key that differs
// from the pinned one is a kDenied error.
control::Result<ssh_session> ConnectGuest(const GuestEndpoint& ep, std::chrono::milliseconds timeout);
// Runs `command`; returns its exit status (-1 if the guest closed without one).
control::Result<int> RunInGuest(const GuestEndpoint& ep, const std::string& command,
                                std::chrono::milliseconds timeout);

// The gateway's ed25519 key pair in `dir` (made once, 0600). Returns the
// public key line ("ssh-ed25519 BASE64 exed-gateway").
control::Result<std::string> EnsureGatewayKey(const std::string& dir, std::string* private_key_path);

}  // namespace vmm
