#include "control/suggest.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace control {
namespace {

const std::vector<std::string> kCommands = {
    "help", "whoami", "new", "ls", "rm", "restart", "ssh-key", "share", "resize", "ssh",
    "exit"};

TEST(Suggest, FromTheBrief) {
  EXPECT_EQ(Suggest("whomai", kCommands), "whoami");
  EXPECT_EQ(Suggest("hepl", kCommands), "help");
  EXPECT_EQ(Suggest("sshkey", kCommands), "ssh-key");
  EXPECT_EQ(Suggest("xyzzy", kCommands), std::nullopt);
}

TEST(Suggest, OneEditOfEachKind) {
  EXPECT_EQ(Suggest("nwe", kCommands), "new");      // swap
  EXPECT_EQ(Suggest("lss", kCommands), "ls");       // extra letter
  EXPECT_EQ(Suggest("shar", kCommands), "share");   // missing letter
  EXPECT_EQ(Suggest("resixe", kCommands), "resize");  // wrong letter
  EXPECT_EQ(Suggest("WHOAMI", kCommands), "whoami");  // case
}

TEST(Suggest, DistanceLimitGrowsWithTheWord) {
  // 6 letters: up to 2 edits.
  EXPECT_EQ(Suggest("rsetrt", kCommands), "restart");  // 2 edits from "restart" (7)
  EXPECT_EQ(Suggest("whxxmi", kCommands), "whoami");   // 2 substitutions
  EXPECT_EQ(Suggest("wxxxmi", kCommands), std::nullopt);  // 3 is too many
  // 4 letters: only 1 edit.
  EXPECT_EQ(Suggest("hxlx", kCommands), std::nullopt);
  // 2 letters: still 1 edit.
  EXPECT_EQ(Suggest("sl", kCommands), "ls");
  EXPECT_EQ(Suggest("zz", kCommands), std::nullopt);
}

TEST(Suggest, ClosestWinsAndTiesGoToTheEarlierCandidate) {
  // An exact match is its own suggestion.
  EXPECT_EQ(Suggest("ssh", kCommands), "ssh");
  EXPECT_EQ(Suggest("shh", {"ssh", "sha"}), "ssh");
  EXPECT_EQ(Suggest("shh", {"sha", "ssh"}), "sha");
  // Distance 1 beats distance 2 even when listed later.
  EXPECT_EQ(Suggest("restrt", {"resize", "restart"}), "restart");
}

TEST(Suggest, UniquePrefix) {
  EXPECT_EQ(Suggest("who", kCommands), "whoami");
  EXPECT_EQ(Suggest("rest", kCommands), "restart");
  // "re" starts both restart and resize: no confident guess.
  EXPECT_EQ(Suggest("re", {"restart", "resize"}), std::nullopt);
  EXPECT_EQ(Suggest("", kCommands), std::nullopt);
  EXPECT_EQ(Suggest("anything", {}), std::nullopt);
}

TEST(EditDistance, OptimalStringAlignment) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("abc", ""), 3u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistance("ab", "ba"), 1u);
  EXPECT_EQ(EditDistance("whomai", "whoami"), 1u);
  // OSA, not full Damerau: no edits inside a swapped pair.
  EXPECT_EQ(EditDistance("ca", "abc"), 3u);
}

}  // namespace
}  // namespace control
