// The HTTPS front's questions to the control plane (who may open a VM's URL,
// browser logins and their sessions) and the lobby commands that change the
// answers: share set-public|set-private|add|remove|port, login, ca.
//
// Secrets (login secrets, session cookies, host tokens) are random tokens;
// only their SHA-256 reaches the database.
#include <fstream>
#include <sstream>

#include "control/edge.h"
#include "control/names.h"
#include "control/secrets.h"
#include "control/service.h"
#include "db/audit.h"
#include "db/shares.h"
#include "db/web.h"

namespace control {

using json = nlohmann::json;

namespace {

constexpr int64_t kHostTokenTtlSeconds = 60;

std::string NormalizeCode(std::string code) {
  std::string out;
  for (char c : code) {
    if (c == '-' || c == ' ') continue;
    out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  if (out.size() == 8) out.insert(4, "-");
  return out;
}

}  // namespace

std::string Service::ApexHost() const { return config_.domain; }

Result<WebTarget> Service::WebTargetFor(const std::string& name) {
  if (CheckVmName(name)) return NotFoundError("no VM " + name);
  return Guarded("web target", [&]() -> Result<WebTarget> {
    auto conn = pool_.Acquire();
    pqxx::read_transaction tx(*conn);
    auto vm = db::FindVm(tx, name);
    if (!vm) return NotFoundError("no VM " + name);
    WebTarget t{vm->id, vm->name, vm->account_id, vm->account, vm->status, vm->web_port, vm->guest_web_port,
                db::VmPublic(tx, vm->id)};
    tx.commit();
    return t;
  });
}

Result<bool> Service::MayView(const WebTarget& vm, int64_t account_id) {
  if (vm.owner_id == account_id) return true;
  return Guarded("may view", [&]() -> Result<bool> {
    auto conn = pool_.Acquire();
    pqxx::read_transaction tx(*conn);
    bool may = db::MayView(tx, vm.vm_id, account_id);
    tx.commit();
    return may;
  });
}

Result<std::pair<std::string, std::string>> Service::StartWebLogin(const std::string& source_addr,
                                                                    const std::string& user_agent) {
  return Guarded("web login", [&]() -> Result<std::pair<std::string, std::string>> {
    std::string secret = RandomToken();
    for (int attempt = 0;; ++attempt) {
      std::string code = RandomCode();
      auto conn = pool_.Acquire();
      pqxx::work tx(*conn);
      try {
        pqxx::subtransaction sub(tx, "login");
        db::InsertWebLogin(sub, code, Sha256Hex(secret), source_addr, user_agent.substr(0, 200),
                           config_.web_login_ttl_seconds);
        sub.commit();
      } catch (const pqxx::unique_violation&) {
        if (attempt < 5) continue;  // a code in use: draw another
        throw;
      }
      tx.commit();
      return std::make_pair(code, secret);
    }
  });
}

Result<WebLoginState> Service::FinishWebLogin(const std::string& code, const std::string& secret,
                                              std::string* session_token) {
  return Guarded("web login", [&]() -> Result<WebLoginState> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto login = db::FindWebLogin(tx, code);
    // Only the browser that started the login (its cookie) may finish it.
    if (!login || login->expired || login->secret_hash != Sha256Hex(secret)) return WebLoginState::kGone;
    if (!login->account_id) return WebLoginState::kPending;
    std::string token = RandomToken();
    db::InsertWebSession(tx, Sha256Hex(token), *login->account_id, ApexHost(), std::nullopt,
                         config_.web_session_ttl_seconds);
    db::DeleteWebLogin(tx, code);
    tx.commit();
    *session_token = token;
    return WebLoginState::kApproved;
  });
}

Result<WebIdentity> Service::WebSessionFor(const std::string& token, const std::string& host) {
  if (token.empty()) return NotFoundError("not logged in");
  return Guarded("web session", [&]() -> Result<WebIdentity> {
    auto conn = pool_.Acquire();
    pqxx::read_transaction tx(*conn);
    auto s = db::FindWebSession(tx, Sha256Hex(token), host);
    tx.commit();
    if (!s) return NotFoundError("not logged in");
    return WebIdentity{s->id, s->account_id, s->account};
  });
}

Result<std::string> Service::MintHostToken(const WebIdentity& apex, const std::string& host) {
  return Guarded("host token", [&]() -> Result<std::string> {
    std::string token = RandomToken();
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::InsertHostToken(tx, Sha256Hex(token), apex.session_id, host, kHostTokenTtlSeconds);
    tx.commit();
    return token;
  });
}

Result<std::string> Service::RedeemHostToken(const std::string& token, const std::string& host, WebIdentity* who) {
  return Guarded("host token", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto apex = db::TakeHostToken(tx, Sha256Hex(token), host);
    if (!apex) {
      tx.commit();  // the token is used up either way
      return NotFoundError("this login link has expired or was used already; open the page again");
    }
    std::string cookie = RandomToken();
    int64_t id = db::InsertWebSession(tx, Sha256Hex(cookie), apex->account_id, host, apex->id,
                                      config_.web_session_ttl_seconds);
    tx.commit();
    *who = WebIdentity{id, apex->account_id, apex->account};
    return cookie;
  });
}

Status Service::WebLogout(const WebIdentity& who) {
  return Guarded("logout", [&]() -> Status {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::DeleteWebSessionFamily(tx, who.session_id);
    tx.commit();
    return Ok{};
  });
}

