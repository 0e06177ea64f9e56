#include "control/commands.h"

#include "control/argsplit.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include <fmt/format.h>

#include "control/api_token.h"
#include "control/budget.h"
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
      {"ssh-key generate-api-key", "", "make a token for the HTTPS /exec API",
       "Makes a bearer token for the HTTPS API, which runs one command (the request body)\n"
       "and answers JSON:\n"
       "  curl -H 'Authorization: Bearer TOKEN' --data 'ls' https://DOMAIN/exec\n"
       "The token is shown once; only its hash is kept. It never expires unless --exp\n"
       "is given, and may run every command unless --cmds limits it ('help' always\n"
       "works). A token cannot make tokens. 'ssh-key revoke-api-key' ends it.",
       {{"--label", "TEXT", "name for the token (default: api-key-N)"},
        {"--cmds", "A,B", "the only commands it may run, like 'ls,new,whoami' or 'ls,ssh-key list'"},
        {"--exp", "DURATION", "lifetime, like 90m, 12h, 30d or 2w (default: never expires)"}}},
      {"ssh-key api-keys", "", "list your API tokens",
       "Lists your API tokens that are not revoked: id, label, commands, expiry, last use.\n"
       "Tokens themselves are not kept, so they cannot be shown again.",
       {}},
      {"ssh-key revoke-api-key", "ID|LABEL", "revoke an API token",
       "Revokes a token, named by its id or label: requests with it fail from now on.", {}},
      {"new", "", "create a VM and wait until it answers SSH",
       "Creates a VM from an image and starts it. Its --cpus and --memory may each be up\n"
       "to your whole budget (VMs share it); --disk counts against the budget's disk.\n"
       "Returns when the VM's sshd accepts connections, with its URL and ssh destination.",
       {{"--name", "NAME", "VM name: 3-40 lowercase letters, digits, '-' (default: random)"},
        {"--image", "IMAGE", "image to boot (default: the server's default; 'image ls' lists them)"},
        {"--cpus", "N", "virtual CPUs"},
        {"--memory", "SIZE", "memory, like 512M or 2G"},
        {"--disk", "SIZE", "disk size, like 10G (it can grow later, never shrink)"},
        {"--env", "K=V", "environment variable for login shells (repeatable)", true},
        {"--tag", "TAG", "tag (repeatable)", true},
        {"--setup-script", "TEXT|-", "shell script run once as root at first boot; '-' reads it from stdin (10 KiB max)"},
        {"--no-wait", "", "return once the VM is starting, without waiting for SSH"}}},
      {"ls", "[PATTERN]", "list your VMs", "Lists your VMs; PATTERN filters names (shell glob, like 'web-*').",
       {{"-l", "", "long format: size, ports, image, tags"}}},
      {"rm", "VM...", "delete VMs and their disks", "Stops and deletes each VM named, with its disk. There is no undo.", {}},
      {"stop", "VM", "stop a VM (its disk stays)", "Shuts the VM down cleanly; 'start' boots it again.", {}},
      {"start", "VM", "start a stopped VM", "Boots a stopped VM and waits until it answers SSH.", {}},
      {"restart", "VM", "stop and start a VM", "Shuts the VM down cleanly and boots it again.", {}},
      {"rename", "OLD NEW", "rename a VM", "Renames a VM; its URL and ssh destination change with it.", {}},
      {"cp", "SRC [DST]", "clone a VM (copy-on-write)",
       "Makes a new VM whose disk starts as a copy of SRC's. SRC is paused for the copy.", {}},
      {"tag", "VM TAG...", "add tags to a VM (-d removes them)", "Tags are free-form labels shown by 'ls -l'.",
       {{"-d", "", "remove the tags instead of adding them"}}},
      {"stat", "VM", "CPU, memory and disk of a VM", "Shows what a VM uses now: CPU time, memory, disk.", {}},
      {"resize", "VM", "change a VM's CPUs, memory or disk",
       "Changes a VM's size. The disk only grows. CPU and memory changes apply at the next start.",
       {{"--cpus", "N", "virtual CPUs"}, {"--memory", "SIZE", "memory"}, {"--disk", "SIZE", "disk size (grow only)"}}},
      {"logs", "VM", "the VM's console output", "Shows the end of the VM's serial console.",
       {{"-n", "LINES", "how many lines (default 50)"}}},
      {"budget", "", "your budget and what your VMs use of it", "Shows the budget and the usage.", {}},
      {"image ls", "", "list the images VMs boot from", "Lists images with their login user and web port.", {}},
      {"share show", "VM", "who else may use a VM",
       "Lists the accounts a VM is shared with and what each may do.", {}},
      {"share access", "allow|deny VM ACCOUNT", "let another account ssh into a VM, or stop letting it",
       "'allow' lets ACCOUNT reach the VM through this SSH front (ssh, scp, sftp,\n"
       "port forwarding), as you can; 'deny' withdraws it. Only the owner may change it.",
       {}},
      {"share set-public", "VM", "let anyone open a VM's URL",
       "Makes https://VM.DOMAIN/ answer everyone, logged in or not.", {}},
      {"share set-private", "VM", "only you and those it is shared with may open a VM's URL",
       "The default: others are sent to the login page first.", {}},
      {"share add", "VM ACCOUNT", "let another account open a VM's private URL",
       "ACCOUNT, once logged in in its browser, may open https://VM.DOMAIN/.", {}},
      {"share remove", "VM ACCOUNT", "stop letting an account open a VM's URL", "Undoes 'share add'.", {}},
      {"share port", "VM PORT", "which port of the VM its URL goes to",
       "Sets the guest port https://VM.DOMAIN/ goes to (the image's default: 80). The\n"
       "port forward is made when the VM starts: a running VM needs 'restart VM'.",
       {}},
      {"login", "CODE", "approve a login started in a browser",
       "The login page at https://DOMAIN/ shows a code; approving it logs that browser in\n"
       "as you. Approve only codes you started yourself.",
       {}},
      {"ca", "", "the certificate of this server's internal CA",
       "Prints the CA certificate (PEM) that signs https://*.DOMAIN/, to trust it:\n"
       "  ssh -p 2222 localhost ca > exed-ca.pem; curl --cacert exed-ca.pem https://...",
       {},
       false},
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

