// Reconciler: makes the VMs on this machine match the database, at start and
// then every few seconds, so exed can die and come back at any moment:
//  - a VM that should run and whose QEMU runs is re-attached (nothing is
//    restarted; a QEMU found by its command line replaces a stale pid);
//  - a VM that should run and does not is restarted, with backoff, and
//    marked `crashed` after repeated failures (`ls` shows it; `start` retries);
//  - a VM that should be stopped is stopped;
//  - a row left `creating` by an exed that died mid-`new` is undone, so an
//    interrupted `new` leaves nothing;
//  - QEMU processes of VMs the database does not know are reported.
// VMs an operation holds (VmLocks) are skipped. Thread-safe: RunOnce may run
// on the background thread or a caller's.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

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
};

class Reconciler {
 public:
  static constexpr int kMaxRestarts = 3;

  Reconciler(db::Pool& pool, Host& host, VmLocks& locks, std::chrono::seconds period);
  ~Reconciler();
  ReconcileReport RunOnce();
  void Start();  // background thread: RunOnce every period
  void Stop();

 private:
  void Reconcile(const db::Vm& vm, const std::map<int64_t, int>& found, ReconcileReport* report);

  db::Pool& pool_;
  Host& host_;
  VmLocks& locks_;
  const std::chrono::seconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                                                  // GUARDED_BY(mu_)
  std::map<int64_t, std::chrono::steady_clock::time_point> not_before_;  // GUARDED_BY(mu_): restart backoff
  std::thread thread_;
};

}  // namespace vmm
