// `ssh-key generate-api-key`, `ssh-key api-keys`, `ssh-key revoke-api-key`:
// the tokens of the HTTPS /exec API (api.cc uses them).
#include <pqxx/except>
#include <pqxx/subtransaction>
#include <pqxx/transaction>

#include "control/api_token.h"
#include "control/edge.h"
#include "control/names.h"
#include "control/service.h"
#include "db/api_tokens.h"
#include "db/audit.h"

namespace control {

namespace {

json OrNull(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

json TokenJson(const db::ApiToken& t) {
  return {{"id", t.id},
          {"label", t.label},
          {"cmds", t.cmds},
          {"created_at", t.created_at},
          {"expires_at", OrNull(t.expires_at)},
          {"last_used_at", OrNull(t.last_used_at)},
          {"expired", t.expired}};
}

std::string CmdsText(const std::vector<std::string>& cmds) {
  if (cmds.empty()) return "all";
  std::string out;
  for (const auto& c : cmds) out += (out.empty() ? "" : ",") + c;
  return out;
}

}  // namespace

Result<std::string> Service::DoApiKeyGenerate(const Caller& caller, const ApiKeyGenerate& c, bool json_out) {
  auto token = NewApiToken();
  if (!token) return token.error();
  return Guarded("ssh-key generate-api-key", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    std::string label =
        !c.label.empty() ? c.label : fmt::format("api-key-{}", db::CountApiTokens(tx, *caller.account_id) + 1);
    db::ApiToken t;
    try {
      pqxx::subtransaction sub(tx, "token");
      t = db::InsertApiToken(sub, *caller.account_id, label, ApiTokenHash(*token), c.cmds, c.expires_in);
      sub.commit();
    } catch (const pqxx::unique_violation&) {
      // The hash cannot collide (256 random bits): it is the label.
      return ConflictError(fmt::format("you already have an API token labelled '{}'; give this one another "
                                       "--label, or revoke that one first",
                                       label));
    }
    db::Audit(tx, {caller.account_id, caller.account_name, "api-key.generate",
                   json{{"token_id", t.id}, {"label", t.label}, {"cmds", t.cmds}, {"expires_at", OrNull(t.expires_at)}}
                       .dump(),
                   caller.source_addr});
    tx.commit();
    spdlog::info("event=api-key-generate account={} token_id={} label={}", caller.account_name, t.id, t.label);
    if (json_out) {
      return Dump({{"token", *token},
                   {"id", t.id},
                   {"label", t.label},
                   {"cmds", t.cmds},
                   {"expires_at", OrNull(t.expires_at)}});
    }
    std::string url = fmt::format("https://{}{}/exec", config_.domain,
                                  config_.https_port == 443 ? "" : fmt::format(":{}", config_.https_port));
    return fmt::format(
        "API token {} ({}): may run {}; {}.\n\n  {}\n\n"
        "Copy it now: it will not be shown again (only its hash is kept).\n"
        "Use it:  curl -H 'Authorization: Bearer {}' --data 'whoami' {}\n",
        t.id, t.label, t.cmds.empty() ? "every command" : "only " + CmdsText(t.cmds),
        t.expires_at.empty() ? "it never expires" : "it expires at " + t.expires_at, *token, *token, url);
  });
}

Result<std::string> Service::DoApiKeyList(const Caller& caller, bool json_out) {
  return Guarded("ssh-key api-keys", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto tokens = db::ListApiTokens(tx, *caller.account_id);
    tx.commit();
    if (json_out) {
      json all = json::array();
      for (const auto& t : tokens) all.push_back(TokenJson(t));
      return Dump({{"api_keys", all}});
    }
    if (tokens.empty()) return std::string("no API tokens; make one with 'ssh-key generate-api-key'\n");
    std::string out = fmt::format("{:<6} {:<20} {:<24} {:<20} {}\n", "ID", "LABEL", "COMMANDS", "EXPIRES", "LAST USED");
    for (const auto& t : tokens) {
      std::string expires = t.expires_at.empty() ? "never" : t.expires_at.substr(0, 16);
      if (t.expired) expires = "expired";
      out += fmt::format("{:<6} {:<20} {:<24} {:<20} {}\n", t.id, t.label, CmdsText(t.cmds), expires,
                         t.last_used_at.empty() ? "never" : t.last_used_at.substr(0, 16));
    }
    return out;
  });
}

Result<std::string> Service::DoApiKeyRevoke(const Caller& caller, const ApiKeyRevoke& c, bool json_out) {
  bool by_id = !c.which.empty() && c.which.size() <= 18 &&
               c.which.find_first_not_of("0123456789") == std::string::npos;
  return Guarded("ssh-key revoke-api-key", [&]() -> Result<std::string> {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    auto t = by_id ? db::RevokeApiTokenById(tx, *caller.account_id, std::stoll(c.which))
                   : db::RevokeApiTokenByLabel(tx, *caller.account_id, c.which);
    if (!t) {
      return NotFoundError(fmt::format("you have no API token {} {}; 'ssh-key api-keys' lists them",
                                       by_id ? "with id" : "labelled", ForMessage(c.which)));
    }
    db::Audit(tx, {caller.account_id, caller.account_name, "api-key.revoke",
                   json{{"token_id", t->id}, {"label", t->label}}.dump(), caller.source_addr});
    tx.commit();
    spdlog::info("event=api-key-revoke account={} token_id={}", caller.account_name, t->id);
    if (json_out) return Dump({{"revoked", TokenJson(*t)}});
    return fmt::format("revoked API token {} ({}); requests with it now fail\n", t->id, t->label);
  });
}

}  // namespace control
