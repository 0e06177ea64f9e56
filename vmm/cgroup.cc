#include "vmm/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

namespace vmm {
namespace {

using control::Error;
using control::Ok;
using control::Result;
using control::Status;

constexpr int64_t kCpuPeriodUsec = 100000;
constexpr int64_t kMiB = 1024 * 1024;
constexpr std::string_view kV2Mount = "/sys/fs/cgroup";

// ---------------------------------------------------------------------------
// Errors and names

// The one place errno becomes an Error: what was done, to which path, and why.
Error OsError(std::string_view action, const std::string& path, int err,
              std::string_view hint = {}) {
  std::string m = fmt::format("cgroup: cannot {} {}: {}", action, path,
                              std::error_code(err, std::generic_category()).message());
  if (!hint.empty()) m += fmt::format(" ({})", hint);
  return control::InternalError(std::move(m));
}

// A value quoted for a message: printable ASCII only and short, so a hostile
// name cannot paint over a terminal.
std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 64)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 64) out += "...";
  return out + "'";
}

bool IsNameChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// Account and VM names become path components: this alphabet keeps '/',
// ".." and anything else surprising out of the paths we build.
bool IsValidName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && name.front() != '-' &&
         std::all_of(name.begin(), name.end(), IsNameChar);
}

Status CheckName(std::string_view what, std::string_view name) {
  if (IsValidName(name)) return Ok{};
  return control::InvalidError(fmt::format(
      "cgroup {} name {} must be 1 to 64 lowercase letters, digits and '-', not starting "
      "with '-'",
      what, Quote(name)));
}

Status CheckNames(std::string_view account, std::string_view vm) {
  if (auto s = CheckName("account", account); !s) return s;
  return CheckName("VM", vm);
}

Result<std::vector<std::string>> SplitParent(const std::string& parent) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= parent.size()) {
    size_t end = std::min(parent.find('/', start), parent.size());
    std::string part = parent.substr(start, end - start);
    const bool ok = !part.empty() && part.size() <= 255 && part != "." && part != ".." &&
                    std::all_of(part.begin(), part.end(), [](char c) {
                      return IsNameChar(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '_';
                    });
    if (!ok) {
      return control::InvalidError(fmt::format(
          "cgroup parent {} must be a relative path of letters, digits, '-', '_' and '.', "
          "such as 'exed'",
          Quote(parent)));
    }
    parts.push_back(std::move(part));
    start = end + 1;
  }
  return parts;
}

Status CheckLimits(const CgroupLimits& l) {
  if (l.cpus < 0 || l.memory_mib < 0 || l.pids < 0 ||
      l.cpus > std::numeric_limits<int64_t>::max() / kCpuPeriodUsec ||
      l.memory_mib > std::numeric_limits<int64_t>::max() / kMiB) {
    return control::InvalidError(
        fmt::format("cgroup limits out of range (cpus={} memory_mib={} pids={}); use 0 for "
                    "unlimited",
                    l.cpus, l.memory_mib, l.pids));
  }
  return Ok{};
}

// ---------------------------------------------------------------------------
// Files

