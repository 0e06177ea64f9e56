#include "vmm/launcher.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace vmm {
namespace {

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// What the children write to the status pipe: one fixed-size record each,
// below PIPE_BUF, so writes from the two children never interleave.
enum Step : int32_t { kStarted, kSetsid, kFork, kCgroup, kSetgroups, kSetgid, kSetuid, kChdir,
                      kRedirect, kExec };
struct Report {
  int32_t step;
  int32_t index;  // kCgroup: which file
  int32_t err;    // errno
  int32_t pid;    // kStarted: the grandchild
};

// Async-signal-safe.
void Send(int fd, Step step, int32_t index, int32_t err, int32_t pid) {
  Report r{step, index, err, pid};
  ssize_t n;
  do {
    n = ::write(fd, &r, sizeof r);
  } while (n < 0 && errno == EINTR);
}

[[noreturn]] void Fail(int fd, Step step, int32_t index = 0) {
  Send(fd, step, index, errno, 0);
  ::_exit(127);
}

// Everything the grandchild needs, built before fork: it must not allocate.
struct Prepared {
  std::vector<char*> argv, envp;
  std::vector<const char*> cgroup_procs;
  const char* work_dir;
  int devnull, log;
  std::optional<Credentials> run_as;
  mode_t umask;
};

// Runs in the grandchild, between fork and exec. Async-signal-safe calls only.
[[noreturn]] void Exec(const Prepared& p, int report) {
  // exed blocks signals in all its threads and ignores SIGPIPE; exec keeps
  // both, and QEMU would then ignore SIGTERM.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);  // EINVAL for glibc's own: fine
  }

  // The cgroup first, while still root: the write needs permission on the
  // group's cgroup.procs, and the process must be limited before it runs.
  for (size_t i = 0; i < p.cgroup_procs.size(); ++i) {
    int fd = ::open(p.cgroup_procs[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0) Fail(report, kCgroup, static_cast<int32_t>(i));
    ssize_t n;
    do {
      n = ::write(fd, "0\n", 2);
    } while (n < 0 && errno == EINTR);
    if (n != 2) Fail(report, kCgroup, static_cast<int32_t>(i));
    ::close(fd);
  }

  if (p.run_as && ::geteuid() == 0) {
    // Supplementary groups first (they would survive setgid/setuid), the
    // uid last (after it, nothing else may be changed).
    if (::setgroups(0, nullptr) != 0) Fail(report, kSetgroups);
    if (::setgid(p.run_as->gid) != 0) Fail(report, kSetgid);
    if (::setuid(p.run_as->uid) != 0) Fail(report, kSetuid);
  }
  ::umask(p.umask);
  if (::chdir(p.work_dir) != 0) Fail(report, kChdir);

  // dup2 clears close-on-exec on the copies, so 0-2 survive the exec.
  if (::dup2(p.devnull, 0) < 0 || ::dup2(p.log, 1) < 0 || ::dup2(p.log, 2) < 0) {
    Fail(report, kRedirect);
  }
  // Whatever else is open (fds a library opened without O_CLOEXEC, or
  // another thread's, inherited by the fork) closes at exec; the report
  // pipe too, which is how the parent learns the exec succeeded.
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    struct rlimit rl {};
    rlim_t max = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    if (max > 1 << 20) max = 1 << 20;
    for (rlim_t fd = 3; fd < max; ++fd) ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  }
  ::execve(p.argv[0], p.argv.data(), p.envp.data());
  Fail(report, kExec);
}

