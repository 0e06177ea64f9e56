// Watchdog: enforces deadlines on sockets whose owner thread is blocked
// inside libssh (a client stalled mid-handshake, or sitting at its passphrase
// prompt past the login grace time).
//
// When a deadline passes, the socket's read side is shut down, so the owner's
// blocking libssh call returns an error and the thread can still write a
// disconnect message explaining why. Thread-safe: one background thread.
// REQUIRES: Disarm(id) before the fd is closed, so a reused fd number is
// never touched.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <thread>

namespace sshd {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;

  Watchdog();
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  uint64_t Arm(int fd, Clock::time_point deadline);
  // Returns true if the deadline had already fired for this id.
  bool Disarm(uint64_t id);

 private:
  struct Entry {
    int fd;
    Clock::time_point deadline;
    bool fired;
  };
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Entry> entries_;  // GUARDED_BY(mu_)
  uint64_t next_id_ = 1;               // GUARDED_BY(mu_)
  bool stop_ = false;                  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace sshd
