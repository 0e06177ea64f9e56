// Connection limits of the SSH front, and the tracker that enforces the
// per-address and per-account ones. Thread-safe (one mutex; O(1) per call).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace sshd {

struct Limits {
  std::chrono::seconds login_grace{30};           // connect to authenticated
  int max_auth_attempts = 6;                      // failed auth requests per connection
  int max_connections = 1000;                     // all clients together
  int max_sessions_per_address = 300;             // connections from one IP
  int max_sessions_per_account = 300;             // lobby sessions of one account
  size_t max_line_bytes = 4096;                   // one lobby command line
  std::chrono::seconds idle_timeout{15 * 60};     // lobby with no input
  size_t max_stdin_bytes = 64 * 1024;             // stdin a one-shot command may read
};

class ConnectionTracker {
 public:
  // An acquired slot; releases itself when destroyed. Movable.
  class Slot {
   public:
    Slot() = default;
    Slot(ConnectionTracker* t, std::map<std::string, int>* m, std::string key) : t_(t), m_(m), key_(std::move(key)) {}
    Slot(Slot&& o) noexcept : t_(o.t_), m_(o.m_), key_(std::move(o.key_)) { o.t_ = nullptr; }
    Slot& operator=(Slot&& o) noexcept;
    ~Slot() { Release(); }
    explicit operator bool() const { return t_ != nullptr; }

   private:
    void Release();
    ConnectionTracker* t_ = nullptr;
    std::map<std::string, int>* m_ = nullptr;
    std::string key_;
  };

  // Empty Slot when `key` already holds `limit` slots.
  Slot AcquireAddress(const std::string& addr, int limit) { return Acquire(&by_address_, addr, limit); }
  Slot AcquireAccount(const std::string& account, int limit) { return Acquire(&by_account_, account, limit); }
  int CountAddress(const std::string& addr);
  int Total();

 private:
  Slot Acquire(std::map<std::string, int>* m, const std::string& key, int limit);

  std::mutex mu_;
  std::map<std::string, int> by_address_;  // GUARDED_BY(mu_)
  std::map<std::string, int> by_account_;  // GUARDED_BY(mu_)
};

}  // namespace sshd
