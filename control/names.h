// Rules for the names users choose: accounts, VMs and key comments, and the
// random VM names given when none is chosen.
//
// Each Check function returns the sentence to show the user when the value is
// refused, or nullopt when it is acceptable; callers wrap the sentence in
// InvalidError. The messages quote the value through ForMessage, so a name
// full of escape sequences cannot paint over the user's terminal.
//
// Pure functions; safe to call from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace control {

// Account names appear in URLs, ssh destinations and cgroup paths: 3 to 32
// lowercase ASCII letters, digits and '-', starting with a letter, not
// ending with '-', with no "--"; a few are reserved.
std::optional<std::string> CheckAccountName(std::string_view name);

// VM names are DNS labels under the domain (<vm>.<domain>): 3 to 40
// lowercase ASCII letters, digits and '-', starting with a letter, not
// ending with '-', and without "--" as the third and fourth characters (that
// marks IDNA "xn--" labels, which browsers show as other characters); a few
// are reserved.
std::optional<std::string> CheckVmName(std::string_view name);

// A key's comment is only a label for the user: 1 to 100 bytes of printable
// UTF-8, no control characters, no leading or trailing space.
std::optional<std::string> CheckKeyComment(std::string_view comment);

// Returns a readable "adjective-noun" name such as "brave-otter" that always
// passes CheckVmName. `rng` is called twice; injected so tests are
// deterministic. The caller retries on collision with an existing VM.
std::string RandomVmName(const std::function<uint32_t()>& rng);

// An SSH login name that addresses a VM through the gateway: "VM", or
// "USER+VM" to log in as USER (a Unix user name: lowercase letter or '_',
// then up to 31 of [a-z0-9_-]). nullopt when it is neither, e.g. a VM part
// that breaks the VM name rules or a reserved name such as "lobby".
struct GatewayLogin {
  std::string user;  // empty: the image's login user
  std::string vm;
  bool explicit_user = false;  // "USER+VM": the caller clearly means a VM
};
std::optional<GatewayLogin> ParseGatewayLogin(std::string_view login);

// True if `s` is valid UTF-8 with no control characters (C0, DEL, C1) and no
// bidirectional formatting characters, so it can be shown on a terminal or
// a web page as is.
bool IsPrintableUtf8(std::string_view s);

// Returns `value` wrapped in single quotes for use in an error message, with
// control characters and invalid UTF-8 written as \xNN and anything past
// `max_bytes` replaced by "...", so a hostile value stays one short line.
std::string ForMessage(std::string_view value, size_t max_bytes = 48);

}  // namespace control