// argv[0] as a path: kept if it has a '/', else searched in env's PATH.
std::optional<std::string> ResolveProgram(const std::string& program,
                                          const std::vector<std::string>& env) {
  if (program.find('/') != std::string::npos) return program;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& e : env) {
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  }
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// Moves `fd` to 3 or above. If exed runs with stdin/stdout/stderr closed,
// open() hands out 0-2, and the child's dup2(fd, fd) would then be a no-op
// that leaves close-on-exec set: the process would start with them closed.
int AboveStdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int saved = errno;
  ::close(fd);
  errno = saved;
  return moved;
}

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string ReadProcFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int PidfdOpen(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

int PidfdSignal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// True if the process behind `pidfd` exited within `timeout`.
bool WaitExit(int pidfd, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Rounded up: poll must not return a fraction of a millisecond early.
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline -
                                                             std::chrono::steady_clock::now());
    pollfd p{pidfd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

control::Result<Credentials> LookupUser(const std::string& name) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  int rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) {
    return control::InternalError(fmt::format("cannot look up user {}: {}", name, std::strerror(rc)));
  }
  if (!found) {
    return control::NotFoundError(
        fmt::format("user '{}' does not exist; create it (ops/setup does: useradd --system {})",
                    name, name));
  }
  return Credentials{pw.pw_uid, pw.pw_gid};
}

control::Result<pid_t> Launch(const LaunchSpec& spec) {
  if (spec.argv.empty()) return control::InternalError("cannot start a process with no argv");
  const std::string name = Basename(spec.argv[0]);
  auto fail = [&name](const std::string& why) {
    return control::InternalError(fmt::format("cannot start {}: {}", name, why));
  };

  std::optional<std::string> program = ResolveProgram(spec.argv[0], spec.env);
  if (!program) return fail("not found in PATH");

  // Everything the child touches, made now: after fork it may not allocate.
  std::vector<std::string> argv = spec.argv;
  argv[0] = *program;  // execve takes argv[0] as the path; keep what ps shows honest
  Prepared p;
  for (auto& a : argv) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  std::vector<std::string> env = spec.env;
  for (auto& e : env) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
  for (const auto& c : spec.cgroup_procs) p.cgroup_procs.push_back(c.c_str());
  p.work_dir = spec.work_dir.c_str();
  p.run_as = spec.run_as;
  p.umask = spec.umask;

  Fd devnull(AboveStdio(::open("/dev/null", O_RDWR | O_CLOEXEC)));
  if (devnull.get() < 0) return fail(fmt::format("cannot open /dev/null: {}", std::strerror(errno)));
  Fd log;
  if (spec.log_path.empty()) {
    log = Fd(::fcntl(devnull.get(), F_DUPFD_CLOEXEC, 3));
  } else {
    log = Fd(AboveStdio(::open(spec.log_path.c_str(),
                               O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640)));
  }
  if (log.get() < 0) {
    return fail(fmt::format("cannot open log {}: {}", spec.log_path, std::strerror(errno)));
  }
  p.devnull = devnull.get();
  p.log = log.get();

  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return fail(fmt::format("pipe: {}", std::strerror(errno)));
  Fd report_r(AboveStdio(pipefd[0])), report_w(AboveStdio(pipefd[1]));
  if (report_r.get() < 0 || report_w.get() < 0) {
    return fail(fmt::format("pipe: {}", std::strerror(errno)));
  }

  pid_t child = ::fork();
  if (child < 0) return fail(fmt::format("fork: {}", std::strerror(errno)));
  if (child == 0) {
    // The intermediate child: a new session, then the real process, then
    // exit so that the real process is orphaned (reparented to init).
    int w = report_w.get();
    if (::setsid() < 0) Fail(w, kSetsid);
    // _Fork: no atfork handlers, async-signal-safe (glibc 2.34+).
    pid_t grandchild = ::_Fork();
    if (grandchild < 0) Fail(w, kFork);
    if (grandchild == 0) Exec(p, w);
    Send(w, kStarted, 0, 0, grandchild);
    ::_exit(0);
  }
  report_w.Reset();  // else the read below never sees EOF
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }

  pid_t pid = 0;
  std::optional<Report> failure;
  for (;;) {
    Report r{};
    ssize_t n = ::read(report_r.get(), &r, sizeof r);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (n != sizeof r) return fail("short status report from the child");
    if (r.step == kStarted) {
      pid = r.pid;
    } else {
      failure = r;
    }
  }
  if (failure) {
    std::string err = std::strerror(failure->err);
    switch (failure->step) {
      case kExec: return fail(err);
      case kCgroup:
        return fail(fmt::format("cannot join cgroup ({}): {}",
                                spec.cgroup_procs.at(static_cast<size_t>(failure->index)), err));
      case kSetgroups:
      case kSetgid:
      case kSetuid:
        return fail(fmt::format("cannot switch to uid {} gid {}: {}", spec.run_as->uid,
                                spec.run_as->gid, err));
      case kChdir: return fail(fmt::format("cannot enter {}: {}", spec.work_dir, err));
      case kRedirect: return fail(fmt::format("cannot redirect its output: {}", err));
      case kSetsid: return fail(fmt::format("setsid: {}", err));
      case kFork: return fail(fmt::format("fork: {}", err));
      default: return fail(err);
    }
  }
  if (pid <= 0) return fail("the intermediate child died before it reported");
  return pid;
}