bool StartsWithLobbyCommand(std::string_view line) {
  auto words = SplitArgs(line);
  if (!words || words->empty()) return true;
  auto names = TopLevelNames();
  return std::find(names.begin(), names.end(), words->front()) != names.end();
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
  std::map<std::string, std::vector<std::string>> flags;
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
      p.flags[name].push_back("");
      continue;
    }
    if (!has_value) {
      if (i + 1 >= words.size()) {
        return UsageError(fmt::format("flag {} needs a value: {} {}", name, name, f->value_name));
      }
      value = words[++i];
    }
    if (!f->repeatable && p.flags.count(name)) {
      return UsageError(fmt::format("flag {} given twice; give it once", name));
    }
    p.flags[name].push_back(value);
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
  return it == p.flags.end() ? "" : it->second.back();
}

bool Has(const Parsed& p, const std::string& name) { return p.flags.count(name) > 0; }

// Parses an optional sized flag with `parse`; the error names the flag.
template <class F>
Status SizeFlag(const Parsed& p, const std::string& name, F parse, std::optional<int64_t>* out) {
  if (!Has(p, name)) return Ok{};
  auto v = parse(Flag(p, name));
  if (!v) return UsageError(fmt::format("{}: {}", name, v.error().message));
  *out = *v;
  return Ok{};
}

Status Sizes(const Parsed& p, std::optional<int64_t>* cpus, std::optional<int64_t>* mem, std::optional<int64_t>* disk) {
  if (auto s = SizeFlag(p, "--cpus", ParseCpus, cpus); !s) return s;
  if (auto s = SizeFlag(p, "--memory", ParseMemoryMiB, mem); !s) return s;
  return SizeFlag(p, "--disk", ParseDiskGiB, disk);
}

Result<NewVm> ParseNew(const Parsed& p) {
  NewVm n;
  n.name = Flag(p, "--name");
  n.image = Flag(p, "--image");
  if (auto s = Sizes(p, &n.cpus, &n.memory_mib, &n.disk_gib); !s) return s.error();
  if (auto it = p.flags.find("--env"); it != p.flags.end()) {
    for (const auto& kv : it->second) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        return UsageError(fmt::format("--env takes KEY=VALUE, not '{}'", kv));
      }
      std::string key = kv.substr(0, eq);
      bool ok = std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }) &&
                !std::isdigit(static_cast<unsigned char>(key[0]));
      if (!ok) return UsageError(fmt::format("--env name '{}' must be letters, digits and '_', not starting with a digit", key));
      n.env.emplace_back(key, kv.substr(eq + 1));
    }
  }
  if (auto it = p.flags.find("--tag"); it != p.flags.end()) n.tags = it->second;
  if (Has(p, "--setup-script")) {
    n.setup_script = Flag(p, "--setup-script");
    n.setup_from_stdin = n.setup_script == "-";
    if (n.setup_from_stdin) n.setup_script.clear();
  }
  n.no_wait = Has(p, "--no-wait");
  return n;
}

}  // namespace

