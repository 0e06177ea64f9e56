#include "vmm/cgroup.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace vmm {
namespace {

namespace fs = std::filesystem;

// This host's own /proc/mounts: hybrid, cgroup2 at unified, controllers on v1.
constexpr char kV1Mounts[] =
    "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
    "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n"
    "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
    "cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\n"
    "cgroup /sys/fs/cgroup/cpuset cgroup rw,relatime,cpuset 0 0\n"
    "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n"
    "cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n"
    "cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0\n"
    "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";

// Debian 10 style: cpu and cpuacct co-mounted.
constexpr char kV1CoMounts[] =
    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
    "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0\n"
    "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0\n"
    "cgroup /sys/fs/cgroup/pids cgroup rw,nosuid,nodev,noexec,relatime,pids 0 0\n";

constexpr char kV2Mounts[] =
    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
    "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n"
    "/dev/vda1 / ext4 rw,relatime 0 0\n";

// A temp dir standing in for "/", removed at the end of the test.
class FakeRoot {
 public:
  FakeRoot() {
    std::string tmpl = (fs::temp_directory_path() / "exed-cgroup-test-XXXXXX").string();
    root_ = mkdtemp(tmpl.data());
  }
  ~FakeRoot() { fs::remove_all(root_); }

  const std::string& path() const { return root_; }
  std::string operator/(const std::string& rel) const { return root_ + "/" + rel; }

  void Dir(const std::string& rel) const { fs::create_directories(*this / rel); }
  void Write(const std::string& rel, const std::string& text) const {
    fs::create_directories(fs::path(*this / rel).parent_path());
    std::ofstream(*this / rel) << text;
  }
  // The file's text, or "<absent>".
  std::string Read(const std::string& rel) const {
    std::ifstream in(*this / rel);
    if (!in) return "<absent>";
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  bool Exists(const std::string& rel) const { return fs::exists(*this / rel); }

 private:
  std::string root_;
};

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// --- Detection -------------------------------------------------------------

TEST(DetectCgroups, HybridHostWithControllersOnV1IsV1) {
  FakeRoot root;
  for (const char* c : {"cpu", "cpuacct", "memory", "pids", "unified"}) {
    root.Dir(std::string("sys/fs/cgroup/") + c);
  }
  auto host = DetectCgroups(kV1Mounts, root.path());
  ASSERT_TRUE(host.ok()) << host.error().message;
  EXPECT_EQ((*host)->version(), "v1");
}

TEST(DetectCgroups, UnifiedHierarchyIsV2) {
  FakeRoot root;
  root.Write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
  auto host = DetectCgroups(kV2Mounts, root.path());
  ASSERT_TRUE(host.ok()) << host.error().message;
  EXPECT_EQ((*host)->version(), "v2");
}

TEST(DetectCgroups, Cgroup2ElsewhereWithoutV1ControllersIsV2) {
  FakeRoot root;
  root.Write("mnt/my cgroup/cgroup.controllers", "cpu memory pids\n");
  auto host = DetectCgroups(
      "cgroup /sys/fs/cgroup/systemd cgroup rw,name=systemd 0 0\n"
      "none /mnt/my\\040cgroup cgroup2 rw 0 0\n",
      root.path());
  ASSERT_TRUE(host.ok()) << host.error().message;
  EXPECT_EQ((*host)->version(), "v2");
  ASSERT_TRUE((*host)->EnsureAccount("alice", {}).ok());
  EXPECT_TRUE(root.Exists("mnt/my cgroup/exed/alice"));
}

TEST(DetectCgroups, MissingV1ControllerSaysWhatIsMissing) {
  FakeRoot root;
  auto host = DetectCgroups(
      "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n"
      "cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n"
      "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n",
      root.path());
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.error().message,
            "cgroup v1 memory controller not mounted; exed needs cpu, cpuacct, memory and pids");
}

TEST(DetectCgroups, MissingV2ControllerSaysWhatIsMissing) {
  FakeRoot root;
  root.Write("sys/fs/cgroup/cgroup.controllers", "cpu io memory\n");
  auto host = DetectCgroups(kV2Mounts, root.path());
  ASSERT_FALSE(host.ok());
  EXPECT_TRUE(Contains(host.error().message, "cgroup v2 pids controller not available"))
      << host.error().message;
}

TEST(DetectCgroups, NoCgroupsAtAll) {
  auto host = DetectCgroups("proc /proc proc rw 0 0\n", "/nonexistent");
  ASSERT_FALSE(host.ok());
  EXPECT_TRUE(Contains(host.error().message, "no cgroup filesystem")) << host.error().message;
}

TEST(DetectCgroups, MountPointMissingFromTheTreeIsAnError) {
  FakeRoot root;  // no directories at all
  auto host = DetectCgroups(kV1Mounts, root.path());
  ASSERT_FALSE(host.ok());
  EXPECT_TRUE(Contains(host.error().message, root.path() + "/sys/fs/cgroup/cpu"))
      << host.error().message;
}

TEST(DetectCgroups, RefusesParentsThatEscape) {
  FakeRoot root;
  root.Write("sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n");
  for (const char* parent : {"", "../etc", "exed/..", "/exed", "a//b", "exed/"}) {
    auto host = DetectCgroups(kV2Mounts, root.path(), parent);
    ASSERT_FALSE(host.ok()) << parent;
    EXPECT_EQ(host.error().kind, control::ErrorKind::kInvalid) << parent;
  }
  EXPECT_TRUE(DetectCgroups(kV2Mounts, root.path(), "exed.slice/exed_1").ok());
}

// --- v1 ----------------------------------------------------------------------

class CgroupV1Test : public ::testing::Test {
 protected:
  void Detect(const char* mounts, std::vector<std::string> dirs) {
    for (const auto& d : dirs) root_.Dir("sys/fs/cgroup/" + d);
    auto host = DetectCgroups(mounts, root_.path());
    ASSERT_TRUE(host.ok()) << host.error().message;
    ASSERT_EQ((*host)->version(), "v1");
    host_ = std::move(host.value());
  }
  void SetUp() override { Detect(kV1Mounts, {"cpu", "cpuacct", "memory", "pids", "unified"}); }
  std::string Read(const std::string& rel) const { return root_.Read("sys/fs/cgroup/" + rel); }
  void Write(const std::string& rel, const std::string& text) const {
    root_.Write("sys/fs/cgroup/" + rel, text);
  }

