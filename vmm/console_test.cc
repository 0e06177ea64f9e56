#include "vmm/console.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

namespace vmm {
namespace {

TEST(Console, AnnouncedHostKeysTakesWholeMarkerLinesOnly) {
  std::string log =
      "[    1.2] booting\r\n"
      "exed-hostkey: ssh-ed25519 AAAAone\r\n"
      "exed-hostkey: ecdsa-sha2-nistp256 AAAAtwo\n"
      "user typed: exed-hostkey: ssh-ed25519 AAAAfake\n"
      "exed-hostkey: ssh-ed25519 AAAAone\n"
      "exed-hostkey: ssh-ed25519 AAAApartial";  // no newline yet
  auto keys = AnnouncedHostKeys(log);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0], "ecdsa-sha2-nistp256 AAAAtwo");
  EXPECT_EQ(keys[1], "ssh-ed25519 AAAAone");
  EXPECT_TRUE(AnnouncedHostKeys("nothing here\n").empty());
}

TEST(Console, TailFileGivesTheLastLines) {
  std::string path = "/tmp/exed-console-test-" + std::to_string(::getpid());
  std::ofstream(path) << "one\ntwo\nthree\nfour\n";
  EXPECT_EQ(TailFile(path, 2), "three\nfour\n");
  EXPECT_EQ(TailFile(path, 10), "one\ntwo\nthree\nfour\n");
  EXPECT_EQ(TailFile(path, 2, 8), "four\n") << "only the last 8 bytes are read; a cut line is dropped";
  EXPECT_EQ(TailFile("/nonexistent", 3), "");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace vmm
