#include "db/api_tokens.h"

#include <nlohmann/json.hpp>

namespace db {

namespace {

// Columns in the order Row() reads them; `t` is api_tokens.
const std::string kColumns =
    "t.id, t.account_id, t.label, array_to_json(t.cmds)::text,"
    " to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " coalesce(to_char(t.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
    " coalesce(to_char(t.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
    " coalesce(t.expires_at <= now(), false)";

ApiToken Row(const pqxx::row& r) {
  ApiToken t;
  t.id = r[0].as<int64_t>();
  t.account_id = r[1].as<int64_t>();
  t.label = r[2].as<std::string>();
  t.cmds = nlohmann::json::parse(r[3].as<std::string>()).get<std::vector<std::string>>();
  t.created_at = r[4].as<std::string>();
  t.expires_at = r[5].as<std::string>();
  t.last_used_at = r[6].as<std::string>();
  t.expired = r[7].as<bool>();
  return t;
}

std::optional<ApiToken> First(const pqxx::result& rows) {
  if (rows.empty()) return std::nullopt;
  return Row(rows[0]);
}

}  // namespace

ApiToken InsertApiToken(pqxx::transaction_base& tx, int64_t account_id, const std::string& label,
                        const std::string& token_hash, const std::vector<std::string>& cmds,
                        std::optional<int64_t> expires_in_seconds) {
  // -1 stands for "never": libpqxx 6 has no optional parameters.
  return Row(tx.exec_params1(
      "WITH t AS (INSERT INTO api_tokens (account_id, label, token_hash, cmds, expires_at)"
      " VALUES ($1, $2, $3, ARRAY(SELECT jsonb_array_elements_text($4::jsonb)),"
      " CASE WHEN $5::bigint < 0 THEN NULL ELSE now() + make_interval(secs => $5::bigint) END) RETURNING *)"
      " SELECT " + kColumns + " FROM t",
      account_id, label, token_hash, nlohmann::json(cmds).dump(), expires_in_seconds.value_or(-1)));
}

std::optional<ApiToken> FindApiTokenByHash(pqxx::transaction_base& tx, const std::string& token_hash) {
  auto rows = tx.exec_params("SELECT " + kColumns + ", a.name FROM api_tokens t JOIN accounts a ON a.id = t.account_id"
                             " WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
                             token_hash);
  if (rows.empty()) return std::nullopt;
  ApiToken t = Row(rows[0]);
  t.account_name = rows[0][8].as<std::string>();
  return t;
}

std::vector<ApiToken> ListApiTokens(pqxx::transaction_base& tx, int64_t account_id) {
  std::vector<ApiToken> out;
  for (const auto& r : tx.exec_params("SELECT " + kColumns +
                                          " FROM api_tokens t WHERE t.account_id = $1 AND t.revoked_at IS NULL"
                                          " ORDER BY t.created_at, t.id",
                                      account_id)) {
    out.push_back(Row(r));
  }
  return out;
}

int64_t CountApiTokens(pqxx::transaction_base& tx, int64_t account_id) {
  return tx.exec_params1("SELECT count(*) FROM api_tokens WHERE account_id = $1", account_id)[0].as<int64_t>();
}

std::optional<ApiToken> RevokeApiTokenById(pqxx::transaction_base& tx, int64_t account_id, int64_t id) {
  return First(tx.exec_params(
      "WITH t AS (UPDATE api_tokens SET revoked_at = now() WHERE id = $2 AND account_id = $1"
      " AND revoked_at IS NULL RETURNING *) SELECT " + kColumns + " FROM t",
      account_id, id));
}

std::optional<ApiToken> RevokeApiTokenByLabel(pqxx::transaction_base& tx, int64_t account_id,
                                              const std::string& label) {
  return First(tx.exec_params(
      "WITH t AS (UPDATE api_tokens SET revoked_at = now() WHERE label = $2 AND account_id = $1"
      " AND revoked_at IS NULL RETURNING *) SELECT " + kColumns + " FROM t",
      account_id, label));
}

void TouchApiToken(pqxx::transaction_base& tx, int64_t id) {
  tx.exec_params0("UPDATE api_tokens SET last_used_at = now() WHERE id = $1", id);
}

}  // namespace db