// One mounted hierarchy. `kernel` is false for the fake trees tests build in
// a temp dir, where no kernel creates a new group's files or removes them on
// rmdir. Exactly two places look at it: WriteFile creates the file, and
// RemoveGroup deletes the files before the rmdir.
struct Hierarchy {
  std::string dir;  // mount point, with the root prefix
  bool kernel = true;
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

Status WriteFile(const Hierarchy& h, const std::string& path, std::string_view value) {
  const int flags = O_WRONLY | O_CLOEXEC | (h.kernel ? 0 : O_CREAT | O_TRUNC);
  Fd fd(open(path.c_str(), flags, 0644));
  const std::string action = fmt::format("write {} to", Quote(value));
  if (fd.get() < 0) return OsError(action, path, errno);
  // cgroupfs parses each write(2) as one whole value, so it must be one call.
  ssize_t n;
  do {
    n = write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return OsError(action, path, errno);
  if (static_cast<size_t>(n) != value.size()) return OsError(action, path, EIO, "short write");
  return Ok{};
}

// nullopt when the file does not exist.
Result<std::optional<std::string>> ReadOptionalFile(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return OsError("open", path, errno);
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return OsError("read", path, errno);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return std::optional<std::string>(std::move(text));
}

Result<std::string> ReadFile(const std::string& path) {
  auto text = ReadOptionalFile(path);
  if (!text) return text.error();
  if (!text->has_value()) return OsError("read", path, ENOENT);
  return std::move(text.value().value());
}

std::string_view Trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\t'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

Result<uint64_t> ParseUint(std::string_view text, const std::string& path) {
  const std::string_view t = Trim(text);
  uint64_t v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size()) {
    return control::InternalError(
        fmt::format("cgroup: unexpected content {} in {}", Quote(t), path));
  }
  return v;
}

Result<uint64_t> ReadUint(const std::string& path) {
  auto text = ReadFile(path);
  if (!text) return text.error();
  return ParseUint(*text, path);
}

// 0 when the file does not exist (a counter this kernel does not have).
Result<uint64_t> ReadOptionalUint(const std::string& path) {
  auto text = ReadOptionalFile(path);
  if (!text) return text.error();
  if (!text->has_value()) return uint64_t{0};
  return ParseUint(**text, path);
}

// The value of `key` in a flat-keyed file such as cpu.stat ("usage_usec 123").
Result<uint64_t> ReadKey(const std::string& path, std::string_view key) {
  auto text = ReadFile(path);
  if (!text) return text.error();
  std::string_view rest = *text;
  while (!rest.empty()) {
    const size_t eol = std::min(rest.find('\n'), rest.size());
    const std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(std::min(eol + 1, rest.size()));
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      return ParseUint(line.substr(key.size() + 1), path);
    }
  }
  return control::InternalError(fmt::format("cgroup: no {} in {}", key, path));
}

// The pids in a cgroup.procs file; empty when it does not exist.
Result<std::vector<pid_t>> ReadPids(const std::string& path) {
  auto text = ReadOptionalFile(path);
  if (!text) return text.error();
  std::vector<pid_t> pids;
  if (!text->has_value()) return pids;
  std::string_view rest = **text;
  while (!rest.empty()) {
    const size_t eol = std::min(rest.find('\n'), rest.size());
    const std::string_view line = Trim(rest.substr(0, eol));
    rest.remove_prefix(std::min(eol + 1, rest.size()));
    if (line.empty()) continue;
    auto pid = ParseUint(line, path);
    if (!pid || *pid == 0 || *pid > static_cast<uint64_t>(std::numeric_limits<pid_t>::max())) {
      return control::InternalError(
          fmt::format("cgroup: unexpected pid {} in {}", Quote(line), path));
    }
    pids.push_back(static_cast<pid_t>(*pid));
  }
  return pids;
}

// True if the directory was created, false if it was there already.
Result<bool> MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) == 0) return true;
  if (errno == EEXIST) return false;
  return OsError("create", path, errno);
}

bool DirExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Subdirectory names; empty when `path` does not exist.
Result<std::vector<std::string>> SubDirs(const std::string& path) {
  DirPtr dir(opendir(path.c_str()));
  if (!dir) {
    if (errno == ENOENT) return std::vector<std::string>();
    return OsError("list", path, errno);
  }
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* e = readdir(dir.get())) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (e->d_type == DT_DIR ||
        (e->d_type == DT_UNKNOWN && fstatat(dirfd(dir.get()), e->d_name, &st, 0) == 0 &&
         S_ISDIR(st.st_mode))) {
      names.push_back(name);
    }
  }
  if (errno != 0) return OsError("list", path, errno);
  return names;
}

