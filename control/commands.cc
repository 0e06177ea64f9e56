#include "control/commands.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "control/suggest.h"

namespace control {

const std::vector<CommandSpec>& CommandSpecs() {
  static const auto* specs = new std::vector<CommandSpec>{
      {"help", "[COMMAND]", "show commands, or one command's help", "Lists the commands, or explains one.", {}, false},
      {"whoami", "", "show your account, keys, budget and usage",
       "Shows the account this key belongs to, its keys, its budget (CPUs, memory, disk, VMs)\n"
       "and what its VMs use of it.",
       {}},
      {"register", "NAME", "create an account for the key you connected with",
       "Creates account NAME owned by the SSH key of this connection. NAME is 3 to 32\n"
       "lowercase letters, digits and '-', starting with a letter.",
       {{"--invite", "CODE", "invite code, when this server registers by invitation"}},
       false},
      {"ssh-key list", "", "list the SSH keys of your account", "Lists your keys with fingerprint, comment, when added and last used.", {}},
      {"ssh-key add", "[KEY]", "add an SSH public key to your account",
       "Adds a public key (the contents of a .pub file). With no KEY, reads it from\n"
       "standard input:  ssh-key add < ~/.ssh/id_ed25519.pub",
       {{"--comment", "TEXT", "name for the key (default: the key's own comment)"}}},
      {"ssh-key remove", "FINGERPRINT|COMMENT", "remove an SSH key from your account",
       "Removes a key, named by its SHA256 fingerprint or its comment. Your last key\n"
       "cannot be removed: add another first.",
       {}},
      {"ssh-key rename", "FINGERPRINT|COMMENT NEW-COMMENT", "change an SSH key's comment", "Renames a key.", {}},
      {"exit", "", "leave the lobby", "Ends the session.", {}, false},
  };
  return *specs;
}

const CommandSpec* FindSpec(std::string_view name) {
  for (const auto& s : CommandSpecs()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::vector<std::string> TopLevelNames() {
  std::vector<std::string> out;
  for (const auto& s : CommandSpecs()) {
    std::string top = s.name.substr(0, s.name.find(' '));
    if (std::find(out.begin(), out.end(), top) == out.end()) out.push_back(top);
  }
  return out;
}

namespace {

std::vector<std::string> SubcommandsOf(std::string_view top) {
  std::vector<std::string> out;
  for (const auto& s : CommandSpecs()) {
    if (s.name.size() > top.size() && s.name.compare(0, top.size(), top) == 0 && s.name[top.size()] == ' ') {
      out.push_back(s.name.substr(top.size() + 1));
    }
  }
  return out;
}

struct Parsed {
  const CommandSpec* spec = nullptr;
  std::vector<std::string> args;
  std::map<std::string, std::string> flags;
  bool json = false;
  bool help = false;
};

std::string Join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? std::string(sep) : "") + v[i];
  return out;
}

Result<Parsed> Tokenize(const std::vector<std::string>& words) {
  Parsed p;
  const std::string& first = words[0];
  size_t next = 1;
  auto subs = SubcommandsOf(first);
  if (!subs.empty()) {
    if (words.size() < 2 || words[1] == "--help" || words[1] == "-h") {
      if (words.size() >= 2) {
        p.help = true;
        p.spec = nullptr;
        p.args = {first};
        return p;
      }
      return UsageError(fmt::format("'{}' needs a subcommand: {}; try '{} --help'", first, Join(subs, ", "), first));
    }
    p.spec = FindSpec(first + " " + words[1]);
    if (!p.spec) {
      auto s = Suggest(words[1], subs);
      return UsageError(fmt::format("unknown subcommand '{} {}'{}; the subcommands are {}", first, words[1],
                                    s ? fmt::format(" (did you mean '{} {}'?)", first, *s) : "", Join(subs, ", ")));
    }
    next = 2;
  } else {
    p.spec = FindSpec(first);
    if (!p.spec) {
      auto s = Suggest(first, TopLevelNames());
      return UsageError(fmt::format("unknown command '{}'{}; type 'help' for the list", first,
                                    s ? fmt::format(" (did you mean '{}'?)", *s) : ""));
    }
  }
  bool only_args = false;
  for (size_t i = next; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (only_args || w.size() < 2 || w[0] != '-') {
      p.args.push_back(w);
      continue;
    }
    if (w == "--") {
      only_args = true;
      continue;
    }
    if (w == "--json") {
      p.json = true;
      continue;
    }
    if (w == "--help" || w == "-h") {
      p.help = true;
      continue;
    }
    std::string name = w, value;
    bool has_value = false;
    if (auto eq = w.find('='); eq != std::string::npos) {
      name = w.substr(0, eq);
      value = w.substr(eq + 1);
      has_value = true;
    }
    auto f = std::find_if(p.spec->flags.begin(), p.spec->flags.end(), [&](const FlagSpec& f) { return f.name == name; });
    if (f == p.spec->flags.end()) {
      std::vector<std::string> names{"--json", "--help"};
      for (const auto& fl : p.spec->flags) names.push_back(fl.name);
      auto s = Suggest(name, names);
      return UsageError(fmt::format("'{}' has no flag '{}'{}; see '{} --help'", p.spec->name, name,
                                    s ? fmt::format(" (did you mean '{}'?)", *s) : "", p.spec->name));
    }
    if (f->value_name.empty()) {
      if (has_value) return UsageError(fmt::format("flag {} takes no value", name));
      p.flags[name] = "";
      continue;
    }
    if (!has_value) {
      if (i + 1 >= words.size()) {
        return UsageError(fmt::format("flag {} needs a value: {} {}", name, name, f->value_name));
      }
      value = words[++i];
    }
    p.flags[name] = value;
  }
  return p;
}

Status ArgCount(const Parsed& p, size_t min, size_t max) {
  if (p.args.size() < min) {
    return UsageError(fmt::format("'{}' needs {}: {} {}", p.spec->name, p.spec->args, p.spec->name, p.spec->args));
  }
  if (p.args.size() > max) {
    return UsageError(fmt::format("'{}' takes {}, got '{}' too many; usage: {} {}", p.spec->name,
                                  max == 0 ? "no arguments" : p.spec->args, p.args[max], p.spec->name,
                                  p.spec->args));
  }
  return Ok{};
}

std::string Flag(const Parsed& p, const std::string& name) {
  auto it = p.flags.find(name);
  return it == p.flags.end() ? "" : it->second;
}

}  // namespace

Result<Request> ParseRequest(const std::vector<std::string>& words) {
  if (words.empty()) return UsageError("empty command; type 'help' for the list");
  auto parsed = Tokenize(words);
  if (!parsed) return parsed.error();
  Parsed& p = parsed.value();
  if (p.help) return Request{Help{p.spec ? p.spec->name : p.args[0]}, p.json};
  const std::string& n = p.spec->name;
  auto check = [&](size_t min, size_t max) { return ArgCount(p, min, max); };
  Command cmd;
  if (n == "help") {
    if (auto s = check(0, 2); !s) return s.error();
    cmd = Help{Join(p.args, " ")};
  } else if (n == "whoami") {
    if (auto s = check(0, 0); !s) return s.error();
    cmd = Whoami{};
  } else if (n == "register") {
    if (auto s = check(1, 1); !s) return s.error();
    cmd = Register{p.args[0], Flag(p, "--invite")};
  } else if (n == "ssh-key list") {
    if (auto s = check(0, 0); !s) return s.error();
    cmd = SshKeyList{};
  } else if (n == "ssh-key add") {
    // A key pasted unquoted arrives as several words: "TYPE", "BASE64", "COMMENT...".
    cmd = SshKeyAdd{Join(p.args, " "), Flag(p, "--comment")};
  } else if (n == "ssh-key remove") {
    if (auto s = check(1, 1); !s) return s.error();
    cmd = SshKeyRemove{p.args[0]};
  } else if (n == "ssh-key rename") {
    if (auto s = check(2, 2); !s) return s.error();
    cmd = SshKeyRename{p.args[0], p.args[1]};
  } else if (n == "exit") {
    if (auto s = check(0, 0); !s) return s.error();
    cmd = Exit{};
  } else {
    return InternalError("command '" + n + "' has a spec but no parser");  // a bug: every spec is parsed above
  }
  return Request{std::move(cmd), p.json};
}

std::string HelpText(std::string_view ssh_hint) {
  std::string out = "Commands:\n";
  size_t width = 0;
  for (const auto& s : CommandSpecs()) width = std::max(width, s.name.size() + 1 + s.args.size());
  for (const auto& s : CommandSpecs()) {
    std::string head = s.args.empty() ? s.name : s.name + " " + s.args;
    out += fmt::format("  {:<{}}  {}\n", head, width, s.summary);
  }
  out += fmt::format(
      "\nEvery command takes --help and --json. One-shot use: {} COMMAND [ARGS]\n", ssh_hint);
  return out;
}

std::string CommandHelp(const CommandSpec& spec, std::string_view ssh_hint) {
  std::string out = fmt::format("usage: {}{}{} [--json]\n\n{}\n", spec.name, spec.args.empty() ? "" : " ", spec.args,
                                spec.description);
  out += "\nflags:\n";
  for (const auto& f : spec.flags) {
    std::string head = f.value_name.empty() ? f.name : f.name + " " + f.value_name;
    out += fmt::format("  {:<18} {}\n", head, f.help);
  }
  out += fmt::format("  {:<18} {}\n  {:<18} {}\n", "--json", "print the result as JSON", "--help", "show this help");
  out += fmt::format("\nexample: {} {}{}\n", ssh_hint, spec.name, spec.args.empty() ? "" : " " + spec.args);
  return out;
}

}  // namespace control
