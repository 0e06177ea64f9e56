#include "control/service.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/except>
#include <pqxx/subtransaction>
#include <pqxx/transaction>
#include <spdlog/spdlog.h>

#include "control/argsplit.h"
#include "control/edge.h"
#include "control/budget.h"
#include "control/names.h"
#include "control/pubkey.h"
#include "db/audit.h"
#include "db/keys.h"

namespace control {

using nlohmann::json;

Result<Registration> ParseRegistration(std::string_view s) {
  if (s == "open") return Registration::kOpen;
  if (s == "invite") return Registration::kInvite;
  if (s == "closed") return Registration::kClosed;
  return InvalidError(fmt::format("registration must be open, invite or closed, not '{}'", s));
}

std::string_view RegistrationName(Registration r) {
  switch (r) {
    case Registration::kOpen: return "open";
    case Registration::kInvite: return "invite";
    case Registration::kClosed: return "closed";
  }
  return "?";
}

namespace {

json KeyJson(const db::SshKey& k) {
  return {{"fingerprint", k.fingerprint},
          {"comment", k.comment},
          {"type", k.public_key.substr(0, k.public_key.find(' '))},
          {"public_key", k.public_key},
          {"added_at", k.added_at},
          {"last_used_at", k.last_used_at.empty() ? json(nullptr) : json(k.last_used_at)}};
}

// Finds one of the account's keys by fingerprint (with or without the
// "SHA256:" prefix) or by comment.
Result<db::SshKey> MatchKey(const std::vector<db::SshKey>& keys, const std::string& which) {
  for (const auto& k : keys) {
    if (k.fingerprint == which || k.fingerprint == "SHA256:" + which) return k;
  }
  for (const auto& k : keys) {
    if (k.comment == which) return k;
  }
  return NotFoundError(fmt::format("no key '{}' in your account; 'ssh-key list' shows fingerprints and comments", which));
}

bool Mentions(const pqxx::sql_error& e, std::string_view constraint) {
  return std::string_view(e.what()).find(constraint) != std::string_view::npos;
}

}  // namespace

Service::Service(db::Pool& pool, ServiceConfig config, vmm::Host* host, vmm::VmLocks* locks)
    : pool_(pool), config_(std::move(config)), host_(host), locks_(locks ? locks : &own_locks_) {}

Result<Caller> Service::Identify(const std::string& fingerprint, const std::string& public_key,
                                 const std::string& source_addr) {
  return Guarded("identify", [&]() -> Result<Caller> {
    Caller c{std::nullopt, "", fingerprint, public_key, source_addr};
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    if (auto a = db::FindAccountByKey(tx, fingerprint)) {
      c.account_id = a->id;
      c.account_name = a->name;
      db::TouchKey(tx, fingerprint);
    }
    tx.commit();
    return c;
  });
}

std::string Service::NotRegisteredMessage(const Caller& caller) const {
  if (config_.registration == Registration::kClosed) {
    return fmt::format(
        "this key ({}) has no account here, and registration is closed; ask the operator to run "
        "'exed admin account add NAME --key \"{}\"'",
        caller.fingerprint, caller.public_key);
  }
  return fmt::format("this key ({}) has no account here; register it with: {} register NAME{}", caller.fingerprint,
                     config_.ssh_hint, config_.registration == Registration::kInvite ? " --invite CODE" : "");
}

Reply Service::ExecuteLine(Caller& caller, std::string_view line, const StdinReader& read_stdin,
                           const Progress& progress) {
  auto words = SplitArgs(line);
  if (!words) return {"", words.error().message + "\n", ExitCode(words.error()), false};
  auto req = ParseRequest(*words);
  if (!req) return {"", req.error().message + "\n", ExitCode(req.error()), false};
  return Execute(caller, *req, read_stdin, progress);
}

Reply Service::Execute(Caller& caller, const Request& request, const StdinReader& read_stdin,
                       const Progress& progress) {
  bool end = false;
  auto r = Run(caller, request, read_stdin, progress, &end);
  if (!r) return {"", r.error().message + "\n", ExitCode(r.error()), false};
  return {r.value(), "", 0, end};
}

Result<std::string> Service::Run(Caller& caller, const Request& req, const StdinReader& read_stdin,
                                 const Progress& progress, bool* end_session) {
  const Command& c = req.command;
  if (auto* h = std::get_if<Help>(&c)) return DoHelp(*h, req.json);
  if (std::holds_alternative<Exit>(c)) {
    *end_session = true;
    return std::string(req.json ? "{}\n" : "bye\n");
  }
  if (auto* r = std::get_if<Register>(&c)) return DoRegister(caller, *r, req.json);
  if (std::holds_alternative<ShowCa>(c)) return DoCa(req.json);
  if (!caller.account_id) return DeniedError(NotRegisteredMessage(caller));
  if (std::holds_alternative<Whoami>(c)) return DoWhoami(caller, req.json);
  if (std::holds_alternative<SshKeyList>(c)) return DoKeyList(caller, req.json);
  if (auto* a = std::get_if<SshKeyAdd>(&c)) return DoKeyAdd(caller, *a, read_stdin, req.json);
  if (auto* r = std::get_if<SshKeyRemove>(&c)) return DoKeyRemove(caller, *r, req.json);
  if (auto* r = std::get_if<SshKeyRename>(&c)) return DoKeyRename(caller, *r, req.json);
  if (auto* g = std::get_if<ApiKeyGenerate>(&c)) return DoApiKeyGenerate(caller, *g, req.json);
  if (std::holds_alternative<ApiKeyList>(c)) return DoApiKeyList(caller, req.json);
  if (auto* r = std::get_if<ApiKeyRevoke>(&c)) return DoApiKeyRevoke(caller, *r, req.json);
  if (auto* l = std::get_if<WebLogin>(&c)) return DoLogin(caller, *l, req.json);
  return RunVmCommand(caller, req, read_stdin, progress);
}

Result<std::string> Service::RunVmCommand(const Caller& caller, const Request& req, const StdinReader& read_stdin,
                                          const Progress& progress) {
  const Command& c = req.command;
  if (std::holds_alternative<ShowBudget>(c)) return DoBudget(caller, req.json);
  if (!host_) {
    return InternalError("this exed runs no VMs" +
                         (config_.no_vms_reason.empty() ? std::string() : ": " + config_.no_vms_reason));
  }
  if (auto* n = std::get_if<NewVm>(&c)) return DoNew(caller, *n, read_stdin, progress, req.json);
  if (auto* l = std::get_if<ListVms>(&c)) return DoList(caller, *l, req.json);
  if (auto* r = std::get_if<RemoveVms>(&c)) return DoRemove(caller, *r, req.json);
  if (auto* s = std::get_if<StopVm>(&c)) return DoPower(caller, s->name, true, false, progress, req.json);
  if (auto* s = std::get_if<StartVm>(&c)) return DoPower(caller, s->name, false, true, progress, req.json);
  if (auto* s = std::get_if<RestartVm>(&c)) return DoPower(caller, s->name, true, true, progress, req.json);
  if (auto* r = std::get_if<RenameVm>(&c)) return DoRename(caller, *r, req.json);
  if (auto* p = std::get_if<CopyVm>(&c)) return DoCopy(caller, *p, progress, req.json);
  if (auto* t = std::get_if<TagVm>(&c)) return DoTag(caller, *t, req.json);
  if (auto* s = std::get_if<StatVm>(&c)) return DoStat(caller, *s, req.json);
  if (auto* r = std::get_if<ResizeVm>(&c)) return DoResize(caller, *r, req.json);
  if (auto* l = std::get_if<VmLogs>(&c)) return DoLogs(caller, *l, req.json);
  if (std::holds_alternative<ListImages>(c)) return DoImages(req.json);
  if (auto* h = std::get_if<ShareShow>(&c)) return DoShareShow(caller, *h, req.json);
  if (auto* a = std::get_if<ShareAccess>(&c)) return DoShareAccess(caller, *a, req.json);
  if (auto* w = std::get_if<ShareWeb>(&c)) return DoShareWeb(caller, *w, req.json);
  if (auto* p = std::get_if<SharePublic>(&c)) return DoSharePublic(caller, *p, req.json);
  if (auto* p = std::get_if<SharePort>(&c)) return DoSharePort(caller, *p, req.json);
  return InternalError("command not implemented");  // a bug: every Command alternative is handled above
}

Result<std::string> Service::DoHelp(const Help& c, bool json_out) {
  if (c.topic.empty()) {
    if (!json_out) return HelpText(config_.ssh_hint);
    json cmds = json::array();
    for (const auto& s : CommandSpecs()) cmds.push_back({{"name", s.name}, {"args", s.args}, {"summary", s.summary}});
    return Dump({{"commands", cmds}});
  }
  const CommandSpec* spec = FindSpec(c.topic);
  if (!spec) {
    // "help ssh-key" lists the subcommands.
    std::string sub;
    for (const auto& s : CommandSpecs()) {
      if (s.name.rfind(c.topic + " ", 0) == 0) sub += fmt::format("  {:<34} {}\n", s.name + " " + s.args, s.summary);
    }
    if (!sub.empty()) return c.topic + " subcommands:\n" + sub;
    return UsageError(fmt::format("no command '{}'; type 'help' for the list", c.topic));
  }
  if (!json_out) return CommandHelp(*spec, config_.ssh_hint);
  json flags = json::array();
  for (const auto& f : spec->flags) flags.push_back({{"name", f.name}, {"value", f.value_name}, {"help", f.help}});
  return Dump({{"name", spec->name}, {"args", spec->args}, {"summary", spec->summary},
               {"description", spec->description}, {"flags", flags}});
}

Result<std::string> Service::DoWhoami(const Caller& caller, bool json_out) {
  return Guarded("whoami", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto account = db::FindAccountById(tx, *caller.account_id);
    if (!account) return NotFoundError("your account no longer exists; reconnect to register again");
    auto keys = db::ListKeys(tx, account->id);
    auto usage = db::UsageOf(tx, account->id);
    tx.commit();
    const auto& b = account->budget;
    if (json_out) {
      json jkeys = json::array();
      for (const auto& k : keys) jkeys.push_back(KeyJson(k));
      return Dump({{"name", account->name},
                   {"created_at", account->created_at},
                   {"key", caller.fingerprint},
                   {"keys", jkeys},
                   {"budget", ResourcesJson(b.cpus, b.memory_mib, b.disk_gib, b.max_vms)},
                   {"usage", ResourcesJson(usage.cpus, usage.memory_mib, usage.disk_gib, usage.vms)}});
    }
    std::string current = caller.fingerprint;
    for (const auto& k : keys) {
      if (k.fingerprint == caller.fingerprint) current += " (" + k.comment + ")";
    }
    return fmt::format(
        "account  {}\nsince    {}\nkey      {}\nkeys     {} (see 'ssh-key list')\nbudget   {}\nusage    {}\n",
        account->name, account->created_at, current, keys.size(),
        ResourcesText(b.cpus, b.memory_mib, b.disk_gib, b.max_vms),
        ResourcesText(usage.cpus, usage.memory_mib, usage.disk_gib, usage.vms));
  });
}

