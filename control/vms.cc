// The VM commands of control::Service: budgets and names decided here,
// recorded in the database, carried out by vmm::Host.
#include <arpa/inet.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include <pqxx/subtransaction>

#include "control/edge.h"
#include "control/names.h"
#include "control/service.h"
#include "db/audit.h"
#include "vmm/ports.h"
#include "vmm/vm_def.h"

namespace control {

namespace {

constexpr size_t kMaxSetupScript = 10 * 1024;

Error NoSuchVm(const std::string& name) {
  return NotFoundError(fmt::format("no VM '{}'; 'ls' lists yours", name));
}

Resources Need(const db::Vm& v) { return {v.cpus, v.memory_mib, v.disk_gib, 1}; }

// The account's budget and usage, read under its row lock: checks that must
// not race (concurrent `new`s, a resize) hold it until their transaction ends.
struct LockedBudget {
  db::Budget raw;
  Resources budget;
  Resources usage;
};
LockedBudget LockBudget(pqxx::transaction_base& tx, int64_t account_id) {
  db::LockAccount(tx, account_id);
  auto b = db::FindAccountById(tx, account_id)->budget;
  auto u = db::UsageOf(tx, account_id);
  return {b, {b.cpus, b.memory_mib, b.disk_gib, b.max_vms}, {u.cpus, u.memory_mib, u.disk_gib, u.vms}};
}

// A free loopback port not in `taken`, which it then joins; 0 if none. The
// database remembers allocations, so a port handed out but not yet bound by
// passt is not handed out twice.
int PickPort(std::set<int>* taken) {
  auto port = vmm::PickFreePort(*taken);
  if (!port) return 0;
  taken->insert(*port);
  return *port;
}

std::string Elapsed(std::chrono::steady_clock::time_point t0) {
  return fmt::format("{:.1f}s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

vmm::VmDef Service::DefOf(const db::Vm& v) const { return vmm::FromRow(v); }

std::string Service::VmJson(const db::Vm& v) const {
  return json{{"vm_name", v.name},
              {"status", v.status},
              {"https_url", config_.https_port == 443
                                ? fmt::format("https://{}.{}/", v.name, config_.domain)
                                : fmt::format("https://{}.{}:{}/", v.name, config_.domain, config_.https_port)},
              {"ssh_dest", fmt::format("{}@{}", v.name, config_.ssh_host)},
              {"ssh_host", config_.ssh_host},
              {"ssh_port", config_.ssh_port},
              {"ssh_user", v.name},
              {"ssh_command", config_.ssh_port == 22 ? fmt::format("ssh {}@{}", v.name, config_.ssh_host)
                                                     : fmt::format("ssh -p {} {}@{}", config_.ssh_port, v.name,
                                                                   config_.ssh_host)},
              {"image", v.image},
              {"cpus", v.cpus},
              {"memory_mib", v.memory_mib},
              {"disk_gib", v.disk_gib},
              {"tags", v.tags},
              {"created_at", v.created_at}}
      .dump();
}

std::vector<std::string> Service::VmNames(const Caller& caller) {
  std::vector<std::string> out;
  if (!caller.account_id) return out;
  try {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    for (const auto& v : db::ListVms(tx, *caller.account_id)) out.push_back(v.name);
  } catch (const std::exception& e) {
    spdlog::warn("op=vm-names error=\"{}\"", e.what());  // completion is a convenience
  }
  return out;
}

Result<db::Vm> Service::OwnedVm(const Caller& caller, const std::string& name) {
  return Guarded("find vm", [&]() -> Result<db::Vm> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto vm = db::FindVm(tx, name);
    tx.commit();
    // Someone else's VM gets the same answer as no VM: names are not secrets,
    // but whether a name is someone's VM is not ours to tell.
    if (!vm || vm->account_id != *caller.account_id) return NoSuchVm(name);
    return *vm;
  });
}

Result<Service::MarkedVm> Service::MarkOwnedVm(const Caller& caller, const std::string& name) {
  auto before = OwnedVm(caller, name);
  if (!before) return before.error();
  auto mark = locks_->Lock(before->id, std::chrono::minutes(2));
  if (!mark) return ConflictError(fmt::format("VM {} is busy with another command; try again in a moment", name));
  auto now = OwnedVm(caller, name);
  if (!now) return now.error();
  if (now->id != before->id) {
    return ConflictError(fmt::format("VM {} was removed and made again meanwhile; try again", name));
  }
  return MarkedVm{std::move(*now), std::move(mark)};
}

Result<db::Vm> Service::CreateVm(const Caller& caller, db::Vm row, const std::string& clone_from,
                                 const Progress& progress, bool wait) {
  auto t0 = std::chrono::steady_clock::now();
  db::Budget limits;
  auto inserted = Guarded("new", [&]() -> Result<db::Vm> {
    for (int attempt = 0;; ++attempt) {
      auto conn = pool_.Acquire();
      pqxx::work tx(*conn);
      // Check-then-insert under the account's lock: concurrent `new`s of one
      // account queue here and can never overrun the budget together.
      auto b = LockBudget(tx, *caller.account_id);
      if (auto e = CheckNewVm(b.budget, b.usage, Need(row))) return DeniedError(*e);
      auto ports = db::UsedPorts(tx);
      row.ssh_port = PickPort(&ports);
      row.web_port = PickPort(&ports);
      if (!row.ssh_port || !row.web_port) return InternalError("no free loopback port for the VM's forwards");
      row.account_id = *caller.account_id;
      row.account = caller.account_name;
      limits = b.raw;
      try {
        pqxx::subtransaction sub(tx, "insert");
        row.id = db::InsertVm(sub, row);
        sub.commit();
      } catch (const pqxx::unique_violation& e) {
        if (std::string_view(e.what()).find("port") != std::string_view::npos && attempt < 5) continue;
        return ConflictError(fmt::format("VM name '{}' is taken; pick another", row.name));
      }
      db::Audit(tx, {caller.account_id, caller.account_name, clone_from.empty() ? "vm.new" : "vm.cp",
                     json{{"vm", row.name}, {"image", row.image}, {"from", clone_from}}.dump(), caller.source_addr});
      tx.commit();
      return row;
    }
  });
  if (!inserted) return inserted.error();
  row = *inserted;
  auto busy = locks_->TryLock(row.id);
  auto step = [&](std::string_view s) { return !progress || progress(s); };
  auto undo = [&](const std::string& why) -> Error {
    if (auto s = host_->Destroy(DefOf(row)); !s) {
      spdlog::error("event=vm-undo-failed vm={} error=\"{}\"", row.name, s.error().message);
    }
    auto forgotten = Guarded("new undo", [&]() -> Status {
      auto conn = pool_.Acquire();
      pqxx::work tx(*conn);
      db::DeleteVm(tx, row.id);
      db::Audit(tx, {caller.account_id, caller.account_name, "vm.new-failed",
                     json{{"vm", row.name}, {"why", why}}.dump(), caller.source_addr});
      tx.commit();
      return Ok{};
    });
    if (!forgotten) spdlog::error("event=vm-undo-failed vm={} error=\"{}\"", row.name, forgotten.error().message);
    spdlog::error("event=vm-create-failed vm={} account={} why=\"{}\"", row.name, caller.account_name, why);
    return InternalError(fmt::format("VM {} did not start: {}; nothing was kept", row.name, why));
  };
  // The budget is the account cgroup's limit, shared by all its VMs.
  if (auto s = host_->SetAccountLimits(caller.account_name, limits.cpus, limits.memory_mib, limits.max_vms);
      !s) {
    return undo(s.error().message);
  }
  vmm::Started started;
  if (!clone_from.empty()) {
    auto src = OwnedVm(caller, clone_from);
    if (!src) return undo(src.error().message);
    if (!step("copying disk")) return undo("the client went away");
    if (auto s = host_->CloneDisk(DefOf(*src), DefOf(row)); !s) return undo(s.error().message);
    auto r = host_->Start(DefOf(row), progress, wait);
    if (!r) return undo(r.error().message);
    started = *r;
  } else {
    auto r = host_->Create(DefOf(row), progress, wait);
    if (!r) return undo(r.error().message);
    started = *r;
  }
  if (progress && !progress("")) {
    // The client left while the VM booted: an interrupted `new` keeps nothing.
    return undo("the client went away");
  }
  row.status = "running";
  row.pid = started.pid;
  if (!started.host_key.empty()) row.host_key = started.host_key;
  auto saved = Guarded("new", [&]() -> Status {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::SetVmRuntime(tx, row.id, "running", started.pid);
    if (!started.host_key.empty()) db::SetVmHostKey(tx, row.id, started.host_key);
    tx.commit();
    return Ok{};
  });
  if (!saved) return undo(saved.error().message);
  spdlog::info("event=vm-created vm={} account={} image={} pid={} ms={}", row.name, caller.account_name, row.image,
               started.pid, Elapsed(t0));
  return row;
}

Result<std::string> Service::DoNew(const Caller& caller, const NewVm& c, const StdinReader& read_stdin,
                                   const Progress& progress, bool json_out) {
  db::Vm row;
  row.name = c.name;
  if (row.name.empty()) {
    std::random_device rd;
    row.name = RandomVmName([&] { return static_cast<uint32_t>(rd()); });
  } else if (auto e = CheckVmName(row.name)) {
    return InvalidError(*e);
  }
  row.image = c.image.empty() ? config_.default_image : c.image;
  auto image = host_->FindImage(row.image);
  if (!image) return InvalidError(image.error().message);
  row.guest_web_port = image->web_port;
  auto budget = Guarded("new", [&]() -> Result<db::Budget> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    return db::FindAccountById(tx, *caller.account_id)->budget;
  });
  if (!budget) return budget.error();
  row.cpus = c.cpus.value_or(std::min(config_.vm_cpus, budget->cpus));
  row.memory_mib = c.memory_mib.value_or(std::min(config_.vm_memory_mib, budget->memory_mib));
  row.disk_gib = c.disk_gib.value_or(config_.vm_disk_gib);
  json env = json::object();
  for (const auto& [k, v] : c.env) env[k] = v;
  row.env_json = env.dump();
  row.tags = c.tags;
  row.setup_script = c.setup_script;
  if (c.setup_from_stdin) {
    auto in = read_stdin();
    if (!in) return in.error();
    row.setup_script = *in;
  }
  if (row.setup_script.size() > kMaxSetupScript) {
    return InvalidError(fmt::format("the setup script is {} bytes; the limit is 10 KiB", row.setup_script.size()));
  }
  auto made = CreateVm(caller, row, "", progress, !c.no_wait);
  if (!made) return made.error();
  if (json_out) return Dump(json::parse(VmJson(*made)));
  auto j = json::parse(VmJson(*made));
  return fmt::format("{} is running ({}, {} CPU, {} memory, {} disk)\n  https: {}\n  ssh:   {}\n", made->name,
                     made->image, made->cpus, FormatMiB(made->memory_mib), FormatGiB(made->disk_gib),
                     j["https_url"].get<std::string>(), j["ssh_command"].get<std::string>());
}

Result<std::string> Service::DoList(const Caller& caller, const ListVms& c, bool json_out) {
  return Guarded("ls", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto vms = db::ListVms(tx, *caller.account_id);
    tx.commit();
    json arr = json::array();
    std::string text = c.long_format ? fmt::format("{:<24} {:<9} {:<8} {:>4} {:>9} {:>8}  {}\n", "NAME", "STATUS",
                                                   "IMAGE", "CPUS", "MEMORY", "DISK", "TAGS")
                                     : "";
    for (const auto& v : vms) {
      if (!c.pattern.empty() && ::fnmatch(c.pattern.c_str(), v.name.c_str(), 0) != 0) continue;
      arr.push_back(json::parse(VmJson(v)));
      if (c.long_format) {
        std::string tags;
        for (const auto& t : v.tags) tags += (tags.empty() ? "" : ",") + t;
        text += fmt::format("{:<24} {:<9} {:<8} {:>4} {:>9} {:>8}  {}\n", v.name, v.status, v.image, v.cpus,
                            FormatMiB(v.memory_mib), FormatGiB(v.disk_gib), tags);
      } else {
        text += fmt::format("{:<24} {}\n", v.name, v.status);
      }
    }
    if (json_out) return Dump({{"vms", arr}});
    if (arr.empty() && !c.long_format) return std::string(c.pattern.empty() ? "no VMs yet; make one with 'new'\n" : "");
    return text;
  });
}

Result<std::string> Service::DoRemove(const Caller& caller, const RemoveVms& c, bool json_out) {
  json removed = json::array();
  std::string text;
  for (const auto& name : c.names) {
    auto marked = MarkOwnedVm(caller, name);
    if (!marked) return marked.error();
    db::Vm* vm = &marked->vm;
    if (auto s = host_->Destroy(DefOf(*vm)); !s) return s.error();
    auto done = Guarded("rm", [&]() -> Status {
      auto conn = pool_.Acquire();
      pqxx::work tx(*conn);
      db::DeleteVm(tx, vm->id);
      db::Audit(tx, {caller.account_id, caller.account_name, "vm.rm", json{{"vm", name}}.dump(), caller.source_addr});
      tx.commit();
      WebChanged();
      return Ok{};
    });
    if (!done) return done.error();
    removed.push_back(name);
    text += "removed " + name + "\n";
  }
  if (json_out) return Dump({{"removed", removed}});
  return text;
}

Result<std::string> Service::DoPower(const Caller& caller, const std::string& name, bool stop, bool start,
                                     const Progress& progress, bool json_out) {
  auto marked = MarkOwnedVm(caller, name);
  if (!marked) return marked.error();
  db::Vm* vm = &marked->vm;
  auto record = [&](const std::string& desired, const std::string& status, int pid) {
    return RecordPower(vm->id, desired, status, pid);
  };
  if (stop) {
    if (auto s = host_->Stop(DefOf(*vm)); !s) return s.error();
    if (auto s = record(start ? "running" : "stopped", "stopped", 0); !s) return s.error();
    vm->status = "stopped";
  }
  if (start) {
    if (!stop && host_->IsRunning(DefOf(*vm), vm->pid)) {
      return ConflictError(fmt::format("VM {} is already running", name));
    }
    auto r = host_->Start(DefOf(*vm), progress, true);
    if (!r) {
      if (auto s = record("stopped", "stopped", 0); !s) spdlog::error("event=record-failed vm={}", name);
      return InternalError(fmt::format("VM {} did not start: {}", name, r.error().message));
    }
    if (auto s = record("running", "running", r->pid); !s) return s.error();
    vm->status = "running";
  }
  if (json_out) return Dump(json::parse(VmJson(*vm)));
  return fmt::format("{} is {}\n", name, vm->status);
}

Status Service::RecordPower(int64_t vm_id, const std::string& desired, const std::string& status, int pid) {
  return Guarded("power", [&]() -> Status {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::SetVmDesired(tx, vm_id, desired);
    db::SetVmRuntime(tx, vm_id, status, pid);
    db::SetVmRestarts(tx, vm_id, 0);
    tx.commit();
    WebChanged();
    return Ok{};
  });
}

Result<std::string> Service::DoRename(const Caller& caller, const RenameVm& c, bool json_out) {
  if (auto e = CheckVmName(c.to)) return InvalidError(*e);
  auto vm = OwnedVm(caller, c.from);
  if (!vm) return vm.error();
  return Guarded("rename", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    try {
      pqxx::subtransaction sub(tx, "rename");
      db::RenameVm(sub, vm->id, c.to);
      sub.commit();
    } catch (const pqxx::unique_violation&) {
      return ConflictError(fmt::format("VM name '{}' is taken; pick another", c.to));
    }
    db::Audit(tx, {caller.account_id, caller.account_name, "vm.rename", json{{"from", c.from}, {"to", c.to}}.dump(),
                   caller.source_addr});
    tx.commit();
    WebChanged();
    vm->name = c.to;
    if (json_out) return Dump(json::parse(VmJson(*vm)));
    return fmt::format("renamed {} to {}\n", c.from, c.to);
  });
}

