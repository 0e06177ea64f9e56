// Schema migrations: numbered SQL files from migrations/, compiled in.
//
// Migrate() applies every pending migration in ONE transaction under an
// advisory lock, so concurrent starters serialize, applying twice is a no-op,
// and a failing migration leaves the schema exactly as it was.
#pragma once

#include <string>
#include <vector>

#include <pqxx/pqxx>

namespace db {

struct Migration {
  int version;
  std::string name;
  std::string sql;
};

// The migrations of this build, in version order (generated at build time).
std::vector<Migration> EmbeddedMigrations();

struct MigrateResult {
  std::vector<int> applied;  // versions applied by this call
  int current = 0;           // highest version now recorded
};

// Throws pqxx exceptions (with the failing migration named) on error.
MigrateResult Migrate(pqxx::connection& c, const std::vector<Migration>& migrations);

}  // namespace db
