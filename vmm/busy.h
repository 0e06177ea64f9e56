// VmLocks: marks VMs that an operation is working on, so the reconciler and
// concurrent commands never act on a VM half-way through a change.
// Thread-safe (one mutex).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>

namespace vmm {

class VmLocks {
 public:
  // Holds the mark until destroyed; empty if another operation holds it.
  class Guard {
   public:
    Guard() = default;
    Guard(VmLocks* l, int64_t id) : l_(l), id_(id) {}
    Guard(Guard&& o) noexcept : l_(o.l_), id_(o.id_) { o.l_ = nullptr; }
    Guard& operator=(Guard&& o) noexcept {
      if (this != &o) {
        Release();
        l_ = o.l_;
        id_ = o.id_;
        o.l_ = nullptr;
      }
      return *this;
    }
    ~Guard() { Release(); }
    explicit operator bool() const { return l_ != nullptr; }

   private:
    void Release() {
      if (!l_) return;
      {
        std::lock_guard lock(l_->mu_);
        l_->busy_.erase(id_);
        ++l_->releases_[id_];
      }
      l_->cv_.notify_all();
      l_ = nullptr;
    }
    VmLocks* l_ = nullptr;
    int64_t id_ = 0;
  };

  Guard TryLock(int64_t id) {
    std::lock_guard lock(mu_);
    if (!busy_.insert(id).second) return Guard();
    return Guard(this, id);
  }
  // Waits up to `timeout` for the mark (a reconciler restart, another
  // command); empty if it is still held then.
  Guard Lock(int64_t id, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return busy_.count(id) == 0; })) return Guard();
    busy_.insert(id);
    return Guard(this, id);
  }
  // How often the mark of `id` was given back so far. An operation commits
  // its changes before it gives the mark back, so a snapshot (rows,
  // processes) taken after reading N here has seen all that was done to
  // the VM while the count is still N.
  uint64_t Releases(int64_t id) {
    std::lock_guard lock(mu_);
    auto it = releases_.find(id);
    return it == releases_.end() ? 0 : it->second;
  }
  std::map<int64_t, uint64_t> AllReleases() {
    std::lock_guard lock(mu_);
    return releases_;
  }
  bool Busy(int64_t id) {
    std::lock_guard lock(mu_);
    return busy_.count(id) > 0;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<int64_t> busy_;  // GUARDED_BY(mu_)
  std::map<int64_t, uint64_t> releases_;  // GUARDED_BY(mu_); a few bytes per VM ever marked
};

}  // namespace vmm
