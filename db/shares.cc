#include "db/shares.h"

namespace db {

namespace {

// `column` is "ssh" or "web", never user input.
bool SetAccess(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id, const std::string& column,
               bool allow) {
  if (allow) {
    return tx
               .exec_params("INSERT INTO vm_shares (vm_id, account_id, " + column + ") VALUES ($1, $2, true)"
                            " ON CONFLICT (vm_id, account_id) DO UPDATE SET " + column + " = true"
                            " WHERE NOT vm_shares." + column,
                            vm_id, account_id)
               .affected_rows() > 0;
  }
  bool changed = tx.exec_params("UPDATE vm_shares SET " + column + " = false WHERE vm_id = $1 AND account_id = $2"
                                " AND " + column,
                                vm_id, account_id)
                     .affected_rows() > 0;
  tx.exec_params("DELETE FROM vm_shares WHERE vm_id = $1 AND account_id = $2 AND NOT ssh AND NOT web", vm_id,
                 account_id);
  return changed;
}

bool Owns(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id, const std::string& column) {
  return tx
      .exec_params1("SELECT EXISTS (SELECT 1 FROM vms WHERE id = $1 AND account_id = $2)"
                    " OR EXISTS (SELECT 1 FROM vm_shares WHERE vm_id = $1 AND account_id = $2 AND " + column + ")",
                    vm_id, account_id)[0]
      .as<bool>();
}

}  // namespace

bool SetSshAccess(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id, bool allow) {
  return SetAccess(tx, vm_id, account_id, "ssh", allow);
}

bool SetWebAccess(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id, bool allow) {
  return SetAccess(tx, vm_id, account_id, "web", allow);
}

std::vector<Share> ListShares(pqxx::transaction_base& tx, int64_t vm_id) {
  std::vector<Share> out;
  for (const auto& r : tx.exec_params("SELECT a.name, s.ssh, s.web FROM vm_shares s JOIN accounts a"
                                      " ON a.id = s.account_id WHERE s.vm_id = $1 ORDER BY a.name",
                                      vm_id)) {
    out.push_back({r[0].as<std::string>(), r[1].as<bool>(), r[2].as<bool>()});
  }
  return out;
}

bool MayEnter(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id) {
  return Owns(tx, vm_id, account_id, "ssh");
}

bool MayView(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id) {
  return Owns(tx, vm_id, account_id, "web");
}

}  // namespace db
