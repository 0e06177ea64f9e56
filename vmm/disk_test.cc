#include "vmm/disk.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

namespace vmm {
namespace {

class DiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v qemu-img >/dev/null") != 0) GTEST_SKIP() << "qemu-img not installed";
    char tmpl[] = "/tmp/exed-disk-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::ofstream(dir_ + "/base.img", std::ios::binary) << std::string(1 << 20, 'b');
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string dir_;
};

TEST_F(DiskTest, OverlayIsSmallWhateverItsSizeAndOnlyGrows) {
  ASSERT_TRUE(CreateOverlay(dir_ + "/base.img", dir_ + "/vm.qcow2", 50).ok());
  auto info = InspectDisk(dir_ + "/vm.qcow2");
  ASSERT_TRUE(info.ok()) << info.error().message;
  EXPECT_EQ(info->virtual_bytes, 50ull << 30);
  EXPECT_LT(info->allocated_bytes, 1u << 20) << "a 50 GiB overlay takes almost nothing";
  ASSERT_TRUE(GrowDisk(dir_ + "/vm.qcow2", 60).ok());
  EXPECT_EQ(InspectDisk(dir_ + "/vm.qcow2")->virtual_bytes, 60ull << 30);
  auto shrink = GrowDisk(dir_ + "/vm.qcow2", 10);
  EXPECT_FALSE(shrink.ok());
  ASSERT_TRUE(CopyDisk(dir_ + "/vm.qcow2", dir_ + "/clone.qcow2").ok());
  EXPECT_EQ(InspectDisk(dir_ + "/clone.qcow2")->virtual_bytes, 60ull << 30);
}

TEST_F(DiskTest, ErrorsCarryTheToolsMessage) {
  auto r = CreateOverlay(dir_ + "/missing.img", dir_ + "/vm.qcow2", 5);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("qemu-img failed"), std::string::npos) << r.error().message;
  auto bad = RunCommand({"no-such-program-exed"});
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace vmm
