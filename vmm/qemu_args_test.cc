#include "vmm/qemu_args.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace vmm {
namespace {

VmSpec Spec() {
  VmSpec s;
  s.name = "vm-42";
  s.cpus = 2;
  s.memory_mib = 1024;
  s.kernel = "/images/tiny/vmlinuz";
  s.initrd = "/images/tiny/initrd.img";
  s.cmdline = "console=ttyS0 root=/dev/vda rw";
  s.disk = "/state/vms/42/disk.qcow2";
  s.config_disk = "/state/vms/42/config.tar";
  s.vm_dir = "/state/vms/42";
  s.net.ssh_host_port = 40022;
  s.net.web_host_port = 40080;
  s.net.passt_socket = "/state/vms/42/passt.sock";
  return s;
}

Accel Tcg() { return ChooseAccel("", false, "tcg"); }

// The value following `flag` (the first occurrence), or "" if absent.
std::string After(const std::vector<std::string>& a, const std::string& flag) {
  auto it = std::find(a.begin(), a.end(), flag);
  return it == a.end() || it + 1 == a.end() ? "" : *(it + 1);
}

// Every value following an occurrence of `flag`.
std::vector<std::string> AllAfter(const std::vector<std::string>& a, const std::string& flag) {
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < a.size(); ++i) {
    if (a[i] == flag) out.push_back(a[i + 1]);
  }
  return out;
}

bool Has(const std::vector<std::string>& a, const std::string& s) {
  return std::find(a.begin(), a.end(), s) != a.end();
}