  FakeRoot root_;
  std::unique_ptr<CgroupHost> host_;
};

TEST_F(CgroupV1Test, LimitsLandInTheirControllers) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {.cpus = 2, .memory_mib = 512, .pids = 100}).ok());
  EXPECT_EQ(Read("cpu/exed/alice/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(Read("cpu/exed/alice/cpu.cfs_quota_us"), "200000");
  EXPECT_EQ(Read("memory/exed/alice/memory.limit_in_bytes"), "536870912");
  EXPECT_EQ(Read("pids/exed/alice/pids.max"), "100");
  EXPECT_TRUE(root_.Exists("sys/fs/cgroup/cpuacct/exed/alice"));
}

TEST_F(CgroupV1Test, ZeroMeansUnlimited) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {}).ok());
  EXPECT_EQ(Read("cpu/exed/alice/cpu.cfs_quota_us"), "-1");
  EXPECT_EQ(Read("memory/exed/alice/memory.limit_in_bytes"), "-1");
  EXPECT_EQ(Read("pids/exed/alice/pids.max"), "max");
}

TEST_F(CgroupV1Test, EnsureAccountIsIdempotentAndUpdatesLimits) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {.cpus = 1}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  ASSERT_TRUE(host_->EnsureAccount("alice", {.cpus = 4}).ok());
  EXPECT_EQ(Read("cpu/exed/alice/cpu.cfs_quota_us"), "400000");
  EXPECT_TRUE(root_.Exists("sys/fs/cgroup/memory/exed/alice/web"));
}

TEST_F(CgroupV1Test, SetsUseHierarchyOnTheParentWhereTheFileSaysZero) {
  Write("memory/exed/memory.use_hierarchy", "0\n");
  ASSERT_TRUE(host_->EnsureAccount("alice", {}).ok());
  EXPECT_EQ(Read("memory/exed/memory.use_hierarchy"), "1");
}

TEST_F(CgroupV1Test, RefusesNegativeLimits) {
  auto s = host_->EnsureAccount("alice", {.cpus = -1});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind, control::ErrorKind::kInvalid);
  EXPECT_FALSE(root_.Exists("sys/fs/cgroup/cpu/exed/alice"));
}