// Removes a group's directory: true if it did, false if it was already gone.
Result<bool> RemoveGroup(const Hierarchy& h, const std::string& path) {
  // On cgroupfs the files in a group are the kernel's and vanish with the
  // rmdir (which is refused while the group has processes or children); a
  // fake tree holds real files, which we delete to play the kernel's part.
  // Subdirectories stay (unlinkat refuses them), so the rmdir still fails as
  // it would on cgroupfs.
  if (!h.kernel) {
    if (DirPtr dir{opendir(path.c_str())}) {
      while (const dirent* e = readdir(dir.get())) unlinkat(dirfd(dir.get()), e->d_name, 0);
    }
  }
  if (rmdir(path.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  return OsError("remove", path, errno);
}

Result<Hierarchy> OpenHierarchy(const std::string& dir) {
  struct statfs fs;
  if (statfs(dir.c_str(), &fs) != 0) return OsError("open cgroup mount", dir, errno);
  const bool kernel = fs.f_type == CGROUP_SUPER_MAGIC || fs.f_type == CGROUP2_SUPER_MAGIC;
  return Hierarchy{dir, kernel};
}

std::string Join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : std::string(sep)) + i;
  return out;
}

// ---------------------------------------------------------------------------
// What v1 and v2 share: the tree of groups over one or more hierarchies (v1:
// one per controller mount, v2: one). They differ in limits and counters.

class CgroupTree : public CgroupHost {
 public:
  CgroupTree(std::vector<Hierarchy> trees, std::string parent, std::vector<std::string> parts)
      : trees_(std::move(trees)), parent_(std::move(parent)), parent_parts_(std::move(parts)) {}

  Status EnsureVm(const std::string& account, const std::string& vm) override {
    if (auto s = CheckNames(account, vm); !s) return s;
    for (const Hierarchy& h : trees_) {
      if (!DirExists(Group(h, account))) {
        return control::NotFoundError(
            fmt::format("cgroup: account group {} does not exist; create the account's group first",
                        Group(h, account)));
      }
      auto created = MakeDir(Group(h, account, vm));
      if (!created) return created.error();
      if (*created) {
        spdlog::debug("event=cgroup-created account={} vm={} mount={}", account, vm, h.dir);
      }
    }
    return Ok{};
  }

  Result<std::vector<std::string>> ProcsFiles(const std::string& account,
                                              const std::string& vm) const override {
    if (auto s = CheckNames(account, vm); !s) return s.error();
    std::vector<std::string> files;
    for (const Hierarchy& h : trees_) files.push_back(Group(h, account, vm) + "/cgroup.procs");
    return files;
  }

  Status AddProcess(const std::string& account, const std::string& vm, pid_t pid) override {
    if (auto s = CheckNames(account, vm); !s) return s;
    if (pid < 0) return control::InvalidError(fmt::format("cgroup: bad pid {}", pid));
    for (const Hierarchy& h : trees_) {
      if (auto s = WriteFile(h, Group(h, account, vm) + "/cgroup.procs", std::to_string(pid)); !s) {
        return s;
      }
    }
    return Ok{};
  }

  Result<CgroupUsage> VmUsage(const std::string& account, const std::string& vm) const override {
    if (auto s = CheckNames(account, vm); !s) return s.error();
    return Usage(account, vm);
  }

  Result<CgroupUsage> AccountUsage(const std::string& account) const override {
    if (auto s = CheckName("account", account); !s) return s.error();
    return Usage(account, "");
  }

  Result<std::vector<pid_t>> VmPids(const std::string& account,
                                    const std::string& vm) const override {
    if (auto s = CheckNames(account, vm); !s) return s.error();
    std::set<pid_t> all;
    for (const Hierarchy& h : trees_) {
      auto pids = ReadPids(Group(h, account, vm) + "/cgroup.procs");
      if (!pids) return pids.error();
      all.insert(pids->begin(), pids->end());
    }
    return std::vector<pid_t>(all.begin(), all.end());
  }

