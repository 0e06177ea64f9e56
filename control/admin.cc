#include "control/admin.h"

#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/except>
#include <pqxx/subtransaction>
#include <pqxx/transaction>
#include <spdlog/spdlog.h>

#include "control/budget.h"
#include "control/names.h"
#include "control/pubkey.h"
#include "db/accounts.h"
#include "db/audit.h"
#include "db/keys.h"

namespace control {

using nlohmann::json;

std::string AdminHelp() {
  return "usage: exed admin COMMAND\n\n"
         "  account add NAME [--key KEY | --key-file FILE] [--cpus N] [--memory SIZE] [--disk SIZE] [--vms N]\n"
         "  account list\n"
         "  account budget NAME [--cpus N] [--memory SIZE] [--disk SIZE] [--vms N]   (no flags: show it)\n"
         "  invite add [--count N]\n"
         "  audit [--limit N]\n\n"
         "Every command takes --json. SIZE is like 512M, 8G or 1T.\n";
}

namespace {

struct Args {
  std::vector<std::string> pos;
  std::map<std::string, std::string> flags;
  bool json = false;
};

Result<Args> ParseArgs(const std::vector<std::string>& words, size_t from, const std::vector<std::string>& allowed) {
  Args a;
  for (size_t i = from; i < words.size(); ++i) {
    const auto& w = words[i];
    if (w == "--json") {
      a.json = true;
    } else if (w.rfind("--", 0) == 0) {
      if (std::find(allowed.begin(), allowed.end(), w) == allowed.end()) {
        return UsageError(fmt::format("unknown flag '{}'; see 'exed admin --help'", w));
      }
      if (i + 1 >= words.size()) return UsageError(fmt::format("flag {} needs a value", w));
      a.flags[w] = words[++i];
    } else {
      a.pos.push_back(w);
    }
  }
  return a;
}

// Applies --cpus/--memory/--disk/--vms on top of `b`.
Status ApplyBudgetFlags(const Args& a, db::Budget* b) {
  if (auto it = a.flags.find("--cpus"); it != a.flags.end()) {
    auto v = ParseCpus(it->second);
    if (!v) return v.error();
    b->cpus = *v;
  }
  if (auto it = a.flags.find("--memory"); it != a.flags.end()) {
    auto v = ParseMemoryMiB(it->second);
    if (!v) return v.error();
    b->memory_mib = *v;
  }
  if (auto it = a.flags.find("--disk"); it != a.flags.end()) {
    auto v = ParseDiskGiB(it->second);
    if (!v) return v.error();
    b->disk_gib = *v;
  }
  if (auto it = a.flags.find("--vms"); it != a.flags.end()) {
    auto v = ParseCount(it->second, 0, 100000, "--vms");
    if (!v) return v.error();
    b->max_vms = *v;
  }
  return Ok{};
}

json BudgetJson(const db::Budget& b) {
  return {{"cpus", b.cpus}, {"memory_mib", b.memory_mib}, {"disk_gib", b.disk_gib}, {"vms", b.max_vms}};
}

std::string BudgetText(const db::Budget& b) {
  return fmt::format("{} CPUs, {} memory, {} disk, {} VMs", b.cpus, FormatMiB(b.memory_mib), FormatGiB(b.disk_gib),
                     b.max_vms);
}

Result<std::string> AccountAdd(db::Pool& pool, const ServiceConfig& cfg, const Args& a) {
  if (a.pos.size() != 1) return UsageError("usage: exed admin account add NAME [--key KEY] [--cpus N] ...");
  const std::string& name = a.pos[0];
  if (auto e = CheckAccountName(name)) return InvalidError(*e);
  db::Budget b = cfg.default_budget;
  if (auto s = ApplyBudgetFlags(a, &b); !s) return s.error();
  std::optional<PublicKey> key;
  std::string key_text;
  if (auto it = a.flags.find("--key"); it != a.flags.end()) key_text = it->second;
  if (auto it = a.flags.find("--key-file"); it != a.flags.end()) {
    std::ifstream in(it->second);
    if (!in) return InvalidError(fmt::format("cannot read key file {}", it->second));
    std::getline(in, key_text);
  }
  if (!key_text.empty()) {
    auto k = ParsePublicKey(key_text);
    if (!k) return k.error();
    key = *k;
  }
  auto conn = pool.Acquire();
  pqxx::work tx(*conn);
  int64_t id = 0;
  try {
    pqxx::subtransaction sub(tx, "add");
    id = db::CreateAccount(sub, name, b);
    if (key) db::AddKey(sub, id, key->fingerprint, key->Authorized(), key->comment.empty() ? "key-1" : key->comment);
    sub.commit();
  } catch (const pqxx::unique_violation& e) {
    if (std::string_view(e.what()).find("fingerprint") != std::string_view::npos) {
      return ConflictError("that key already belongs to another account");
    }
    return ConflictError(fmt::format("account '{}' already exists", name));
  }
  db::Audit(tx, {id, "admin", "account.add", json{{"name", name}}.dump(), ""});
  tx.commit();
  if (a.json) return json{{"name", name}, {"budget", BudgetJson(b)}}.dump(2) + "\n";
  return fmt::format("account {} created with {}{}\n", name, BudgetText(b),
                     key ? ", key " + key->fingerprint : " and no key (add one with --key next time)");
}

Result<std::string> AccountList(db::Pool& pool, const Args& a) {
  auto conn = pool.Acquire();
  pqxx::work tx(*conn);
  auto accounts = db::ListAccounts(tx);
  json arr = json::array();
  std::string text = fmt::format("{:<24} {:<22} {}\n", "NAME", "CREATED", "BUDGET");
  for (const auto& acc : accounts) {
    auto usage = db::UsageOf(tx, acc.id);
    arr.push_back({{"name", acc.name},
                   {"created_at", acc.created_at},
                   {"budget", BudgetJson(acc.budget)},
                   {"usage", {{"cpus", usage.cpus}, {"memory_mib", usage.memory_mib}, {"disk_gib", usage.disk_gib},
                              {"vms", usage.vms}}}});
    text += fmt::format("{:<24} {:<22} {}\n", acc.name, acc.created_at, BudgetText(acc.budget));
  }
  tx.commit();
  if (a.json) return json{{"accounts", arr}}.dump(2) + "\n";
  return text;
}

Result<std::string> AccountBudget(db::Pool& pool, const Args& a) {
  if (a.pos.size() != 1) return UsageError("usage: exed admin account budget NAME [--cpus N] [--memory SIZE] ...");
  auto conn = pool.Acquire();
  pqxx::work tx(*conn);
  auto acc = db::FindAccountByName(tx, a.pos[0]);
  if (!acc) return NotFoundError(fmt::format("no account '{}'; 'exed admin account list' shows them", a.pos[0]));
  db::Budget b = acc->budget;
  if (auto s = ApplyBudgetFlags(a, &b); !s) return s.error();
  if (!a.flags.empty()) {
    db::LockAccount(tx, acc->id);
    db::SetBudget(tx, acc->id, b);
    db::Audit(tx, {acc->id, "admin", "account.budget", json{{"budget", BudgetJson(b)}}.dump(), ""});
  }
  tx.commit();
  if (a.json) return json{{"name", acc->name}, {"budget", BudgetJson(b)}}.dump(2) + "\n";
  return fmt::format("{}: {}\n", acc->name, BudgetText(b));
}

std::string NewInviteCode() {
  static constexpr char kAlphabet[] = "abcdefghjkmnpqrstuvwxyz23456789";
  std::random_device rd;
  std::string code;
  for (int i = 0; i < 12; ++i) {
    if (i == 4 || i == 8) code += '-';
    code += kAlphabet[rd() % (sizeof kAlphabet - 1)];
  }
  return code;
}

Result<std::string> InviteAdd(db::Pool& pool, const Args& a) {
  int64_t count = 1;
  if (auto it = a.flags.find("--count"); it != a.flags.end()) {
    auto n = ParseCount(it->second, 1, 1000, "--count");
    if (!n) return n.error();
    count = *n;
  }
  auto conn = pool.Acquire();
  pqxx::work tx(*conn);
  json codes = json::array();
  std::string text;
  for (int64_t i = 0; i < count; ++i) {
    auto code = NewInviteCode();
    db::CreateInvite(tx, code);
    codes.push_back(code);
    text += code + "\n";
  }
  db::Audit(tx, {std::nullopt, "admin", "invite.add", json{{"count", count}}.dump(), ""});
  tx.commit();
  if (a.json) return json{{"invites", codes}}.dump(2) + "\n";
  return text;
}

Result<std::string> AuditList(db::Pool& pool, const Args& a) {
  int64_t limit = 50;
  if (auto it = a.flags.find("--limit"); it != a.flags.end()) {
    auto n = ParseCount(it->second, 1, 100000, "--limit");
    if (!n) return n.error();
    limit = *n;
  }
  auto conn = pool.Acquire();
  pqxx::work tx(*conn);
  auto rows = db::RecentAudit(tx, limit);
  tx.commit();
  json arr = json::array();
  std::string text;
  for (const auto& r : rows) {
    arr.push_back({{"at", r.at}, {"actor", r.actor}, {"action", r.action}, {"detail", json::parse(r.detail_json)},
                   {"source_addr", r.source_addr}});
    text += fmt::format("{}  {:<16} {:<16} {} {}\n", r.at, r.actor, r.action, r.detail_json, r.source_addr);
  }
  if (a.json) return json{{"entries", arr}}.dump(2) + "\n";
  return text;
}

}  // namespace

int RunAdmin(db::Pool& pool, const ServiceConfig& config, const std::vector<std::string>& w, std::string* out,
             std::string* err) {
  auto finish = [&](const Result<std::string>& r) {
    if (r) {
      *out = *r;
      return 0;
    }
    *err = r.error().message + "\n";
    return ExitCode(r.error());
  };
  if (w.empty() || w[0] == "--help" || w[0] == "help" || w[0] == "-h") {
    *out = AdminHelp();
    return w.empty() ? 2 : 0;
  }
  const std::vector<std::string> budget_flags{"--cpus", "--memory", "--disk", "--vms"};
  try {
    std::string cmd = w[0] + (w.size() > 1 && w[0] != "audit" ? " " + w[1] : "");
    if (cmd == "account add") {
      auto flags = budget_flags;
      flags.insert(flags.end(), {"--key", "--key-file"});
      auto a = ParseArgs(w, 2, flags);
      return finish(a ? AccountAdd(pool, config, *a) : Result<std::string>(a.error()));
    }
    if (cmd == "account list") {
      auto a = ParseArgs(w, 2, {});
      return finish(a ? AccountList(pool, *a) : Result<std::string>(a.error()));
    }
    if (cmd == "account budget") {
      auto a = ParseArgs(w, 2, budget_flags);
      return finish(a ? AccountBudget(pool, *a) : Result<std::string>(a.error()));
    }
    if (cmd == "invite add") {
      auto a = ParseArgs(w, 2, {"--count"});
      return finish(a ? InviteAdd(pool, *a) : Result<std::string>(a.error()));
    }
    if (cmd == "audit") {
      auto a = ParseArgs(w, 1, {"--limit"});
      return finish(a ? AuditList(pool, *a) : Result<std::string>(a.error()));
    }
    return finish(UsageError(fmt::format("unknown admin command '{}'; see 'exed admin --help'", cmd)));
  } catch (const std::exception& e) {
    spdlog::error("op=admin error={}", e.what());
    return finish(InternalError(std::string("database error: ") + e.what()));
  }
}

}  // namespace control
