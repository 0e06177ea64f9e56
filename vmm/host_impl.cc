#include "vmm/host_impl.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "vmm/console.h"
#include "vmm/disk.h"
#include "vmm/guest_ssh.h"
#include "vmm/launcher.h"
#include "vmm/network.h"
#include "vmm/qemu_args.h"
#include "vmm/qmp.h"
#include "vmm/tar_writer.h"

namespace vmm {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using control::InternalError;
using control::Result;
using control::Status;

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Step(const Progress& p, std::string_view s) { return !p || p(s); }

}  // namespace

Status HostImpl::GuardHostLoopback() {
  // passt makes a guest's outbound connections as the VM user. With
  // --no-map-gw it does not map the gateway to the host, but a guest with
  // root can still route 127.0.0.1 to its NIC, and passt connects to local
  // addresses as asked. So: that user may open no new connection to any
  // address of this host. Replies on the forwarded ports are established
  // connections and pass. exed itself runs as another user (root).
  std::string rules = fmt::format(
      "table inet exed_guard\ndelete table inet exed_guard\n"
      "table inet exed_guard {{\n"
      "  chain output {{\n"
      "    type filter hook output priority 0; policy accept;\n"
      "    meta skuid {} fib daddr type local ct state new reject\n"
      "  }}\n"
      "}}\n",
      run_as_->uid);
  std::string path = config_.state_dir + "/guard.nft";
  std::ofstream(path) << rules;
  auto r = RunCommand({"nft", "-f", path});
  if (!r) {
    return InternalError("cannot keep guests away from this host's loopback services (nftables): " +
                         r.error().message);
  }
  spdlog::info("event=loopback-guard uid={}", run_as_->uid);
  return control::Ok{};
}

Status HostImpl::OwnForGuest(const std::string& path) {
  // QEMU and passt run as the unprivileged user: they create sockets and the
  // console log in the VM's directory and write its disk.
  if (!run_as_) return control::Ok{};
  if (::chown(path.c_str(), run_as_->uid, run_as_->gid) != 0) {
    return InternalError(fmt::format("cannot hand {} to user {}: {}", path, config_.run_as, std::strerror(errno)));
  }
  return control::Ok{};
}

namespace {

std::string Ed25519Of(const std::vector<std::string>& keys) {
  for (const auto& k : keys) {
    if (k.rfind("ssh-ed25519 ", 0) == 0) return k;
  }
  return "";
}

}  // namespace

Result<std::unique_ptr<HostImpl>> HostImpl::Make(HostConfig config) {
  auto cg = DetectCgroups(ReadFile("/proc/mounts"), "", config.cgroup_parent);
  if (!cg) return cg.error();
  Accel accel = DetectAccel(config.accel_override);
  std::unique_ptr<HostImpl> h(new HostImpl(std::move(config), std::move(accel), std::move(*cg)));
  if (::geteuid() == 0) {
    auto who = LookupUser(h->config_.run_as);
    if (!who) return control::InternalError("VMs run as user '" + h->config_.run_as + "': " + who.error().message +
                                            "; ops/setup creates it");
    h->run_as_ = *who;
    if (auto g = h->GuardHostLoopback(); !g) return g.error();
  }
  auto pub = EnsureGatewayKey(h->config_.state_dir + "/gateway", &h->gateway_key_);
  if (!pub) return pub.error();
  h->gateway_pub_ = *pub;
  std::error_code ec;
  fs::create_directories(h->config_.state_dir + "/vms", ec);
  spdlog::info("event=vm-host accel={} why=\"{}\" cgroups={}", h->accel_.name, h->accel_.why, h->cgroups_->version());
  return h;
}

HostImpl::HostImpl(HostConfig config, Accel accel, std::unique_ptr<CgroupHost> cgroups)
    : config_(std::move(config)), accel_(std::move(accel)), cgroups_(std::move(cgroups)) {}

std::string HostImpl::VmDir(const VmDef& vm) const {
  return config_.state_dir + "/vms/" + std::to_string(vm.id);
}

std::vector<Image> HostImpl::Images() { return ListImages(config_.images_dir); }

Result<Image> HostImpl::FindImage(const std::string& name) { return LoadImage(config_.images_dir, name); }

