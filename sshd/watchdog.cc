#include "sshd/watchdog.h"

#include <sys/socket.h>

namespace sshd {

Watchdog::Watchdog() : thread_([this] { Loop(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

uint64_t Watchdog::Arm(int fd, Clock::time_point deadline) {
  std::lock_guard lock(mu_);
  uint64_t id = next_id_++;
  entries_[id] = {fd, deadline, false};
  cv_.notify_all();
  return id;
}

bool Watchdog::Disarm(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  bool fired = it->second.fired;
  entries_.erase(it);
  return fired;
}

void Watchdog::Loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    auto next = Clock::time_point::max();
    auto now = Clock::now();
    for (auto& [id, e] : entries_) {
      if (e.fired) continue;
      if (e.deadline <= now) {
        // Only the read side: the owner may still send a disconnect reason.
        ::shutdown(e.fd, SHUT_RD);
        e.fired = true;
      } else if (e.deadline < next) {
        next = e.deadline;
      }
    }
    if (next == Clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, next);
    }
  }
}

}  // namespace sshd
