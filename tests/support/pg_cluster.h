// PgCluster: a throwaway PostgreSQL cluster in a temp dir for tests, made and
// stopped by ops/pgcluster (the same script ops/up uses). Not thread-safe:
// one per test binary, set up before tests run.
#pragma once

#include <string>

namespace testing_support {

class PgCluster {
 public:
  PgCluster();   // starts it; aborts the test binary if it cannot
  ~PgCluster();  // stops it and removes the directory
  const std::string& url() const { return url_; }

 private:
  std::string dir_;
  std::string url_;
};

// Runs a shell command, returns its stdout; aborts on non-zero exit.
std::string RunOrDie(const std::string& command);

}  // namespace testing_support
