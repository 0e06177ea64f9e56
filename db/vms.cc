#include "db/vms.h"

#include <nlohmann/json.hpp>

namespace db {

namespace {

constexpr const char* kSelect =
    "SELECT v.id, v.account_id, a.name, v.name, v.status, v.desired, v.image, v.cpus, v.memory_mib, v.disk_gib,"
    " coalesce(v.ssh_port, 0), coalesce(v.web_port, 0), v.guest_web_port, coalesce(v.pid, 0),"
    " coalesce(v.host_key, ''), v.env::text, array_to_json(v.tags)::text, coalesce(v.setup_script, ''),"
    " v.restarts, to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
    " FROM vms v JOIN accounts a ON a.id = v.account_id ";

Vm FromRow(const pqxx::row& r) {
  Vm v;
  v.id = r[0].as<int64_t>();
  v.account_id = r[1].as<int64_t>();
  v.account = r[2].as<std::string>();
  v.name = r[3].as<std::string>();
  v.status = r[4].as<std::string>();
  v.desired = r[5].as<std::string>();
  v.image = r[6].as<std::string>();
  v.cpus = r[7].as<int64_t>();
  v.memory_mib = r[8].as<int64_t>();
  v.disk_gib = r[9].as<int64_t>();
  v.ssh_port = r[10].as<int>();
  v.web_port = r[11].as<int>();
  v.guest_web_port = r[12].as<int>();
  v.pid = r[13].as<int>();
  v.host_key = r[14].as<std::string>();
  v.env_json = r[15].as<std::string>();
  v.tags = nlohmann::json::parse(r[16].as<std::string>()).get<std::vector<std::string>>();
  v.setup_script = r[17].as<std::string>();
  v.restarts = r[18].as<int>();
  v.created_at = r[19].as<std::string>();
  return v;
}

std::vector<Vm> All(const pqxx::result& rows) {
  std::vector<Vm> out;
  for (const auto& r : rows) out.push_back(FromRow(r));
  return out;
}

}  // namespace

int64_t InsertVm(pqxx::transaction_base& tx, const Vm& v) {
  return tx
      .exec_params1(
          "INSERT INTO vms (account_id, name, status, desired, image, cpus, memory_mib, disk_gib, ssh_port, web_port,"
          " guest_web_port, env, tags, setup_script)"
          " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULLIF($9, 0), NULLIF($10, 0), $11, $12::jsonb,"
          " ARRAY(SELECT jsonb_array_elements_text($13::jsonb)), NULLIF($14, '')) RETURNING id",
          v.account_id, v.name, v.status, v.desired, v.image, v.cpus, v.memory_mib, v.disk_gib, v.ssh_port,
          v.web_port, v.guest_web_port, v.env_json, nlohmann::json(v.tags).dump(), v.setup_script)[0]
      .as<int64_t>();
}

std::optional<Vm> FindVm(pqxx::transaction_base& tx, const std::string& name) {
  auto r = tx.exec_params(std::string(kSelect) + "WHERE v.name = $1", name);
  if (r.empty()) return std::nullopt;
  return FromRow(r[0]);
}

std::optional<Vm> FindVmById(pqxx::transaction_base& tx, int64_t id) {
  auto r = tx.exec_params(std::string(kSelect) + "WHERE v.id = $1", id);
  if (r.empty()) return std::nullopt;
  return FromRow(r[0]);
}

std::optional<Vm> LockVm(pqxx::transaction_base& tx, const std::string& name) {
  auto r = tx.exec_params(std::string(kSelect) + "WHERE v.name = $1 FOR UPDATE OF v", name);
  if (r.empty()) return std::nullopt;
  return FromRow(r[0]);
}

std::vector<Vm> ListVms(pqxx::transaction_base& tx, int64_t account_id) {
  return All(tx.exec_params(std::string(kSelect) + "WHERE v.account_id = $1 ORDER BY v.name", account_id));
}

std::vector<Vm> AllVms(pqxx::transaction_base& tx) { return All(tx.exec(std::string(kSelect) + "ORDER BY v.id")); }

void SetVmRuntime(pqxx::transaction_base& tx, int64_t id, const std::string& status, int pid) {
  tx.exec_params0("UPDATE vms SET status = $2, pid = NULLIF($3, 0), updated_at = now() WHERE id = $1", id, status,
                  pid);
}

void SetVmDesired(pqxx::transaction_base& tx, int64_t id, const std::string& desired) {
  tx.exec_params0("UPDATE vms SET desired = $2, updated_at = now() WHERE id = $1", id, desired);
}

void SetVmRestarts(pqxx::transaction_base& tx, int64_t id, int restarts) {
  tx.exec_params0("UPDATE vms SET restarts = $2 WHERE id = $1", id, restarts);
}

void SetVmHostKey(pqxx::transaction_base& tx, int64_t id, const std::string& host_key) {
  tx.exec_params0("UPDATE vms SET host_key = $2 WHERE id = $1", id, host_key);
}

void SetVmResources(pqxx::transaction_base& tx, int64_t id, int64_t cpus, int64_t memory_mib, int64_t disk_gib) {
  tx.exec_params0("UPDATE vms SET cpus = $2, memory_mib = $3, disk_gib = $4, updated_at = now() WHERE id = $1", id,
                  cpus, memory_mib, disk_gib);
}

void SetVmTags(pqxx::transaction_base& tx, int64_t id, const std::vector<std::string>& tags) {
  tx.exec_params0("UPDATE vms SET tags = ARRAY(SELECT jsonb_array_elements_text($2::jsonb)) WHERE id = $1", id,
                  nlohmann::json(tags).dump());
}

void RenameVm(pqxx::transaction_base& tx, int64_t id, const std::string& name) {
  tx.exec_params0("UPDATE vms SET name = $2, updated_at = now() WHERE id = $1", id, name);
}

void DeleteVm(pqxx::transaction_base& tx, int64_t id) { tx.exec_params0("DELETE FROM vms WHERE id = $1", id); }

std::set<int> UsedPorts(pqxx::transaction_base& tx) {
  std::set<int> out;
  for (const auto& r : tx.exec("SELECT ssh_port FROM vms WHERE ssh_port IS NOT NULL UNION "
                               "SELECT web_port FROM vms WHERE web_port IS NOT NULL")) {
    out.insert(r[0].as<int>());
  }
  return out;
}

}  // namespace db
