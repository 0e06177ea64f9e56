// The SSH front's host keys: ed25519 (preferred), ecdsa-p256 and rsa-3072 for
// old clients. Made on first start, kept 0600 in a 0700 directory, and reused
// ever after so clients' known_hosts stay valid. Not thread-safe: call once
// at start-up.
#pragma once

#include <string>
#include <vector>

#include "control/result.h"

namespace sshd {

// Returns the private key file paths, creating missing keys in `dir`.
control::Result<std::vector<std::string>> EnsureHostKeys(const std::string& dir);

}  // namespace sshd