Result<std::vector<db::Vm>> Service::VmsOf(int64_t account_id) {
  return Guarded("list vms", [&]() -> Result<std::vector<db::Vm>> {
    auto conn = pool_.Acquire();
    pqxx::read_transaction tx(*conn);
    auto vms = db::ListVms(tx, account_id);
    tx.commit();
    return vms;
  });
}

Result<std::string> Service::DoLogin(const Caller& caller, const WebLogin& c, bool json_out) {
  std::string code = NormalizeCode(c.code);
  return Guarded("login", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto login = db::FindWebLogin(tx, code);
    if (!login || login->expired) {
      return NotFoundError(fmt::format("no login waiting with code {}; codes last {} minutes: reload the login "
                                       "page for a new one",
                                       ForMessage(c.code), config_.web_login_ttl_seconds / 60));
    }
    if (login->account_id) return ConflictError(fmt::format("login {} was approved already", code));
    db::ApproveWebLogin(tx, code, *caller.account_id);
    db::Audit(tx, {caller.account_id, caller.account_name, "web.login.approve",
                   json{{"code", code}, {"browser_addr", login->source_addr}}.dump(), caller.source_addr});
    tx.commit();
    if (json_out) {
      return Dump({{"approved", code}, {"account", caller.account_name}, {"browser_addr", login->source_addr},
                   {"browser", login->user_agent}, {"started_seconds_ago", login->age_seconds}});
    }
    return fmt::format(
        "approved login {}: the browser at {} ({}), which started it {} s ago, is now logged in as {}.\n"
        "If that was not you: ssh-key list, and log out at https://{}/__exed/logout\n",
        code, login->source_addr, login->user_agent.empty() ? "unknown browser" : ForMessage(login->user_agent),
        login->age_seconds, caller.account_name, ApexHost());
  });
}

Result<std::string> Service::DoCa(bool json_out) {
  if (config_.ca_pem_path.empty()) {
    return NotFoundError("this server's certificates do not come from an internal CA; browsers trust them already");
  }
  std::ifstream f(config_.ca_pem_path);
  std::stringstream pem;
  pem << f.rdbuf();
  if (!f || pem.str().empty()) return InternalError("cannot read the CA certificate " + config_.ca_pem_path);
  if (json_out) return Dump({{"ca_pem", pem.str()}});
  return pem.str();
}

Result<std::string> Service::DoSharePublic(const Caller& caller, const SharePublic& c, bool json_out) {
  auto vm = OwnedVm(caller, c.name);
  if (!vm) return vm.error();
  return Guarded("share", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::SetVmPublic(tx, vm->id, c.is_public);
    db::Audit(tx, {caller.account_id, caller.account_name, c.is_public ? "vm.share.public" : "vm.share.private",
                   json{{"vm", vm->name}}.dump(), caller.source_addr});
    tx.commit();
    WebChanged();
    std::string url = json::parse(VmJson(*vm))["https_url"];
    if (json_out) return Dump({{"vm", vm->name}, {"public", c.is_public}, {"https_url", url}});
    return c.is_public ? fmt::format("{} is public: anyone may open {}\n", vm->name, url)
                       : fmt::format("{} is private: {} opens for you and those it is shared with\n", vm->name, url);
  });
}

Result<std::string> Service::DoShareWeb(const Caller& caller, const ShareWeb& c, bool json_out) {
  auto vm = OwnedVm(caller, c.name);
  if (!vm) return vm.error();
  if (c.account == caller.account_name) return InvalidError(fmt::format("you own {} already", vm->name));
  return Guarded("share", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto other = db::FindAccountByName(tx, c.account);
    if (!other) return NotFoundError(fmt::format("no account '{}'; check the name with its owner", c.account));
    bool changed = db::SetWebAccess(tx, vm->id, other->id, c.add);
    if (changed) {
      db::Audit(tx, {caller.account_id, caller.account_name, c.add ? "vm.share.web.add" : "vm.share.web.remove",
                     json{{"vm", vm->name}, {"account", other->name}}.dump(), caller.source_addr});
    }
    tx.commit();
    if (changed) WebChanged();
    std::string url = json::parse(VmJson(*vm))["https_url"];
    if (json_out) return Dump({{"vm", vm->name}, {"account", other->name}, {"web", c.add}, {"changed", changed}});
    return c.add ? fmt::format("{} may open {} once logged in\n", other->name, url)
                 : fmt::format("{} may no longer open {}\n", other->name, url);
  });
}

Result<std::string> Service::DoSharePort(const Caller& caller, const SharePort& c, bool json_out) {
  auto vm = OwnedVm(caller, c.name);
  if (!vm) return vm.error();
  return Guarded("share", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::SetVmGuestWebPort(tx, vm->id, c.port);
    db::Audit(tx, {caller.account_id, caller.account_name, "vm.share.port",
                   json{{"vm", vm->name}, {"port", c.port}}.dump(), caller.source_addr});
    tx.commit();
    bool running = vm->status == "running";
    if (json_out) return Dump({{"vm", vm->name}, {"port", c.port}, {"needs_restart", running}});
    return fmt::format("{}'s URL goes to its port {}{}\n", vm->name, c.port,
                       running ? fmt::format(" from its next start ('restart {}')", vm->name) : "");
  });
}

}  // namespace control
