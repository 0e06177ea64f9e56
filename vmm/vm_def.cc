#include "vmm/vm_def.h"

#include <nlohmann/json.hpp>

namespace vmm {

VmDef FromRow(const db::Vm& v) {
  VmDef d;
  d.id = v.id;
  d.name = v.name;
  d.account = v.account;
  d.image = v.image;
  d.cpus = v.cpus;
  d.memory_mib = v.memory_mib;
  d.disk_gib = v.disk_gib;
  d.ssh_port = v.ssh_port;
  d.web_port = v.web_port;
  d.guest_web_port = v.guest_web_port;
  d.host_key = v.host_key;
  const auto env = nlohmann::json::parse(v.env_json);  // kept alive while iterated
  for (const auto& [k, val] : env.items()) d.env.emplace_back(k, val.get<std::string>());
  d.setup_script = v.setup_script;
  return d;
}

}  // namespace vmm
