// The QEMU command line for one VM (docs/VMM.md, "QEMU"), and the names of
// the files QEMU keeps in the VM's directory.
//
// Machine type: microvm. It has no PCI bus to enumerate, no firmware POST
// (qboot, a minimal firmware, jumps straight into the kernel QEMU loaded;
// no SeaBIOS or UEFI) and only virtio-mmio devices, so Debian's stock
// kernel reaches /init after 1.3 to 2.5 s of guest time under TCG (3 to 5 s
// of wall time on a busy 2-core machine). What we give up: PCI (no device
// passthrough, no hotplug: every device is fixed at start), graphics, USB,
// and booting from the disk's own bootloader: the kernel is the image's, so
// a kernel the user installs inside the guest is not the one that boots.
//
// microvm keeps a minimal ACPI table set, and that matters: Debian's kernel
// is built without CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so ACPI is how its
// virtio_mmio driver finds the disks and the NIC (tested: with acpi=off it
// finds none). ACPI also carries the power button system_powerdown presses.
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vmm/accel.h"
#include "vmm/network.h"

namespace vmm {

struct VmSpec {
  std::string name;  // QEMU's -name is "exed-" + name (host.h: "vm-<id>")
  int cpus = 1;
  int64_t memory_mib = 512;
  std::string kernel, initrd, cmdline;
  std::string disk;         // qcow2 overlay, the guest's /dev/vda
  std::string config_disk;  // raw tar archive, read-only, the guest's /dev/vdb
  std::string vm_dir;       // console.log, qmp.sock, qemu.pid live here
  NetSpec net;
};

// Files QEMU writes in the VM's directory.
std::string ConsoleLogPath(const std::string& vm_dir);  // VMDIR/console.log
std::string QmpSocketPath(const std::string& vm_dir);   // VMDIR/qmp.sock
std::string QemuPidPath(const std::string& vm_dir);     // VMDIR/qemu.pid
std::string QemuLogPath(const std::string& vm_dir);     // VMDIR/qemu.log (stdout/stderr)

// The arguments that identify a VM's QEMU on its command line: {"-name",
// "exed-" + name}. For the launcher's HasArgs/Terminate.
std::vector<std::string> QemuIdentity(const std::string& vm_name);

// Escapes a value inside a QEMU option string ("key=value,key=value"):
// QEMU reads ",," as a literal comma, so a path with a comma stays a path.
std::string QemuOptEscape(const std::string& value);

// Returns the sentence to show when `spec` cannot be started (no kernel, no
// CPUs, a socket path too long for sun_path, ...), else nullopt.
std::optional<std::string> CheckVmSpec(const VmSpec& spec);

// The full argv, argv[0] = `qemu_binary`.
// REQUIRES: CheckVmSpec(spec) passed.
std::vector<std::string> BuildQemuArgs(const VmSpec& spec, const Accel& accel,
                                       const std::string& qemu_binary);

}  // namespace vmm