Result<std::string> Service::DoRegister(Caller& caller, const Register& c, bool json_out) {
  if (caller.account_id) {
    return ConflictError(fmt::format("this key already belongs to account '{}'; to make another account, connect "
                                     "with a different key",
                                     caller.account_name));
  }
  switch (config_.registration) {
    case Registration::kClosed:
      return DeniedError(NotRegisteredMessage(caller));
    case Registration::kInvite:
      if (c.invite.empty()) {
        return DeniedError(fmt::format("this server registers by invitation: {} register {} --invite CODE",
                                       config_.ssh_hint, c.name));
      }
      break;
    case Registration::kOpen:
      break;
  }
  if (auto e = CheckAccountName(c.name)) return InvalidError(*e);
  auto created = Guarded("register", [&]() -> Result<int64_t> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    if (!caller.source_addr.empty()) {
      int64_t recent = db::CountRecentActions(tx, caller.source_addr, "register", 3600);
      if (recent >= config_.registrations_per_hour) {
        spdlog::warn("limit=registrations_per_hour source={} count={}", caller.source_addr, recent);
        return DeniedError(fmt::format("too many registrations from {} in the last hour (limit {}); try again later",
                                       caller.source_addr, config_.registrations_per_hour));
      }
    }
    int64_t id = 0;
    try {
      pqxx::subtransaction sub(tx, "create");
      id = db::CreateAccount(sub, c.name, config_.default_budget);
      db::AddKey(sub, id, caller.fingerprint, caller.public_key, "key-1");
      sub.commit();
    } catch (const pqxx::unique_violation& e) {
      if (Mentions(e, "ssh_keys_fingerprint")) {
        return ConflictError("this key was registered by another session a moment ago; reconnect to use it");
      }
      return ConflictError(fmt::format("account name '{}' is taken; pick another", c.name));
    }
    if (config_.registration == Registration::kInvite && !db::UseInvite(tx, c.invite, id)) {
      return DeniedError(fmt::format("invite code '{}' is unknown or already used; ask the operator for another",
                                     c.invite));
    }
    db::Audit(tx, {id, c.name, "register", json{{"fingerprint", caller.fingerprint}}.dump(), caller.source_addr});
    tx.commit();
    return id;
  });
  if (!created) return created.error();
  caller.account_id = *created;
  caller.account_name = c.name;
  spdlog::info("event=register account={} source={} key={}", c.name, caller.source_addr, caller.fingerprint);
  if (json_out) return DoWhoami(caller, true);
  const auto& b = config_.default_budget;
  return fmt::format("welcome, {}! your account is ready, with a budget of {}.\ntype 'help' to see what you can do.\n",
                     c.name, ResourcesText(b.cpus, b.memory_mib, b.disk_gib, b.max_vms));
}

