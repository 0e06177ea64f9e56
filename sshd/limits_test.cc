#include "sshd/limits.h"

#include <gtest/gtest.h>

namespace sshd {
namespace {

TEST(ConnectionTracker, AddressLimitRefusesAndReleases) {
  ConnectionTracker t;
  auto a = t.AcquireAddress("10.0.0.1", 2);
  auto b = t.AcquireAddress("10.0.0.1", 2);
  EXPECT_TRUE(a);
  EXPECT_TRUE(b);
  EXPECT_FALSE(t.AcquireAddress("10.0.0.1", 2));
  EXPECT_TRUE(t.AcquireAddress("10.0.0.2", 2)) << "other addresses have their own count";
  { auto moved = std::move(a); }
  EXPECT_EQ(t.CountAddress("10.0.0.1"), 1);
  EXPECT_TRUE(t.AcquireAddress("10.0.0.1", 2));
}

TEST(ConnectionTracker, AccountsCountedApartFromAddresses) {
  ConnectionTracker t;
  auto a = t.AcquireAccount("alice", 1);
  EXPECT_TRUE(a);
  EXPECT_FALSE(t.AcquireAccount("alice", 1));
  EXPECT_TRUE(t.AcquireAddress("alice", 1));
  EXPECT_EQ(t.Total(), 0) << "Total counts connections by address only";
}

}  // namespace
}  // namespace sshd
