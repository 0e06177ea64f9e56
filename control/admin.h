// The operator's commands (`exed admin ...`): accounts, budgets, invites and
// the audit log, straight on the database with no SSH involved. Same error
// type and exit codes as the lobby. Thread-safe like Service.
#pragma once

#include <string>
#include <vector>

#include "control/service.h"
#include "db/pool.h"

namespace control {

std::string AdminHelp();

// `args` are the words after "admin". Returns the exit code (0, 1, 2).
int RunAdmin(db::Pool& pool, const ServiceConfig& config, const std::vector<std::string>& args, std::string* out,
             std::string* err);

}  // namespace control
