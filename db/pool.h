// db::Pool: a fixed-size pool of PostgreSQL connections (libpqxx).
//
// Thread-safe. Connections are opened lazily and replaced when found broken.
// Acquire() blocks up to a timeout when all are in use, so a slow query delays
// only the sessions that need a connection, never the accept loop.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace db {

// Thrown when no connection can be had in time or the server is unreachable.
class Unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Pool {
 public:
  // A borrowed connection, returned to the pool when destroyed.
  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<pqxx::connection> c) : pool_(pool), c_(std::move(c)) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& operator*() { return *c_; }
    pqxx::connection* operator->() { return c_.get(); }

   private:
    Pool* pool_;
    std::unique_ptr<pqxx::connection> c_;
  };

  Pool(std::string url, size_t size, std::chrono::milliseconds acquire_timeout = std::chrono::seconds(10));
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // REQUIRES: the Lease does not outlive the Pool.
  Lease Acquire();
  const std::string& url() const { return url_; }

 private:
  void Release(std::unique_ptr<pqxx::connection> c);

  const std::string url_;
  const size_t size_;
  const std::chrono::milliseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // GUARDED_BY(mu_)
  size_t open_ = 0;                                      // GUARDED_BY(mu_)
};

}  // namespace db
