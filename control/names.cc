#include "control/names.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace control {
namespace {

constexpr std::array<std::string_view, 24> kReservedAccounts = {
    "admin", "administrator", "root",  "exed",   "system", "support", "help",     "api",
    "www",   "mail",          "lobby", "new",    "register", "login", "logout",  "null",
    "nobody", "operator",     "ca",    "ssh",    "vm",     "vms",     "daemon",   "postgres"};

// Names that would collide with our own hosts or confuse readers of a URL.
constexpr std::array<std::string_view, 15> kReservedVms = {
    "www", "api",    "admin",  "login",  "logout",    "lobby", "ssh", "mail",
    "exed", "ca",    "__exed", "static", "assets",    "localhost", "root"};

constexpr std::array<std::string_view, 40> kAdjectives = {
    "brave",  "calm",   "clever", "cozy",   "crisp",  "daring", "eager",  "fancy",
    "gentle", "glad",   "happy",  "hardy",  "humble", "jolly",  "keen",   "kind",
    "lively", "lucky",  "merry",  "mighty", "nimble", "noble",  "plucky", "polite",
    "proud",  "quick",  "quiet",  "rapid",  "bold",   "shiny",  "silent", "snug",
    "spry",   "steady", "sunny",  "swift",  "tidy",   "witty",  "zesty",  "bright"};

constexpr std::array<std::string_view, 40> kNouns = {
    "otter",  "badger", "beaver", "bison",   "falcon", "ferret",  "finch",  "fox",
    "gecko",  "heron",  "ibis",   "koala",   "lemur",  "llama",   "lynx",   "marmot",
    "moose",  "newt",   "ocelot", "osprey",  "owl",    "panda",   "parrot", "pelican",
    "penguin", "puffin", "quail", "rabbit",  "raven",  "robin",   "salmon", "seal",
    "sparrow", "swan",  "tapir",  "tiger",   "toucan", "walrus",  "wombat", "yak"};

bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

template <size_t N>
bool Contains(const std::array<std::string_view, N>& list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

// The rules account and VM names share; `what` starts every message.
struct LabelRules {
  std::string_view what;
  size_t min_len;
  size_t max_len;
};

std::optional<std::string> CheckLabel(const LabelRules& rules, std::string_view name) {
  const std::string what(rules.what);
  const std::string range =
      std::to_string(rules.min_len) + " to " + std::to_string(rules.max_len);
  if (name.empty()) {
    return what + " is empty; use " + range +
           " lowercase letters, digits and '-', starting with a letter";
  }
  if (!std::all_of(name.begin(), name.end(),
                   [](char c) { return IsLower(c) || IsDigit(c) || c == '-'; })) {
    return what + " " + ForMessage(name) + " must use lowercase letters, digits and '-'";
  }
  if (!IsLower(name.front())) {
    return what + " " + ForMessage(name) + " must start with a letter";
  }
  if (name.size() < rules.min_len) {
    return what + " " + ForMessage(name) + " is too short (" + std::to_string(name.size()) +
           " characters); use " + range;
  }
  if (name.size() > rules.max_len) {
    return what + " " + ForMessage(name) + " is too long (" + std::to_string(name.size()) +
           " characters); use " + range;
  }
  if (name.back() == '-') {
    return what + " " + ForMessage(name) + " must not end with '-'";
  }
  return std::nullopt;
}

// Decodes one UTF-8 sequence at s[i]; returns its length, or 0 if invalid
// (truncated, overlong, surrogate, or past U+10FFFF).
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t len;
  uint32_t min;
  if (c < 0x80) {
    *cp = c;
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    len = 2, min = 0x80, *cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, min = 0x800, *cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, *cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (b(k) & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
  return len;
}

// Control characters, and the invisible characters that reorder or break
// text: shown to another user they could disguise one label as another.
bool IsUnprintable(uint32_t cp) {
  return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x061C || cp == 0x200E ||
         cp == 0x200F || (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

std::optional<std::string> CheckAccountName(std::string_view name) {
  if (Contains(kReservedAccounts, name)) {
    return "account name " + ForMessage(name) + " is reserved; pick another";
  }
  if (auto err = CheckLabel({"account name", 3, 32}, name)) return err;
  // So that 'a--b' cannot pass for 'a-b' at a glance: account names are how
  // users tell each other apart when sharing.
  if (name.find("--") != std::string_view::npos) {
    return "account name " + ForMessage(name) + " must not contain '--'";
  }
  return std::nullopt;
}

std::optional<std::string> CheckVmName(std::string_view name) {
  // Before the character rules, so "__exed" is called reserved, not badly
  // spelled.
  if (Contains(kReservedVms, name)) {
    return "VM name " + ForMessage(name) + " is reserved; pick another";
  }
  if (auto err = CheckLabel({"VM name", 3, 40}, name)) return err;
  if (name.substr(2, 2) == "--") {
    return "VM name " + ForMessage(name) +
           " must not have '--' as its third and fourth characters, which DNS keeps for "
           "internationalized names; pick another";
  }
  return std::nullopt;
}

std::optional<std::string> CheckKeyComment(std::string_view comment) {
  if (comment.empty()) {
    return "key comment is empty; give a short label such as 'laptop'";
  }
  if (comment.size() > 100) {
    return "key comment " + ForMessage(comment) + " is too long (" +
           std::to_string(comment.size()) + " bytes); use at most 100";
  }
  if (!IsPrintableUtf8(comment)) {
    return "key comment " + ForMessage(comment) +
           " contains control characters or invalid UTF-8; use printable text only";
  }
  if (comment.front() == ' ' || comment.back() == ' ') {
    return "key comment " + ForMessage(comment) +
           " starts or ends with a space; remove the space";
  }
  return std::nullopt;
}

std::string RandomVmName(const std::function<uint32_t()>& rng) {
  const std::string_view adjective = kAdjectives[rng() % kAdjectives.size()];
  const std::string_view noun = kNouns[rng() % kNouns.size()];
  return std::string(adjective) + "-" + std::string(noun);
}

bool IsPrintableUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t len = DecodeUtf8(s, i, &cp);
    if (len == 0 || IsUnprintable(cp)) return false;
    i += len;
  }
  return true;
}

std::string ForMessage(std::string_view value, size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (size_t i = 0; i < value.size();) {
    uint32_t cp;
    size_t len = DecodeUtf8(value, i, &cp);
    if (i + std::max<size_t>(len, 1) > max_bytes) {
      out += "...";
      break;
    }
    if (len == 0 || IsUnprintable(cp)) {
      // One byte at a time: a multi-byte control character shows as its
      // bytes, which is what the user has to find and delete.
      len = len == 0 ? 1 : len;
      for (size_t k = 0; k < len; ++k) {
        const auto byte = static_cast<unsigned char>(value[i + k]);
        out += "\\x";
        out.push_back(kHex[byte >> 4]);
        out.push_back(kHex[byte & 0xF]);
      }
    } else {
      out.append(value.substr(i, len));
    }
    i += len;
  }
  out.push_back('\'');
  return out;
}

std::optional<GatewayLogin> ParseGatewayLogin(std::string_view login) {
  GatewayLogin g;
  auto plus = login.find('+');
  if (plus != std::string_view::npos) {
    std::string_view user = login.substr(0, plus);
    if (user.empty() || user.size() > 32) return std::nullopt;
    if (!(std::islower(static_cast<unsigned char>(user[0])) || user[0] == '_')) return std::nullopt;
    for (char ch : user) {
      auto c = static_cast<unsigned char>(ch);
      if (!(std::islower(c) || std::isdigit(c) || ch == '_' || ch == '-')) return std::nullopt;
    }
    g.user = std::string(user);
    g.explicit_user = true;
    login = login.substr(plus + 1);
  }
  if (CheckVmName(login)) return std::nullopt;
  g.vm = std::string(login);
  return g;
}

}  // namespace control
