// vmm::Host: everything the control plane asks of the machine that runs VMs.
// control::Service decides (budgets, names, who may) and records in the
// database; Host does (disks, cgroups, QEMU, networking) and knows nothing
// of accounts' rules or SQL. The one implementation is HostImpl; tests of
// control logic may use a fake.
//
// Host-side names are keyed by the VM's id, never its name, so a rename
// touches only the database: VMDIR = STATE/vms/<id>/, cgroup
// exed/<account>/vm-<id>, QEMU's `-name exed-vm-<id>`.
//
// Thread-safe for calls on different VMs; the caller serializes calls on one
// VM (control::Service holds a per-VM busy mark). Blocking.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "control/result.h"
#include "vmm/images.h"

namespace vmm {

struct VmDef {
  int64_t id = 0;
  std::string name;
  std::string account;
  std::string image;
  int64_t cpus = 1;
  int64_t memory_mib = 512;
  int64_t disk_gib = 10;
  int ssh_port = 0;  // host loopback ports, allocated by the caller
  int web_port = 0;
  int guest_web_port = 80;
  std::string host_key;  // pinned; empty before the first boot
  std::vector<std::pair<std::string, std::string>> env;
  std::string setup_script;
};

struct Started {
  int pid = 0;
  std::string host_key;  // what the guest presented (pin it on first boot)
};

struct VmStats {
  bool running = false;
  int pid = 0;
  uint64_t cpu_usec = 0;
  uint64_t memory_bytes = 0;       // the VM's cgroup (QEMU and its helpers)
  uint64_t memory_peak_bytes = 0;
  uint64_t disk_virtual_bytes = 0;
  uint64_t disk_allocated_bytes = 0;
};

// Called with each step of a long operation ("disk", "booting", ...).
// Returning false abandons the operation (the client went away); the Host
// then undoes what it did.
using Progress = std::function<bool(std::string_view step)>;

class Host {
 public:
  virtual ~Host() = default;

  virtual std::vector<Image> Images() = 0;
  virtual control::Result<Image> FindImage(const std::string& name) = 0;
  virtual std::string accel_name() const = 0;
  // The private key the host's SSH client (readiness probes, the SSH
  // gateway) authenticates to guests with.
  virtual std::string gateway_key_path() const = 0;

  // Applies an account's budget to its cgroup (made if missing): memory
  // limit, CPU quota of `cpus` CPUs, and a pids limit sized for `max_vms`.
  virtual control::Status SetAccountLimits(const std::string& account, int64_t cpus, int64_t memory_mib, int64_t max_vms) = 0;

  // First boot: makes the disk from the image, then Start. On failure
  // everything it made is removed again.
  virtual control::Result<Started> Create(const VmDef& vm, const Progress& progress, bool wait_ready) = 0;
  // Boots an existing disk and (if wait_ready) waits until the guest's sshd
  // accepts the gateway key with the pinned host key.
  virtual control::Result<Started> Start(const VmDef& vm, const Progress& progress, bool wait_ready) = 0;
  virtual control::Result<Started> WaitReady(const VmDef& vm, int pid, std::chrono::seconds timeout) = 0;
  // Clean shutdown (poweroff in the guest), forced after a grace period.
  virtual control::Status Stop(const VmDef& vm) = 0;
  // Stop, then remove its disk, directory and cgroup. Idempotent.
  virtual control::Status Destroy(const VmDef& vm) = 0;
  // A new VM `dst` whose disk is a copy of `src`'s (paused meanwhile if it runs).
  virtual control::Status CloneDisk(const VmDef& src, const VmDef& dst) = 0;
  virtual control::Status GrowDisk(const VmDef& vm, int64_t disk_gib) = 0;

  // True if `pid` is this VM's QEMU, alive (a reused pid never counts).
  virtual bool IsRunning(const VmDef& vm, int pid) = 0;
  virtual control::Result<VmStats> Stat(const VmDef& vm, int pid) = 0;
  virtual std::string ConsoleTail(const VmDef& vm, size_t lines) = 0;
  // (VM id, pid) of every QEMU on this machine that exed started, found by
  // its command line: how the reconciler re-attaches and finds strays.
  virtual std::vector<std::pair<int64_t, int>> RunningVmProcesses() = 0;
};

}  // namespace vmm
