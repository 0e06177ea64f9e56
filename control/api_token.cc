#include "control/api_token.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include <fmt/format.h>

#include "control/commands.h"
#include "control/names.h"
#include "control/secrets.h"

namespace control {

namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

bool IsGroup(std::string_view name) {
  for (const auto& s : CommandSpecs()) {
    if (s.name.size() > name.size() && s.name.compare(0, name.size(), name) == 0 && s.name[name.size()] == ' ') {
      return true;
    }
  }
  return false;
}

}  // namespace

Result<std::string> NewApiToken() {
  try {
    return std::string(kApiTokenPrefix) + RandomToken(32);
  } catch (const std::exception&) {
    return InternalError("could not get random bytes for a token; try again");
  }
}

std::string ApiTokenHash(std::string_view token) { return Sha256Hex(token); }

Result<std::string> BearerToken(std::string_view header) {
  header = Trim(header);
  if (header.empty()) {
    return DeniedError("missing API token: send the header 'Authorization: Bearer TOKEN', with a token from "
                       "'ssh-key generate-api-key'");
  }
  size_t sp = header.find_first_of(" \t");
  std::string scheme(header.substr(0, sp));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (scheme != "bearer" || sp == std::string_view::npos) {
    return DeniedError("malformed Authorization header: it must be 'Bearer TOKEN'");
  }
  std::string_view token = Trim(header.substr(sp));
  if (token.empty() || token.find_first_of(" \t") != std::string_view::npos) {
    return DeniedError("malformed Authorization header: it must be 'Bearer TOKEN', with one token");
  }
  if (token.substr(0, kApiTokenPrefix.size()) != kApiTokenPrefix) {
    return DeniedError(fmt::format("malformed API token: tokens start with '{}'; make one with "
                                   "'ssh-key generate-api-key'",
                                   kApiTokenPrefix));
  }
  return std::string(token);
}

Result<int64_t> ParseDuration(std::string_view s) {
  const std::string hint = "give a number and a unit, like 90m, 12h, 30d or 2w";
  if (s.size() < 2 || !std::all_of(s.begin(), s.end() - 1, [](unsigned char c) { return std::isdigit(c); })) {
    return UsageError(fmt::format("--exp {}: {}", ForMessage(s), hint));
  }
  int64_t unit = 0;
  switch (s.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: return UsageError(fmt::format("--exp {}: unknown unit; {}", ForMessage(s), hint));
  }
  constexpr int64_t kMax = 3650LL * 86400;
  std::string_view digits = s.substr(0, s.size() - 1);
  if (digits.size() > 9) return UsageError(fmt::format("--exp {}: at most 3650 days", ForMessage(s)));
  int64_t seconds = std::stoll(std::string(digits)) * unit;
  if (seconds < 60) return UsageError(fmt::format("--exp {}: at least one minute", ForMessage(s)));
  if (seconds > kMax) return UsageError(fmt::format("--exp {}: at most 3650 days", ForMessage(s)));
  return seconds;
}

Result<std::vector<std::string>> ParseCommandList(std::string_view s) {
  std::vector<std::string> out;
  while (true) {
    size_t comma = s.find(',');
    std::string name(Trim(s.substr(0, comma)));
    if (name.empty()) {
      return UsageError("--cmds takes command names separated by commas, like 'ls,new,whoami' (no empty names)");
    }
    if (!FindSpec(name) && !IsGroup(name)) {
      return UsageError(fmt::format("--cmds: no command {}; 'help' lists them (two-word commands are written "
                                    "like 'ssh-key list')",
                                    ForMessage(name)));
    }
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

bool CommandAllowed(const std::vector<std::string>& allowed, std::string_view name) {
  if (allowed.empty() || name == "help") return true;
  for (const auto& a : allowed) {
    if (a == name) return true;
    if (name.size() > a.size() && name.compare(0, a.size(), a) == 0 && name[a.size()] == ' ') return true;
  }
  return false;
}

std::optional<std::string> CheckTokenLabel(std::string_view label) {
  bool ok = !label.empty() && label.size() <= 64 && std::all_of(label.begin(), label.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
  if (!ok) {
    return fmt::format("token label {} must be 1 to 64 letters, digits, '-', '_' or '.'", ForMessage(label));
  }
  if (std::all_of(label.begin(), label.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return fmt::format("token label {} must not be all digits: 'ssh-key revoke-api-key' would read it as an ID",
                       ForMessage(label));
  }
  return std::nullopt;
}

}  // namespace control
