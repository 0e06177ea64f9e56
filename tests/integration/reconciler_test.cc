// vmm::Reconciler against a real PostgreSQL and a fake host (a map of
// running VMs): what it does to rows and QEMU processes, above all when a
// command finishes on a VM between the reconciler's snapshot and its mark.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "db/accounts.h"
#include "db/vms.h"
#include "tests/integration/fixture.h"
#include "vmm/reconciler.h"

namespace {

class FakeHost : public vmm::Host {
 public:
  std::map<int64_t, int> running;  // VM id -> pid
  std::vector<std::string> calls;  // "start NAME", "stop NAME"
  // Runs once, right after the next RunningVmProcesses has made its list
  // (or before, if meanwhile_first): what a command does while the
  // reconciler is between its snapshot and its mark.
  std::function<void()> meanwhile;
  bool meanwhile_first = false;

  std::vector<vmm::Image> Images() override { return {}; }
  control::Result<vmm::Image> FindImage(const std::string&) override { return control::NotFoundError("none"); }
  std::string accel_name() const override { return "fake"; }
  std::string gateway_key_path() const override { return ""; }
  control::Status SetAccountLimits(const std::string&, int64_t, int64_t, int64_t) override { return control::Ok{}; }
  control::Result<vmm::Started> Create(const vmm::VmDef& vm, const vmm::Progress& p, bool w) override {
    return Start(vm, p, w);
  }
  control::Result<vmm::Started> Start(const vmm::VmDef& vm, const vmm::Progress&, bool) override {
    calls.push_back("start " + vm.name);
    running[vm.id] = next_pid_++;
    return vmm::Started{running[vm.id], ""};
  }
  control::Result<vmm::Started> WaitReady(const vmm::VmDef&, int pid, std::chrono::seconds) override {
    return vmm::Started{pid, ""};
  }
  control::Status Stop(const vmm::VmDef& vm) override {
    calls.push_back("stop " + vm.name);
    running.erase(vm.id);
    return control::Ok{};
  }
  control::Status Destroy(const vmm::VmDef& vm) override { return Stop(vm); }
  control::Status CloneDisk(const vmm::VmDef&, const vmm::VmDef&) override { return control::Ok{}; }
  control::Status GrowDisk(const vmm::VmDef&, int64_t) override { return control::Ok{}; }
  bool IsRunning(const vmm::VmDef& vm, int pid) override {
    auto it = running.find(vm.id);
    return pid && it != running.end() && it->second == pid;
  }
  control::Result<vmm::VmStats> Stat(const vmm::VmDef&, int) override { return vmm::VmStats{}; }
  std::string ConsoleTail(const vmm::VmDef&, size_t) override { return ""; }
  std::vector<std::pair<int64_t, int>> RunningVmProcesses() override {
    if (meanwhile_first) RunMeanwhile();
    std::vector<std::pair<int64_t, int>> out(running.begin(), running.end());
    RunMeanwhile();
    return out;
  }

 private:
  void RunMeanwhile() {
    if (!meanwhile) return;
    auto f = std::move(meanwhile);
    meanwhile = nullptr;
    f();
  }
  int next_pid_ = 1000;
};

class ReconcilerTest : public itest::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    auto conn = pool_->Acquire();
    pqxx::work tx(*conn);
    int64_t owner = db::CreateAccount(tx, "owner", {2, 2048, 20, 4});
    db::Vm v;
    v.account_id = owner;
    v.name = "box";
    v.image = "tiny";
    v.cpus = 1;
    v.memory_mib = 512;
    v.disk_gib = 1;
    id_ = db::InsertVm(tx, v);
    tx.commit();
    reconciler_ = std::make_unique<vmm::Reconciler>(*pool_, host_, locks_, std::chrono::seconds(60));
  }

  // The row as a finished command leaves it.
  void Record(const std::string& desired, const std::string& status, int pid, int restarts = 0) {
    auto conn = pool_->Acquire();
    pqxx::work tx(*conn);
    db::SetVmDesired(tx, id_, desired);
    db::SetVmRuntime(tx, id_, status, pid);
    db::SetVmRestarts(tx, id_, restarts);
    tx.commit();
  }
  db::Vm Row() {
    auto conn = pool_->Acquire();
    pqxx::work tx(*conn);
    auto vm = db::FindVmById(tx, id_);
    tx.commit();
    return vm.value();
  }
  // A command on the VM from start to end, under its mark, as control/ does.
  template <typename F>
  void Command(F&& f) {
    auto mark = locks_.TryLock(id_);
    ASSERT_TRUE(mark);
    f();
  }

  int64_t id_ = 0;
  FakeHost host_;
  vmm::VmLocks locks_;
  std::unique_ptr<vmm::Reconciler> reconciler_;  // RunOnce only; no thread
};

