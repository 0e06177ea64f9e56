// Accounts and their budgets. Functions run inside the caller's transaction,
// so the control plane composes them atomically; they throw pqxx exceptions
// (pqxx::unique_violation when a name is taken). Stateless, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace db {

struct Budget {
  int64_t cpus = 0;
  int64_t memory_mib = 0;
  int64_t disk_gib = 0;
  int64_t max_vms = 0;
};

struct Account {
  int64_t id = 0;
  std::string name;
  std::string created_at;  // ISO 8601, UTC
  Budget budget;
};

// What an account's VMs take from its budget.
struct Usage {
  int64_t cpus = 0;
  int64_t memory_mib = 0;
  int64_t disk_gib = 0;
  int64_t vms = 0;
};

int64_t CreateAccount(pqxx::transaction_base& tx, const std::string& name, const Budget& budget);
std::optional<Account> FindAccountByName(pqxx::transaction_base& tx, const std::string& name);
std::optional<Account> FindAccountById(pqxx::transaction_base& tx, int64_t id);
std::optional<Account> FindAccountByKey(pqxx::transaction_base& tx, const std::string& fingerprint);
std::vector<Account> ListAccounts(pqxx::transaction_base& tx);
void SetBudget(pqxx::transaction_base& tx, int64_t account_id, const Budget& budget);
// Row-locks the account until the transaction ends: budget checks that must
// not race (concurrent `new`s) take this first.
void LockAccount(pqxx::transaction_base& tx, int64_t account_id);
Usage UsageOf(pqxx::transaction_base& tx, int64_t account_id);

}  // namespace db
