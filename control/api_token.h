// Tokens of the HTTPS /exec API: making one, hashing it for storage, reading
// it from an Authorization header, and the rules of the flags of
// `ssh-key generate-api-key` (--label, --cmds, --exp).
//
// A token is "exed_" followed by 32 random bytes in unpadded base64url. Only
// its SHA-256 is stored, so a leaked database yields no usable token; 256
// random bits make a salt and a slow hash pointless.
//
// Pure functions, except NewApiToken (OpenSSL's RNG); all thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/result.h"

namespace control {

inline constexpr std::string_view kApiTokenPrefix = "exed_";

// A fresh token. Fails (kInternal) only when OpenSSL's RNG does.
Result<std::string> NewApiToken();

// Lowercase hex SHA-256 of the token, as the database keeps it.
std::string ApiTokenHash(std::string_view token);

// The token in an Authorization header value, "Bearer TOKEN" (the scheme in
// any case, blanks around it ignored). Fails (kDenied) with a sentence saying
// what is wrong with the header; it never repeats the token.
Result<std::string> BearerToken(std::string_view header);

// A lifetime like "90m", "12h", "30d" or "2w" (also "3600s"), in seconds:
// from one minute to 3650 days. Fails with kUsage.
Result<int64_t> ParseDuration(std::string_view s);

// The value of --cmds, "ls,new,ssh-key list", as command names. Each must be
// a command of CommandSpecs() or a command group ("ssh-key", "share"), which
// stands for all its subcommands. Duplicates are dropped. Fails with kUsage.
Result<std::vector<std::string>> ParseCommandList(std::string_view s);

// Whether a token limited to `allowed` (empty: every command) may run command
// `name` (a spec name, "ssh-key list"). "help" is always allowed: it reveals
// nothing about the account.
bool CommandAllowed(const std::vector<std::string>& allowed, std::string_view name);

// Labels name tokens in `ssh-key revoke-api-key ID|LABEL`: 1 to 64 ASCII
// letters, digits, '-', '_' and '.', not all digits (that would read as an ID).
std::optional<std::string> CheckTokenLabel(std::string_view label);

}  // namespace control
