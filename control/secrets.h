// Random secrets (cookie values, one-time tokens, login codes) and the
// hashes stored in their place. OpenSSL's CSPRNG; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace control {

// `bytes` random bytes, base64url without padding (cookie- and URL-safe).
std::string RandomToken(size_t bytes = 32);
// A short code a person can read and type: groups of 4 from an alphabet
// without look-alikes (no 0/O, 1/I/L), e.g. "HQ7M-T3WX".
std::string RandomCode(size_t groups = 2);
// SHA-256 of `data`, lowercase hex: what the database keeps of a secret.
std::string Sha256Hex(std::string_view data);

}  // namespace control
