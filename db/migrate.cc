#include "db/migrate.h"

#include <set>
#include <stdexcept>

#include <pqxx/pqxx>

namespace db {

namespace {
// Any constant shared by every exed: the key of the migration advisory lock.
constexpr long long kMigrationLock = 0x65786564;  // "exed"
}  // namespace

MigrateResult Migrate(pqxx::connection& c, const std::vector<Migration>& migrations) {
  MigrateResult out;
  pqxx::work tx(c);
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLock);
  tx.exec0(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      " version integer PRIMARY KEY, name text NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now())");
  std::set<int> done;
  for (const auto& row : tx.exec("SELECT version FROM schema_migrations")) done.insert(row[0].as<int>());
  int previous = 0;
  for (const auto& m : migrations) {
    if (m.version <= previous) throw std::logic_error("migrations out of order at " + std::to_string(m.version));
    previous = m.version;
    if (done.count(m.version)) continue;
    try {
      tx.exec0(m.sql);
    } catch (const pqxx::sql_error& e) {
      throw std::runtime_error("migration " + std::to_string(m.version) + "_" + m.name + " failed: " + e.what());
    }
    tx.exec_params0("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name);
    out.applied.push_back(m.version);
  }
  out.current = tx.exec1("SELECT coalesce(max(version), 0) FROM schema_migrations")[0].as<int>();
  tx.commit();
  return out;
}

}  // namespace db