Result<std::string> Service::DoCopy(const Caller& caller, const CopyVm& c, const Progress& progress, bool json_out) {
  auto src = OwnedVm(caller, c.from);
  if (!src) return src.error();
  db::Vm row = *src;
  row.id = 0;
  row.status = "creating";
  row.desired = "running";
  row.host_key.clear();  // the clone keeps the disk, but gets its own identity at its first boot
  row.name = c.to;
  if (row.name.empty()) {
    std::random_device rd;
    row.name = RandomVmName([&] { return static_cast<uint32_t>(rd()); });
  } else if (auto e = CheckVmName(row.name)) {
    return InvalidError(*e);
  }
  auto made = CreateVm(caller, row, c.from, progress, true);
  if (!made) return made.error();
  if (json_out) return Dump(json::parse(VmJson(*made)));
  return fmt::format("{} is running, a copy of {}\n", made->name, c.from);
}

Result<std::string> Service::DoTag(const Caller& caller, const TagVm& c, bool json_out) {
  for (const auto& t : c.tags) {
    bool ok = !t.empty() && t.size() <= 32 && std::all_of(t.begin(), t.end(), [](char ch) {
      return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
    });
    if (!ok) return InvalidError(fmt::format("tag '{}' must be 1-32 lowercase letters, digits, '-', '_' or '.'", t));
  }
  auto vm = OwnedVm(caller, c.name);
  if (!vm) return vm.error();
  auto tags = vm->tags;
  for (const auto& t : c.tags) {
    auto it = std::find(tags.begin(), tags.end(), t);
    if (c.remove && it != tags.end()) tags.erase(it);
    if (!c.remove && it == tags.end()) tags.push_back(t);
  }
  return Guarded("tag", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::SetVmTags(tx, vm->id, tags);
    tx.commit();
    if (json_out) return Dump({{"vm_name", vm->name}, {"tags", tags}});
    std::string all;
    for (const auto& t : tags) all += (all.empty() ? "" : ", ") + t;
    return fmt::format("{}: {}\n", vm->name, all.empty() ? "no tags" : all);
  });
}

