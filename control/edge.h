// Helpers shared by the control plane's command implementations: the
// exception edge (what the database layer throws becomes one Error) and the
// renderings every command uses. Internal to control/; thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pqxx/except>
#include <spdlog/spdlog.h>

#include "control/budget.h"
#include "control/result.h"
#include "db/pool.h"

namespace control {

using nlohmann::json;

// Turns what the database layer throws into the one error type, at the edge.
template <class F>
inline auto Guarded(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const db::Unavailable& e) {
    spdlog::error("op={} db unavailable: {}", what, e.what());
    return InternalError("the database is unavailable right now; try again in a minute");
  } catch (const pqxx::broken_connection& e) {
    spdlog::error("op={} db connection lost: {}", what, e.what());
    return InternalError("the database connection was lost; try again");
  } catch (const std::exception& e) {
    spdlog::error("op={} internal error: {}", what, e.what());
    return InternalError(fmt::format("internal error during {}; it has been logged, try again", what));
  }
}

inline std::string Dump(const json& j) { return j.dump(2) + "\n"; }

inline json ResourcesJson(int64_t cpus, int64_t mem, int64_t disk, int64_t vms) {
  return {{"cpus", cpus}, {"memory_mib", mem}, {"disk_gib", disk}, {"vms", vms}};
}

inline std::string ResourcesText(int64_t cpus, int64_t mem, int64_t disk, int64_t vms) {
  return fmt::format("{} CPU{}, {} memory, {} disk, {} VM{}", cpus, cpus == 1 ? "" : "s", FormatMiB(mem),
                     FormatGiB(disk), vms, vms == 1 ? "" : "s");
}


}  // namespace control
