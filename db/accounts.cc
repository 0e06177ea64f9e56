#include "db/accounts.h"

namespace db {

namespace {

constexpr const char* kSelect =
    "SELECT a.id, a.name, to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " b.cpus, b.memory_mib, b.disk_gib, b.max_vms"
    " FROM accounts a JOIN budgets b ON b.account_id = a.id ";

Account FromRow(const pqxx::row& r) {
  Account a;
  a.id = r[0].as<int64_t>();
  a.name = r[1].as<std::string>();
  a.created_at = r[2].as<std::string>();
  a.budget = {r[3].as<int64_t>(), r[4].as<int64_t>(), r[5].as<int64_t>(), r[6].as<int64_t>()};
  return a;
}

std::optional<Account> First(const pqxx::result& r) {
  if (r.empty()) return std::nullopt;
  return FromRow(r[0]);
}

}  // namespace

int64_t CreateAccount(pqxx::transaction_base& tx, const std::string& name, const Budget& budget) {
  auto id = tx.exec_params1("INSERT INTO accounts (name) VALUES ($1) RETURNING id", name)[0].as<int64_t>();
  tx.exec_params0("INSERT INTO budgets (account_id, cpus, memory_mib, disk_gib, max_vms) VALUES ($1, $2, $3, $4, $5)",
                  id, budget.cpus, budget.memory_mib, budget.disk_gib, budget.max_vms);
  return id;
}

std::optional<Account> FindAccountByName(pqxx::transaction_base& tx, const std::string& name) {
  return First(tx.exec_params(std::string(kSelect) + "WHERE a.name = $1", name));
}

std::optional<Account> FindAccountById(pqxx::transaction_base& tx, int64_t id) {
  return First(tx.exec_params(std::string(kSelect) + "WHERE a.id = $1", id));
}

std::optional<Account> FindAccountByKey(pqxx::transaction_base& tx, const std::string& fingerprint) {
  return First(tx.exec_params(
      std::string(kSelect) + "JOIN ssh_keys k ON k.account_id = a.id WHERE k.fingerprint = $1", fingerprint));
}

std::vector<Account> ListAccounts(pqxx::transaction_base& tx) {
  std::vector<Account> out;
  for (const auto& r : tx.exec(std::string(kSelect) + "ORDER BY a.name")) out.push_back(FromRow(r));
  return out;
}

void SetBudget(pqxx::transaction_base& tx, int64_t account_id, const Budget& b) {
  tx.exec_params1(
      "UPDATE budgets SET cpus = $2, memory_mib = $3, disk_gib = $4, max_vms = $5 WHERE account_id = $1 "
      "RETURNING account_id",
      account_id, b.cpus, b.memory_mib, b.disk_gib, b.max_vms);
}

void LockAccount(pqxx::transaction_base& tx, int64_t account_id) {
  tx.exec_params1("SELECT id FROM accounts WHERE id = $1 FOR UPDATE", account_id);
}

Usage UsageOf(pqxx::transaction_base& tx, int64_t account_id) {
  auto r = tx.exec_params1(
      "SELECT coalesce(sum(cpus), 0), coalesce(sum(memory_mib), 0), coalesce(sum(disk_gib), 0), count(*)"
      " FROM vms WHERE account_id = $1",
      account_id);
  return {r[0].as<int64_t>(), r[1].as<int64_t>(), r[2].as<int64_t>(), r[3].as<int64_t>()};
}

}  // namespace db