TEST(BuildQemuArgs, MachineAcceleratorAndSize) {
  auto a = BuildQemuArgs(Spec(), Tcg(), "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(a[0], "/usr/bin/qemu-system-x86_64");
  EXPECT_EQ(After(a, "-name"), "exed-vm-42");
  EXPECT_EQ(After(a, "-M"), "microvm,isa-serial=on,rtc=on,acpi=on");
  EXPECT_EQ(After(a, "-accel"), "tcg,thread=multi,tb-size=64");
  EXPECT_EQ(After(a, "-cpu"), "max");
  EXPECT_EQ(After(a, "-smp"), "2");
  EXPECT_EQ(After(a, "-m"), "1024M");
  auto kvm = BuildQemuArgs(Spec(), ChooseAccel("", false, "kvm"), "qemu");
  EXPECT_EQ(After(kvm, "-accel"), "kvm");
  EXPECT_EQ(After(kvm, "-cpu"), "host");
}

TEST(BuildQemuArgs, NothingImplicitAndSandboxed) {
  auto a = BuildQemuArgs(Spec(), Tcg(), "qemu");
  EXPECT_TRUE(Has(a, "-nodefaults"));
  EXPECT_TRUE(Has(a, "-no-user-config"));
  EXPECT_TRUE(Has(a, "-nographic"));
  EXPECT_EQ(After(a, "-sandbox"),
            "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
  // spawn=deny kills a daemonizing QEMU with SIGSYS.
  EXPECT_FALSE(Has(a, "-daemonize"));
}

TEST(BuildQemuArgs, KernelAndDisksInOrder) {
  auto a = BuildQemuArgs(Spec(), Tcg(), "qemu");
  EXPECT_EQ(After(a, "-kernel"), "/images/tiny/vmlinuz");
  EXPECT_EQ(After(a, "-initrd"), "/images/tiny/initrd.img");
  EXPECT_EQ(After(a, "-append"), "console=ttyS0 root=/dev/vda rw");
  EXPECT_EQ(AllAfter(a, "-drive"),
            (std::vector<std::string>{
                "id=root,file=/state/vms/42/disk.qcow2,format=qcow2,if=none,discard=unmap",
                "id=cfg,file=/state/vms/42/config.tar,format=raw,if=none,readonly=on"}));
  auto devices = AllAfter(a, "-device");
  ASSERT_EQ(devices.size(), 4u);
  EXPECT_EQ(devices[0], "virtio-blk-device,drive=root,serial=exed-root");
  EXPECT_EQ(devices[1], "virtio-blk-device,drive=cfg,serial=exed-config");
  EXPECT_EQ(devices[2], "virtio-net-device,netdev=n0");
  EXPECT_EQ(devices[3], "virtio-balloon-device,free-page-reporting=on,deflate-on-oom=on");
}

TEST(BuildQemuArgs, AcceleratorKernelArgumentsAreAppended) {
  auto a = BuildQemuArgs(Spec(), ChooseAccel("", false, "tcg", 2000000), "qemu");
  EXPECT_EQ(After(a, "-append"), "console=ttyS0 root=/dev/vda rw tsc_early_khz=2000000");
}

TEST(BuildQemuArgs, ConsoleQmpNetworkAndPidfileInTheVmDirectory) {
  auto a = BuildQemuArgs(Spec(), Tcg(), "qemu");
  EXPECT_EQ(AllAfter(a, "-chardev"),
            (std::vector<std::string>{
                "file,id=con,path=/state/vms/42/console.log,append=on",
                "socket,id=qmp,path=/state/vms/42/qmp.sock,server=on,wait=off"}));
  EXPECT_EQ(After(a, "-serial"), "chardev:con");
  EXPECT_EQ(After(a, "-mon"), "chardev=qmp,mode=control");
  EXPECT_EQ(After(a, "-netdev"),
            "stream,id=n0,server=off,addr.type=unix,addr.path=/state/vms/42/passt.sock");
  EXPECT_EQ(After(a, "-pidfile"), "/state/vms/42/qemu.pid");
  // -netdev user would let the guest reach the host's loopback through 10.0.2.2.
  for (const auto& v : AllAfter(a, "-netdev")) EXPECT_NE(v.rfind("user", 0), 0u) << v;
}

TEST(BuildQemuArgs, CommasInPathsAreEscaped) {
  VmSpec s = Spec();
  s.vm_dir = "/state,x/vms/42";
  s.disk = "/state,x/vms/42/disk.qcow2";
  s.net.passt_socket = "/state,x/vms/42/passt.sock";
  auto a = BuildQemuArgs(s, Tcg(), "qemu");
  EXPECT_EQ(AllAfter(a, "-drive")[0],
            "id=root,file=/state,,x/vms/42/disk.qcow2,format=qcow2,if=none,discard=unmap");
  EXPECT_EQ(AllAfter(a, "-chardev")[1],
            "socket,id=qmp,path=/state,,x/vms/42/qmp.sock,server=on,wait=off");
  EXPECT_EQ(After(a, "-netdev"),
            "stream,id=n0,server=off,addr.type=unix,addr.path=/state,,x/vms/42/passt.sock");
  // Plain arguments (not option strings) are passed as they are.
  EXPECT_EQ(After(a, "-pidfile"), "/state,x/vms/42/qemu.pid");
}

TEST(QemuIdentity, IsTheNameArgumentPair) {
  EXPECT_EQ(QemuIdentity("vm-42"), (std::vector<std::string>{"-name", "exed-vm-42"}));
  auto a = BuildQemuArgs(Spec(), Tcg(), "qemu");
  auto id = QemuIdentity("vm-42");
  auto it = std::search(a.begin(), a.end(), id.begin(), id.end());
  EXPECT_NE(it, a.end());
}

TEST(CheckVmSpec, AcceptsAGoodSpecAndNamesWhatIsWrong) {
  EXPECT_EQ(CheckVmSpec(Spec()), std::nullopt);
  VmSpec s = Spec();
  s.cpus = 0;
  EXPECT_EQ(CheckVmSpec(s), "cpus must be 1 to 255, not 0");
  s = Spec();
  s.memory_mib = 16;
  EXPECT_EQ(CheckVmSpec(s), "memory must be at least 64 MiB, not 16");
  s = Spec();
  s.kernel.clear();
  EXPECT_EQ(CheckVmSpec(s), "the image has no kernel or initrd");
  s = Spec();
  s.vm_dir = "/" + std::string(110, 'd');
  EXPECT_NE(CheckVmSpec(s)->find("too long for a unix socket path"), std::string::npos);
  s = Spec();
  s.net.web_host_port = s.net.ssh_host_port;
  EXPECT_EQ(CheckVmSpec(s), "ssh and web forwards cannot share host port 40022");
}

}  // namespace
}  // namespace vmm