  Status RemoveVm(const std::string& account, const std::string& vm) override {
    auto pids = VmPids(account, vm);
    if (!pids) return pids.error();
    if (!pids->empty()) {
      std::vector<std::string> list;
      for (pid_t p : *pids) list.push_back(std::to_string(p));
      return control::InternalError(
          fmt::format("cgroup: VM group {}/{}/{} still has processes {}; kill them first", parent_,
                      account, vm, Join(list, ", ")));
    }
    bool removed = false;
    for (const Hierarchy& h : trees_) {
      auto r = RemoveGroup(h, Group(h, account, vm));
      if (!r) return r.error();
      removed |= *r;
    }
    if (removed) spdlog::debug("event=cgroup-removed account={} vm={}", account, vm);
    return Ok{};
  }

  Status RemoveAccount(const std::string& account) override {
    auto vms = Vms(account);
    if (!vms) return vms.error();
    if (!vms->empty()) {
      return control::InternalError(
          fmt::format("cgroup: account group {}/{} still has VM groups {}; remove them first",
                      parent_, account, Join(*vms, ", ")));
    }
    bool removed = false;
    for (const Hierarchy& h : trees_) {
      auto r = RemoveGroup(h, Group(h, account));
      if (!r) return r.error();
      removed |= *r;
    }
    if (removed) spdlog::info("event=cgroup-removed account={}", account);
    return Ok{};
  }

  Result<std::vector<std::string>> Accounts() const override { return Children(""); }

  Result<std::vector<std::string>> Vms(const std::string& account) const override {
    if (auto s = CheckName("account", account); !s) return s.error();
    return Children(account);
  }

 protected:
  // The counters of PARENT/ACCOUNT, or of PARENT/ACCOUNT/VM if `vm` is set.
  // REQUIRES: names checked.
  virtual Result<CgroupUsage> Usage(const std::string& account, const std::string& vm) const = 0;

  // The directory of PARENT, PARENT/ACCOUNT or PARENT/ACCOUNT/VM in `h`.
  std::string Group(const Hierarchy& h, std::string_view account = {},
                    std::string_view vm = {}) const {
    std::string path = h.dir + "/" + parent_;
    if (!account.empty()) path += fmt::format("/{}", account);
    if (!vm.empty()) path += fmt::format("/{}", vm);
    return path;
  }

  const std::vector<Hierarchy>& trees() const { return trees_; }
  const std::vector<std::string>& parent_parts() const { return parent_parts_; }

 private:
  // Groups under PARENT (account empty) or PARENT/ACCOUNT, in any hierarchy:
  // a group that exists in only some of them is a stray the reconciler must
  // see too.
  Result<std::vector<std::string>> Children(const std::string& account) const {
    std::set<std::string> names;
    for (const Hierarchy& h : trees_) {
      const std::string dir = Group(h, account);
      auto subdirs = SubDirs(dir);
      if (!subdirs) return subdirs.error();
      for (const std::string& name : *subdirs) {
        if (IsValidName(name)) {
          names.insert(name);
        } else {
          spdlog::warn("event=cgroup-foreign-group dir={} name={}", dir, Quote(name));
        }
      }
    }
    return std::vector<std::string>(names.begin(), names.end());
  }

  const std::vector<Hierarchy> trees_;
  const std::string parent_;
  const std::vector<std::string> parent_parts_;
};

// ---------------------------------------------------------------------------
// v1: one hierarchy per controller (cpu and cpuacct often share one).

class CgroupV1 final : public CgroupTree {
 public:
  CgroupV1(Hierarchy cpu, Hierarchy cpuacct, Hierarchy memory, Hierarchy pids, std::string parent,
           std::vector<std::string> parts)
      : CgroupTree(Distinct({cpu, cpuacct, memory, pids}), std::move(parent), std::move(parts)),
        cpu_(std::move(cpu)),
        cpuacct_(std::move(cpuacct)),
        memory_(std::move(memory)),
        pids_(std::move(pids)) {}

  std::string_view version() const override { return "v1"; }