Result<Request> ParseRequest(const std::vector<std::string>& words) {
  if (words.empty()) return UsageError("empty command; type 'help' for the list");
  auto parsed = Tokenize(words);
  if (!parsed) return parsed.error();
  Parsed& p = parsed.value();
  if (p.help) return Request{Help{p.spec ? p.spec->name : p.args[0]}, p.json, "help"};
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
  } else if (n == "ssh-key generate-api-key") {
    if (auto s = check(0, 0); !s) return s.error();
    ApiKeyGenerate g{Flag(p, "--label")};
    if (Has(p, "--label")) {
      if (auto e = CheckTokenLabel(g.label)) return UsageError(*e);
    }
    if (Has(p, "--cmds")) {
      auto cmds = ParseCommandList(Flag(p, "--cmds"));
      if (!cmds) return cmds.error();
      g.cmds = std::move(*cmds);
    }
    if (Has(p, "--exp")) {
      auto d = ParseDuration(Flag(p, "--exp"));
      if (!d) return d.error();
      g.expires_in = *d;
    }
    cmd = std::move(g);
  } else if (n == "ssh-key api-keys") {
    if (auto s = check(0, 0); !s) return s.error();
    cmd = ApiKeyList{};
  } else if (n == "ssh-key revoke-api-key") {
    if (auto s = check(1, 1); !s) return s.error();
    cmd = ApiKeyRevoke{p.args[0]};
  } else if (n == "exit") {
    if (auto s = check(0, 0); !s) return s.error();
    cmd = Exit{};
  } else if (n == "new") {
    if (auto s = check(0, 0); !s) return s.error();
    auto v = ParseNew(p);
    if (!v) return v.error();
    cmd = std::move(*v);
  } else if (n == "ls") {
    if (auto s = check(0, 1); !s) return s.error();
    cmd = ListVms{p.args.empty() ? "" : p.args[0], Has(p, "-l")};
  } else if (n == "rm") {
    if (auto s = check(1, 100); !s) return s.error();
    cmd = RemoveVms{p.args};
  } else if (n == "stop" || n == "start" || n == "restart" || n == "stat") {
    if (auto s = check(1, 1); !s) return s.error();
    if (n == "stop") cmd = StopVm{p.args[0]};
    if (n == "start") cmd = StartVm{p.args[0]};
    if (n == "restart") cmd = RestartVm{p.args[0]};
    if (n == "stat") cmd = StatVm{p.args[0]};
  } else if (n == "rename") {
    if (auto s = check(2, 2); !s) return s.error();
    cmd = RenameVm{p.args[0], p.args[1]};
  } else if (n == "cp") {
    if (auto s = check(1, 2); !s) return s.error();
    cmd = CopyVm{p.args[0], p.args.size() > 1 ? p.args[1] : ""};
  } else if (n == "tag") {
    if (auto s = check(2, 100); !s) return s.error();
    cmd = TagVm{p.args[0], std::vector<std::string>(p.args.begin() + 1, p.args.end()), Has(p, "-d")};
  } else if (n == "resize") {
    if (auto s = check(1, 1); !s) return s.error();
    ResizeVm r{p.args[0]};
    if (auto s = Sizes(p, &r.cpus, &r.memory_mib, &r.disk_gib); !s) return s.error();
    if (!r.cpus && !r.memory_mib && !r.disk_gib) {
      return UsageError("resize needs at least one of --cpus, --memory, --disk");
    }
    cmd = r;
  } else if (n == "logs") {
    if (auto s = check(1, 1); !s) return s.error();
    VmLogs l{p.args[0]};
    if (Has(p, "-n")) {
      auto v = ParseCount(Flag(p, "-n"), 1, 10000, "-n");
      if (!v) return UsageError(v.error().message);
      l.lines = *v;
    }
    cmd = l;
  } else if (n == "budget") {
    if (auto s = check(0, 0); !s) return s.error();
    cmd = ShowBudget{};
  } else if (n == "image ls") {
    if (auto s = check(0, 0); !s) return s.error();
    cmd = ListImages{};
  } else if (n == "share show") {
    if (auto s = check(1, 1); !s) return s.error();
    cmd = ShareShow{p.args[0]};
  } else if (n == "share access") {
    if (auto s = check(3, 3); !s) return s.error();
    if (p.args[0] != "allow" && p.args[0] != "deny") {
      return UsageError(fmt::format("share access takes 'allow' or 'deny', not '{}': share access allow VM ACCOUNT",
                                    p.args[0]));
    }
    cmd = ShareAccess{p.args[1], p.args[2], p.args[0] == "allow"};
  } else if (n == "share set-public" || n == "share set-private") {
    if (auto s = check(1, 1); !s) return s.error();
    cmd = SharePublic{p.args[0], n == "share set-public"};
  } else if (n == "share add" || n == "share remove") {
    if (auto s = check(2, 2); !s) return s.error();
    cmd = ShareWeb{p.args[0], p.args[1], n == "share add"};
  } else if (n == "share port") {
    if (auto s = check(2, 2); !s) return s.error();
    auto port = ParseCount(p.args[1], 1, 65535, "PORT");
    if (!port) return UsageError(port.error().message);
    cmd = SharePort{p.args[0], static_cast<int>(*port)};
  } else if (n == "login") {
    if (auto s = check(1, 1); !s) return s.error();
    cmd = WebLogin{p.args[0]};
  } else if (n == "ca") {
    if (auto s = check(0, 0); !s) return s.error();
    cmd = ShowCa{};
  } else {
    return InternalError("command '" + n + "' has a spec but no parser");  // a bug: every spec is parsed above
  }
  return Request{std::move(cmd), p.json, n};
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
