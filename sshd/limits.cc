#include "sshd/limits.h"

namespace sshd {

ConnectionTracker::Slot& ConnectionTracker::Slot::operator=(Slot&& o) noexcept {
  if (this != &o) {
    Release();
    t_ = o.t_;
    m_ = o.m_;
    key_ = std::move(o.key_);
    o.t_ = nullptr;
  }
  return *this;
}

void ConnectionTracker::Slot::Release() {
  if (!t_) return;
  std::lock_guard lock(t_->mu_);
  auto it = m_->find(key_);
  if (it != m_->end() && --it->second == 0) m_->erase(it);
  t_ = nullptr;
}

ConnectionTracker::Slot ConnectionTracker::Acquire(std::map<std::string, int>* m, const std::string& key, int limit) {
  std::lock_guard lock(mu_);
  int& n = (*m)[key];
  if (n >= limit) {
    if (n == 0) m->erase(key);
    return Slot();
  }
  ++n;
  return Slot(this, m, key);
}

int ConnectionTracker::CountAddress(const std::string& addr) {
  std::lock_guard lock(mu_);
  auto it = by_address_.find(addr);
  return it == by_address_.end() ? 0 : it->second;
}

int ConnectionTracker::Total() {
  std::lock_guard lock(mu_);
  int n = 0;
  for (const auto& [k, v] : by_address_) n += v;
  return n;
}

}  // namespace sshd
