#include "db/audit.h"

namespace db {

void Audit(pqxx::transaction_base& tx, const AuditEntry& e) {
  tx.exec_params0(
      "INSERT INTO audit_log (account_id, actor, action, detail, source_addr)"
      " VALUES (NULLIF($1, 0), $2, $3, $4::jsonb, NULLIF($5, ''))",
      e.account_id.value_or(0), e.actor, e.action, e.detail_json.empty() ? "{}" : e.detail_json, e.source_addr);
}

int64_t CountRecentActions(pqxx::transaction_base& tx, const std::string& source_addr, const std::string& action,
                           int64_t seconds) {
  return tx
      .exec_params1(
          "SELECT count(*) FROM audit_log WHERE source_addr = $1 AND action = $2"
          " AND at > now() - make_interval(secs => $3)",
          source_addr, action, seconds)[0]
      .as<int64_t>();
}

std::vector<AuditRow> RecentAudit(pqxx::transaction_base& tx, int64_t limit) {
  std::vector<AuditRow> out;
  for (const auto& r : tx.exec_params(
           "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), actor, action, detail::text,"
           " coalesce(source_addr, '') FROM audit_log ORDER BY id DESC LIMIT $1",
           limit)) {
    out.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(), r[3].as<std::string>(),
                   r[4].as<std::string>()});
  }
  return out;
}

void CreateInvite(pqxx::transaction_base& tx, const std::string& code) {
  tx.exec_params0("INSERT INTO invites (code) VALUES ($1)", code);
}

bool UseInvite(pqxx::transaction_base& tx, const std::string& code, int64_t account_id) {
  return tx.exec_params("UPDATE invites SET used_by = $2, used_at = now() WHERE code = $1 AND used_at IS NULL",
                        code, account_id)
             .affected_rows() == 1;
}

std::vector<std::string> LoadHistory(pqxx::transaction_base& tx, int64_t account_id, int64_t limit) {
  std::vector<std::string> out;
  for (const auto& r : tx.exec_params(
           "SELECT line FROM (SELECT id, line FROM lobby_history WHERE account_id = $1 ORDER BY id DESC LIMIT $2) h"
           " ORDER BY id",
           account_id, limit)) {
    out.push_back(r[0].as<std::string>());
  }
  return out;
}

void AppendHistory(pqxx::transaction_base& tx, int64_t account_id, const std::string& line, int64_t keep) {
  tx.exec_params0("INSERT INTO lobby_history (account_id, line) VALUES ($1, $2)", account_id, line);
  tx.exec_params0(
      "DELETE FROM lobby_history WHERE account_id = $1 AND id <= (SELECT id FROM lobby_history"
      " WHERE account_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)",
      account_id, keep);
}

}  // namespace db
