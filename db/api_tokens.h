// Bearer tokens of the HTTPS /exec API. Same contract as accounts.h: run in
// the caller's transaction, throw pqxx exceptions (unique_violation on a
// label an account's live token already has). Only the token's SHA-256 (hex)
// passes through here, never the token. Stateless, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace db {

struct ApiToken {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string account_name;  // filled by FindApiTokenByHash only
  std::string label;
  std::vector<std::string> cmds;  // command names; empty: all
  std::string created_at;    // ISO 8601 UTC
  std::string expires_at;    // ISO 8601 UTC, empty: never
  std::string last_used_at;  // ISO 8601 UTC, empty: never
  bool expired = false;      // expires_at is past, by the database's clock
};

// `expires_in_seconds` unset: the token never expires.
ApiToken InsertApiToken(pqxx::transaction_base& tx, int64_t account_id, const std::string& label,
                        const std::string& token_hash, const std::vector<std::string>& cmds,
                        std::optional<int64_t> expires_in_seconds);
// The token with this hash, with its account's name, unless it is revoked.
// Expired tokens are returned (with `expired` set), so callers can say so.
std::optional<ApiToken> FindApiTokenByHash(pqxx::transaction_base& tx, const std::string& token_hash);
// The account's tokens that are not revoked, oldest first.
std::vector<ApiToken> ListApiTokens(pqxx::transaction_base& tx, int64_t account_id);
// How many tokens the account ever made, revoked ones included.
int64_t CountApiTokens(pqxx::transaction_base& tx, int64_t account_id);
// Revokes one of the account's live tokens; nullopt when it has none by that id or label.
std::optional<ApiToken> RevokeApiTokenById(pqxx::transaction_base& tx, int64_t account_id, int64_t id);
std::optional<ApiToken> RevokeApiTokenByLabel(pqxx::transaction_base& tx, int64_t account_id,
                                              const std::string& label);
void TouchApiToken(pqxx::transaction_base& tx, int64_t id);

}  // namespace db