TEST_F(CgroupV1Test, VmGroupsExistInEveryHierarchyWithoutLimits) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {.cpus = 1}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  for (const char* c : {"cpu", "cpuacct", "memory", "pids"}) {
    EXPECT_TRUE(root_.Exists(std::string("sys/fs/cgroup/") + c + "/exed/alice/web")) << c;
  }
  EXPECT_FALSE(root_.Exists("sys/fs/cgroup/cpu/exed/alice/web/cpu.cfs_quota_us"));
}

TEST_F(CgroupV1Test, EnsureVmNeedsTheAccount) {
  auto s = host_->EnsureVm("bob", "web");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().kind, control::ErrorKind::kNotFound);
  EXPECT_TRUE(Contains(s.error().message, "exed/bob")) << s.error().message;
}

TEST_F(CgroupV1Test, ProcsFilesAndAddProcessCoverEveryHierarchy) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  auto files = host_->ProcsFiles("alice", "web");
  ASSERT_TRUE(files.ok());
  const std::string base = root_.path() + "/sys/fs/cgroup/";
  EXPECT_EQ(*files, (std::vector<std::string>{base + "cpu/exed/alice/web/cgroup.procs",
                                              base + "cpuacct/exed/alice/web/cgroup.procs",
                                              base + "memory/exed/alice/web/cgroup.procs",
                                              base + "pids/exed/alice/web/cgroup.procs"}));
  ASSERT_TRUE(host_->AddProcess("alice", "web", 4242).ok());
  for (const auto& f : *files) EXPECT_EQ(root_.Read(f.substr(root_.path().size() + 1)), "4242");
}

TEST_F(CgroupV1Test, UsageFromCannedFiles) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  Write("cpuacct/exed/alice/web/cpuacct.usage", "1500000999\n");
  Write("memory/exed/alice/web/memory.usage_in_bytes", "1048576\n");
  Write("memory/exed/alice/web/memory.max_usage_in_bytes", "2097152\n");
  Write("pids/exed/alice/web/pids.current", "3\n");
  auto u = host_->VmUsage("alice", "web");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->cpu_usec, 1500000u);
  EXPECT_EQ(u->memory_bytes, 1048576u);
  EXPECT_EQ(u->memory_peak_bytes, 2097152u);
  EXPECT_EQ(u->pids, 3u);

  Write("cpuacct/exed/alice/cpuacct.usage", "7000\n");
  Write("memory/exed/alice/memory.usage_in_bytes", "9\n");
  Write("pids/exed/alice/pids.current", "junk\n");
  auto a = host_->AccountUsage("alice");
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(Contains(a.error().message, "'junk'")) << a.error().message;
  EXPECT_TRUE(Contains(a.error().message, "pids/exed/alice/pids.current")) << a.error().message;
}

TEST_F(CgroupV1Test, UsageOfAMissingGroupNamesTheFile) {
  auto u = host_->VmUsage("alice", "web");
  ASSERT_FALSE(u.ok());
  EXPECT_TRUE(Contains(u.error().message, "cpuacct/exed/alice/web/cpuacct.usage: No such file"))
      << u.error().message;
}

TEST_F(CgroupV1Test, VmPidsIsTheUnionOverHierarchies) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  Write("cpu/exed/alice/web/cgroup.procs", "30\n10\n");
  Write("memory/exed/alice/web/cgroup.procs", "10\n20\n");
  auto pids = host_->VmPids("alice", "web");
  ASSERT_TRUE(pids.ok()) << pids.error().message;
  EXPECT_EQ(*pids, (std::vector<pid_t>{10, 20, 30}));

  Write("pids/exed/alice/web/cgroup.procs", "10\nx1\n");
  pids = host_->VmPids("alice", "web");
  ASSERT_FALSE(pids.ok());
  EXPECT_TRUE(Contains(pids.error().message, "unexpected pid 'x1'")) << pids.error().message;

  auto none = host_->VmPids("alice", "gone");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(CgroupV1Test, RemoveVmRefusesWhileProcessesRemainThenIsIdempotent) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {.memory_mib = 64}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  Write("memory/exed/alice/web/cgroup.procs", "77\n78\n");
  auto s = host_->RemoveVm("alice", "web");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message,
            "cgroup: VM group exed/alice/web still has processes 77, 78; kill them first");

  Write("memory/exed/alice/web/cgroup.procs", "");
  auto accounts_removal = host_->RemoveAccount("alice");
  ASSERT_FALSE(accounts_removal.ok());
  EXPECT_TRUE(Contains(accounts_removal.error().message, "still has VM groups web"));

  ASSERT_TRUE(host_->RemoveVm("alice", "web").ok());
  for (const char* c : {"cpu", "cpuacct", "memory", "pids"}) {
    EXPECT_FALSE(root_.Exists(std::string("sys/fs/cgroup/") + c + "/exed/alice/web")) << c;
  }
  EXPECT_TRUE(host_->RemoveVm("alice", "web").ok());
  ASSERT_TRUE(host_->RemoveAccount("alice").ok());
  EXPECT_FALSE(root_.Exists("sys/fs/cgroup/memory/exed/alice"));
  EXPECT_TRUE(root_.Exists("sys/fs/cgroup/memory/exed"));
  EXPECT_TRUE(host_->RemoveAccount("alice").ok());
}

