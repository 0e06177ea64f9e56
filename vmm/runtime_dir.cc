#include "vmm/runtime_dir.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace vmm {

namespace fs = std::filesystem;

namespace {

// Whether `uid`/`gid` can search `path` (every directory on the way).
bool CanTraverse(const std::string& path, uid_t uid, gid_t gid) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(2);
    ::_exit(::access(path.c_str(), X_OK) == 0 ? 0 : 1);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

std::string ResolveRuntimeDir(const std::string& state_dir, const std::string& run_as_user) {
  std::string abs = fs::absolute(state_dir).lexically_normal().string();
  if (!abs.empty() && abs.back() == '/') abs.pop_back();
  struct passwd* pw = ::getpwnam(run_as_user.c_str());
  if (::geteuid() != 0 || !pw || CanTraverse(abs, pw->pw_uid, pw->pw_gid)) return abs;
  std::string moved = fmt::format("/var/lib/exed/runtime-{:012x}", std::hash<std::string>{}(abs) & 0xffffffffffffULL);
  std::error_code ec;
  fs::create_directories(moved, ec);
  ::chmod("/var/lib/exed", 0755);
  ::chmod(moved.c_str(), 0755);
  fs::path link = fs::path(abs) / "runtime";
  if (!fs::is_symlink(link)) {
    fs::remove(link, ec);
    fs::create_symlink(moved, link, ec);
  }
  spdlog::info("event=runtime-dir state={} runtime={} reason=\"user {} cannot reach the state directory\"", abs, moved,
               run_as_user);
  return moved;
}

}  // namespace vmm
