#include "vmm/disk.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

extern char** environ;

namespace vmm {

namespace {

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

}  // namespace

control::Result<std::string> RunCommand(const std::vector<std::string>& argv) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return control::InternalError("pipe failed");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return control::InternalError("pipe failed");
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    return control::InternalError(fmt::format("cannot run {}: {}", argv[0], std::strerror(rc)));
  }
  // stderr of these tools is small; reading stdout first cannot deadlock on it.
  std::string o = ReadAll(out[0]);
  std::string e = ReadAll(err[0]);
  ::close(out[0]);
  ::close(err[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!e.empty() && e.back() == '\n') e.pop_back();
    return control::InternalError(fmt::format("{} failed: {}", argv[0], e));
  }
  return o;
}

control::Status CreateOverlay(const std::string& base_raw, const std::string& path, int64_t size_gib) {
  auto r = RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", "-b", base_raw, "-F", "raw", path,
                       std::to_string(size_gib) + "G"});
  if (!r) return r.error();
  return control::Ok{};
}

control::Status GrowDisk(const std::string& path, int64_t size_gib) {
  auto info = InspectDisk(path);
  if (!info) return info.error();
  uint64_t want = static_cast<uint64_t>(size_gib) << 30;
  if (want < info->virtual_bytes) return control::InvalidError("a disk only grows");
  if (want == info->virtual_bytes) return control::Ok{};
  auto r = RunCommand({"qemu-img", "resize", "-q", "-f", "qcow2", path, std::to_string(size_gib) + "G"});
  if (!r) return r.error();
  return control::Ok{};
}

control::Result<DiskInfo> InspectDisk(const std::string& path) {
  auto r = RunCommand({"qemu-img", "info", "-U", "--output=json", path});
  if (!r) return r.error();
  try {
    auto j = nlohmann::json::parse(*r);
    return DiskInfo{j.at("virtual-size").get<uint64_t>(), j.value("actual-size", uint64_t{0})};
  } catch (const std::exception& e) {
    return control::InternalError(std::string("unreadable qemu-img info: ") + e.what());
  }
}

control::Status CopyDisk(const std::string& src, const std::string& dst) {
  auto r = RunCommand({"cp", "--reflink=auto", "--sparse=always", src, dst});
  if (!r) return r.error();
  return control::Ok{};
}

}  // namespace vmm
