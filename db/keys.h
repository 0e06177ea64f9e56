// SSH public keys of accounts. Same contract as accounts.h: run in the
// caller's transaction, throw pqxx exceptions (unique_violation on a
// fingerprint or comment already used). Stateless, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace db {

struct SshKey {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string fingerprint;
  std::string public_key;  // "TYPE BASE64"
  std::string comment;
  std::string added_at;      // ISO 8601 UTC
  std::string last_used_at;  // ISO 8601 UTC, empty if never
};

int64_t AddKey(pqxx::transaction_base& tx, int64_t account_id, const std::string& fingerprint,
               const std::string& public_key, const std::string& comment);
std::vector<SshKey> ListKeys(pqxx::transaction_base& tx, int64_t account_id);
// Removes the key; false if it was not the account's.
bool RemoveKey(pqxx::transaction_base& tx, int64_t account_id, int64_t key_id);
bool RenameKey(pqxx::transaction_base& tx, int64_t account_id, int64_t key_id, const std::string& comment);
void TouchKey(pqxx::transaction_base& tx, const std::string& fingerprint);

}  // namespace db
