#include <thread>
#include <vector>

#include "tests/integration/fixture.h"

namespace {

using itest::Cluster;
using itest::ResetSchema;

int64_t Count(pqxx::connection& c, const std::string& sql) {
  pqxx::work tx(c);
  return tx.exec1(sql)[0].as<int64_t>();
}

TEST(Migrate, AppliesAllOnceThenIsANoop) {
  ResetSchema(Cluster().url());
  pqxx::connection c(Cluster().url());
  auto all = db::EmbeddedMigrations();
  ASSERT_FALSE(all.empty());
  auto first = db::Migrate(c, all);
  EXPECT_EQ(first.applied.size(), all.size());
  EXPECT_EQ(first.current, all.back().version);
  auto second = db::Migrate(c, all);
  EXPECT_TRUE(second.applied.empty());
  EXPECT_EQ(Count(c, "SELECT count(*) FROM schema_migrations"), static_cast<int64_t>(all.size()));
  EXPECT_EQ(Count(c, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'ssh_keys'"), 1);
}

TEST(Migrate, FailedMigrationLeavesSchemaAsItWas) {
  ResetSchema(Cluster().url());
  pqxx::connection c(Cluster().url());
  std::vector<db::Migration> ms{{1, "good", "CREATE TABLE t_good (x int)"},
                                {2, "bad", "CREATE TABLE t_bad (x int); SELECT no_such_column FROM t_bad"}};
  try {
    db::Migrate(c, ms);
    FAIL() << "a broken migration must throw";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("2_bad"), std::string::npos) << e.what();
  }
  EXPECT_EQ(Count(c, "SELECT count(*) FROM information_schema.tables WHERE table_name IN "
                     "('t_good', 't_bad', 'schema_migrations')"),
            0);
}

TEST(Migrate, LaterMigrationAppliesOnTopOfEarlierOnes) {
  ResetSchema(Cluster().url());
  pqxx::connection c(Cluster().url());
  std::vector<db::Migration> ms{{1, "one", "CREATE TABLE t1 (x int)"}};
  EXPECT_EQ(db::Migrate(c, ms).applied, std::vector<int>{1});
  ms.push_back({2, "two", "ALTER TABLE t1 ADD COLUMN y int"});
  EXPECT_EQ(db::Migrate(c, ms).applied, std::vector<int>{2});
  EXPECT_EQ(Count(c, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't1'"), 2);
}

TEST(Migrate, ConcurrentStartersApplyEachMigrationOnce) {
  ResetSchema(Cluster().url());
  auto all = db::EmbeddedMigrations();
  std::vector<std::thread> threads;
  std::atomic<size_t> applied{0};
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      try {
        pqxx::connection c(Cluster().url());
        applied += db::Migrate(c, all).applied.size();
      } catch (...) {
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(applied.load(), all.size());
}

}  // namespace
