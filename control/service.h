// control::Service: runs typed lobby commands for an authenticated caller.
//
// The one place where command semantics live: the SSH lobby, the HTTPS /exec
// API and tests call Execute(); nothing else touches accounts or keys.
// Thread-safe: holds only the pool and immutable config; each call uses its
// own transaction. Blocking (database round trips): call it from a session's
// own thread, never from an event loop.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "control/commands.h"
#include "control/result.h"
#include "db/accounts.h"
#include "db/pool.h"

namespace control {

enum class Registration { kOpen, kInvite, kClosed };
Result<Registration> ParseRegistration(std::string_view s);
std::string_view RegistrationName(Registration r);

struct ServiceConfig {
  Registration registration = Registration::kOpen;
  db::Budget default_budget{2, 8192, 100, 10};
  int64_t registrations_per_hour = 10;   // per source address
  std::string ssh_hint = "ssh -p 2222 localhost";  // how users reach the lobby
  int64_t history_keep = 500;            // lobby lines kept per account
};

// Who is asking. The front fills it from the authenticated connection.
struct Caller {
  std::optional<int64_t> account_id;  // unset: key not registered yet
  std::string account_name;
  std::string fingerprint;   // of the key this connection authenticated with
  std::string public_key;    // "TYPE BASE64"
  std::string source_addr;   // client IP, for rate limits and the audit log
};

struct Reply {
  std::string out;   // for stdout
  std::string err;   // for stderr; set exactly when exit_code != 0
  int exit_code = 0;  // 0 ok, 1 failed, 2 usage
  bool end_session = false;
};

// Reads the caller's stdin to EOF (for "ssh-key add < key.pub").
using StdinReader = std::function<Result<std::string>()>;

class Service {
 public:
  Service(db::Pool& pool, ServiceConfig config);

  const ServiceConfig& config() const { return config_; }

  // The caller for a freshly authenticated key: account filled in when the
  // key is registered (and its last-used time updated).
  Result<Caller> Identify(const std::string& fingerprint, const std::string& public_key,
                          const std::string& source_addr);

  // Splits, parses and runs one line. Never throws.
  Reply ExecuteLine(Caller& caller, std::string_view line, const StdinReader& read_stdin);
  // Runs a parsed request. Register updates `caller`. Never throws.
  Reply Execute(Caller& caller, const Request& request, const StdinReader& read_stdin);

  // What an unregistered key is told when it tries a command.
  std::string NotRegisteredMessage(const Caller& caller) const;

  std::vector<std::string> LoadHistory(int64_t account_id);
  void AppendHistory(int64_t account_id, const std::string& line);

 private:
  Result<std::string> Run(Caller& caller, const Request& req, const StdinReader& read_stdin, bool* end_session);
  Result<std::string> DoHelp(const Help& c, bool json);
  Result<std::string> DoWhoami(const Caller& caller, bool json);
  Result<std::string> DoRegister(Caller& caller, const Register& c, bool json);
  Result<std::string> DoKeyList(const Caller& caller, bool json);
  Result<std::string> DoKeyAdd(const Caller& caller, const SshKeyAdd& c, const StdinReader& read_stdin, bool json);
  Result<std::string> DoKeyRemove(const Caller& caller, const SshKeyRemove& c, bool json);
  Result<std::string> DoKeyRename(const Caller& caller, const SshKeyRename& c, bool json);

  db::Pool& pool_;
  const ServiceConfig config_;
};

}  // namespace control
