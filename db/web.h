// Browser logins and sessions of the HTTPS front (tables web_logins,
// web_sessions, web_host_tokens) and the VM columns it reads. Same contract
// as accounts.h: run in the caller's transaction, throw pqxx exceptions.
// Secrets never reach the database: callers pass their SHA-256 hashes.
// Stateless, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <pqxx/pqxx>

namespace db {

struct WebLogin {
  std::string code;
  std::string secret_hash;
  std::string source_addr;
  std::string user_agent;
  std::optional<int64_t> account_id;  // set once approved
  int64_t age_seconds = 0;
  bool expired = false;
};

void InsertWebLogin(pqxx::transaction_base& tx, const std::string& code, const std::string& secret_hash,
                    const std::string& source_addr, const std::string& user_agent, int64_t ttl_seconds);
std::optional<WebLogin> FindWebLogin(pqxx::transaction_base& tx, const std::string& code);
// Marks it approved by `account_id`; false if it is unknown, expired or already approved.
bool ApproveWebLogin(pqxx::transaction_base& tx, const std::string& code, int64_t account_id);
void DeleteWebLogin(pqxx::transaction_base& tx, const std::string& code);

struct WebSession {
  int64_t id = 0;
  int64_t account_id = 0;
  std::string account;  // name
  std::string host;
  std::optional<int64_t> parent_id;
};

int64_t InsertWebSession(pqxx::transaction_base& tx, const std::string& token_hash, int64_t account_id,
                         const std::string& host, std::optional<int64_t> parent_id, int64_t ttl_seconds);
// The live session with this token hash on `host`; nullopt if none, expired,
// or it belongs to another host.
std::optional<WebSession> FindWebSession(pqxx::transaction_base& tx, const std::string& token_hash,
                                         const std::string& host);
// Deletes the session, its apex parent and every child of that parent.
void DeleteWebSessionFamily(pqxx::transaction_base& tx, int64_t session_id);

void InsertHostToken(pqxx::transaction_base& tx, const std::string& token_hash, int64_t session_id,
                     const std::string& host, int64_t ttl_seconds);
// Consumes the token (deleted whatever the outcome): the apex session it was
// minted from, if it was for `host` and has not expired.
std::optional<WebSession> TakeHostToken(pqxx::transaction_base& tx, const std::string& token_hash,
                                        const std::string& host);

void SetVmPublic(pqxx::transaction_base& tx, int64_t vm_id, bool is_public);
bool VmPublic(pqxx::transaction_base& tx, int64_t vm_id);
void SetVmGuestWebPort(pqxx::transaction_base& tx, int64_t vm_id, int port);

}  // namespace db