Result<std::string> Service::DoKeyList(const Caller& caller, bool json_out) {
  return Guarded("ssh-key list", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto keys = db::ListKeys(tx, *caller.account_id);
    tx.commit();
    if (json_out) {
      json jkeys = json::array();
      for (const auto& k : keys) jkeys.push_back(KeyJson(k));
      return Dump({{"keys", jkeys}});
    }
    // Fits 100 columns; `--json` has every field.
    std::string out = fmt::format("{:<51} {:<18} {}\n", "FINGERPRINT", "COMMENT", "LAST USED");
    for (const auto& k : keys) {
      std::string used = k.last_used_at.empty() ? "never" : k.last_used_at.substr(0, 16);
      if (k.fingerprint == caller.fingerprint) used = "this session";
      out += fmt::format("{:<51} {:<18} {}\n", k.fingerprint, k.comment, used);
    }
    return out;
  });
}

Result<std::string> Service::DoKeyAdd(const Caller& caller, const SshKeyAdd& c, const StdinReader& read_stdin,
                                      bool json_out) {
  std::string line = c.key_line;
  if (line.empty()) {
    auto in = read_stdin();
    if (!in) return in.error();
    line = *in;
    if (line.find_first_not_of(" \t\r\n") == std::string::npos) {
      return UsageError("ssh-key add needs a public key: ssh-key add 'ssh-ed25519 AAAA... laptop', or pipe a .pub "
                        "file into it");
    }
  }
  auto key = ParsePublicKey(line);
  if (!key) return key.error();
  return Guarded("ssh-key add", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto existing = db::ListKeys(tx, *caller.account_id);
    std::string comment = !c.comment.empty() ? c.comment : key->comment;
    if (comment.empty()) comment = fmt::format("key-{}", existing.size() + 1);
    if (auto e = CheckKeyComment(comment)) return InvalidError(*e);
    try {
      pqxx::subtransaction sub(tx, "add");
      db::AddKey(sub, *caller.account_id, key->fingerprint, key->Authorized(), comment);
      sub.commit();
    } catch (const pqxx::unique_violation& e) {
      if (Mentions(e, "fingerprint")) {
        for (const auto& k : existing) {
          if (k.fingerprint == key->fingerprint) {
            return ConflictError(fmt::format("that key is already in your account, as '{}'", k.comment));
          }
        }
        return ConflictError("that key belongs to another account; a key can open only one account");
      }
      return ConflictError(fmt::format("you already have a key named '{}'; add this one with --comment OTHER-NAME",
                                       comment));
    }
    db::Audit(tx, {caller.account_id, caller.account_name, "ssh-key.add",
                   json{{"fingerprint", key->fingerprint}, {"comment", comment}}.dump(), caller.source_addr});
    tx.commit();
    if (json_out) return Dump({{"fingerprint", key->fingerprint}, {"comment", comment}, {"type", key->type}});
    return fmt::format("added key {} ({})\n", key->fingerprint, comment);
  });
}