Status HostImpl::SetAccountLimits(const std::string& account, int64_t cpus, int64_t memory_mib, int64_t max_vms) {
  // A VM is QEMU (a thread per vCPU, I/O and RCU threads, a worker pool of up
  // to 64) plus passt: 128 tasks each leaves room and still stops a fork bomb
  // from ever leaving its account.
  constexpr int64_t kTasksPerVm = 128;
  return cgroups_->EnsureAccount(account, {cpus, memory_mib, std::max<int64_t>(1, max_vms) * kTasksPerVm});
}

Status HostImpl::WriteConfigDisk(const VmDef& vm, const Image& image) {
  std::string env;
  for (const auto& [k, v] : vm.env) env += k + "=" + v + "\n";
  std::vector<TarFile> files = {{"exed/hostname", vm.name + "\n"},
                                {"exed/authorized_keys", gateway_pub_ + "\n"},
                                {"exed/env", env},
                                {"exed/user", image.user + "\n"},
                                // a copied disk learns it is another VM (new host keys)
                                {"exed/vm-id", std::to_string(vm.id) + "\n"}};
  if (!vm.setup_script.empty()) files.push_back({"exed/setup.sh", vm.setup_script, 0755});
  auto tar = MakeTar(files);
  if (!tar) return tar.error();
  std::string path = VmDir(vm) + "/config.tar";
  std::ofstream out(path + ".tmp", std::ios::binary | std::ios::trunc);
  out << *tar;
  out.close();
  if (!out || std::rename((path + ".tmp").c_str(), path.c_str()) != 0) {
    return InternalError(fmt::format("cannot write the config disk {}: {}", path, std::strerror(errno)));
  }
  return control::Ok{};
}

Result<Started> HostImpl::Create(const VmDef& vm, const Progress& progress, bool wait_ready) {
  const auto t_begin = Clock::now();
  auto image = FindImage(vm.image);
  if (!image) return image.error();
  std::error_code ec;
  fs::create_directories(VmDir(vm), ec);
  if (ec) return InternalError("cannot make " + VmDir(vm) + ": " + ec.message());
  if (!Step(progress, "creating disk")) {
    (void)Destroy(vm);
    return InternalError("the client went away");
  }
  // The real path: an image name is a symlink that a rebuild moves on, and
  // the disk's base must never change under it.
  std::string base = fs::canonical(image->rootfs, ec).string();
  if (ec) {
    (void)Destroy(vm);
    return InternalError("image " + vm.image + " has no root filesystem: " + ec.message());
  }
  if (auto s = CreateOverlay(base, VmDir(vm) + "/disk.qcow2", vm.disk_gib); !s) {
    (void)Destroy(vm);
    return InternalError("cannot create the VM's disk: " + s.error().message);
  }
  spdlog::debug("event=vm-disk vm={} ms={}", vm.name,
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t_begin).count());
  auto r = Start(vm, progress, wait_ready);
  if (!r) (void)Destroy(vm);
  return r;
}

