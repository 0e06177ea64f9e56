#include "tests/support/pg_cluster.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace testing_support {

std::string RunOrDie(const std::string& command) {
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) {
    std::cerr << "cannot run: " << command << "\n";
    std::abort();
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  if (rc != 0) {
    std::cerr << "command failed (" << rc << "): " << command << "\n" << out << "\n";
    std::abort();
  }
  return out;
}

PgCluster::PgCluster() {
  char tmpl[] = "/tmp/exed-test-pg-XXXXXX";
  if (!::mkdtemp(tmpl)) std::abort();
  dir_ = tmpl;
  ::setenv("EXED_PG_FAST", "1", 1);
  url_ = RunOrDie(std::string(EXED_SOURCE_DIR) + "/ops/pgcluster start " + dir_);
  while (!url_.empty() && (url_.back() == '\n' || url_.back() == '\r')) url_.pop_back();
}

PgCluster::~PgCluster() {
  std::system((std::string(EXED_SOURCE_DIR) + "/ops/pgcluster stop " + dir_ + " >/dev/null 2>&1; rm -rf " + dir_)
                  .c_str());
}

}  // namespace testing_support
