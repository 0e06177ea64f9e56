#include "vmm/launcher.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace vmm {
namespace {

using std::chrono::milliseconds;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Blocks until `pid` (not necessarily our child) has exited.
void WaitGone(pid_t pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return;  // already gone
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 10000), 1) << "pid " << pid << " did not exit";
  ::close(fd);
}

// A field ("SigBlk:") of /proc/PID/status.
std::string StatusField(pid_t pid, const std::string& field) {
  std::istringstream in(Slurp("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) {
      std::string v = line.substr(field.size());
      return v.substr(v.find_first_not_of(" \t"));
    }
  }
  return "";
}

class LauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("launcher_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  // A sleep whose command line no other process has.
  std::vector<std::string> UniqueSleep() const {
    return {"/bin/sleep", "1000." + std::to_string(::getpid()) + std::to_string(++counter_)};
  }

  std::filesystem::path dir_;
  mutable int counter_ = 0;
};

TEST_F(LauncherTest, StartsDetachedInItsOwnSessionWithCleanSignals) {
  // exed blocks signals in every thread; the child must not inherit that.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  LaunchSpec spec;
  spec.argv = UniqueSleep();
  auto pid = Launch(spec);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(pid.ok()) << pid.error().message;

  EXPECT_TRUE(Alive(*pid));
  EXPECT_NE(::getsid(*pid), ::getsid(0));
  EXPECT_NE(::getsid(*pid), *pid) << "not a session leader: it can never get a controlling tty";
  // Orphaned at once: its parent is init (or a subreaper), not us.
  EXPECT_NE(std::stoi(StatusField(*pid, "PPid:")), ::getpid());
  EXPECT_EQ(StatusField(*pid, "SigBlk:"), "0000000000000000");
  EXPECT_EQ(StatusField(*pid, "SigIgn:"), "0000000000000000");

  EXPECT_TRUE(HasArgs(*pid, {spec.argv[1]}));
  ASSERT_TRUE(Terminate(*pid, {spec.argv[1]}, milliseconds(5000)).ok());
  EXPECT_FALSE(Alive(*pid));
}

TEST_F(LauncherTest, ExecFailureIsReportedNotLeftAsADeadChild) {
  LaunchSpec spec;
  spec.argv = {"/nonexistent/qemu-system-x86_64", "-name", "exed-x"};
  auto pid = Launch(spec);
  ASSERT_FALSE(pid.ok());
  EXPECT_EQ(pid.error().message, "cannot start qemu-system-x86_64: No such file or directory");

  spec.argv = {"no-such-program-exed"};
  pid = Launch(spec);
  ASSERT_FALSE(pid.ok());
  EXPECT_EQ(pid.error().message, "cannot start no-such-program-exed: not found in PATH");

  spec.argv = {Path("")};  // a directory
  pid = Launch(spec);
  ASSERT_FALSE(pid.ok());
  EXPECT_NE(pid.error().message.find("Permission denied"), std::string::npos) << pid.error().message;
}

TEST_F(LauncherTest, LogGetsOutputEnvIsOnlyTheGivenOneOtherFdsAreClosed) {
  // An fd leaked without O_CLOEXEC, as a careless library would.
  int leak = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leak, 0);
  ASSERT_EQ(::dup2(leak, 200), 200);
  ::close(leak);
  ::setenv("EXED_TEST_SECRET", "s3cret", 1);

  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c",
               "echo out; echo err >&2; env; cd /proc/self/fd && for f in *; do echo fd=$f; done"};
  spec.env = {"PATH=/usr/bin:/bin", "EXED_TEST=1"};
  spec.log_path = Path("qemu.log");
  std::ofstream(spec.log_path) << "earlier run\n";  // appended to, not truncated
  auto pid = Launch(spec);
  ::close(200);
  ::unsetenv("EXED_TEST_SECRET");
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  WaitGone(*pid);

  std::string log = Slurp(spec.log_path);
  EXPECT_EQ(log.rfind("earlier run\nout\nerr\n", 0), 0u) << log;
  EXPECT_NE(log.find("EXED_TEST=1\n"), std::string::npos) << log;
  EXPECT_EQ(log.find("EXED_TEST_SECRET"), std::string::npos) << log;
  // `for f in *` lists the shell's fds, plus (maybe) the one the glob holds
  // open on the directory while it reads it: nothing else, no fd 200.
  std::vector<std::string> fds;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("fd=", 0) == 0) fds.push_back(line.substr(3));
  }
  ASSERT_GE(fds.size(), 3u) << log;
  EXPECT_EQ(std::vector<std::string>(fds.begin(), fds.begin() + 3),
            (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_LE(fds.size(), 4u) << log;
}

TEST_F(LauncherTest, WorksWhenExedRunsWithStdioClosed) {
  std::string log = Path("out.log");
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A daemon started with 0-2 closed: /dev/null and the log would land there.
    ::close(0);
    ::close(1);
    ::close(2);
    LaunchSpec spec;
    spec.argv = {"/bin/sh", "-c", "echo out; echo err >&2; read x || echo stdin-eof"};
    spec.log_path = log;
    auto pid = Launch(spec);
    if (!pid.ok()) ::_exit(1);
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0));
    pollfd p{fd, POLLIN, 0};
    ::_exit(fd < 0 || ::poll(&p, 1, 10000) == 1 ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(Slurp(log), "out\nerr\nstdin-eof\n");
}