  Status EnsureAccount(const std::string& account, const CgroupLimits& limits) override {
    if (auto s = CheckName("account", account); !s) return s;
    if (auto s = CheckLimits(limits); !s) return s;
    for (const Hierarchy& h : trees()) {
      std::string dir = h.dir;
      for (const auto& part : parent_parts()) {
        dir += "/" + part;
        if (auto made = MakeDir(dir); !made) return made.error();
      }
    }
    // Before the account group exists: see EnsureHierarchical.
    if (auto s = EnsureHierarchical(Group(memory_)); !s) return s;
    for (const Hierarchy& h : trees()) {
      auto created = MakeDir(Group(h, account));
      if (!created) return created.error();
      if (*created) spdlog::info("event=cgroup-created account={} mount={}", account, h.dir);
    }
    if (auto s = EnsureHierarchical(Group(memory_, account)); !s) return s;

    const std::string cpu = Group(cpu_, account);
    // The period first: the kernel checks each quota against the period in
    // force.
    if (auto s = WriteFile(cpu_, cpu + "/cpu.cfs_period_us", std::to_string(kCpuPeriodUsec)); !s) {
      return s;
    }
    const std::string quota =
        limits.cpus > 0 ? std::to_string(limits.cpus * kCpuPeriodUsec) : std::string("-1");
    if (auto s = WriteFile(cpu_, cpu + "/cpu.cfs_quota_us", quota); !s) return s;
    const std::string memory =
        limits.memory_mib > 0 ? std::to_string(limits.memory_mib * kMiB) : std::string("-1");
    if (auto s = WriteFile(memory_, Group(memory_, account) + "/memory.limit_in_bytes", memory);
        !s) {
      return s;
    }
    const std::string pids = limits.pids > 0 ? std::to_string(limits.pids) : std::string("max");
    return WriteFile(pids_, Group(pids_, account) + "/pids.max", pids);
  }

 protected:
  Result<CgroupUsage> Usage(const std::string& account, const std::string& vm) const override {
    CgroupUsage u;
    auto cpu_ns = ReadUint(Group(cpuacct_, account, vm) + "/cpuacct.usage");
    if (!cpu_ns) return cpu_ns.error();
    u.cpu_usec = *cpu_ns / 1000;
    const std::string memory = Group(memory_, account, vm);
    auto bytes = ReadUint(memory + "/memory.usage_in_bytes");
    if (!bytes) return bytes.error();
    u.memory_bytes = *bytes;
    auto peak = ReadOptionalUint(memory + "/memory.max_usage_in_bytes");
    if (!peak) return peak.error();
    u.memory_peak_bytes = *peak;
    auto pids = ReadUint(Group(pids_, account, vm) + "/pids.current");
    if (!pids) return pids.error();
    u.pids = *pids;
    return u;
  }

 private:
  static std::vector<Hierarchy> Distinct(const std::vector<Hierarchy>& all) {
    std::vector<Hierarchy> out;
    for (const Hierarchy& h : all) {
      if (std::none_of(out.begin(), out.end(),
                       [&](const Hierarchy& o) { return o.dir == h.dir; })) {
        out.push_back(h);
      }
    }
    return out;
  }

  // Old kernels charge a v1 memory group's children to it (and so hold them
  // to its limit) only with use_hierarchy=1, which new groups inherit and
  // which can change only while the group has no children. Newer kernels
  // have it fixed at 1, or no file.
  Status EnsureHierarchical(const std::string& group) const {
    const std::string path = group + "/memory.use_hierarchy";
    auto text = ReadOptionalFile(path);
    if (!text) return text.error();
    if (!text->has_value() || Trim(**text) == "1") return Ok{};
    return WriteFile(memory_, path, "1");
  }

  const Hierarchy cpu_, cpuacct_, memory_, pids_;
};

// ---------------------------------------------------------------------------
// v2: one unified hierarchy.

class CgroupV2 final : public CgroupTree {
 public:
  CgroupV2(Hierarchy root, std::string parent, std::vector<std::string> parts)
      : CgroupTree({root}, std::move(parent), std::move(parts)), root_(std::move(root)) {}

  std::string_view version() const override { return "v2"; }

