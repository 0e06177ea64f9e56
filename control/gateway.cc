// Who may enter a VM through the SSH gateway, and getting the VM ready for
// it; the `share` commands that decide the first.
#include <chrono>

#include "control/edge.h"
#include "control/service.h"
#include "db/audit.h"
#include "db/shares.h"
#include "db/web.h"
#include "vmm/vm_def.h"

namespace control {

using json = nlohmann::json;

std::string Service::NoEntryMessage(const std::string& name) const {
  return fmt::format("no VM named \"{}\" that you may use; '{} ls' lists yours", name, config_.ssh_hint);
}

Result<db::Vm> Service::EnterableVm(const Caller& caller, const std::string& name) {
  if (!caller.account_id) return NotFoundError(NoEntryMessage(name));
  return Guarded("find vm", [&]() -> Result<db::Vm> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto vm = db::FindVm(tx, name);
    bool may = vm && db::MayEnter(tx, vm->id, *caller.account_id);
    tx.commit();
    if (!may) return NotFoundError(NoEntryMessage(name));
    return *vm;
  });
}

Result<vmm::GuestEndpoint> Service::PrepareEntry(const Caller& caller, const db::Vm& found, const std::string& user,
                                                 const std::function<void(const std::string&)>& notice) {
  if (!host_) return InternalError("this exed runs no VMs");
  const std::string& name = found.name;
  auto image = host_->FindImage(found.image);
  if (!image) return InternalError(fmt::format("VM {}'s image '{}' is gone: {}", name, found.image, image.error().message));
  auto busy = locks_->TryLock(found.id);
  if (!busy) {
    // `new`, `start`, `restart` or the reconciler is working on it: usually a boot.
    notice(fmt::format("VM {} is busy (booting or changing); waiting up to {} s", name, config_.boot_timeout.count()));
    busy = locks_->Lock(found.id, config_.boot_timeout);
    if (!busy) {
      return ConflictError(fmt::format("VM {} is still busy after {} s; try again later, or see '{} logs {}'", name,
                                       config_.boot_timeout.count(), config_.ssh_hint, name));
    }
  }
  // Read again under the mark: what we waited for may have changed it.
  auto vm = EnterableVm(caller, name);
  if (!vm) return vm.error();
  if (vm->status == "creating") return ConflictError(fmt::format("VM {} is still being created; try again in a moment", name));
  vmm::VmDef def = DefOf(*vm);
  if (!host_->IsRunning(def, vm->pid)) {
    notice(vm->status == "crashed"
               ? fmt::format("VM {} had crashed; starting it", name)
               : fmt::format("VM {} is stopped; starting it", name));
    auto t0 = std::chrono::steady_clock::now();
    auto started = host_->Start(def, {}, true);
    if (!started) {
      (void)RecordPower(vm->id, vm->desired, "stopped", 0);
      return InternalError(fmt::format("VM {} did not start: {}; '{} logs {}' shows its console", name,
                                       started.error().message, config_.ssh_hint, name));
    }
    if (auto s = RecordPower(vm->id, "running", "running", started->pid); !s) return s.error();
    (void)Guarded("audit", [&]() -> Status {
      auto conn = pool_.Acquire();
      pqxx::work tx(*conn);
      db::Audit(tx, {caller.account_id, caller.account_name, "vm.start",
                     json{{"vm", name}, {"by", "ssh-gateway"}}.dump(), caller.source_addr});
      tx.commit();
      return Ok{};
    });
    notice(fmt::format("VM {} is up ({:.1f} s)", name,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()));
  }
  return vmm::GuestEndpoint{vm->ssh_port, host_->gateway_key_path(), user.empty() ? image->user : user, vm->host_key};
}

Result<std::string> Service::DoShareShow(const Caller& caller, const ShareShow& c, bool json_out) {
  auto vm = OwnedVm(caller, c.name);
  if (!vm) return vm.error();
  return Guarded("share show", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto shares = db::ListShares(tx, vm->id);
    bool is_public = db::VmPublic(tx, vm->id);
    tx.commit();
    if (json_out) {
      json ssh = json::array(), web = json::array(), all = json::array();
      for (const auto& s : shares) {
        if (s.ssh) ssh.push_back(s.account);
        if (s.web) web.push_back(s.account);
        all.push_back({{"account", s.account}, {"ssh", s.ssh}, {"web", s.web}});
      }
      return Dump({{"vm", vm->name}, {"public", is_public}, {"port", vm->guest_web_port}, {"ssh_access", ssh},
                   {"web_access", web}, {"shares", all}});
    }
    std::string out = fmt::format("{}: URL {} (port {})\n", vm->name,
                                  is_public ? "public, anyone may open it" : "private", vm->guest_web_port);
    if (shares.empty()) {
      return out + fmt::format("not shared; 'share add {0} ACCOUNT' lets another account open the URL, 'share access "
                               "allow {0} ACCOUNT' ssh in\n",
                               vm->name);
    }
    out += "shared with:\n";
    for (const auto& s : shares) {
      std::string what = s.ssh && s.web ? "ssh, web" : (s.ssh ? "ssh" : "web");
      out += fmt::format("  {:<32} {}\n", s.account, what);
    }
    return out;
  });
}

Result<std::string> Service::DoShareAccess(const Caller& caller, const ShareAccess& c, bool json_out) {
  auto vm = OwnedVm(caller, c.name);
  if (!vm) return vm.error();
  if (c.account == caller.account_name) {
    return InvalidError(fmt::format("you own {}; share access is for other accounts", vm->name));
  }
  return Guarded("share access", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto other = db::FindAccountByName(tx, c.account);
    if (!other) return NotFoundError(fmt::format("no account '{}'; check the name with its owner", c.account));
    bool changed = db::SetSshAccess(tx, vm->id, other->id, c.allow);
    if (changed) {
      db::Audit(tx, {caller.account_id, caller.account_name, c.allow ? "vm.share.ssh.allow" : "vm.share.ssh.deny",
                     json{{"vm", vm->name}, {"account", other->name}}.dump(), caller.source_addr});
    }
    tx.commit();
    if (json_out) return Dump({{"vm", vm->name}, {"account", other->name}, {"ssh", c.allow}, {"changed", changed}});
    if (!c.allow) {
      return fmt::format("{} {} ssh into {}\n", other->name, changed ? "may no longer" : "could not", vm->name);
    }
    return fmt::format("{} {} ssh into {}: ssh -p {} {}@{}\n", other->name, changed ? "may now" : "could already",
                       vm->name, config_.ssh_port, vm->name, config_.ssh_host);
  });
}

}  // namespace control
