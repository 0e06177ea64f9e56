// Reconciler: makes the VMs on this machine match the database, at start and
// then every few seconds, so exed can die and come back at any moment:
//  - a VM that should run and whose QEMU runs is re-attached (nothing is
//    restarted; a QEMU found by its command line replaces a stale pid);
//  - a VM that should run and does not is restarted, with backoff, and
//    marked `crashed` after repeated failures (`ls` shows it; `start` retries);
//  - a VM that should be stopped is stopped;
//  - a row left `creating` by an exed that died mid-`new` is undone, so an
//    interrupted `new` leaves nothing;
//  - QEMU processes of VMs the database does not know are reported, once
//    each (by id and pid), and left running;
//  - an account's cgroup and its limits (the kernel's, so a reboot loses
//    them) are put back before any VM of it starts: for every account with
//    VMs at the first pass, and for a VM's account before each restart.
// VMs an operation holds (VmLocks) are skipped, and one that an operation
// let go of during the pass is read again first. Thread-safe: RunOnce may run
// on the background thread or a caller's.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <thread>

#include "db/accounts.h"
#include "db/pool.h"
#include "db/vms.h"
#include "vmm/busy.h"
#include "vmm/host.h"

namespace vmm {

struct ReconcileReport {
  int attached = 0;
  int restarted = 0;
  int failed = 0;
  int stopped = 0;
  int undone = 0;
  int strays = 0;
  int deferred = 0;  // restarts left to a later pass (Pass::kNoRestarts)
};

class Reconciler {
 public:
  static constexpr int kMaxRestarts = 3;

  // kNoRestarts: everything but restarting VMs that are down, which takes a
  // boot each (seconds to minutes for many VMs). For the pass at exed's
  // start, before it serves anyone: after a host reboot every VM is down,
  // and the background thread's first pass, right after, restarts them.
  enum class Pass { kFull, kNoRestarts };

  Reconciler(db::Pool& pool, Host& host, VmLocks& locks, std::chrono::seconds period);
  ~Reconciler();
  ReconcileReport RunOnce(Pass pass = Pass::kFull);
  void Start();  // background thread: RunOnce every period, the first at once
  void Stop();

 private:
  void Reconcile(const db::Vm& vm, const std::map<int64_t, int>& found,
                 const std::map<std::string, db::Budget>& budgets, Pass pass, ReconcileReport* report);
  // The VM's row and QEMU as they are now (the caller holds its mark);
  // nullopt if the row is gone.
  std::optional<std::pair<db::Vm, std::map<int64_t, int>>> ReadAgain(int64_t id);
  // SetAccountLimits with the account's budget from the database.
  control::Status EnsureAccount(const std::string& account, const std::map<std::string, db::Budget>& budgets);

  db::Pool& pool_;
  Host& host_;
  VmLocks& locks_;
  const std::chrono::seconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                                                  // GUARDED_BY(mu_)
  std::map<int64_t, std::chrono::steady_clock::time_point> not_before_;  // GUARDED_BY(mu_): restart backoff
  std::set<std::pair<int64_t, int>> strays_reported_;                   // GUARDED_BY(mu_): (VM id, pid)
  bool accounts_ensured_ = false;                                       // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace vmm
