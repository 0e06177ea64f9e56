#include "db/pool.h"

#include <pqxx/except>
#include <spdlog/spdlog.h>

namespace db {

Pool::Lease::~Lease() {
  if (c_) pool_->Release(std::move(c_));
}

Pool::Pool(std::string url, size_t size, std::chrono::milliseconds acquire_timeout)
    : url_(std::move(url)), size_(size), timeout_(acquire_timeout) {}

Pool::Lease Pool::Acquire() {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout_, [&] { return !idle_.empty() || open_ < size_; })) {
    throw Unavailable("all " + std::to_string(size_) + " database connections are busy");
  }
  if (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    if (c->is_open()) return Lease(this, std::move(c));
    --open_;  // broken: fall through and open a fresh one in its slot
  }
  ++open_;
  lock.unlock();
  try {
    return Lease(this, std::make_unique<pqxx::connection>(url_));
  } catch (const std::exception& e) {
    std::lock_guard relock(mu_);
    --open_;
    cv_.notify_one();
    spdlog::error("db connect failed: {}", e.what());
    throw Unavailable(std::string("cannot connect to PostgreSQL: ") + e.what());
  }
}

void Pool::Release(std::unique_ptr<pqxx::connection> c) {
  std::lock_guard lock(mu_);
  if (c->is_open()) {
    idle_.push_back(std::move(c));
  } else {
    --open_;
  }
  cv_.notify_one();
}

}  // namespace db