  Status EnsureAccount(const std::string& account, const CgroupLimits& limits) override {
    if (auto s = CheckName("account", account); !s) return s;
    if (auto s = CheckLimits(limits); !s) return s;
    // Order matters: a group has memory.max and the like only once its parent
    // enables the controller in cgroup.subtree_control, so enable on the way
    // down, from the root to the account, before writing any limit.
    std::string dir = root_.dir;
    if (auto s = EnableControllers(dir); !s) return s;
    for (const auto& part : parent_parts()) {
      dir += "/" + part;
      if (auto made = MakeDir(dir); !made) return made.error();
      if (auto s = EnableControllers(dir); !s) return s;
    }
    const std::string group = Group(root_, account);
    auto created = MakeDir(group);
    if (!created) return created.error();
    if (*created) spdlog::info("event=cgroup-created account={} mount={}", account, root_.dir);

    const std::string cpu = limits.cpus > 0
                                ? fmt::format("{} {}", limits.cpus * kCpuPeriodUsec, kCpuPeriodUsec)
                                : fmt::format("max {}", kCpuPeriodUsec);
    if (auto s = WriteFile(root_, group + "/cpu.max", cpu); !s) return s;
    const std::string memory =
        limits.memory_mib > 0 ? std::to_string(limits.memory_mib * kMiB) : std::string("max");
    if (auto s = WriteFile(root_, group + "/memory.max", memory); !s) return s;
    const std::string pids = limits.pids > 0 ? std::to_string(limits.pids) : std::string("max");
    if (auto s = WriteFile(root_, group + "/pids.max", pids); !s) return s;
    // For the VMs' counters.
    return EnableControllers(group);
  }

 protected:
  Result<CgroupUsage> Usage(const std::string& account, const std::string& vm) const override {
    const std::string group = Group(root_, account, vm);
    CgroupUsage u;
    auto cpu = ReadKey(group + "/cpu.stat", "usage_usec");
    if (!cpu) return cpu.error();
    u.cpu_usec = *cpu;
    auto bytes = ReadUint(group + "/memory.current");
    if (!bytes) return bytes.error();
    u.memory_bytes = *bytes;
    auto peak = ReadOptionalUint(group + "/memory.peak");
    if (!peak) return peak.error();
    u.memory_peak_bytes = *peak;
    auto pids = ReadUint(group + "/pids.current");
    if (!pids) return pids.error();
    u.pids = *pids;
    return u;
  }

 private:
  // Enables cpu, memory and pids for the children of `group`, writing only
  // those not yet enabled: the root may be read-only in a container even
  // though everything is enabled there already.
  Status EnableControllers(const std::string& group) const {
    const std::string path = group + "/cgroup.subtree_control";
    auto text = ReadOptionalFile(path);
    if (!text) return text.error();
    std::set<std::string> enabled;
    if (text->has_value()) {
      std::string_view rest = **text;
      while (!(rest = Trim(rest)).empty()) {
        const size_t end = std::min(rest.find_first_of(" \n"), rest.size());
        std::string_view word = rest.substr(0, end);
        if (word.front() == '+') word.remove_prefix(1);  // as a fake tree holds our writes
        enabled.emplace(word);
        rest.remove_prefix(end);
      }
    }
    std::vector<std::string> missing;
    for (const char* c : {"cpu", "memory", "pids"}) {
      if (!enabled.count(c)) missing.push_back(std::string("+") + c);
    }
    if (missing.empty()) return Ok{};
    const std::string value = Join(missing, " ");
    if (auto s = WriteFile(root_, path, value); !s) {
      return control::InternalError(
          s.error().message +
          " (the parent must enable these controllers first, and a group that holds processes "
          "cannot enable controllers for its children: exed must not run inside its parent "
          "group)");
    }
    spdlog::info("event=cgroup-controllers-enabled controllers={} file={}", Quote(value), path);
    return Ok{};
  }

  const Hierarchy root_;
};

// ---------------------------------------------------------------------------
// Detection

struct Mount {
  std::string point;
  std::string type;
  std::vector<std::string> options;
};

