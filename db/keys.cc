#include "db/keys.h"

namespace db {

namespace {
constexpr const char* kIso = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";
}  // namespace

int64_t AddKey(pqxx::transaction_base& tx, int64_t account_id, const std::string& fingerprint, const std::string& public_key,
               const std::string& comment) {
  return tx
      .exec_params1(
          "INSERT INTO ssh_keys (account_id, fingerprint, public_key, comment) VALUES ($1, $2, $3, $4) RETURNING id",
          account_id, fingerprint, public_key, comment)[0]
      .as<int64_t>();
}

std::vector<SshKey> ListKeys(pqxx::transaction_base& tx, int64_t account_id) {
  std::vector<SshKey> out;
  auto rows = tx.exec_params(std::string("SELECT id, account_id, fingerprint, public_key, comment,"
                                         " to_char(added_at AT TIME ZONE 'UTC', ") +
                                 kIso + "), coalesce(to_char(last_used_at AT TIME ZONE 'UTC', " + kIso +
                                 "), '') FROM ssh_keys WHERE account_id = $1 ORDER BY added_at, id",
                             account_id);
  for (const auto& r : rows) {
    out.push_back({r[0].as<int64_t>(), r[1].as<int64_t>(), r[2].as<std::string>(), r[3].as<std::string>(),
                   r[4].as<std::string>(), r[5].as<std::string>(), r[6].as<std::string>()});
  }
  return out;
}

bool RemoveKey(pqxx::transaction_base& tx, int64_t account_id, int64_t key_id) {
  return tx.exec_params("DELETE FROM ssh_keys WHERE id = $1 AND account_id = $2", key_id, account_id)
             .affected_rows() == 1;
}

bool RenameKey(pqxx::transaction_base& tx, int64_t account_id, int64_t key_id, const std::string& comment) {
  return tx.exec_params("UPDATE ssh_keys SET comment = $3 WHERE id = $1 AND account_id = $2", key_id, account_id,
                        comment)
             .affected_rows() == 1;
}

void TouchKey(pqxx::transaction_base& tx, const std::string& fingerprint) {
  tx.exec_params0("UPDATE ssh_keys SET last_used_at = now() WHERE fingerprint = $1", fingerprint);
}

}  // namespace db