TEST_F(CgroupV1Test, ListsGroupsFromAnyHierarchySkippingForeignNames) {
  auto empty = host_->Accounts();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  ASSERT_TRUE(host_->EnsureAccount("bob", {}).ok());
  ASSERT_TRUE(host_->EnsureAccount("alice", {}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  root_.Dir("sys/fs/cgroup/pids/exed/stray");     // in one hierarchy only
  root_.Dir("sys/fs/cgroup/pids/exed/Not_Ours");  // not a name we make
  root_.Dir("sys/fs/cgroup/cpu/exed/alice/db");
  auto accounts = host_->Accounts();
  ASSERT_TRUE(accounts.ok());
  EXPECT_EQ(*accounts, (std::vector<std::string>{"alice", "bob", "stray"}));
  auto vms = host_->Vms("alice");
  ASSERT_TRUE(vms.ok());
  EXPECT_EQ(*vms, (std::vector<std::string>{"db", "web"}));
}

TEST_F(CgroupV1Test, RefusesNamesThatEscape) {
  const std::string outside = root_.path() + "/sys/fs/cgroup/memory/x";
  for (const char* bad : {"../x", "..", "a/b", "", "Foo", "-a", "a b", "a\x1b[2J"}) {
    std::vector<control::Error> errors;
    if (auto s = host_->EnsureAccount(bad, {}); !s) errors.push_back(s.error());
    if (auto s = host_->EnsureVm("alice", bad); !s) errors.push_back(s.error());
    if (auto s = host_->AddProcess(bad, "web", 1); !s) errors.push_back(s.error());
    if (auto r = host_->ProcsFiles("alice", bad); !r) errors.push_back(r.error());
    if (auto r = host_->VmUsage(bad, "web"); !r) errors.push_back(r.error());
    if (auto r = host_->AccountUsage(bad); !r) errors.push_back(r.error());
    if (auto r = host_->VmPids("alice", bad); !r) errors.push_back(r.error());
    if (auto s = host_->RemoveVm(bad, "web"); !s) errors.push_back(s.error());
    if (auto s = host_->RemoveAccount(bad); !s) errors.push_back(s.error());
    if (auto r = host_->Vms(bad); !r) errors.push_back(r.error());
    ASSERT_EQ(errors.size(), 10u) << bad;
    for (const auto& e : errors) {
      EXPECT_EQ(e.kind, control::ErrorKind::kInvalid) << e.message;
      EXPECT_TRUE(Contains(e.message, "must be 1 to 64 lowercase letters")) << e.message;
      EXPECT_EQ(e.message.find('\x1b'), std::string::npos);
    }
  }
  EXPECT_FALSE(fs::exists(outside));
  EXPECT_FALSE(fs::exists(root_.path() + "/sys/fs/cgroup/memory/exed"));
}

class CgroupV1CoMountTest : public CgroupV1Test {
 protected:
  void SetUp() override { Detect(kV1CoMounts, {"cpu,cpuacct", "memory", "pids"}); }
};

TEST_F(CgroupV1CoMountTest, CpuAndCpuacctShareOneHierarchy) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {.cpus = 3}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  EXPECT_EQ(Read("cpu,cpuacct/exed/alice/cpu.cfs_quota_us"), "300000");
  auto files = host_->ProcsFiles("alice", "web");
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(files->size(), 3u);
  EXPECT_EQ(files->front(),
            root_.path() + "/sys/fs/cgroup/cpu,cpuacct/exed/alice/web/cgroup.procs");

  Write("cpu,cpuacct/exed/alice/web/cpuacct.usage", "2000\n");
  Write("memory/exed/alice/web/memory.usage_in_bytes", "4096\n");
  Write("pids/exed/alice/web/pids.current", "1\n");
  auto u = host_->VmUsage("alice", "web");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->cpu_usec, 2u);
  EXPECT_EQ(u->memory_peak_bytes, 0u);  // max_usage_in_bytes absent

  ASSERT_TRUE(host_->RemoveVm("alice", "web").ok());
  ASSERT_TRUE(host_->RemoveAccount("alice").ok());
  EXPECT_FALSE(root_.Exists("sys/fs/cgroup/cpu,cpuacct/exed/alice"));
}

