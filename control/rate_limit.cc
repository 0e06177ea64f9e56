#include "control/rate_limit.h"

#include <algorithm>
#include <cmath>

namespace control {

RateLimiter::RateLimiter(double per_second, double burst, Clock clock, size_t max_keys)
    : per_second_(per_second > 1e-6 ? per_second : 1e-6),
      burst_(burst >= 1 ? burst : 1),
      clock_(std::move(clock)),
      max_keys_(max_keys) {}

double RateLimiter::Refilled(const Bucket& b, std::chrono::steady_clock::time_point now) const {
  // A clock that steps back (it should not: steady) adds nothing.
  double elapsed = std::max(0.0, std::chrono::duration<double>(now - b.at).count());
  return std::min(burst_, b.tokens + elapsed * per_second_);
}

bool RateLimiter::Allow(int64_t key, std::chrono::milliseconds* retry_after) {
  const auto now = clock_();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) {
      std::erase_if(buckets_, [&](const auto& kv) { return Refilled(kv.second, now) >= burst_; });
    }
    it = buckets_.emplace(key, Bucket{burst_, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = Refilled(b, now);
  b.at = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return true;
  }
  if (retry_after) {
    *retry_after = std::chrono::milliseconds(static_cast<int64_t>(std::ceil((1 - b.tokens) / per_second_ * 1000)));
  }
  return false;
}

}  // namespace control
