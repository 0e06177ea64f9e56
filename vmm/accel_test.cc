#include "vmm/accel.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace vmm {
namespace {

// Shortened from real machines: the lines that matter, in their real layout.
constexpr const char* kIntelWithVmx =
    "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)\n"
    "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep vmx smx est tm2 ssse3\n"
    "bugs\t\t: spectre_v1\n\n";
constexpr const char* kAmdWithSvm =
    "processor\t: 0\nvendor_id\t: AuthenticAMD\n"
    "flags\t\t: fpu vme de pse tsc msr pae svm extapic cr8_legacy abm sse4a\n";
// A cloud VM without nested virtualization (like the development machines):
// "vmx flags" is a separate line on newer kernels and must not count.
constexpr const char* kNoVirt =
    "processor\t: 0\nvendor_id\t: GenuineIntel\n"
    "flags\t\t: fpu vme de pse tsc msr pae hypervisor svm_lock_x avx512_vnni\n"
    "vmx flags\t: vnmi preemption_timer\n";

TEST(CpuHasVirtualization, FindsVmxOrSvmAsWholeWords) {
  EXPECT_TRUE(CpuHasVirtualization(kIntelWithVmx));
  EXPECT_TRUE(CpuHasVirtualization(kAmdWithSvm));
  EXPECT_FALSE(CpuHasVirtualization(kNoVirt));
  EXPECT_FALSE(CpuHasVirtualization(""));
  EXPECT_TRUE(CpuHasVirtualization("flags: vmx"));  // last word, no newline
}

TEST(ChooseAccel, KvmNeedsBothTheFlagAndTheDevice) {
  Accel a = ChooseAccel(kIntelWithVmx, true, "");
  EXPECT_EQ(a.name, "kvm");
  EXPECT_EQ(a.qemu_args, (std::vector<std::string>{"-accel", "kvm", "-cpu", "host"}));
  EXPECT_EQ(ChooseAccel(kAmdWithSvm, true, "auto").name, "kvm");
  EXPECT_EQ(ChooseAccel(kIntelWithVmx, false, "").name, "tcg");
}

TEST(ChooseAccel, ParavirtualKvmWithoutCpuFlagsFallsBackToTcg) {
  Accel a = ChooseAccel(kNoVirt, /*kvm_opens=*/true, "");
  EXPECT_EQ(a.name, "tcg");
  EXPECT_EQ(a.qemu_args,
            (std::vector<std::string>{"-accel", "tcg,thread=multi,tb-size=64", "-cpu", "max"}));
  EXPECT_NE(a.why.find("paravirtual"), std::string::npos) << a.why;
}

TEST(ChooseAccel, TcgPassesTheHostTscRateToTheGuestKernel) {
  EXPECT_EQ(ChooseAccel(kNoVirt, false, "", 2000000).kernel_args,
            (std::vector<std::string>{"tsc_early_khz=2000000"}));
  EXPECT_EQ(ChooseAccel(kNoVirt, false, "tcg", 2400000).kernel_args,
            (std::vector<std::string>{"tsc_early_khz=2400000"}));
  EXPECT_TRUE(ChooseAccel(kNoVirt, false, "", 0).kernel_args.empty());
  EXPECT_TRUE(ChooseAccel(kIntelWithVmx, true, "", 2000000).kernel_args.empty());  // kvmclock
}

TEST(MeasureTscKhz, NeedsAnInvariantTsc) {
  EXPECT_EQ(MeasureTscKhz("flags\t\t: fpu tsc msr\n"), 0u);
#if defined(__x86_64__)
  uint64_t khz = MeasureTscKhz("flags\t\t: fpu tsc constant_tsc msr\n");
  EXPECT_GE(khz, 100000u);     // 100 MHz
  EXPECT_LE(khz, 10000000u);   // 10 GHz
#endif
}

TEST(ChooseAccel, OverrideWins) {
  EXPECT_EQ(ChooseAccel(kNoVirt, false, "kvm").name, "kvm");
  EXPECT_EQ(ChooseAccel(kIntelWithVmx, true, "tcg").name, "tcg");
  EXPECT_NE(ChooseAccel(kIntelWithVmx, true, "tcg").why.find("configuration"), std::string::npos);
}

TEST(ChooseAccel, UnknownOverrideIsReportedAndDetectionUsed) {
  EXPECT_EQ(CheckAccelOverride("xen"), "accel 'xen' is not known; use auto, kvm or tcg");
  EXPECT_EQ(CheckAccelOverride(""), std::nullopt);
  EXPECT_EQ(CheckAccelOverride("tcg"), std::nullopt);
  Accel a = ChooseAccel(kIntelWithVmx, true, "xen");
  EXPECT_EQ(a.name, "kvm");
  EXPECT_NE(a.why.find("'xen' is not known"), std::string::npos) << a.why;
}

TEST(KvmOpens, RefusesMissingFilesAndFilesThatAreNotKvm) {
  EXPECT_FALSE(KvmOpens("/nonexistent/kvm"));
  EXPECT_FALSE(KvmOpens("/dev/null"));  // opens, but answers no KVM ioctl
}

TEST(DetectAccel, ReadsTheInjectedFiles) {
  std::string dir = ::testing::TempDir();
  std::string cpuinfo = dir + "/accel_test_cpuinfo";
  std::ofstream(cpuinfo) << kIntelWithVmx;
  EXPECT_EQ(DetectAccel("", cpuinfo, "/nonexistent/kvm").name, "tcg");
  EXPECT_EQ(DetectAccel("kvm", cpuinfo, "/nonexistent/kvm").name, "kvm");
  std::remove(cpuinfo.c_str());
}

}  // namespace
}  // namespace vmm
