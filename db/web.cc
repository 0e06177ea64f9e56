#include "db/web.h"

namespace db {

void InsertWebLogin(pqxx::transaction_base& tx, const std::string& code, const std::string& secret_hash,
                    const std::string& source_addr, const std::string& user_agent, int64_t ttl_seconds) {
  tx.exec_params("DELETE FROM web_logins WHERE expires_at < now() - interval '1 hour'");
  tx.exec_params("INSERT INTO web_logins (code, secret_hash, source_addr, user_agent, expires_at)"
                 " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
                 code, secret_hash, source_addr, user_agent, ttl_seconds);
}

std::optional<WebLogin> FindWebLogin(pqxx::transaction_base& tx, const std::string& code) {
  auto r = tx.exec_params("SELECT code, secret_hash, source_addr, user_agent, account_id,"
                          " extract(epoch FROM now() - created_at)::bigint, expires_at < now()"
                          " FROM web_logins WHERE code = $1",
                          code);
  if (r.empty()) return std::nullopt;
  WebLogin l;
  l.code = r[0][0].as<std::string>();
  l.secret_hash = r[0][1].as<std::string>();
  l.source_addr = r[0][2].as<std::string>();
  l.user_agent = r[0][3].as<std::string>();
  if (!r[0][4].is_null()) l.account_id = r[0][4].as<int64_t>();
  l.age_seconds = r[0][5].as<int64_t>();
  l.expired = r[0][6].as<bool>();
  return l;
}

bool ApproveWebLogin(pqxx::transaction_base& tx, const std::string& code, int64_t account_id) {
  return tx
             .exec_params("UPDATE web_logins SET account_id = $2 WHERE code = $1 AND account_id IS NULL"
                          " AND expires_at >= now()",
                          code, account_id)
             .affected_rows() == 1;
}

void DeleteWebLogin(pqxx::transaction_base& tx, const std::string& code) {
  tx.exec_params("DELETE FROM web_logins WHERE code = $1", code);
}

int64_t InsertWebSession(pqxx::transaction_base& tx, const std::string& token_hash, int64_t account_id,
                         const std::string& host, std::optional<int64_t> parent_id, int64_t ttl_seconds) {
  tx.exec_params("DELETE FROM web_sessions WHERE expires_at < now() - interval '1 day'");
  return tx
      .exec_params1("INSERT INTO web_sessions (token_hash, account_id, host, parent_id, expires_at)"
                    " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING id",
                    token_hash, account_id, host, parent_id, ttl_seconds)[0]
      .as<int64_t>();
}

std::optional<WebSession> FindWebSession(pqxx::transaction_base& tx, const std::string& token_hash,
                                         const std::string& host) {
  auto r = tx.exec_params("SELECT s.id, s.account_id, a.name, s.host, s.parent_id FROM web_sessions s"
                          " JOIN accounts a ON a.id = s.account_id"
                          " WHERE s.token_hash = $1 AND s.host = $2 AND s.expires_at >= now()",
                          token_hash, host);
  if (r.empty()) return std::nullopt;
  WebSession s;
  s.id = r[0][0].as<int64_t>();
  s.account_id = r[0][1].as<int64_t>();
  s.account = r[0][2].as<std::string>();
  s.host = r[0][3].as<std::string>();
  if (!r[0][4].is_null()) s.parent_id = r[0][4].as<int64_t>();
  return s;
}

void DeleteWebSessionFamily(pqxx::transaction_base& tx, int64_t session_id) {
  // Children go with their parent (ON DELETE CASCADE).
  tx.exec_params("DELETE FROM web_sessions WHERE id = (SELECT coalesce(parent_id, id) FROM web_sessions"
                 " WHERE id = $1)",
                 session_id);
}

void InsertHostToken(pqxx::transaction_base& tx, const std::string& token_hash, int64_t session_id,
                     const std::string& host, int64_t ttl_seconds) {
  tx.exec_params("DELETE FROM web_host_tokens WHERE expires_at < now()");
  tx.exec_params("INSERT INTO web_host_tokens (token_hash, session_id, host, expires_at)"
                 " VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
                 token_hash, session_id, host, ttl_seconds);
}

std::optional<WebSession> TakeHostToken(pqxx::transaction_base& tx, const std::string& token_hash,
                                        const std::string& host) {
  auto r = tx.exec_params("DELETE FROM web_host_tokens WHERE token_hash = $1"
                          " RETURNING session_id, host = $2 AND expires_at >= now()",
                          token_hash, host);
  if (r.empty() || !r[0][1].as<bool>()) return std::nullopt;
  auto s = tx.exec_params("SELECT s.id, s.account_id, a.name, s.host FROM web_sessions s"
                          " JOIN accounts a ON a.id = s.account_id WHERE s.id = $1 AND s.expires_at >= now()",
                          r[0][0].as<int64_t>());
  if (s.empty()) return std::nullopt;
  return WebSession{s[0][0].as<int64_t>(), s[0][1].as<int64_t>(), s[0][2].as<std::string>(),
                    s[0][3].as<std::string>(), std::nullopt};
}

void SetVmPublic(pqxx::transaction_base& tx, int64_t vm_id, bool is_public) {
  tx.exec_params("UPDATE vms SET public = $2 WHERE id = $1", vm_id, is_public);
}

bool VmPublic(pqxx::transaction_base& tx, int64_t vm_id) {
  return tx.exec_params1("SELECT public FROM vms WHERE id = $1", vm_id)[0].as<bool>();
}

void SetVmGuestWebPort(pqxx::transaction_base& tx, int64_t vm_id, int port) {
  tx.exec_params("UPDATE vms SET guest_web_port = $2 WHERE id = $1", vm_id, port);
}

}  // namespace db
