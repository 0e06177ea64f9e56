// VMs as rows: what the control plane decided (desired state, size, ports,
// pinned host key) and what the VM host last saw (status, pid). Same contract
// as accounts.h: run in the caller's transaction, throw pqxx exceptions
// (unique_violation on a taken name or port). Stateless, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace db {

struct Vm {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string account;  // owner's name (read only)
  std::string name;
  std::string status = "creating";  // creating | running | stopped | crashed
  std::string desired = "running";  // running | stopped
  std::string image;
  int64_t cpus = 0;
  int64_t memory_mib = 0;
  int64_t disk_gib = 0;
  int ssh_port = 0;  // host loopback port forwarded to the guest's sshd
  int web_port = 0;  // host loopback port forwarded to the guest's web port
  int guest_web_port = 80;
  int pid = 0;  // QEMU's pid when running
  std::string host_key;      // "TYPE BASE64", pinned at first boot; empty before
  std::string env_json = "{}";  // {"K": "V"}
  std::vector<std::string> tags;
  std::string setup_script;
  int restarts = 0;  // consecutive failed restarts by the reconciler
  std::string created_at;
};

int64_t InsertVm(pqxx::transaction_base& tx, const Vm& vm);
std::optional<Vm> FindVm(pqxx::transaction_base& tx, const std::string& name);
std::optional<Vm> FindVmById(pqxx::transaction_base& tx, int64_t id);
// FOR UPDATE: the row stays locked until the transaction ends.
std::optional<Vm> LockVm(pqxx::transaction_base& tx, const std::string& name);
std::vector<Vm> ListVms(pqxx::transaction_base& tx, int64_t account_id);
std::vector<Vm> AllVms(pqxx::transaction_base& tx);
void SetVmRuntime(pqxx::transaction_base& tx, int64_t id, const std::string& status, int pid);
void SetVmDesired(pqxx::transaction_base& tx, int64_t id, const std::string& desired);
void SetVmRestarts(pqxx::transaction_base& tx, int64_t id, int restarts);
void SetVmHostKey(pqxx::transaction_base& tx, int64_t id, const std::string& host_key);
void SetVmResources(pqxx::transaction_base& tx, int64_t id, int64_t cpus, int64_t memory_mib, int64_t disk_gib);
void SetVmTags(pqxx::transaction_base& tx, int64_t id, const std::vector<std::string>& tags);
void RenameVm(pqxx::transaction_base& tx, int64_t id, const std::string& name);
void DeleteVm(pqxx::transaction_base& tx, int64_t id);
// Host ports held by VMs (ssh and web), so new allocations avoid them.
std::set<int> UsedPorts(pqxx::transaction_base& tx);

}  // namespace db