// --- v2 ----------------------------------------------------------------------

class CgroupV2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    Write("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    Write("cgroup.subtree_control", "");
    auto host = DetectCgroups(kV2Mounts, root_.path());
    ASSERT_TRUE(host.ok()) << host.error().message;
    ASSERT_EQ((*host)->version(), "v2");
    host_ = std::move(host.value());
  }
  std::string Read(const std::string& rel) const { return root_.Read("sys/fs/cgroup/" + rel); }
  void Write(const std::string& rel, const std::string& text) const {
    root_.Write("sys/fs/cgroup/" + rel, text);
  }

  FakeRoot root_;
  std::unique_ptr<CgroupHost> host_;
};

TEST_F(CgroupV2Test, LimitsAndControllersOnTheWayDown) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {.cpus = 2, .memory_mib = 1024, .pids = 50}).ok());
  EXPECT_EQ(Read("exed/alice/cpu.max"), "200000 100000");
  EXPECT_EQ(Read("exed/alice/memory.max"), "1073741824");
  EXPECT_EQ(Read("exed/alice/pids.max"), "50");
  EXPECT_EQ(Read("cgroup.subtree_control"), "+cpu +memory +pids");
  EXPECT_EQ(Read("exed/cgroup.subtree_control"), "+cpu +memory +pids");
  EXPECT_EQ(Read("exed/alice/cgroup.subtree_control"), "+cpu +memory +pids");
}

TEST_F(CgroupV2Test, ZeroMeansUnlimited) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {}).ok());
  EXPECT_EQ(Read("exed/alice/cpu.max"), "max 100000");
  EXPECT_EQ(Read("exed/alice/memory.max"), "max");
  EXPECT_EQ(Read("exed/alice/pids.max"), "max");
}

TEST_F(CgroupV2Test, WritesOnlyTheControllersNotYetEnabled) {
  // As the kernel shows them: a read-only root in a container must not be written.
  Write("cgroup.subtree_control", "cpuset cpu io memory pids\n");
  Write("exed/cgroup.subtree_control", "cpu memory\n");
  ASSERT_TRUE(host_->EnsureAccount("alice", {}).ok());
  EXPECT_EQ(Read("cgroup.subtree_control"), "cpuset cpu io memory pids\n");
  EXPECT_EQ(Read("exed/cgroup.subtree_control"), "+pids");
}

TEST_F(CgroupV2Test, EnableFailureExplainsTheNoInternalProcessesRule) {
  // A dangling link reads as absent and fails the write with ENOENT, as the
  // kernel does when the parent has not enabled a controller.
  root_.Dir("sys/fs/cgroup/exed");
  fs::create_symlink(root_ / "missing/x", root_ / "sys/fs/cgroup/exed/cgroup.subtree_control");
  auto s = host_->EnsureAccount("alice", {});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.error().message, "exed/cgroup.subtree_control")) << s.error().message;
  EXPECT_TRUE(Contains(s.error().message, "a group that holds processes")) << s.error().message;
}

