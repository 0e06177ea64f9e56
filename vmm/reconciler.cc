#include "vmm/reconciler.h"

#include "vmm/vm_def.h"

#include <set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace vmm {

using Clock = std::chrono::steady_clock;

Reconciler::Reconciler(db::Pool& pool, Host& host, VmLocks& locks, std::chrono::seconds period)
    : pool_(pool), host_(host), locks_(locks), period_(period) {}

Reconciler::~Reconciler() { Stop(); }

void Reconciler::Start() {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      RunOnce();
      lock.lock();
      cv_.wait_for(lock, period_, [&] { return stop_; });
    }
  });
}

void Reconciler::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ReconcileReport Reconciler::RunOnce() {
  ReconcileReport report;
  std::vector<db::Vm> vms;
  try {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    vms = db::AllVms(tx);
    tx.commit();
  } catch (const std::exception& e) {
    spdlog::warn("event=reconcile-skipped error=\"{}\"", e.what());
    return report;
  }
  std::map<int64_t, int> found;
  for (auto [id, pid] : host_.RunningVmProcesses()) found[id] = pid;
  std::set<int64_t> known;
  for (const auto& vm : vms) {
    known.insert(vm.id);
    auto guard = locks_.TryLock(vm.id);
    if (!guard) continue;  // a command is working on it
    try {
      Reconcile(vm, found, &report);
    } catch (const std::exception& e) {
      spdlog::error("event=reconcile-failed vm={} error=\"{}\"", vm.name, e.what());
    }
  }
  for (auto [id, pid] : found) {
    if (!known.count(id)) {
      ++report.strays;
      spdlog::warn("event=stray-qemu vm_id={} pid={} (no such VM in the database; left running)", id, pid);
    }
  }
  return report;
}

void Reconciler::Reconcile(const db::Vm& vm, const std::map<int64_t, int>& found, ReconcileReport* report) {
  VmDef def = FromRow(vm);
  auto it = found.find(vm.id);
  int pid = it != found.end() ? it->second : 0;
  bool running = pid && host_.IsRunning(def, pid);
  auto save = [&](const std::string& status, int new_pid, int restarts) {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::SetVmRuntime(tx, vm.id, status, new_pid);
    db::SetVmRestarts(tx, vm.id, restarts);
    tx.commit();
  };
  if (vm.status == "creating") {
    // Nobody holds it, so the `new` that made it died with its exed.
    auto s = host_.Destroy(def);
    if (!s) {
      spdlog::error("event=undo-interrupted-new vm={} error=\"{}\"", vm.name, s.error().message);
      return;
    }
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::DeleteVm(tx, vm.id);
    tx.commit();
    ++report->undone;
    spdlog::warn("event=undo-interrupted-new vm={}", vm.name);
    return;
  }
  if (vm.desired == "stopped") {
    if (running) {
      (void)host_.Stop(def);
      ++report->stopped;
    }
    if (vm.status != "stopped") save("stopped", 0, 0);
    return;
  }
  if (running) {
    if (vm.status != "running" || vm.pid != pid) {
      save("running", pid, 0);
      spdlog::info("event=vm-reattached vm={} pid={}", vm.name, pid);
    }
    ++report->attached;
    return;
  }
  if (vm.status == "crashed") return;  // given up on; `start` tries again
  {
    std::lock_guard lock(mu_);
    auto nb = not_before_.find(vm.id);
    if (nb != not_before_.end() && Clock::now() < nb->second) return;
  }
  spdlog::warn("event=vm-down vm={} pid={} restarts={}", vm.name, vm.pid, vm.restarts);
  (void)host_.Stop(def);  // whatever is left of it (passt, a hung QEMU) goes first
  auto started = host_.Start(def, {}, true);
  if (started) {
    save("running", started->pid, 0);
    ++report->restarted;
    spdlog::info("event=vm-restarted vm={} pid={}", vm.name, started->pid);
    return;
  }
  int restarts = vm.restarts + 1;
  ++report->failed;
  spdlog::error("event=vm-restart-failed vm={} attempt={} error=\"{}\"", vm.name, restarts, started.error().message);
  save(restarts >= kMaxRestarts ? "crashed" : "stopped", 0, restarts);
  std::lock_guard lock(mu_);
  not_before_[vm.id] = Clock::now() + std::chrono::seconds(5 << std::min(restarts, 6));
}

}  // namespace vmm
