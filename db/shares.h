// Sharing a VM with other accounts (table vm_shares). Same contract as
// accounts.h: run in the caller's transaction, throw pqxx exceptions.
// Stateless, thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace db {

struct Share {
  std::string account;  // the account the VM is shared with
  bool ssh = false;     // may enter through the SSH gateway
  bool web = false;     // may open the VM's private URL
};

// Grants or withdraws SSH access of `account_id` to `vm_id`; a row left with
// no access at all is deleted. Returns whether anything changed.
bool SetSshAccess(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id, bool allow);
// The same for opening the VM's private URL (`share add|remove`).
bool SetWebAccess(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id, bool allow);
// Everyone the VM is shared with, by account name.
std::vector<Share> ListShares(pqxx::transaction_base& tx, int64_t vm_id);
// True if `account_id` owns `vm_id` or it is shared with it for SSH.
bool MayEnter(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id);
// True if `account_id` owns `vm_id` or it is shared with it for the web.
bool MayView(pqxx::transaction_base& tx, int64_t vm_id, int64_t account_id);

}  // namespace db
