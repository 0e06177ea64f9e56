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

ReconcileReport Reconciler::RunOnce(Pass pass) {
  ReconcileReport report;
  std::vector<db::Vm> vms;
  std::map<std::string, db::Budget> budgets;
  // Before the snapshot: a VM whose mark is given back after this point may
  // have changed after the snapshot was taken (see below).
  const std::map<int64_t, uint64_t> released = locks_.AllReleases();
  try {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    vms = db::AllVms(tx);
    for (const auto& a : db::ListAccounts(tx)) budgets[a.name] = a.budget;
    tx.commit();
  } catch (const std::exception& e) {
    spdlog::warn("event=reconcile-skipped error=\"{}\"", e.what());
    return report;
  }
  bool first = false;
  {
    std::lock_guard lock(mu_);
    first = !accounts_ensured_;
    accounts_ensured_ = true;
  }
  if (first) {
    // After a reboot no account group exists: put them all back before any
    // VM starts (here or by a user's `start`).
    std::set<std::string> accounts;
    for (const auto& vm : vms) accounts.insert(vm.account);
    for (const auto& a : accounts) {
      if (auto s = EnsureAccount(a, budgets); !s) {
        spdlog::error("event=account-cgroup-failed account={} error=\"{}\"", a, s.error().message);
      }
    }
  }
  std::map<int64_t, int> found;
  for (auto [id, pid] : host_.RunningVmProcesses()) found[id] = pid;
  std::set<int64_t> known;
  for (const auto& vm : vms) {
    known.insert(vm.id);
    auto guard = locks_.TryLock(vm.id);
    if (!guard) continue;  // a command is working on it
    try {
      auto was = released.find(vm.id);
      if (locks_.Releases(vm.id) == (was == released.end() ? 0 : was->second)) {
        Reconcile(vm, found, budgets, pass, &report);
      } else if (auto now = ReadAgain(vm.id)) {
        // A command (`start`, `stop`, `rm`, the gateway's start) finished on
        // it between the snapshot and the mark: acting on what the snapshot
        // says would stop or restart the VM it just started, or start the one
        // it just stopped.
        Reconcile(now->first, now->second, budgets, pass, &report);
      }
    } catch (const std::exception& e) {
      spdlog::error("event=reconcile-failed vm={} error=\"{}\"", vm.name, e.what());
    }
  }
  std::set<std::pair<int64_t, int>> strays;
  for (auto [id, pid] : found) {
    if (!known.count(id)) {
      ++report.strays;
      strays.emplace(id, pid);
    }
  }
  {
    std::lock_guard lock(mu_);
    for (auto [id, pid] : strays) {
      if (!strays_reported_.count({id, pid})) {
        spdlog::warn("event=stray-qemu vm_id={} pid={} (no such VM in the database; left running)", id, pid);
      }
    }
    strays_reported_ = std::move(strays);  // one that goes and comes back is reported again
  }
  spdlog::debug("event=reconcile-pass vms={} attached={} restarted={} failed={} strays={}", vms.size(),
                report.attached, report.restarted, report.failed, report.strays);
  return report;
}

std::optional<std::pair<db::Vm, std::map<int64_t, int>>> Reconciler::ReadAgain(int64_t id) {
  std::optional<db::Vm> row;
  {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    row = db::FindVmById(tx, id);
    tx.commit();
  }
  if (!row) return std::nullopt;  // removed
  std::map<int64_t, int> found;
  for (auto [vm_id, pid] : host_.RunningVmProcesses()) {
    if (vm_id == id) found[vm_id] = pid;
  }
  return std::make_pair(std::move(*row), std::move(found));
}

control::Status Reconciler::EnsureAccount(const std::string& account,
                                          const std::map<std::string, db::Budget>& budgets) {
  auto b = budgets.find(account);
  if (b == budgets.end()) return control::NotFoundError("no account " + account + " in the database");
  return host_.SetAccountLimits(account, b->second.cpus, b->second.memory_mib, b->second.max_vms);
}

void Reconciler::Reconcile(const db::Vm& vm, const std::map<int64_t, int>& found,
                           const std::map<std::string, db::Budget>& budgets, Pass pass, ReconcileReport* report) {
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
  if (pass == Pass::kNoRestarts) {
    ++report->deferred;
    return;
  }
  {
    std::lock_guard lock(mu_);
    auto nb = not_before_.find(vm.id);
    if (nb != not_before_.end() && Clock::now() < nb->second) return;
  }
  spdlog::warn("event=vm-down vm={} pid={} restarts={}", vm.name, vm.pid, vm.restarts);
  (void)host_.Stop(def);  // whatever is left of it (passt, a hung QEMU) goes first
  control::Result<Started> started = control::InternalError("");
  if (auto s = EnsureAccount(vm.account, budgets); !s) {
    started = s.error();
  } else {
    started = host_.Start(def, {}, true);
  }
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