TEST_F(CgroupV2Test, IdempotentEnsureAndVmWithoutLimits) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {.cpus = 1}).ok());
  ASSERT_TRUE(host_->EnsureAccount("alice", {.cpus = 1}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  EXPECT_TRUE(root_.Exists("sys/fs/cgroup/exed/alice/web"));
  EXPECT_FALSE(root_.Exists("sys/fs/cgroup/exed/alice/web/cpu.max"));
  EXPECT_FALSE(root_.Exists("sys/fs/cgroup/exed/alice/web/cgroup.subtree_control"));
  auto files = host_->ProcsFiles("alice", "web");
  ASSERT_TRUE(files.ok());
  EXPECT_EQ(*files,
            std::vector<std::string>{root_.path() + "/sys/fs/cgroup/exed/alice/web/cgroup.procs"});
  ASSERT_TRUE(host_->AddProcess("alice", "web", 0).ok());
  EXPECT_EQ(Read("exed/alice/web/cgroup.procs"), "0");
}

TEST_F(CgroupV2Test, UsageFromCannedFiles) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  Write("exed/alice/web/cpu.stat", "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n");
  Write("exed/alice/web/memory.current", "8192\n");
  Write("exed/alice/web/pids.current", "1\n");
  auto u = host_->VmUsage("alice", "web");
  ASSERT_TRUE(u.ok()) << u.error().message;
  EXPECT_EQ(u->cpu_usec, 1234u);
  EXPECT_EQ(u->memory_bytes, 8192u);
  EXPECT_EQ(u->memory_peak_bytes, 0u);  // no memory.peak before Linux 5.19
  EXPECT_EQ(u->pids, 1u);

  Write("exed/alice/cpu.stat", "user_usec 5\nusage_usec 99999\n");
  Write("exed/alice/memory.current", "16384\n");
  Write("exed/alice/memory.peak", "32768\n");
  Write("exed/alice/pids.current", "2\n");
  auto a = host_->AccountUsage("alice");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->cpu_usec, 99999u);
  EXPECT_EQ(a->memory_peak_bytes, 32768u);

  Write("exed/alice/cpu.stat", "user_usec 5\n");
  a = host_->AccountUsage("alice");
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(Contains(a.error().message, "no usage_usec in")) << a.error().message;
}

TEST_F(CgroupV2Test, RemoveAndList) {
  ASSERT_TRUE(host_->EnsureAccount("alice", {.pids = 10}).ok());
  ASSERT_TRUE(host_->EnsureVm("alice", "web").ok());
  Write("exed/alice/web/cgroup.procs", "123\n");
  auto pids = host_->VmPids("alice", "web");
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(*pids, std::vector<pid_t>{123});
  auto s = host_->RemoveVm("alice", "web");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s.error().message, "still has processes 123")) << s.error().message;

  Write("exed/alice/web/cgroup.procs", "");
  ASSERT_TRUE(host_->RemoveVm("alice", "web").ok());
  ASSERT_TRUE(host_->RemoveAccount("alice").ok());
  EXPECT_FALSE(root_.Exists("sys/fs/cgroup/exed/alice"));
  auto accounts = host_->Accounts();
  ASSERT_TRUE(accounts.ok());
  EXPECT_TRUE(accounts->empty());
  EXPECT_EQ(Read("cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n");
}