bool Alive(pid_t pid, const std::string& proc_root) {
  if (pid <= 0) return false;  // kill(0 or -N) would signal a whole group
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  // A zombie still answers kill(); its state in /proc/PID/stat says Z.
  std::string stat = ReadProcFile(fmt::format("{}/{}/stat", proc_root, pid));
  size_t paren = stat.rfind(')');  // the command name may contain ") "
  // Unreadable (another mount namespace's /proc): trust kill().
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

bool HasArgs(pid_t pid, const std::vector<std::string>& args, const std::string& proc_root) {
  if (pid <= 0 || args.empty()) return false;
  std::string raw = ReadProcFile(fmt::format("{}/{}/cmdline", proc_root, pid));
  std::vector<std::string> argv;
  size_t start = 0;
  while (start < raw.size()) {
    size_t nul = raw.find('\0', start);
    if (nul == std::string::npos) nul = raw.size();
    argv.push_back(raw.substr(start, nul - start));
    start = nul + 1;
  }
  return std::search(argv.begin(), argv.end(), args.begin(), args.end()) != argv.end();
}

control::Status Terminate(pid_t pid, const std::vector<std::string>& identity,
                          std::chrono::milliseconds grace, const std::string& proc_root) {
  if (identity.empty()) {
    return control::InternalError(fmt::format("refusing to signal pid {} without an identity", pid));
  }
  if (pid <= 0) return control::Ok{};
  Fd pidfd(PidfdOpen(pid));
  if (pidfd.get() < 0) {
    if (errno == ESRCH) return control::Ok{};
    return control::InternalError(fmt::format("cannot open pid {}: {}", pid, std::strerror(errno)));
  }
  // Checked after pidfd_open: from here on the signals reach this process
  // or none (ESRCH), never a newcomer that got the same pid.
  if (!HasArgs(pid, identity, proc_root)) return control::Ok{};
  if (PidfdSignal(pidfd.get(), SIGTERM) != 0) {
    if (errno == ESRCH) return control::Ok{};
    return control::InternalError(fmt::format("cannot signal pid {}: {}", pid, std::strerror(errno)));
  }
  if (WaitExit(pidfd.get(), grace)) return control::Ok{};
  if (PidfdSignal(pidfd.get(), SIGKILL) != 0 && errno != ESRCH) {
    return control::InternalError(fmt::format("cannot kill pid {}: {}", pid, std::strerror(errno)));
  }
  // SIGKILL is not refusable, but a process in uninterruptible sleep (a
  // hung NFS read) dies only when that returns.
  if (WaitExit(pidfd.get(), std::chrono::seconds(5))) return control::Ok{};
  return control::InternalError(
      fmt::format("pid {} did not exit within 5 s of SIGKILL (stuck in the kernel?)", pid));
}

}  // namespace vmm
