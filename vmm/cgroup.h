// CgroupHost: the cgroup tree exed manages, with one implementation per cgroup
// version (v1, v2), chosen at run time from /proc/mounts by DetectCgroups.
//
// The tree, under one parent ("exed") at the top of each hierarchy:
//
//   PARENT/ACCOUNT      the account's budget: memory limit, CPU quota, pids max
//   PARENT/ACCOUNT/VM   one QEMU process; accounting only, no limits of its own
//
// so an account's limits cover all its VMs together (see control/budget.h).
// Processes live only in VM groups: cgroup v2 lets a group enable controllers
// for its children only while it holds no processes, and v1 uses the same
// layout so that both versions behave alike. exed itself must not run inside
// PARENT.
//
// Names of accounts and VMs become path components, so every call checks them
// (lowercase letters, digits and '-') and fails with kInvalid otherwise. OS
// failures are kInternal errors naming the path and the errno text.
//
// Thread safety: an implementation holds only what it was constructed with,
// so concurrent calls are safe as long as they concern different VMs, and the
// read-only calls (usage, pids, listings) are safe at any time. Calls that
// change one account's group (EnsureAccount, RemoveAccount) must not race with
// calls on that account's VMs; the caller orders them (the kernel would refuse
// the loser, but with an unhelpful error).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "control/result.h"

namespace vmm {

// An account's budget; 0 means unlimited.
struct CgroupLimits {
  int64_t cpus = 0;  // CPU time: cpus x 100 ms in every 100 ms period
  int64_t memory_mib = 0;
  int64_t pids = 0;
};

// A group's counters. Hierarchical: an account's include those of its VMs.
struct CgroupUsage {
  uint64_t cpu_usec = 0;  // CPU time used since the group was created
  uint64_t memory_bytes = 0;
  uint64_t memory_peak_bytes = 0;  // 0 where the kernel has no counter (v2 before 5.19)
  uint64_t pids = 0;
};

class CgroupHost {
 public:
  virtual ~CgroupHost() = default;

  // "v1" or "v2".
  virtual std::string_view version() const = 0;

  // Creates PARENT (if needed) and PARENT/ACCOUNT, and sets the account's
  // limits: memory limit, CPU quota (cpus x period), pids max. Idempotent;
  // a second call with other limits updates them. Fails with kInvalid for
  // negative limits or ones too large to write.
  virtual control::Status EnsureAccount(const std::string& account, const CgroupLimits& limits) = 0;

  // Creates PARENT/ACCOUNT/VM, with no limits of its own. Idempotent.
  // REQUIRES: EnsureAccount(account) succeeded (else kNotFound).
  virtual control::Status EnsureVm(const std::string& account, const std::string& vm) = 0;

  // The cgroup.procs files (one per hierarchy) that put a process into the
  // VM's group. For the launcher: it calls this before fork, and the child
  // writes "0" (itself) or its pid into each with plain open(2)/write(2)
  // before exec, so QEMU never runs a guest instruction outside the group.
  // Returns Result (not a bare vector) because the names are checked.
  virtual control::Result<std::vector<std::string>> ProcsFiles(const std::string& account,
                                                               const std::string& vm) const = 0;

  // Moves process `pid` (0: the caller) into the VM's group, in every
  // hierarchy. REQUIRES: EnsureVm(account, vm) succeeded.
  virtual control::Status AddProcess(const std::string& account, const std::string& vm,
                                     pid_t pid) = 0;

  virtual control::Result<CgroupUsage> VmUsage(const std::string& account,
                                               const std::string& vm) const = 0;
  virtual control::Result<CgroupUsage> AccountUsage(const std::string& account) const = 0;

  // Processes in the VM's group (in any hierarchy), sorted; empty when the
  // group does not exist. For finding strays and checking a VM is gone.
  virtual control::Result<std::vector<pid_t>> VmPids(const std::string& account,
                                                     const std::string& vm) const = 0;

  // Removes the VM's group. Fails, naming the pids, while it holds processes.
  // Idempotent: succeeds when the group is already gone.
  virtual control::Status RemoveVm(const std::string& account, const std::string& vm) = 0;

  // Removes the account's group. Fails, naming them, while VM groups remain.
  // Idempotent. PARENT stays.
  virtual control::Status RemoveAccount(const std::string& account) = 0;

  // Names of the account groups under PARENT and of the VM groups under an
  // account that exist in any hierarchy, sorted; empty when the parent group
  // is absent. For the reconciler. Directories whose names no call would
  // accept are left out (and logged).
  virtual control::Result<std::vector<std::string>> Accounts() const = 0;
  virtual control::Result<std::vector<std::string>> Vms(const std::string& account) const = 0;
};

// Returns the implementation for this host, given `mounts_text` (the contents
// of /proc/mounts):
//   - v2 when cgroup2 is mounted at /sys/fs/cgroup (the unified hierarchy);
//   - else v1 when any of the v1 controllers are mounted; it needs cpu,
//     cpuacct, memory and pids (cpu and cpuacct may be co-mounted as
//     "cpu,cpuacct"). A hybrid host, with cgroup2 at /sys/fs/cgroup/unified
//     and the controllers on v1, is v1;
//   - else v2 at the first cgroup2 mount listed.
// For v2, the root's cgroup.controllers must list cpu, memory and pids.
// `root_prefix` is prepended to every mount point: tests pass a temp dir that
// holds a fake tree, production passes "". `parent` is a relative path under
// the hierarchy roots ("exed", or "exed.slice/exed"); trusted configuration,
// so it may also use '.', '_' and capitals, but no "." or ".." components.
// Errors say what is missing ("cgroup v1 memory controller not mounted; exed
// needs cpu, cpuacct, memory and pids").
control::Result<std::unique_ptr<CgroupHost>> DetectCgroups(const std::string& mounts_text,
                                                           const std::string& root_prefix,
                                                           const std::string& parent = "exed");

}  // namespace vmm