Result<std::string> Service::DoKeyRemove(const Caller& caller, const SshKeyRemove& c, bool json_out) {
  return Guarded("ssh-key remove", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    // Serializes removals so two sessions cannot each remove "not the last" key.
    db::LockAccount(tx, *caller.account_id);
    auto keys = db::ListKeys(tx, *caller.account_id);
    auto k = MatchKey(keys, c.which);
    if (!k) return k.error();
    if (keys.size() == 1) {
      return DeniedError("that is your only key; add another with 'ssh-key add' before removing it");
    }
    db::RemoveKey(tx, *caller.account_id, k->id);
    db::Audit(tx, {caller.account_id, caller.account_name, "ssh-key.remove",
                   json{{"fingerprint", k->fingerprint}, {"comment", k->comment}}.dump(), caller.source_addr});
    tx.commit();
    if (json_out) return Dump({{"removed", KeyJson(*k)}});
    std::string note = k->fingerprint == caller.fingerprint
                           ? " (this session stays open, but the key opens nothing from now on)"
                           : "";
    return fmt::format("removed key {} ({}){}\n", k->fingerprint, k->comment, note);
  });
}

Result<std::string> Service::DoKeyRename(const Caller& caller, const SshKeyRename& c, bool json_out) {
  if (auto e = CheckKeyComment(c.comment)) return InvalidError(*e);
  return Guarded("ssh-key rename", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto keys = db::ListKeys(tx, *caller.account_id);
    auto k = MatchKey(keys, c.which);
    if (!k) return k.error();
    try {
      pqxx::subtransaction sub(tx, "rename");
      db::RenameKey(sub, *caller.account_id, k->id, c.comment);
      sub.commit();
    } catch (const pqxx::unique_violation&) {
      return ConflictError(fmt::format("you already have a key named '{}'; pick another name", c.comment));
    }
    db::Audit(tx, {caller.account_id, caller.account_name, "ssh-key.rename",
                   json{{"fingerprint", k->fingerprint}, {"from", k->comment}, {"to", c.comment}}.dump(),
                   caller.source_addr});
    tx.commit();
    if (json_out) return Dump({{"fingerprint", k->fingerprint}, {"comment", c.comment}});
    return fmt::format("renamed key {} from '{}' to '{}'\n", k->fingerprint, k->comment, c.comment);
  });
}

std::vector<std::string> Service::LoadHistory(int64_t account_id) {
  try {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto h = db::LoadHistory(tx, account_id, config_.history_keep);
    tx.commit();
    return h;
  } catch (const std::exception& e) {
    spdlog::warn("op=load-history account_id={} error={}", account_id, e.what());  // history is a convenience
    return {};
  }
}

void Service::AppendHistory(int64_t account_id, const std::string& line) {
  try {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::AppendHistory(tx, account_id, line, config_.history_keep);
    tx.commit();
  } catch (const std::exception& e) {
    spdlog::warn("op=append-history account_id={} error={}", account_id, e.what());
  }
}

}  // namespace control
