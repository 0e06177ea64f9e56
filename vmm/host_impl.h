// HostImpl: vmm::Host on this machine: qcow2 disks, a config disk, a cgroup
// per VM under its account's, passt for networking and one detached QEMU per
// VM, checked ready through its own sshd with the gateway key.
//
// Files of VM <id> live in RUNTIME/vms/<id>/ (disk.qcow2, config.tar,
// console.log, qmp.sock, passt.sock, logs). Thread-safety as in host.h.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmm/accel.h"
#include "vmm/cgroup.h"
#include "vmm/console.h"
#include "vmm/host.h"
#include "vmm/launcher.h"
#include "vmm/qmp.h"

namespace vmm {

struct HostConfig {
  std::string state_dir;   // RUNTIME: vms/ and gateway/ live here
  std::string images_dir;
  std::string qemu_binary = "qemu-system-x86_64";
  std::string passt_binary = "passt";
  std::string accel_override;   // "", "kvm", "tcg"
  std::string run_as = "exed";  // QEMU and passt drop to this user when exed is root
  std::string cgroup_parent = "exed";
  std::chrono::seconds boot_timeout{180};
};

class HostImpl : public Host {
 public:
  // Detects cgroups and the accelerator and makes the gateway key.
  static control::Result<std::unique_ptr<HostImpl>> Make(HostConfig config);

  std::vector<Image> Images() override;
  control::Result<Image> FindImage(const std::string& name) override;
  std::string accel_name() const override { return accel_.name; }
  control::Status SetAccountLimits(const std::string& account, int64_t cpus, int64_t memory_mib, int64_t max_vms) override;
  control::Result<Started> Create(const VmDef& vm, const Progress& progress, bool wait_ready) override;
  control::Result<Started> Start(const VmDef& vm, const Progress& progress, bool wait_ready) override;
  control::Result<Started> WaitReady(const VmDef& vm, int pid, std::chrono::seconds timeout) override;
  control::Status Stop(const VmDef& vm) override;
  control::Status Destroy(const VmDef& vm) override;
  control::Status CloneDisk(const VmDef& src, const VmDef& dst) override;
  control::Status GrowDisk(const VmDef& vm, int64_t disk_gib) override;
  bool IsRunning(const VmDef& vm, int pid) override;
  control::Result<VmStats> Stat(const VmDef& vm, int pid) override;
  std::string ConsoleTail(const VmDef& vm, size_t lines) override;
  std::vector<std::pair<int64_t, int>> RunningVmProcesses() override;

  const std::string& gateway_public_key() const { return gateway_pub_; }
  std::string gateway_key_path() const override { return gateway_key_; }
  std::string_view cgroup_version() const { return cgroups_->version(); }

 private:
  HostImpl(HostConfig config, Accel accel, std::unique_ptr<CgroupHost> cgroups);
  std::string VmDir(const VmDef& vm) const;
  static std::string CgroupName(const VmDef& vm) { return "vm-" + std::to_string(vm.id); }
  static std::string QemuName(const VmDef& vm) { return "vm-" + std::to_string(vm.id); }
  // What the wait for a booting guest has seen so far (vm-ready log line).
  struct BootWatch {
    BootWatch(std::string console_path, uint64_t console_offset, uint64_t qemu_log_offset)
        : console(std::move(console_path), console_offset),
          console_offset(console_offset),
          qemu_log_offset(qemu_log_offset) {}
    ConsoleWatch console;
    uint64_t console_offset;   // where this boot's output starts in console.log
    uint64_t qemu_log_offset;  // and in qemu.log (both append)
    std::chrono::steady_clock::time_point qemu_started{};
    std::chrono::steady_clock::time_point hostkey_seen{};
    std::chrono::steady_clock::time_point ready_seen{};
    int probes = 0;
    int slow_probes = 0;   // probes after exed-ready that ran out of time
    int blind_probes = 0;  // probes before it (kProbeAnywayAfter) that ran out of time
    std::chrono::steady_clock::time_point next_blind_probe{};
    std::unique_ptr<QmpClient> qmp;  // to see a guest paused on a disk error
    std::chrono::steady_clock::time_point next_status_check{};
    bool paused_on_error = false;  // waiting longer is pointless
  };
  // kInternal naming the cause when QEMU paused the guest on a disk error
  // (the host's file system is full); Ok otherwise, also when QMP does not
  // answer (yet).
  control::Status CheckNotPaused(const VmDef& vm, BootWatch* watch);
  // A guest that has not printed `exed-ready` this long after QEMU started is
  // probed anyway (an image, or a guest changed by its user, that does not
  // print it), once a second at most. Not sooner: on a busy host a tiny boot
  // can take a minute, and probes cut short at the guest's key exchange slow
  // it further.
  static constexpr std::chrono::seconds kProbeAnywayAfter{60};
  // The time limit of those: a connection made while the guest has no
  // network hangs until it. 2 s, doubled after each that runs out, to 30 s.
  static constexpr std::chrono::seconds kEarlyProbeTimeout{2};
  // After it: the guest's sshd listens, and a probe that takes long is a
  // slow key exchange (debian's sshd costs ~1.5 s of TCG time per connection,
  // more on a busy host). Cutting it short and starting over only queues
  // more of them in the guest; so 10 s, then 20, then 30.
  static constexpr std::chrono::seconds kReadyProbeTimeout{10};
  // How often the console is read while waiting for its markers.
  static constexpr std::chrono::milliseconds kConsolePoll{50};
  control::Result<Started> WaitReadyFor(const VmDef& vm, int pid, std::chrono::steady_clock::duration timeout,
                                        BootWatch* watch);
  control::Status WriteConfigDisk(const VmDef& vm, const Image& image);
  // Whether `argv` is VM `id`'s QEMU as this exed starts it: `-name
  // exed-vm-ID` and its pid file under this runtime directory.
  bool IsOurQemu(const std::vector<std::string>& argv, int64_t id) const;
  // Finds the pid of the VM's QEMU from its pidfile, if that process is it.
  int PidFromFile(const VmDef& vm);
  control::Status KillAll(const VmDef& vm);
  control::Status OwnForGuest(const std::string& path);
  control::Status GuardHostLoopback();

  const HostConfig config_;
  const Accel accel_;
  std::unique_ptr<CgroupHost> cgroups_;
  std::string gateway_key_;
  std::string gateway_pub_;
  std::optional<Credentials> run_as_;  // set when exed runs as root
};

}  // namespace vmm