Result<std::string> Service::DoStat(const Caller& caller, const StatVm& c, bool json_out) {
  auto vm = OwnedVm(caller, c.name);
  if (!vm) return vm.error();
  auto st = host_->Stat(DefOf(*vm), vm->pid);
  if (!st) return st.error();
  if (json_out) {
    return Dump({{"vm_name", vm->name},
                 {"status", vm->status},
                 {"running", st->running},
                 {"cpu_seconds", static_cast<double>(st->cpu_usec) / 1e6},
                 {"memory_bytes", st->memory_bytes},
                 {"memory_peak_bytes", st->memory_peak_bytes},
                 {"disk_virtual_bytes", st->disk_virtual_bytes},
                 {"disk_allocated_bytes", st->disk_allocated_bytes},
                 {"cpus", vm->cpus},
                 {"memory_mib", vm->memory_mib}});
  }
  return fmt::format("{} ({})\n  cpu     {:.1f} s used, {} CPU{}\n  memory  {} in use (peak {}), {} given\n"
                     "  disk    {} written of {}\n",
                     vm->name, st->running ? "running" : vm->status, static_cast<double>(st->cpu_usec) / 1e6,
                     vm->cpus, vm->cpus == 1 ? "" : "s", FormatMiB(static_cast<int64_t>(st->memory_bytes >> 20)),
                     FormatMiB(static_cast<int64_t>(st->memory_peak_bytes >> 20)), FormatMiB(vm->memory_mib),
                     FormatMiB(static_cast<int64_t>(st->disk_allocated_bytes >> 20)),
                     FormatGiB(static_cast<int64_t>(st->disk_virtual_bytes >> 30)));
}

