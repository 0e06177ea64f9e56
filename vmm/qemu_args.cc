#include "vmm/qemu_args.h"

#include <fmt/format.h>

namespace vmm {

std::string ConsoleLogPath(const std::string& vm_dir) { return vm_dir + "/console.log"; }
std::string QmpSocketPath(const std::string& vm_dir) { return vm_dir + "/qmp.sock"; }
std::string QemuPidPath(const std::string& vm_dir) { return vm_dir + "/qemu.pid"; }
std::string QemuLogPath(const std::string& vm_dir) { return vm_dir + "/qemu.log"; }

std::vector<std::string> QemuIdentity(const std::string& vm_name) {
  return {"-name", "exed-" + vm_name};
}

std::string QemuOptEscape(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

std::optional<std::string> CheckVmSpec(const VmSpec& s) {
  if (s.name.empty()) return "the vm has no name";
  if (s.cpus < 1 || s.cpus > 255) return fmt::format("cpus must be 1 to 255, not {}", s.cpus);
  // Below ~64 MiB Debian's kernel and initramfs do not fit.
  if (s.memory_mib < 64) return fmt::format("memory must be at least 64 MiB, not {}", s.memory_mib);
  if (s.kernel.empty() || s.initrd.empty()) return "the image has no kernel or initrd";
  if (s.disk.empty() || s.config_disk.empty()) return "the vm has no disk or config disk";
  if (s.vm_dir.empty()) return "the vm has no directory";
  if (QmpSocketPath(s.vm_dir).size() > kMaxUnixSocketPath) {
    return fmt::format("vm directory '{}' is too long for a unix socket path; use a shorter state "
                       "directory", s.vm_dir);
  }
  return CheckNetSpec(s.net);
}

std::vector<std::string> BuildQemuArgs(const VmSpec& s, const Accel& accel,
                                       const std::string& qemu_binary) {
  std::vector<std::string> a = {qemu_binary};
  auto add = [&a](std::initializer_list<std::string> args) { a.insert(a.end(), args); };

  add({"-name", "exed-" + s.name});
  // isa-serial: the console (ttyS0) that carries exed-hostkey/exed-ready.
  // rtc: the guest gets wall-clock time at boot without NTP.
  // acpi=on (the default, spelled out): the guest finds its virtio-mmio
  // devices through ACPI; with acpi=off Debian's kernel sees no disk at all.
  add({"-M", "microvm,isa-serial=on,rtc=on,acpi=on"});
  a.insert(a.end(), accel.qemu_args.begin(), accel.qemu_args.end());
  add({"-smp", std::to_string(s.cpus), "-m", fmt::format("{}M", s.memory_mib)});
  // Nothing we did not ask for: no default NIC, monitor, floppy, CD-ROM,
  // VGA, and no /etc/qemu config files.
  add({"-nodefaults", "-no-user-config", "-nographic"});
  // Seccomp: no old syscalls, no setuid/setgid, no fork/exec, no
  // sched_setaffinity/setpriority games. spawn=deny is also why QEMU must
  // never be given -daemonize (it forks after the filter is on: SIGSYS).
  add({"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"});
  add({"-msg", "timestamp=on"});  // qemu.log lines say when
  std::string cmdline = s.cmdline;
  for (const auto& k : accel.kernel_args) cmdline += (cmdline.empty() ? "" : " ") + k;
  add({"-kernel", s.kernel, "-initrd", s.initrd, "-append", cmdline});

  // The root disk first: virtio-mmio slots follow device order, so it is
  // /dev/vda (what the initramfs mounts) and the config disk /dev/vdb. The
  // serials let the guest check which is which (/sys/block/vdX/serial).
  // discard=unmap: the guest's TRIM shrinks the qcow2 file.
  add({"-drive", fmt::format("id=root,file={},format=qcow2,if=none,discard=unmap",
                             QemuOptEscape(s.disk)),
       "-device", "virtio-blk-device,drive=root,serial=exed-root"});
  add({"-drive", fmt::format("id=cfg,file={},format=raw,if=none,readonly=on",
                             QemuOptEscape(s.config_disk)),
       "-device", "virtio-blk-device,drive=cfg,serial=exed-config"});

  std::vector<std::string> net = QemuNetArgs(s.net);
  a.insert(a.end(), net.begin(), net.end());

  // free-page-reporting: the guest hands freed pages back to the host, so an
  // idle VM's RSS shrinks and an account's budget really is shared.
  // deflate-on-oom: if we ever inflate the balloon, the guest takes memory
  // back before its OOM killer would act.
  add({"-device", "virtio-balloon-device,free-page-reporting=on,deflate-on-oom=on"});

  // The console appends, so the first boot's exed-hostkey lines survive a
  // restart (the pin is read from them).
  add({"-chardev", fmt::format("file,id=con,path={},append=on",
                               QemuOptEscape(ConsoleLogPath(s.vm_dir))),
       "-serial", "chardev:con"});
  // QMP as a chardev + monitor pair (what -qmp unix:PATH,server=on,wait=off
  // expands to), spelled out so the path can be escaped. wait=off: QEMU
  // boots without waiting for a client; exed connects when it needs to.
  add({"-chardev", fmt::format("socket,id=qmp,path={},server=on,wait=off",
                               QemuOptEscape(QmpSocketPath(s.vm_dir))),
       "-mon", "chardev=qmp,mode=control"});
  // Written at start-up, before the sandbox; a restarted exed finds its VMs
  // from it (and checks the command line, see launcher.h).
  add({"-pidfile", QemuPidPath(s.vm_dir)});
  return a;
}

}  // namespace vmm
