#include "control/rate_limit.h"

#include <gtest/gtest.h>

namespace control {
namespace {

using namespace std::chrono_literals;

class FakeClock {
 public:
  std::chrono::steady_clock::time_point now{std::chrono::seconds(1000)};
  RateLimiter::Clock fn() {
    return [this] { return now; };
  }
};

TEST(RateLimiter, BurstThenRefillAtTheRate) {
  FakeClock clock;
  RateLimiter rl(10, 20, clock.fn());
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(rl.Allow(1)) << i;
  std::chrono::milliseconds retry{0};
  EXPECT_FALSE(rl.Allow(1, &retry));
  EXPECT_EQ(retry, 100ms);
  clock.now += 99ms;
  EXPECT_FALSE(rl.Allow(1)) << "not yet a whole token";
  clock.now += 1ms;
  EXPECT_TRUE(rl.Allow(1));
  EXPECT_FALSE(rl.Allow(1));
  clock.now += 500ms;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(rl.Allow(1)) << i;
  EXPECT_FALSE(rl.Allow(1));
}

TEST(RateLimiter, RefillStopsAtTheBurst) {
  FakeClock clock;
  RateLimiter rl(10, 3, clock.fn());
  EXPECT_TRUE(rl.Allow(1));
  clock.now += 1h;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(rl.Allow(1)) << i;
  EXPECT_FALSE(rl.Allow(1));
}

TEST(RateLimiter, KeysHaveTheirOwnBuckets) {
  FakeClock clock;
  RateLimiter rl(1, 2, clock.fn());
  EXPECT_TRUE(rl.Allow(1));
  EXPECT_TRUE(rl.Allow(1));
  EXPECT_FALSE(rl.Allow(1));
  EXPECT_TRUE(rl.Allow(2)) << "another token is not limited by the first";
  EXPECT_TRUE(rl.Allow(2));
  EXPECT_FALSE(rl.Allow(2));
}

TEST(RateLimiter, ClockGoingBackAddsNothing) {
  FakeClock clock;
  RateLimiter rl(1, 1, clock.fn());
  EXPECT_TRUE(rl.Allow(1));
  clock.now -= 1h;
  EXPECT_FALSE(rl.Allow(1));
}

TEST(RateLimiter, FullBucketsAreDroppedPastMaxKeysButEmptyOnesKept) {
  FakeClock clock;
  RateLimiter rl(1, 2, clock.fn(), /*max_keys=*/2);
  EXPECT_TRUE(rl.Allow(1));
  EXPECT_TRUE(rl.Allow(1));  // key 1 empty
  EXPECT_TRUE(rl.Allow(2));
  clock.now += 10s;          // key 2 refilled; key 1 too, so spend it again
  EXPECT_TRUE(rl.Allow(1));
  EXPECT_TRUE(rl.Allow(1));
  EXPECT_TRUE(rl.Allow(3));  // over max_keys: key 2 (full) is dropped, key 1 (empty) kept
  EXPECT_FALSE(rl.Allow(1)) << "pruning must not forget a bucket that is being limited";
}

}  // namespace
}  // namespace control
