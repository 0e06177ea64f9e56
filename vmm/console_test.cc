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

TEST(Console, MarkersFedInPiecesMatchTheWholeConsole) {
  std::string log =
      "[    1.2] booting\r\n"
      "exed-hostkey: ssh-ed25519 AAAAone\r\n"
      "user typed: exed-hostkey: ssh-ed25519 AAAAfake\n"
      "not exed-ready\r\n"
      "exed-ready-ish\n"
      "exed-hostkey: ssh-ed25519 AAAApartial";  // no newline yet
  for (size_t piece : {1u, 3u, 7u, 1000u}) {
    ConsoleMarkers m;
    for (size_t i = 0; i < log.size(); i += piece) m.Feed(std::string_view(log).substr(i, piece));
    EXPECT_EQ(m.host_keys(), AnnouncedHostKeys(log)) << piece;
    EXPECT_EQ(m.host_keys(), std::vector<std::string>{"ssh-ed25519 AAAAone"});
    EXPECT_FALSE(m.ready()) << "only a whole `exed-ready` line counts";
    m.Feed("\r\nexed-re");
    EXPECT_FALSE(m.ready()) << "not before the line ends";
    m.Feed("ady\r\n");
    EXPECT_TRUE(m.ready());
    EXPECT_EQ(m.host_keys().back(), "ssh-ed25519 AAAApartial");
  }
}

TEST(Console, MarkersIgnoreOverlongLines) {
  ConsoleMarkers m;
  m.Feed("exed-hostkey: ssh-ed25519 AAAA" + std::string(10000, 'x') + "\nexed-ready\n");
  EXPECT_TRUE(m.host_keys().empty());
  EXPECT_TRUE(m.ready()) << "the line after an overlong one is read";
}

TEST(Console, WatchReadsWhatWasAppendedSinceItsOffset) {
  std::string path = "/tmp/exed-console-watch-test-" + std::to_string(::getpid());
  std::remove(path.c_str());
  ConsoleWatch w(path);
  w.Poll();  // no file yet: nothing
  EXPECT_FALSE(w.markers().ready());
  std::ofstream(path) << "boot\nexed-hostkey: ssh-ed25519 AAAAold\nexed-re";
  w.Poll();
  EXPECT_EQ(w.markers().host_keys(), std::vector<std::string>{"ssh-ed25519 AAAAold"});
  EXPECT_FALSE(w.markers().ready());
  std::ofstream(path, std::ios::app) << "ady\n";
  w.Poll();
  EXPECT_TRUE(w.markers().ready());
  // The next boot appends: a watch from the size before it sees only its lines.
  ConsoleWatch next(path, ConsoleSize(path));
  std::ofstream(path, std::ios::app) << "exed-hostkey: ssh-ed25519 AAAAnew\n";
  next.Poll();
  EXPECT_EQ(next.markers().host_keys(), std::vector<std::string>{"ssh-ed25519 AAAAnew"});
  EXPECT_FALSE(next.markers().ready()) << "the last boot's exed-ready does not count";
  std::ofstream(path, std::ios::trunc) << "exed-ready\n";  // replaced by a shorter file
  next.Poll();
  EXPECT_TRUE(next.markers().ready());
  EXPECT_TRUE(next.markers().host_keys().empty());
  EXPECT_EQ(ConsoleSize(path), 11u);
  EXPECT_EQ(ConsoleSize("/nonexistent"), 0u);
  std::remove(path.c_str());
}

TEST(Console, LinesSinceGivesOneBootsLastLinesOnOneLine) {
  std::string path = "/tmp/exed-console-since-test-" + std::to_string(::getpid());
  std::ofstream(path) << "old boot\nexed-ready\n";
  uint64_t at = ConsoleSize(path);
  EXPECT_EQ(LinesSince(path, at, 3), "");
  std::ofstream(path, std::ios::app) << "qemu: one\r\n\nqemu: two\nqemu: three\nqemu: four";
  EXPECT_EQ(LinesSince(path, at, 3), "qemu: two; qemu: three; qemu: four");
  EXPECT_EQ(LinesSince(path, at, 10), "qemu: one; qemu: two; qemu: three; qemu: four");
  EXPECT_EQ(LinesSince("/nonexistent", 0, 3), "");
  std::remove(path.c_str());
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
