#include "db/shares.h"

namespace db {

bool SetSshAccess(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id, bool allow) {
  if (allow) {
    return tx
               .exec_params("INSERT INTO vm_shares (vm_id, account_id, ssh) VALUES ($1, $2, true)"
                            " ON CONFLICT (vm_id, account_id) DO UPDATE SET ssh = true WHERE NOT vm_shares.ssh",
                            vm_id, account_id)
               .affected_rows() > 0;
  }
  bool changed = tx.exec_params("UPDATE vm_shares SET ssh = false WHERE vm_id = $1 AND account_id = $2 AND ssh",
                                vm_id, account_id)
                     .affected_rows() > 0;
  tx.exec_params("DELETE FROM vm_shares WHERE vm_id = $1 AND account_id = $2 AND NOT ssh AND NOT web", vm_id,
                 account_id);
  return changed;
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
  return tx
      .exec_params1("SELECT EXISTS (SELECT 1 FROM vms WHERE id = $1 AND account_id = $2)"
                    " OR EXISTS (SELECT 1 FROM vm_shares WHERE vm_id = $1 AND account_id = $2 AND ssh)",
                    vm_id, account_id)[0]
      .as<bool>();
}

}  // namespace db