TEST_F(ReconcilerTest, RestartsAVmThatShouldRunAndDoesNot) {
  Record("running", "running", 4242);  // its QEMU died
  auto report = reconciler_->RunOnce();
  EXPECT_EQ(report.restarted, 1);
  EXPECT_EQ(host_.calls, (std::vector<std::string>{"stop box", "start box"}));
  EXPECT_EQ(Row().status, "running");
  EXPECT_EQ(Row().pid, host_.running.at(id_));
}

TEST_F(ReconcilerTest, ReattachesARunningQemuWithoutRestartingIt) {
  host_.running[id_] = 777;
  Record("running", "stopped", 0);
  auto report = reconciler_->RunOnce();
  EXPECT_EQ(report.attached, 1);
  EXPECT_TRUE(host_.calls.empty());
  EXPECT_EQ(Row().status, "running");
  EXPECT_EQ(Row().pid, 777);
}

TEST_F(ReconcilerTest, SkipsAVmACommandHolds) {
  Record("running", "stopped", 0, 1);
  auto mark = locks_.TryLock(id_);
  auto report = reconciler_->RunOnce();
  EXPECT_EQ(report.restarted, 0);
  EXPECT_TRUE(host_.calls.empty());
}

// The race CI once lost: the reconciler read the row (stopped after a failed
// restart) and the processes (none); `start` then booted it and let go; the
// reconciler, acting on its snapshot, stopped the fresh VM and booted it again.
TEST_F(ReconcilerTest, LeavesAloneAVmThatAStartBootedAfterItsSnapshot) {
  Record("running", "stopped", 0, 1);
  host_.meanwhile = [&] {
    Command([&] {
      auto started = host_.Start({.id = id_, .name = "box"}, {}, true);
      Record("running", "running", started->pid);
    });
  };
  auto report = reconciler_->RunOnce();
  int pid_after_start = host_.running.at(id_);
  EXPECT_EQ(report.restarted, 0);
  EXPECT_EQ(report.attached, 1);
  EXPECT_EQ(host_.calls, (std::vector<std::string>{"start box"})) << "the user's start only";
  EXPECT_EQ(Row().status, "running");
  EXPECT_EQ(Row().pid, pid_after_start);
}

// The same, seen later: the rows were read before the start recorded
// anything (a failed `start` before it had left desired=stopped), the
// processes after its QEMU was up. Acting on that snapshot stops the VM.
TEST_F(ReconcilerTest, LeavesRunningAVmStartedBetweenItsRowsAndItsProcesses) {
  Record("stopped", "stopped", 0);
  host_.meanwhile_first = true;
  host_.meanwhile = [&] {
    Command([&] {
      auto started = host_.Start({.id = id_, .name = "box"}, {}, true);
      Record("running", "running", started->pid);
    });
  };
  auto report = reconciler_->RunOnce();
  EXPECT_EQ(report.stopped, 0);
  EXPECT_EQ(report.attached, 1);
  EXPECT_EQ(host_.calls, (std::vector<std::string>{"start box"})) << "the user's start only";
  EXPECT_EQ(Row().status, "running");
  EXPECT_EQ(Row().pid, host_.running.at(id_));
}

TEST_F(ReconcilerTest, LeavesStoppedAVmThatAStopStoppedAfterItsSnapshot) {
  host_.running[id_] = 777;
  Record("running", "running", 777);
  host_.meanwhile = [&] {
    Command([&] {
      (void)host_.Stop({.id = id_, .name = "box"});
      Record("stopped", "stopped", 0);
    });
  };
  auto report = reconciler_->RunOnce();
  EXPECT_EQ(report.restarted, 0);
  EXPECT_EQ(host_.calls, (std::vector<std::string>{"stop box"})) << "the user's stop only";
  EXPECT_EQ(host_.running.count(id_), 0u);
  EXPECT_EQ(Row().status, "stopped");
}

TEST_F(ReconcilerTest, ForgetsAVmRemovedAfterItsSnapshot) {
  host_.running[id_] = 777;
  Record("running", "running", 777);
  host_.meanwhile = [&] {
    Command([&] {
      (void)host_.Destroy({.id = id_, .name = "box"});
      auto conn = pool_->Acquire();
      pqxx::work tx(*conn);
      db::DeleteVm(tx, id_);
      tx.commit();
    });
  };
  auto report = reconciler_->RunOnce();
  EXPECT_EQ(report.restarted, 0);
  EXPECT_EQ(host_.calls, (std::vector<std::string>{"stop box"})) << "the user's rm only";
  EXPECT_TRUE(host_.running.empty());
}

}  // namespace