TEST_F(LauncherTest, JoinsEveryCgroupBeforeExec) {
  std::string v2 = Path("cgroup.procs"), v1mem = Path("memory.cgroup.procs");
  std::ofstream(v2).flush();
  std::ofstream(v1mem).flush();
  LaunchSpec spec;
  spec.argv = {"/bin/true"};
  spec.cgroup_procs = {v2, v1mem};
  auto pid = Launch(spec);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  WaitGone(*pid);
  // "0" means "the writer", which is the process itself, before exec.
  EXPECT_EQ(Slurp(v2), "0\n");
  EXPECT_EQ(Slurp(v1mem), "0\n");

  spec.cgroup_procs = {v2, Path("missing/cgroup.procs")};
  auto bad = Launch(spec);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "cannot start true: cannot join cgroup (" +
                                     Path("missing/cgroup.procs") +
                                     "): No such file or directory");
}

TEST_F(LauncherTest, DropsPrivilegesWhenRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c", "id -u; id -g; id -G"};
  spec.log_path = Path("id.log");
  spec.run_as = Credentials{65534, 65534};
  auto pid = Launch(spec);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  WaitGone(*pid);
  EXPECT_EQ(Slurp(spec.log_path), "65534\n65534\n65534\n");
}

TEST_F(LauncherTest, LookupUser) {
  auto root = LookupUser("root");
  ASSERT_TRUE(root.ok()) << root.error().message;
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->gid, 0u);
  auto none = LookupUser("no-such-user-exed");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().kind, control::ErrorKind::kNotFound);
}

TEST_F(LauncherTest, APidThatIsNotOursIsNeverSignalled) {
  LaunchSpec spec;
  spec.argv = UniqueSleep();
  auto pid = Launch(spec);
  ASSERT_TRUE(pid.ok()) << pid.error().message;

  EXPECT_FALSE(HasArgs(*pid, {"-name", "exed-vm-1"}));
  EXPECT_FALSE(HasArgs(*pid, {}));
  // As if the VM's QEMU had died and its pid been reused by this sleep.
  EXPECT_TRUE(Terminate(*pid, {"-name", "exed-vm-1"}, milliseconds(10)).ok());
  EXPECT_TRUE(Alive(*pid));
  EXPECT_FALSE(Terminate(*pid, {}, milliseconds(10)).ok());
  EXPECT_TRUE(Alive(*pid));

  ASSERT_TRUE(Terminate(*pid, {spec.argv[1]}, milliseconds(5000)).ok());
  EXPECT_FALSE(Alive(*pid));
  // Again: already gone is fine.
  EXPECT_TRUE(Terminate(*pid, {spec.argv[1]}, milliseconds(10)).ok());
}

TEST_F(LauncherTest, TerminateEscalatesToSigkill) {
  std::string fifo = Path("ready");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  std::string marker = "exed-stubborn-" + std::to_string(::getpid());
  LaunchSpec spec;
  spec.argv = {"/bin/sh", "-c", "trap '' TERM; echo ready > " + fifo + "; while :; do sleep 0.1; done",
               marker};
  auto pid = Launch(spec);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  {
    std::ifstream ready(fifo);  // opens once the trap is in place
    std::string line;
    std::getline(ready, line);
    ASSERT_EQ(line, "ready");
  }
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(Terminate(*pid, {marker}, milliseconds(100)).ok());
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));
  EXPECT_FALSE(Alive(*pid));
}

TEST(Alive, ZombiesAndNonsenseAreNotAlive) {
  EXPECT_TRUE(Alive(::getpid()));
  EXPECT_FALSE(Alive(0));
  EXPECT_FALSE(Alive(-1));
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_FALSE(Alive(child));  // a zombie until reaped
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  EXPECT_FALSE(Alive(child));
}

}  // namespace
}  // namespace vmm
