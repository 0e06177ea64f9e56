// The audit log (who did what, from where), invites, and lobby history.
// Same contract as accounts.h. Stateless, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace db {

struct AuditEntry {
  std::optional<int64_t> account_id;
  std::string actor;        // account name, "admin" or "anonymous"
  std::string action;       // "register", "ssh-key.add", ...
  std::string detail_json;  // a JSON object
  std::string source_addr;  // empty when not from the network
};

void Audit(pqxx::transaction_base& tx, const AuditEntry& e);
// How many `action`s came from `source_addr` in the last `seconds`.
int64_t CountRecentActions(pqxx::transaction_base& tx, const std::string& source_addr, const std::string& action,
                           int64_t seconds);

struct AuditRow {
  std::string at;
  std::string actor;
  std::string action;
  std::string detail_json;
  std::string source_addr;
};
std::vector<AuditRow> RecentAudit(pqxx::transaction_base& tx, int64_t limit);

void CreateInvite(pqxx::transaction_base& tx, const std::string& code);
// Marks an unused invite used by account_id; false if no such unused invite.
bool UseInvite(pqxx::transaction_base& tx, const std::string& code, int64_t account_id);

// The newest `limit` lobby lines of an account, oldest first.
std::vector<std::string> LoadHistory(pqxx::transaction_base& tx, int64_t account_id, int64_t limit);
// Appends a line and trims the account's history to `keep` lines.
void AppendHistory(pqxx::transaction_base& tx, int64_t account_id, const std::string& line, int64_t keep);

}  // namespace db