Result<Started> HostImpl::Start(const VmDef& vm, const Progress& progress, bool wait_ready) {
  const auto t_begin = Clock::now();
  auto ms_since = [&](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t - t_begin).count();
  };
  auto image = FindImage(vm.image);
  if (!image) return image.error();
  const std::string dir = VmDir(vm);
  if (!fs::exists(dir + "/disk.qcow2")) return InternalError("the VM's disk is missing: " + dir + "/disk.qcow2");
  if (auto s = WriteConfigDisk(vm, *image); !s) return s.error();
  if (auto s = cgroups_->EnsureVm(vm.account, CgroupName(vm)); !s) return s.error();
  auto procs = cgroups_->ProcsFiles(vm.account, CgroupName(vm));
  if (!procs) return procs.error();
  if (auto s = OwnForGuest(dir); !s) return s.error();
  if (auto s = OwnForGuest(dir + "/disk.qcow2"); !s) return s.error();

  NetSpec net;
  net.ssh_host_port = vm.ssh_port;
  net.web_host_port = vm.web_port;
  net.guest_web_port = vm.guest_web_port;
  net.passt_socket = dir + "/passt.sock";
  net.passt_log = dir + "/passt.log";
  net.passt_pid_file = dir + "/passt.pid";
  if (auto e = CheckNetSpec(net)) return InternalError(*e);
  if (auto s = RemoveStaleSocket(net.passt_socket); !s) return s.error();
  if (!Step(progress, "starting network")) return InternalError("the client went away");
  LaunchSpec passt;
  passt.argv = PasstArgs(net, config_.passt_binary);
  passt.run_as = run_as_;
  passt.cgroup_procs = *procs;
  passt.log_path = dir + "/passt.out";
  auto passt_pid = Launch(passt);
  if (!passt_pid) return passt_pid.error();
  for (auto until = Clock::now() + std::chrono::seconds(5); !SocketExists(net.passt_socket);) {
    if (Clock::now() > until || !Alive(*passt_pid)) {
      (void)KillAll(vm);
      return InternalError("passt did not start: " + TailFile(dir + "/passt.out", 5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  const auto t_passt = Clock::now();
  VmSpec spec;
  spec.name = QemuName(vm);
  spec.cpus = static_cast<int>(vm.cpus);
  spec.memory_mib = vm.memory_mib;
  spec.kernel = image->kernel;
  spec.initrd = image->initrd;
  spec.cmdline = image->cmdline;
  spec.disk = dir + "/disk.qcow2";
  spec.config_disk = dir + "/config.tar";
  spec.vm_dir = dir;
  spec.net = net;
  if (auto e = CheckVmSpec(spec)) {
    (void)KillAll(vm);
    return InternalError(*e);
  }
  // The console appends across boots: this boot's markers are what comes
  // after its present end.
  BootWatch watch(ConsoleLogPath(dir), ConsoleSize(ConsoleLogPath(dir)), ConsoleSize(QemuLogPath(dir)));
  LaunchSpec qemu;
  qemu.argv = BuildQemuArgs(spec, accel_, config_.qemu_binary);
  qemu.cgroup_procs = *procs;
  qemu.log_path = QemuLogPath(dir);
  qemu.run_as = run_as_;
  if (!Step(progress, fmt::format("starting qemu ({})", accel_.name))) {
    (void)KillAll(vm);
    return InternalError("the client went away");
  }
  auto pid = Launch(qemu);
  if (!pid) {
    (void)KillAll(vm);
    return pid.error();
  }
  const auto t_qemu = Clock::now();
  spdlog::info("event=vm-start vm={} id={} pid={} accel={} passt_ms={} qemu_ms={}", vm.name, vm.id, *pid, accel_.name,
               ms_since(t_passt), ms_since(t_qemu));
  if (!wait_ready) return Started{*pid, ""};
  if (!Step(progress, "booting")) {
    (void)KillAll(vm);
    return InternalError("the client went away");
  }
  // Wait in slices so a client that leaves is noticed within a second.
  auto deadline = Clock::now() + config_.boot_timeout;
  watch.qemu_started = t_qemu;
  bool said_ssh = false;
  while (true) {
    auto r = WaitReadyFor(vm, *pid, std::chrono::seconds(1), &watch);
    if (r) {
      auto at = [&](Clock::time_point t) { return t == Clock::time_point{} ? -1 : ms_since(t); };
      spdlog::info("event=vm-ready vm={} id={} ms={} qemu_ms={} hostkey_ms={} ready_ms={} probes={}", vm.name, vm.id,
                   ms_since(Clock::now()), ms_since(t_qemu), at(watch.hostkey_seen), at(watch.ready_seen),
                   watch.probes);
      return r;
    }
    const bool timed_out = Clock::now() > deadline;
    if (r.error().kind == control::ErrorKind::kDenied || watch.paused_on_error || !Alive(*pid) || timed_out) {
      auto at = [&](Clock::time_point t) { return t == Clock::time_point{} ? -1 : ms_since(t); };
      // What the guest got to: the files go with a failed `new`.
      spdlog::error("event=vm-boot-failed vm={} id={} ms={} hostkey_ms={} ready_ms={} probes={} console=\"{}\"",
                    vm.name, vm.id, ms_since(Clock::now()), at(watch.hostkey_seen), at(watch.ready_seen),
                    watch.probes, LinesSince(ConsoleLogPath(dir), watch.console_offset, 8));
      (void)KillAll(vm);
      if (!timed_out) return InternalError(r.error().message);
      std::string console = LinesSince(ConsoleLogPath(dir), watch.console_offset, 1);
      return InternalError(r.error().message + " (boot timed out" +
                           (console.empty() ? "; the guest printed nothing" : "; the guest's last line: " + console) +
                           ")");
    }
    if (!said_ssh && watch.hostkey_seen != Clock::time_point{}) {
      said_ssh = true;
      if (!Step(progress, "waiting for ssh")) {
        (void)KillAll(vm);
        return InternalError("the client went away");
      }
    } else if (progress && !progress("")) {
      (void)KillAll(vm);
      return InternalError("the client went away");
    }
  }
}

Result<Started> HostImpl::WaitReady(const VmDef& vm, int pid, std::chrono::seconds timeout) {
  // Every boot's output: this one's may be written already.
  BootWatch watch(ConsoleLogPath(VmDir(vm)), 0, 0);
  watch.qemu_started = Clock::now();
  return WaitReadyFor(vm, pid, timeout, &watch);
}

Result<Started> HostImpl::WaitReadyFor(const VmDef& vm, int pid, Clock::duration timeout, BootWatch* watch) {
  const std::string dir = VmDir(vm);
  auto deadline = Clock::now() + timeout;
  std::string last = "no answer yet";
  do {
    if (!IsRunning(vm, pid)) {
      // This boot's last words only (both logs append across boots), on one line.
      std::string said = LinesSince(QemuLogPath(dir), watch->qemu_log_offset, 3);
      std::string console = LinesSince(ConsoleLogPath(dir), watch->console_offset, 3);
      return InternalError("QEMU exited" + (said.empty() ? "" : ": " + said) +
                           (console.empty() ? "" : " (console: " + console + ")"));
    }
    if (auto s = CheckNotPaused(vm, watch); !s) return s.error();
    watch->console.Poll();
    const auto now = Clock::now();
    std::string announced = Ed25519Of(watch->console.markers().host_keys());
    if (!announced.empty() && watch->hostkey_seen == Clock::time_point{}) watch->hostkey_seen = now;
    bool ready = watch->console.markers().ready();
    if (ready && watch->ready_seen == Clock::time_point{}) watch->ready_seen = now;
    // The key to trust: pinned at first boot, else the one the guest printed
    // on its console this boot (a local channel no network peer can write).
    std::string expected = vm.host_key.empty() ? announced : vm.host_key;
    // Probe once the guest says its sshd listens (`exed-ready`), not before:
    // passt accepts a connection on the host side at once, and while the
    // guest has no network yet (its host key line comes before DHCP) the
    // probe hangs for its whole time limit, long after sshd is up. A guest
    // that never says so is probed anyway after kProbeAnywayAfter.
    bool probe_now = !expected.empty() &&
                     (ready || (now - watch->qemu_started > kProbeAnywayAfter && now >= watch->next_blind_probe));
    if (probe_now) {
      GuestEndpoint ep{vm.ssh_port, gateway_key_, "root", expected};
      ++watch->probes;
      int& ran_out = ready ? watch->slow_probes : watch->blind_probes;
      auto limit = std::min<std::chrono::seconds>(ready ? kReadyProbeTimeout * (1 + ran_out)
                                                        : kEarlyProbeTimeout * (1 << std::min(ran_out, 4)),
                                                  std::chrono::seconds(30));
      auto probe = ProbeGuest(ep, limit);
      if (!probe && Clock::now() - now >= limit - std::chrono::milliseconds(100)) ++ran_out;
      if (!ready) watch->next_blind_probe = Clock::now() + std::chrono::seconds(1);
      spdlog::debug("event=guest-probe vm={} ok={} ms={} error=\"{}\"", vm.name, static_cast<bool>(probe),
                    std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - now).count(),
                    probe ? "" : probe.error().message);
      if (probe) return Started{pid, *probe};
      if (probe.error().kind == control::ErrorKind::kDenied) {
        spdlog::error("event=guest-hostkey-mismatch vm={} error=\"{}\"", vm.name, probe.error().message);
        return probe.error();
      }
      last = probe.error().message;
    } else if (!expected.empty()) {
      last = "the guest has not said its sshd is up (no exed-ready on its console)";
    } else {
      last = "the guest has not announced its host key on its console";
    }
    std::this_thread::sleep_for(probe_now ? std::chrono::milliseconds(100) : kConsolePoll);
  } while (Clock::now() < deadline);
  return InternalError("the guest is not ready: " + last);
}

Status HostImpl::CheckNotPaused(const VmDef& vm, BootWatch* watch) {
  // QEMU stops the guest (runstate io-error) when a write to its disk fails
  // on the host, ENOSPC above all: it then waits, forever, for someone to
  // free space and say `cont`. Waiting for its sshd would end only at the
  // boot timeout, with a misleading "not answering".
  const auto now = Clock::now();
  if (now < watch->next_status_check) return control::Ok{};
  watch->next_status_check = now + std::chrono::seconds(1);
  if (!watch->qmp) {
    auto c = QmpClient::Connect(QmpSocketPath(VmDir(vm)), std::chrono::milliseconds(200));
    if (!c) return control::Ok{};  // not up yet; next time
    watch->qmp = std::move(*c);
  }
  auto status = watch->qmp->QueryStatus(std::chrono::milliseconds(500));
  if (!status) {
    watch->qmp.reset();
    return control::Ok{};
  }
  if (*status != "io-error") return control::Ok{};
  std::string why = "an I/O error";
  if (auto blocks = watch->qmp->Execute("query-block", nullptr, std::chrono::milliseconds(500)); blocks) {
    for (const auto& b : *blocks) {
      if (b.value("device", "") != "root") continue;
      std::string io = b.value("io-status", "");
      if (io == "nospace") why = "No space left on device";
      if (io == "failed") why = "a write that failed";
    }
  }
  spdlog::error("event=vm-io-error vm={} id={} why=\"{}\"", vm.name, vm.id, why);
  watch->paused_on_error = true;
  return InternalError(fmt::format("the host could not store the VM's disk ({}); QEMU paused the guest", why));
}

int HostImpl::PidFromFile(const VmDef& vm) {
  std::string s = ReadFile(QemuPidPath(VmDir(vm)));
  int pid = std::atoi(s.c_str());
  return pid > 0 && IsRunning(vm, pid) ? pid : 0;
}

Status HostImpl::KillAll(const VmDef& vm) {
  // Everything in the VM's cgroup is the VM's (QEMU and passt): nothing may survive it.
  auto pids = cgroups_->VmPids(vm.account, CgroupName(vm));
  if (!pids) return pids.error();
  for (pid_t p : *pids) ::kill(p, SIGKILL);
  for (int i = 0; i < 100; ++i) {
    auto left = cgroups_->VmPids(vm.account, CgroupName(vm));
    if (left && left->empty()) return control::Ok{};
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return InternalError(fmt::format("processes of VM {} survived SIGKILL", vm.name));
}

Status HostImpl::Stop(const VmDef& vm) {
  int pid = PidFromFile(vm);
  if (pid) {
    // Flush the guest's page cache to its disk first: microvm has no ACPI
    // power button, so the end is QMP `quit`, and what is synced survives.
    GuestEndpoint ep{vm.ssh_port, gateway_key_, "root", vm.host_key};
    auto synced = RunInGuest(ep, "sync", std::chrono::seconds(20));
    if (!synced) spdlog::warn("event=vm-stop-unsynced vm={} error=\"{}\"", vm.name, synced.error().message);
    auto qmp = QmpClient::Connect(QmpSocketPath(VmDir(vm)), std::chrono::seconds(3));
    if (qmp) (void)(*qmp)->Quit();
    for (int i = 0; i < 100 && IsRunning(vm, pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return KillAll(vm);
}

Status HostImpl::Destroy(const VmDef& vm) {
  if (auto s = Stop(vm); !s) return s;
  if (auto s = cgroups_->RemoveVm(vm.account, CgroupName(vm)); !s) return s;
  std::error_code ec;
  fs::remove_all(VmDir(vm), ec);
  if (ec) return InternalError("cannot remove " + VmDir(vm) + ": " + ec.message());
  return control::Ok{};
}

Status HostImpl::CloneDisk(const VmDef& src, const VmDef& dst) {
  std::error_code ec;
  fs::create_directories(VmDir(dst), ec);
  if (ec) return InternalError("cannot make " + VmDir(dst) + ": " + ec.message());
  int pid = PidFromFile(src);
  std::unique_ptr<QmpClient> qmp;
  if (pid) {
    // A consistent copy of a running VM: flush its caches, pause it, copy, resume.
    GuestEndpoint ep{src.ssh_port, gateway_key_, "root", src.host_key};
    (void)RunInGuest(ep, "sync", std::chrono::seconds(20));
    auto c = QmpClient::Connect(QmpSocketPath(VmDir(src)), std::chrono::seconds(3));
    if (!c) return c.error();
    qmp = std::move(*c);
    if (auto r = qmp->Execute("stop"); !r) return r.error();
  }
  auto copied = vmm::CopyDisk(VmDir(src) + "/disk.qcow2", VmDir(dst) + "/disk.qcow2");
  if (qmp) (void)qmp->Execute("cont");
  return copied;
}

Status HostImpl::GrowDisk(const VmDef& vm, int64_t disk_gib) {
  int pid = PidFromFile(vm);
  if (!pid) return vmm::GrowDisk(VmDir(vm) + "/disk.qcow2", disk_gib);
  auto qmp = QmpClient::Connect(QmpSocketPath(VmDir(vm)), std::chrono::seconds(3));
  if (!qmp) return qmp.error();
  auto r = (*qmp)->Execute("block_resize", {{"device", "root"}, {"size", disk_gib << 30}});
  if (!r) return r.error();
  return control::Ok{};
}

namespace {

std::vector<std::string> ProcArgv(const std::string& proc_dir) {
  std::string raw = ReadFile(proc_dir + "/cmdline");
  std::vector<std::string> argv;
  for (size_t start = 0; start < raw.size();) {
    size_t nul = raw.find('\0', start);
    if (nul == std::string::npos) nul = raw.size();
    argv.push_back(raw.substr(start, nul - start));
    start = nul + 1;
  }
  return argv;
}

// The VM id in `-name exed-vm-ID`; 0 if there is none.
int64_t QemuVmId(const std::vector<std::string>& argv) {
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == "-name" && argv[i + 1].rfind("exed-vm-", 0) == 0) {
      const std::string digits = argv[i + 1].substr(8);
      if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
      return std::stoll(digits);
    }
  }
  return 0;
}

}  // namespace

bool HostImpl::IsOurQemu(const std::vector<std::string>& argv, int64_t id) const {
  if (id <= 0 || QemuVmId(argv) != id) return false;
  // Another exed on this machine (another state directory) numbers its VMs
  // from 1 too: ours name their pid file under our runtime directory.
  auto it = std::find(argv.begin(), argv.end(), "-pidfile");
  // Without one, not ours to judge: never start a second QEMU on its disk.
  if (it == argv.end() || it + 1 == argv.end()) return true;
  const std::string& pidfile = *(it + 1);
  const std::string own = fmt::format("{}/vms/{}/qemu.pid", config_.state_dir, id);
  if (pidfile == own) return true;
  // The same directory spelled another way (through a symlink)?
  const std::string tail = fmt::format("/vms/{}/qemu.pid", id);
  if (pidfile.size() <= tail.size() || pidfile.compare(pidfile.size() - tail.size(), tail.size(), tail) != 0) {
    return false;
  }
  std::error_code ec;
  return fs::equivalent(pidfile.substr(0, pidfile.size() - tail.size()), config_.state_dir, ec);
}

bool HostImpl::IsRunning(const VmDef& vm, int pid) {
  return pid > 0 && Alive(pid) && IsOurQemu(ProcArgv("/proc/" + std::to_string(pid)), vm.id);
}

Result<VmStats> HostImpl::Stat(const VmDef& vm, int pid) {
  VmStats st;
  st.running = IsRunning(vm, pid);
  st.pid = st.running ? pid : 0;
  auto usage = cgroups_->VmUsage(vm.account, CgroupName(vm));
  if (usage) {
    st.cpu_usec = usage->cpu_usec;
    st.memory_bytes = usage->memory_bytes;
    st.memory_peak_bytes = usage->memory_peak_bytes;
  }
  auto disk = InspectDisk(VmDir(vm) + "/disk.qcow2");
  if (disk) {
    st.disk_virtual_bytes = disk->virtual_bytes;
    st.disk_allocated_bytes = disk->allocated_bytes;
  }
  return st;
}

std::string HostImpl::ConsoleTail(const VmDef& vm, size_t lines) {
  return TailFile(ConsoleLogPath(VmDir(vm)), lines);
}

std::vector<std::pair<int64_t, int>> HostImpl::RunningVmProcesses() {
  std::vector<std::pair<int64_t, int>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto argv = ProcArgv(e.path().string());
    int64_t id = QemuVmId(argv);
    if (id > 0 && IsOurQemu(argv, id) && Alive(std::atoi(name.c_str()))) out.emplace_back(id, std::atoi(name.c_str()));
  }
  return out;
}

}  // namespace vmm
