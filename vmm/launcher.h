// Starting and stopping the long-lived helper processes of a VM (QEMU,
// passt) so that they outlive exed, and recognising them again afterwards.
//
// Launch double-forks: exed forks a child, the child calls setsid() and
// forks the real process, then exits at once; exed reaps that child right
// away. The process is thus an orphan in its own session, reparented to
// init (PID 1), which reaps it when it exits, so exed never accumulates
// zombies and can exit or restart without taking its VMs along. A restarted
// exed finds them again by pid (the database, VMDIR/qemu.pid) and checks
// with HasArgs that the pid still is the VM's process. For this to hold,
// exed must not be a child subreaper (PR_SET_CHILD_SUBREAPER) and must not
// run as PID 1 of a container without an init that reaps.
//
// Between fork and exec the child makes only async-signal-safe calls (exed
// is multi-threaded): every string is prepared before the fork. The child,
// in this order: joins the VM's cgroup (writes "0" to each cgroup.procs, so
// the process is accounted and limited before it runs a guest instruction),
// drops privileges (as root only: setgroups(0), setgid, setuid), resets the
// signal mask and dispositions exed changed, redirects stdin from /dev/null
// and stdout/stderr to the log, marks every other fd close-on-exec, and
// execs. A failure at any step is written to a close-on-exec pipe, so
// Launch returns it as an error ("cannot start qemu-system-x86_64: No such
// file or directory") instead of leaving a dead child behind; when the pipe
// closes empty, the exec has happened.
//
// Free functions; thread-safe. Launch blocks until the exec (milliseconds);
// Terminate blocks for up to `grace` plus a few seconds.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "control/result.h"

namespace vmm {

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
};

// The uid and primary gid of user `name` ("exed").
control::Result<Credentials> LookupUser(const std::string& name);

struct LaunchSpec {
  // argv[0] is the program: a path, or a name looked up in env's PATH.
  std::vector<std::string> argv;
  // The whole environment of the new process (exed's is not inherited).
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  // cgroup.procs files the process writes "0\n" into before exec (from
  // CgroupHost::ProcsFiles). Each must exist.
  std::vector<std::string> cgroup_procs;
  // stdout and stderr, appended (created 0640 if missing); "" = /dev/null.
  std::string log_path;
  // Applied only when exed runs as root; otherwise the process runs as exed.
  std::optional<Credentials> run_as;
  mode_t umask = 027;
  // So the process keeps no directory of exed's busy.
  std::string work_dir = "/";
};

// Starts the process described by `spec`, detached (see above); returns its
// pid once it has exec'd. kInternal errors name the program and the step.
control::Result<pid_t> Launch(const LaunchSpec& spec);

// True if `pid` is a live process (not a zombie). Not proof that it is
// ours: use HasArgs for that.
bool Alive(pid_t pid, const std::string& proc_root = "/proc");

// True if process `pid`'s command line contains `args` as consecutive
// arguments (e.g. QemuIdentity: {"-name", "exed-vm-42"}), so that a pid
// reused by an unrelated process is never taken for a VM's. False for an
// empty `args`, and when the process is gone.
bool HasArgs(pid_t pid, const std::vector<std::string>& args,
             const std::string& proc_root = "/proc");

// Ends process `pid` if it is the one `identity` names (HasArgs): SIGTERM,
// up to `grace` for it to exit, then SIGKILL. Ok when it has exited, and
// also when `pid` is gone or is not that process (nothing of ours was
// running: nothing to do, nothing else signalled). Signals through a pidfd,
// so the check and the signals concern the same process even if the pid is
// reused meanwhile. Works for processes that are not exed's children.
// QEMU treats SIGTERM as "quit now" (no guest shutdown): for a clean guest
// shutdown, ask first through QMP (system_powerdown) and call this after.
control::Status Terminate(pid_t pid, const std::vector<std::string>& identity,
                          std::chrono::milliseconds grace, const std::string& proc_root = "/proc");

}  // namespace vmm