// /proc/mounts escapes ' ', '\t', '\n' and '\' in paths as \ooo.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto octal = [&](size_t k) { return s[i + k] >= '0' && s[i + k] <= '7'; };
    if (s[i] == '\\' && i + 3 < s.size() && octal(1) && octal(2) && octal(3)) {
      out.push_back(
          static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(sep, start), s.size());
    if (end > start) out.emplace_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::vector<Mount> ParseMounts(std::string_view text) {
  std::vector<Mount> mounts;
  for (const std::string& line : Split(text, '\n')) {
    const std::vector<std::string> f = Split(line, ' ');
    if (f.size() < 4) continue;
    mounts.push_back({Unescape(f[1]), f[2], Split(f[3], ',')});
  }
  return mounts;
}

Result<std::unique_ptr<CgroupHost>> NewV2(const std::string& dir, std::string parent,
                                          std::vector<std::string> parts) {
  auto root = OpenHierarchy(dir);
  if (!root) return root.error();
  auto controllers = ReadFile(dir + "/cgroup.controllers");
  if (!controllers) return controllers.error();
  const std::vector<std::string> have = Split(Trim(*controllers), ' ');
  for (const char* c : {"cpu", "memory", "pids"}) {
    if (std::find(have.begin(), have.end(), c) == have.end()) {
      return control::InternalError(fmt::format(
          "cgroup v2 {} controller not available at {} (cgroup.controllers: {}); exed needs "
          "cpu, memory and pids",
          c, dir, Quote(Trim(*controllers))));
    }
  }
  spdlog::info("event=cgroup-detected version=v2 mount={} parent={}", dir, parent);
  return std::unique_ptr<CgroupHost>(
      std::make_unique<CgroupV2>(std::move(root.value()), std::move(parent), std::move(parts)));
}

}  // namespace

Result<std::unique_ptr<CgroupHost>> DetectCgroups(const std::string& mounts_text,
                                                  const std::string& root_prefix,
                                                  const std::string& parent) {
  auto parts = SplitParent(parent);
  if (!parts) return parts.error();
  const Mount* unified = nullptr;
  const Mount* other_v2 = nullptr;
  std::map<std::string, std::string> v1;  // controller -> mount point; the first one wins
  const std::vector<Mount> mounts = ParseMounts(mounts_text);
  for (const Mount& m : mounts) {
    if (m.type == "cgroup2") {
      if (m.point == kV2Mount) unified = &m;
      if (!other_v2) other_v2 = &m;
    } else if (m.type == "cgroup") {
      for (const std::string& o : m.options) {
        if (o == "cpu" || o == "cpuacct" || o == "memory" || o == "pids") v1.emplace(o, m.point);
      }
    }
  }
  if (unified) return NewV2(root_prefix + unified->point, parent, std::move(parts.value()));
  if (!v1.empty()) {
    for (const char* c : {"cpu", "cpuacct", "memory", "pids"}) {
      if (!v1.count(c)) {
        return control::InternalError(fmt::format(
            "cgroup v1 {} controller not mounted; exed needs cpu, cpuacct, memory and pids", c));
      }
    }
    std::map<std::string, Hierarchy> h;
    for (const auto& [controller, point] : v1) {
      auto opened = OpenHierarchy(root_prefix + point);
      if (!opened) return opened.error();
      h[controller] = std::move(opened.value());
    }
    spdlog::info("event=cgroup-detected version=v1 cpu={} cpuacct={} memory={} pids={} parent={}",
                 h["cpu"].dir, h["cpuacct"].dir, h["memory"].dir, h["pids"].dir, parent);
    return std::unique_ptr<CgroupHost>(std::make_unique<CgroupV1>(
        h["cpu"], h["cpuacct"], h["memory"], h["pids"], parent, std::move(parts.value())));
  }
  if (other_v2) return NewV2(root_prefix + other_v2->point, parent, std::move(parts.value()));
  return control::InternalError(
      "cgroup: no cgroup filesystem in /proc/mounts; exed needs cgroup v2 at /sys/fs/cgroup, "
      "or cgroup v1 with cpu, cpuacct, memory and pids");
}

}  // namespace vmm