// --- This machine's real cgroups ---------------------------------------------

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Creates exed-test-PID at the top of the real hierarchies, an account and a
// VM under it, moves a `sleep` child in, and removes all of it, whatever
// happens. Touches no group it did not create.
TEST(CgroupRealHost, VmLifecycle) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  const std::string parent = "exed-test-" + std::to_string(getpid());
  auto detected = DetectCgroups(ReadAll("/proc/mounts"), "", parent);
  if (!detected.ok()) GTEST_SKIP() << "no usable cgroups: " << detected.error().message;
  std::unique_ptr<CgroupHost> host = std::move(detected.value());
  const bool v1 = host->version() == "v1";
  const std::string top = v1 ? "/sys/fs/cgroup/memory" : "/sys/fs/cgroup";
  if (access(top.c_str(), W_OK) != 0) GTEST_SKIP() << top << " is not writable";

  auto files = host->ProcsFiles("acct", "vm1");
  ASSERT_TRUE(files.ok());
  std::vector<std::string> parent_dirs;  // PARENT in each hierarchy, from the procs paths
  for (const auto& f : *files) {
    parent_dirs.push_back(fs::path(f).parent_path().parent_path().parent_path().string());
  }
  pid_t child = -1;
  struct Cleanup {
    CgroupHost* host;
    pid_t* child;
    std::vector<std::string>* dirs;
    ~Cleanup() {
      if (*child > 0) {
        kill(*child, SIGKILL);
        waitpid(*child, nullptr, 0);
      }
      if (auto s = host->RemoveVm("acct", "vm1"); !s) ADD_FAILURE() << s.error().message;
      if (auto s = host->RemoveAccount("acct"); !s) ADD_FAILURE() << s.error().message;
      for (const auto& d : *dirs) {
        if (rmdir(d.c_str()) != 0 && errno != ENOENT) ADD_FAILURE() << "rmdir " << d;
      }
    }
  } cleanup{host.get(), &child, &parent_dirs};

  ASSERT_TRUE(host->EnsureAccount("acct", {.cpus = 2, .memory_mib = 256, .pids = 16}).ok());
  ASSERT_TRUE(host->EnsureVm("acct", "vm1").ok());
  if (v1) {
    EXPECT_EQ(ReadAll("/sys/fs/cgroup/memory/" + parent + "/acct/memory.limit_in_bytes"),
              "268435456\n");
    const auto cpu = fs::path((*files)[0]).parent_path().parent_path().string();
    EXPECT_EQ(ReadAll(cpu + "/cpu.cfs_quota_us"), "200000\n");
  } else {
    EXPECT_EQ(ReadAll("/sys/fs/cgroup/" + parent + "/acct/memory.max"), "268435456\n");
    EXPECT_EQ(ReadAll("/sys/fs/cgroup/" + parent + "/acct/cpu.max"), "200000 100000\n");
  }

  // The launcher's way: paths computed before fork, plain write(2) in the
  // child, then exec. The pipe closes on exec (O_CLOEXEC), so EOF means the
  // child is in its group and running sleep; a byte means it failed.
  std::vector<const char*> paths;
  for (const auto& f : *files) paths.push_back(f.c_str());
  int sync[2];
  ASSERT_EQ(pipe2(sync, O_CLOEXEC), 0);
  child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(sync[0]);
    for (const char* p : paths) {
      const int fd = open(p, O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, "0\n", 2) != 2) {
        (void)!write(sync[1], "w", 1);
        _exit(127);
      }
      close(fd);
    }
    execl("/bin/sleep", "sleep", "600", static_cast<char*>(nullptr));
    (void)!write(sync[1], "e", 1);
    _exit(127);
  }
  close(sync[1]);
  char byte;
  ssize_t n;
  do {
    n = read(sync[0], &byte, 1);
  } while (n < 0 && errno == EINTR);
  close(sync[0]);
  ASSERT_EQ(n, 0) << "child failed: " << byte;

  auto pids = host->VmPids("acct", "vm1");
  ASSERT_TRUE(pids.ok()) << pids.error().message;
  EXPECT_EQ(*pids, std::vector<pid_t>{child});
  auto vm = host->VmUsage("acct", "vm1");
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  EXPECT_EQ(vm->pids, 1u);
  EXPECT_GT(vm->memory_bytes, 0u);
  auto account = host->AccountUsage("acct");
  ASSERT_TRUE(account.ok()) << account.error().message;
  EXPECT_EQ(account->pids, 1u);
  EXPECT_GT(account->memory_bytes, 0u);  // not compared with the VM's: both still move

  auto busy = host->RemoveVm("acct", "vm1");
  ASSERT_FALSE(busy.ok());
  EXPECT_TRUE(Contains(busy.error().message, std::to_string(child))) << busy.error().message;

  ASSERT_EQ(kill(child, SIGKILL), 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  child = -1;
  pids = host->VmPids("acct", "vm1");
  ASSERT_TRUE(pids.ok());
  EXPECT_TRUE(pids->empty());
  // Only now: a running task's CPU time reaches cpuacct when it is next
  // descheduled, so while it ran the counter could still read 0.
  vm = host->VmUsage("acct", "vm1");
  ASSERT_TRUE(vm.ok()) << vm.error().message;
  EXPECT_GT(vm->cpu_usec, 0u);  // the exec ran in the group
  EXPECT_EQ(vm->pids, 0u);
  auto accounts = host->Accounts();
  ASSERT_TRUE(accounts.ok());
  EXPECT_EQ(*accounts, std::vector<std::string>{"acct"});

  ASSERT_TRUE(host->RemoveVm("acct", "vm1").ok());
  ASSERT_TRUE(host->RemoveAccount("acct").ok());
  for (const auto& f : *files) {
    EXPECT_FALSE(fs::exists(fs::path(f).parent_path())) << f;
  }
}

}  // namespace
}  // namespace vmm
