#include "control/budget.h"

#include <gtest/gtest.h>

#include <string>

namespace control {
namespace {

int64_t Mem(std::string_view s) {
  auto r = ParseMemoryMiB(s);
  EXPECT_TRUE(r.ok()) << s << ": " << r.error().message;
  return r.ok() ? r.value() : -1;
}

int64_t Disk(std::string_view s) {
  auto r = ParseDiskGiB(s);
  EXPECT_TRUE(r.ok()) << s << ": " << r.error().message;
  return r.ok() ? r.value() : -1;
}

template <class F>
std::string ErrorOf(F parse, std::string_view s) {
  auto r = parse(s);
  if (r.ok()) return "<accepted " + std::to_string(r.value()) + ">";
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
  return r.error().message;
}

TEST(ParseMemoryMiB, AcceptsTheDocumentedForms) {
  EXPECT_EQ(Mem("512M"), 512);
  EXPECT_EQ(Mem("512MiB"), 512);
  EXPECT_EQ(Mem("512mb"), 512);
  EXPECT_EQ(Mem("512"), 512);
  EXPECT_EQ(Mem("4G"), 4096);
  EXPECT_EQ(Mem("4GiB"), 4096);
  EXPECT_EQ(Mem("4GB"), 4096);
  EXPECT_EQ(Mem("4g"), 4096);
  EXPECT_EQ(Mem("4gIb"), 4096);
  EXPECT_EQ(Mem("1.5G"), 1536);
  EXPECT_EQ(Mem("0.25g"), 256);
  EXPECT_EQ(Mem("1T"), 1048576);
  EXPECT_EQ(Mem(" 2 GiB "), 2048);
}

TEST(ParseMemoryMiB, Boundaries) {
  EXPECT_EQ(Mem("64M"), 64);
  EXPECT_EQ(Mem("64"), 64);
  EXPECT_EQ(ErrorOf(ParseMemoryMiB, "63M"),
            "memory size '63M' is below the minimum of 64 MiB; use 64M or more");
  EXPECT_EQ(Mem("16T"), 16 * 1048576);
  EXPECT_EQ(Mem("16777216"), 16777216);
  EXPECT_EQ(ErrorOf(ParseMemoryMiB, "16777217"),
            "memory size '16777217' is above the maximum of 16 TiB; use 16T or less");
  EXPECT_EQ(ErrorOf(ParseMemoryMiB, "16.001T"),
            "memory size '16.001T' is above the maximum of 16 TiB; use 16T or less");
  EXPECT_EQ(ErrorOf(ParseMemoryMiB, "99999999999999999999999G"),
            "memory size '99999999999999999999999G' is above the maximum of 16 TiB; use 16T or "
            "less");
  EXPECT_EQ(ErrorOf(ParseDiskGiB, "99999999999999999999"),
            "disk size '99999999999999999999' is above the maximum of 64 TiB; use 64T or less");
}

TEST(ParseMemoryMiB, RefusesWhatItCannotRead) {
  const char* form = "is not understood; use a number of MiB or a size like 512M, 4G or 1.5G";
  for (const char* bad : {"", "abc", "-1G", "+1G", "4K", "4 G B", "1..5G", "1.G", ".G",
                          "G", "1e3", "0x10", "4GiBs"}) {
    EXPECT_EQ(ErrorOf(ParseMemoryMiB, bad), "memory size '" + std::string(bad) + "' " + form)
        << bad;
  }
  EXPECT_EQ(ErrorOf(ParseMemoryMiB, "1.3G"),
            "memory size '1.3G' is not a whole number of MiB; use 1331M or 1332M");
  EXPECT_EQ(ErrorOf(ParseMemoryMiB, "100.5"),
            "memory size '100.5' is not a whole number of MiB; use 100M or 101M");
}

TEST(ParseDiskGiB, AcceptsTheDocumentedForms) {
  EXPECT_EQ(Disk("10G"), 10);
  EXPECT_EQ(Disk("10GiB"), 10);
  EXPECT_EQ(Disk("10gb"), 10);
  EXPECT_EQ(Disk("10"), 10);
  EXPECT_EQ(Disk("1T"), 1024);
  EXPECT_EQ(Disk("1.5T"), 1536);
  EXPECT_EQ(Disk("2.0G"), 2);
}

TEST(ParseDiskGiB, BoundariesAndFractions) {
  EXPECT_EQ(Disk("1G"), 1);
  EXPECT_EQ(ErrorOf(ParseDiskGiB, "0"),
            "disk size '0' is below the minimum of 1 GiB; use 1G or more");
  EXPECT_EQ(Disk("64T"), 65536);
  EXPECT_EQ(ErrorOf(ParseDiskGiB, "65537G"),
            "disk size '65537G' is above the maximum of 64 TiB; use 64T or less");
  EXPECT_EQ(ErrorOf(ParseDiskGiB, "1.5G"),
            "disk size '1.5G' is not a whole number of GiB; use 1G or 2G");
  EXPECT_EQ(ErrorOf(ParseDiskGiB, "0.5G"), "disk size '0.5G' is not a whole number of GiB; use 1G");
  EXPECT_EQ(ErrorOf(ParseDiskGiB, "512M"),
            "disk size '512M' is not understood; use a number of GiB or a size like 10G or 1T");
}

TEST(ParseCpus, WholeNumbersInRange) {
  EXPECT_EQ(ParseCpus("1").value(), 1);
  EXPECT_EQ(ParseCpus("1024").value(), 1024);
  EXPECT_EQ(ParseCpus(" 8 ").value(), 8);
  for (const char* bad : {"0", "1025", "1.5", "-2", "+2", "two", "", "2x",
                          "99999999999999999999999"}) {
    EXPECT_EQ(ErrorOf(ParseCpus, bad),
              "CPU count '" + std::string(bad) + "' must be a whole number from 1 to 1024")
        << bad;
  }
}

TEST(ParseCount, UsesTheGivenRangeAndName) {
  EXPECT_EQ(ParseCount("0", 0, 100, "VM count").value(), 0);
  EXPECT_EQ(ParseCount("100", 0, 100, "VM count").value(), 100);
  auto r = ParseCount("101", 0, 100, "VM count");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "VM count '101' must be a whole number from 0 to 100");
}

TEST(FormatMiB, ExactInTheLargestUnit) {
  EXPECT_EQ(FormatMiB(0), "0 MiB");
  EXPECT_EQ(FormatMiB(512), "512 MiB");
  EXPECT_EQ(FormatMiB(1023), "1023 MiB");
  EXPECT_EQ(FormatMiB(1024), "1 GiB");
  EXPECT_EQ(FormatMiB(4096), "4 GiB");
  EXPECT_EQ(FormatMiB(1536), "1.5 GiB");
  EXPECT_EQ(FormatMiB(1280), "1.25 GiB");
  EXPECT_EQ(FormatMiB(1331), "1331 MiB");  // 1.2998... GiB would be a lie
  EXPECT_EQ(FormatMiB(1048576), "1 TiB");
  EXPECT_EQ(FormatMiB(1048576 + 524288), "1.5 TiB");
  EXPECT_EQ(FormatMiB(-2048), "-2 GiB");
}

TEST(FormatGiB, ExactInTheLargestUnit) {
  EXPECT_EQ(FormatGiB(10), "10 GiB");
  EXPECT_EQ(FormatGiB(1024), "1 TiB");
  EXPECT_EQ(FormatGiB(1536), "1.5 TiB");
  EXPECT_EQ(FormatGiB(1000), "1000 GiB");
  EXPECT_EQ(FormatGiB(1), "1 GiB");
}

TEST(Format, RoundTripsThroughParse) {
  for (int64_t mib : {64, 100, 512, 1024, 1331, 1536, 1280, 4096, 1048576, 16 * 1048576}) {
    EXPECT_EQ(Mem(FormatMiB(mib)), mib) << FormatMiB(mib);
  }
  for (int64_t gib : {1, 10, 1000, 1024, 1536, 65536}) {
    EXPECT_EQ(Disk(FormatGiB(gib)), gib) << FormatGiB(gib);
  }
}

Resources R(int64_t cpus, int64_t memory_mib, int64_t disk_gib, int64_t vms = 0) {
  return {cpus, memory_mib, disk_gib, vms};
}

const Resources kBudget = R(4, 4096, 50, 5);

TEST(CheckNewVm, CpusAndMemoryMayEachTakeTheWholeBudget) {
  // Usage already far above the budget in cpus and memory: overcommit is fine.
  const Resources usage = R(16, 16384, 10, 4);
  EXPECT_EQ(CheckNewVm(kBudget, usage, R(4, 4096, 10)), std::nullopt);
  EXPECT_EQ(CheckNewVm(kBudget, usage, R(5, 4096, 10)),
            "this VM asks for 5 CPUs but the account's whole budget is 4 CPUs; use --cpus 4 or "
            "less");
  EXPECT_EQ(CheckNewVm(kBudget, usage, R(4, 4097, 10)),
            "this VM asks for 4097 MiB of memory but the account's whole budget is 4 GiB; use "
            "--memory 4G or less");
  EXPECT_EQ(CheckNewVm(kBudget, usage, R(1, 8192, 10)),
            "this VM asks for 8 GiB of memory but the account's whole budget is 4 GiB; use "
            "--memory 4G or less");
  EXPECT_EQ(CheckNewVm(R(1, 1536, 50, 5), {}, R(2, 512, 1)),
            "this VM asks for 2 CPUs but the account's whole budget is 1 CPU; use --cpus 1 or "
            "less");
  EXPECT_EQ(CheckNewVm(R(1, 1536, 50, 5), {}, R(1, 2048, 1)),
            "this VM asks for 2 GiB of memory but the account's whole budget is 1.5 GiB; use "
            "--memory 1536M or less");
}

TEST(CheckNewVm, DiskSumsMustFit) {
  EXPECT_EQ(CheckNewVm(kBudget, R(0, 0, 44, 1), R(1, 512, 6)), std::nullopt);  // 50 of 50
  EXPECT_EQ(CheckNewVm(kBudget, R(0, 0, 45, 1), R(1, 512, 6)),
            "disk budget exceeded by 1 GiB: 45 GiB of 50 GiB are provisioned and this VM "
            "needs 6 GiB; remove a VM, shrink --disk, or ask for a bigger budget");
  EXPECT_EQ(CheckNewVm(kBudget, R(0, 0, 50, 1), R(1, 512, 6)),
            "disk budget exceeded by 6 GiB: 50 GiB of 50 GiB are provisioned and this VM "
            "needs 6 GiB; remove a VM, shrink --disk, or ask for a bigger budget");
  EXPECT_EQ(CheckNewVm(kBudget, {}, R(1, 512, 50)), std::nullopt);
  EXPECT_EQ(CheckNewVm(kBudget, {}, R(1, 512, 51)),
            "this VM asks for 51 GiB of disk but the account's whole budget is 50 GiB; use "
            "--disk 50G or less");
  // A budget lowered below what exists: the excess counts all of it.
  EXPECT_EQ(CheckNewVm(kBudget, R(0, 0, 60, 1), R(1, 512, 2)),
            "disk budget exceeded by 12 GiB: 60 GiB of 50 GiB are provisioned and this VM "
            "needs 2 GiB; remove a VM, shrink --disk, or ask for a bigger budget");
}

TEST(CheckNewVm, VmCountMustFit) {
  EXPECT_EQ(CheckNewVm(kBudget, R(0, 0, 0, 4), R(1, 512, 1)), std::nullopt);
  EXPECT_EQ(CheckNewVm(kBudget, R(0, 0, 0, 5), R(1, 512, 1)),
            "VM limit reached: 5 of 5 VMs exist; remove one with 'rm' first");
  EXPECT_EQ(CheckNewVm(R(4, 4096, 50, 1), R(0, 0, 0, 1), R(1, 512, 1)),
            "VM limit reached: 1 of 1 VM exists; remove one with 'rm' first");
  // vm.vms is ignored: the new VM is one VM.
  EXPECT_EQ(CheckNewVm(kBudget, R(0, 0, 0, 4), R(1, 512, 1, 7)), std::nullopt);
}

TEST(CheckNewVm, EmptyBudgetsSaySo) {
  EXPECT_EQ(CheckNewVm({}, {}, R(1, 512, 1)),
            "the account's budget allows no VMs; ask for a bigger budget");
  EXPECT_EQ(CheckNewVm(R(0, 4096, 50, 5), {}, R(1, 512, 1)),
            "the account's budget has no CPUs; ask for a bigger budget");
  EXPECT_EQ(CheckNewVm(R(4, 0, 50, 5), {}, R(1, 512, 1)),
            "the account's budget has no memory; ask for a bigger budget");
  EXPECT_EQ(CheckNewVm(R(4, 4096, 0, 5), {}, R(1, 512, 1)),
            "the account's budget has no disk; ask for a bigger budget");
}

TEST(CheckResize, GrowingWithinTheBudget) {
  const Resources before = R(2, 2048, 10);
  const Resources usage = R(6, 6144, 40, 3);  // includes `before`
  EXPECT_EQ(CheckResize(kBudget, usage, before, before), std::nullopt);
  EXPECT_EQ(CheckResize(kBudget, usage, before, R(4, 4096, 20)), std::nullopt);  // 50 of 50
  EXPECT_EQ(CheckResize(kBudget, usage, before, R(2, 2048, 21)),
            "disk budget exceeded by 1 GiB: 40 GiB of 50 GiB are provisioned and growing this "
            "disk needs 11 GiB more; remove a VM, grow it less, or ask for a bigger budget");
  EXPECT_EQ(CheckResize(kBudget, usage, before, R(5, 2048, 10)),
            "this VM asks for 5 CPUs but the account's whole budget is 4 CPUs; use --cpus 4 or "
            "less");
  EXPECT_EQ(CheckResize(kBudget, usage, before, R(2, 4097, 10)),
            "this VM asks for 4097 MiB of memory but the account's whole budget is 4 GiB; use "
            "--memory 4G or less");
  EXPECT_EQ(CheckResize(kBudget, usage, before, R(2, 2048, 51)),
            "this VM asks for 51 GiB of disk but the account's whole budget is 50 GiB; use "
            "--disk 50G or less");
}

TEST(CheckResize, DiskNeverShrinks) {
  EXPECT_EQ(CheckResize(kBudget, R(2, 2048, 20, 1), R(2, 2048, 20), R(2, 2048, 10)),
            "a disk cannot shrink: this VM has 20 GiB and 10 GiB was asked for; use --disk 20G "
            "or more");
}

TEST(CheckResize, OnlyIncreasesAreJudged) {
  // The budget was lowered after this VM was made: it has 8 CPUs, 8 GiB and
  // the account is over its disk. Other changes, and decreases, still pass.
  const Resources before = R(8, 8192, 40);
  const Resources usage = R(8, 8192, 60, 1);
  EXPECT_EQ(CheckResize(kBudget, usage, before, R(8, 8192, 40)), std::nullopt);
  EXPECT_EQ(CheckResize(kBudget, usage, before, R(6, 8192, 40)), std::nullopt);
  EXPECT_EQ(CheckResize(kBudget, usage, before, R(8, 6144, 40)), std::nullopt);
  EXPECT_TRUE(CheckResize(kBudget, usage, before, R(9, 8192, 40)).has_value());
  EXPECT_TRUE(CheckResize(kBudget, usage, before, R(8, 9216, 40)).has_value());
  EXPECT_TRUE(CheckResize(kBudget, usage, before, R(8, 8192, 41)).has_value());
}

}  // namespace
}  // namespace control