Result<std::string> Service::DoResize(const Caller& caller, const ResizeVm& c, bool json_out) {
  auto marked = MarkOwnedVm(caller, c.name);
  if (!marked) return marked.error();
  const db::Vm* vm = &marked->vm;
  db::Vm after = *vm;
  after.cpus = c.cpus.value_or(vm->cpus);
  after.memory_mib = c.memory_mib.value_or(vm->memory_mib);
  after.disk_gib = c.disk_gib.value_or(vm->disk_gib);
  return Guarded("resize", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto b = LockBudget(tx, *caller.account_id);
    if (auto e = CheckResize(b.budget, b.usage, Need(*vm), Need(after))) return DeniedError(*e);
    if (after.disk_gib != vm->disk_gib) {
      if (auto s = host_->GrowDisk(DefOf(*vm), after.disk_gib); !s) return s.error();
    }
    db::SetVmResources(tx, vm->id, after.cpus, after.memory_mib, after.disk_gib);
    db::Audit(tx, {caller.account_id, caller.account_name, "vm.resize",
                   json{{"vm", vm->name}, {"cpus", after.cpus}, {"memory_mib", after.memory_mib},
                        {"disk_gib", after.disk_gib}}.dump(),
                   caller.source_addr});
    tx.commit();
    if (json_out) return Dump(json::parse(VmJson(after)));
    bool later = after.cpus != vm->cpus || after.memory_mib != vm->memory_mib;
    return fmt::format("{}: {} CPU, {} memory, {} disk{}\n", vm->name, after.cpus, FormatMiB(after.memory_mib),
                       FormatGiB(after.disk_gib),
                       later && vm->status == "running" ? " (CPU and memory apply at the next restart)" : "");
  });
}

