// RateLimiter: one token bucket per key (an API token's id), refilled at
// `per_second` up to `burst`. Each allowed request takes one.
//
// Thread-safe (one mutex; every call is a few arithmetic operations under
// it). The clock is injected so tests step time instead of sleeping. Memory
// is bounded: once more than `max_keys` buckets exist, those that have
// refilled completely (and so hold no information) are dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>

namespace control {

class RateLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // A rate under one per million seconds or a burst under 1 is raised to it.
  RateLimiter(double per_second, double burst, Clock clock = [] { return std::chrono::steady_clock::now(); },
              size_t max_keys = 10000);
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes a token from `key`'s bucket: true if there was one. When not, and
  // `retry_after` is given, sets it to when the next token comes.
  bool Allow(int64_t key, std::chrono::milliseconds* retry_after = nullptr);

  double per_second() const { return per_second_; }
  double burst() const { return burst_; }

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;  // when `tokens` was computed
  };
  double Refilled(const Bucket& b, std::chrono::steady_clock::time_point now) const;

  const double per_second_;
  const double burst_;
  const Clock clock_;
  const size_t max_keys_;
  std::mutex mu_;
  std::unordered_map<int64_t, Bucket> buckets_;  // GUARDED_BY(mu_)
};

}  // namespace control
