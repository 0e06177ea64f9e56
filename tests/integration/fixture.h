// Shared fixture of the integration tests: one real PostgreSQL cluster per
// test binary, and a clean, migrated schema for every test.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <pqxx/connection>
#include <pqxx/transaction>

#include "db/migrate.h"
#include "db/pool.h"
#include "tests/support/pg_cluster.h"

namespace itest {

// Started on first use, stopped at exit.
inline testing_support::PgCluster& Cluster() {
  static auto* cluster = new testing_support::PgCluster();
  static struct Stopper {
    ~Stopper() { delete cluster; }
  } stopper;
  return *cluster;
}

inline void ResetSchema(const std::string& url) {
  pqxx::connection c(url);
  pqxx::work tx(c);
  tx.exec0("DROP SCHEMA public CASCADE");
  tx.exec0("CREATE SCHEMA public");
  tx.commit();
}

class DbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = Cluster().url();
    ResetSchema(url_);
    pqxx::connection c(url_);
    db::Migrate(c, db::EmbeddedMigrations());
    pool_ = std::make_unique<db::Pool>(url_, 20);
  }
  std::string url_;
  std::unique_ptr<db::Pool> pool_;
};

// A fresh ed25519 public key line ("ssh-ed25519 AAAA... comment"), made by ssh-keygen.
inline std::string NewPublicKey(const std::string& comment = "test") {
  char tmpl[] = "/tmp/exed-test-key-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  testing_support::RunOrDie("ssh-keygen -q -t ed25519 -N '' -C '" + comment + "' -f " + dir + "/k");
  std::string pub = testing_support::RunOrDie("cat " + dir + "/k.pub; rm -rf " + dir);
  while (!pub.empty() && pub.back() == '\n') pub.pop_back();
  return pub;
}

}  // namespace itest