Result<std::string> Service::DoLogs(const Caller& caller, const VmLogs& c, bool json_out) {
  auto vm = OwnedVm(caller, c.name);
  if (!vm) return vm.error();
  std::string tail = host_->ConsoleTail(DefOf(*vm), static_cast<size_t>(c.lines));
  if (json_out) return Dump({{"vm_name", vm->name}, {"console", tail}});
  return tail;
}

Result<std::string> Service::DoBudget(const Caller& caller, bool json_out) {
  return Guarded("budget", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto account = db::FindAccountById(tx, *caller.account_id);
    auto usage = db::UsageOf(tx, *caller.account_id);
    tx.commit();
    const auto& b = account->budget;
    if (json_out) {
      return Dump({{"budget", ResourcesJson(b.cpus, b.memory_mib, b.disk_gib, b.max_vms)},
                   {"usage", ResourcesJson(usage.cpus, usage.memory_mib, usage.disk_gib, usage.vms)}});
    }
    return fmt::format(
        "budget  {}\nusage   {}\n\nEach VM may use up to the whole CPU and memory budget; together they share it.\n"
        "Disk counts provisioned sizes.\n",
        ResourcesText(b.cpus, b.memory_mib, b.disk_gib, b.max_vms),
        ResourcesText(usage.cpus, usage.memory_mib, usage.disk_gib, usage.vms));
  });
}

Result<std::string> Service::DoImages(bool json_out) {
  auto images = host_->Images();
  json arr = json::array();
  std::string text = fmt::format("{:<10} {:<8} {:<8} {}\n", "IMAGE", "USER", "WEB", "BUILT");
  for (const auto& i : images) {
    arr.push_back({{"name", i.name}, {"user", i.user}, {"web_port", i.web_port}, {"built_at", i.built_at},
                   {"default", i.name == config_.default_image}});
    text += fmt::format("{:<10} {:<8} {:<8} {}{}\n", i.name, i.user, i.web_port, i.built_at,
                        i.name == config_.default_image ? "  (default)" : "");
  }
  if (json_out) return Dump({{"images", arr}});
  return text;
}

}  // namespace control
