// The accelerator QEMU runs guests with: KVM where the CPU offers hardware
// virtualization and /dev/kvm opens, else TCG (binary translation).
//
// Why not trust /dev/kvm alone: some development machines expose a
// paravirtual /dev/kvm (kvm_pvm) that opens and answers ioctls but cannot
// boot an ordinary guest (it hangs right after the kernel's real-mode setup).
// Such machines show no `vmx`/`svm` CPU flag, so both signals are required.
//
// ChooseAccel is a pure function of its inputs (tests feed canned
// /proc/cpuinfo text); DetectAccel reads the real files. Both are safe to
// call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vmm {

struct Accel {
  std::string name;                      // "kvm" or "tcg"
  std::vector<std::string> qemu_args;    // e.g. {"-accel", "kvm", "-cpu", "host"}
  std::vector<std::string> kernel_args;  // appended to the guest's command line
  std::string why;                       // one sentence for the log and `exed doctor`
};

// True if a "flags" line of `cpuinfo` lists vmx (Intel VT-x) or svm (AMD-V).
bool CpuHasVirtualization(std::string_view cpuinfo);

// Returns the sentence to show when `value` is not an accepted value of the
// `accel` configuration key ("", "auto", "kvm", "tcg"), else nullopt.
std::optional<std::string> CheckAccelOverride(std::string_view value);

// Picks the accelerator. `override` is the operator's choice ("kvm" or "tcg"
// wins over detection; "" or "auto" detects).
//
// `host_tsc_khz` (0: unknown) matters for TCG only. A TCG guest's TSC is the
// host's TSC, but the guest's kernel calibrates it against the emulated PIT
// in a few milliseconds of guest time; when the host deschedules QEMU's vCPU
// thread in that window the calibration fails, and microvm has no HPET or
// ACPI PM timer to fall back on, so the kernel hangs before /init (measured:
// 4 boots out of 8 on a busy 2-core machine). tsc_early_khz=<host TSC>
// on the kernel command line skips the calibration: 20 boots out of 20.
// Under KVM the guest uses kvmclock and needs nothing.
// REQUIRES: CheckAccelOverride(override) passed (else detection is used and
// `why` says the value was ignored).
Accel ChooseAccel(std::string_view cpuinfo, bool kvm_opens, std::string_view override,
                  uint64_t host_tsc_khz = 0);

// The host's TSC frequency in kHz, measured against CLOCK_MONOTONIC_RAW over
// about 150 ms; 0 on machines without an invariant TSC (no constant_tsc flag
// in `cpuinfo`) and on other architectures.
uint64_t MeasureTscKhz(std::string_view cpuinfo);

// True if `kvm_path` opens read-write and answers KVM_GET_API_VERSION.
bool KvmOpens(const std::string& kvm_path = "/dev/kvm");

// ChooseAccel on this machine's /proc/cpuinfo, /dev/kvm (paths injectable)
// and measured TSC.
Accel DetectAccel(std::string_view override, const std::string& cpuinfo_path = "/proc/cpuinfo",
                  const std::string& kvm_path = "/dev/kvm");

}  // namespace vmm
