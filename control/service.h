// control::Service: runs typed lobby commands for an authenticated caller.
//
// The one place where command semantics live: the SSH lobby, the HTTPS /exec
// API and tests call Execute(); nothing else touches accounts or keys.
// Thread-safe: holds only the pool and immutable config; each call uses its
// own transaction. Blocking (database round trips): call it from a session's
// own thread, never from an event loop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "control/commands.h"
#include "control/rate_limit.h"
#include "control/result.h"
#include "db/accounts.h"
#include "db/pool.h"
#include "db/vms.h"
#include "vmm/busy.h"
#include "vmm/guest_ssh.h"
#include "vmm/host.h"

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
  // VMs
  std::string default_image = "debian";
  int64_t vm_cpus = 1;          // defaults of `new`, capped by the budget
  int64_t vm_memory_mib = 1024;
  int64_t vm_disk_gib = 10;
  std::string domain = "exe.localhost";
  int https_port = 8443;
  std::string ssh_host = "localhost";
  int ssh_port = 2222;
  std::chrono::seconds boot_timeout{180};
  // The HTTPS /exec API (api.cc): requests per second per token, the burst
  // allowed above that rate, and the largest request body.
  double api_rate_per_second = 10;
  double api_burst = 20;
  size_t api_max_body_bytes = 64 * 1024;
  std::string no_vms_reason;  // why VM commands cannot work here, if they cannot
  std::string ca_pem_path;    // the internal CA's certificate (`ca`); empty: none
  int64_t web_login_ttl_seconds = 600;
  int64_t web_session_ttl_seconds = 30 * 24 * 3600;
};

// What the HTTPS front needs to know about a VM's URL.
struct WebTarget {
  int64_t vm_id = 0;
  std::string name;
  int64_t owner_id = 0;
  std::string owner;
  std::string status;  // creating | running | stopped | crashed
  int web_port = 0;    // the host loopback port forwarded to the guest's web port
  int guest_web_port = 80;
  bool is_public = false;
};

// A browser session: who, and the session's id (for logout and host tokens).
struct WebIdentity {
  int64_t session_id = 0;
  int64_t account_id = 0;
  std::string account;
};

enum class WebLoginState { kPending, kApproved, kGone };

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

// The answer of the HTTPS /exec API: an HTTP status and a JSON body, the
// command's JSON on 200, {"error": "..."} otherwise.
struct ApiReply {
  int status = 200;
  std::string json;
};

// Reads the caller's stdin to EOF (for "ssh-key add < key.pub").
using StdinReader = std::function<Result<std::string>()>;
// Steps of long commands (`new`); returning false means the client is gone.
using Progress = vmm::Progress;

class Service {
 public:
  // `host` may be null in tests of account logic; VM commands then fail.
  Service(db::Pool& pool, ServiceConfig config, vmm::Host* host = nullptr, vmm::VmLocks* locks = nullptr);

  const ServiceConfig& config() const { return config_; }

  // The caller for a freshly authenticated key: account filled in when the
  // key is registered (and its last-used time updated).
  Result<Caller> Identify(const std::string& fingerprint, const std::string& public_key,
                          const std::string& source_addr);

  // Splits, parses and runs one line. Never throws.
  Reply ExecuteLine(Caller& caller, std::string_view line, const StdinReader& read_stdin,
                    const Progress& progress = {});
  // Runs a parsed request. Register updates `caller`. Never throws.
  Reply Execute(Caller& caller, const Request& request, const StdinReader& read_stdin,
                const Progress& progress = {});
  // POST /exec (api.cc): runs `body`, one lobby command line, as the account
  // of the bearer token in `authorization_header` ("Bearer exed_..."), with
  // --json implied and no stdin. 401 bad token, 403 command not allowed to the
  // token, 413 body too big, 429 over the token's rate; the command's own
  // errors: 400 usage or invalid value, 404, 409, 403 denied, 500. Never throws.
  ApiReply ExecApi(const std::string& authorization_header, const std::string& body, const std::string& source_addr);

  // What an unregistered key is told when it tries a command.
  std::string NotRegisteredMessage(const Caller& caller) const;

  // The SSH gateway (gateway.cc). The VM `name` if the caller may enter it:
  // its owner, or an account it is shared with for SSH. Anything else, a VM
  // that does not exist included, is the same kNotFound error.
  Result<db::Vm> EnterableVm(const Caller& caller, const std::string& name);
  // Makes sure `vm` runs and answers SSH: starts it if it is stopped, waits
  // (up to the boot timeout) while another command starts or changes it.
  // Each thing worth telling the user goes to `notice` as one line. Returns
  // where to reach its sshd, logged in as `user` (empty: the image's user).
  Result<vmm::GuestEndpoint> PrepareEntry(const Caller& caller, const db::Vm& vm, const std::string& user,
                                          const std::function<void(const std::string&)>& notice);
  // The HTTPS front (web.cc). Each is one short transaction; blocking.
  // The VM serving `name`'s URL; kNotFound if there is none.
  Result<WebTarget> WebTargetFor(const std::string& name);
  // True if `account_id` owns the VM or it is shared with it for the web.
  Result<bool> MayView(const WebTarget& vm, int64_t account_id);
  // A login begun in a browser: the code to show and the secret for its cookie.
  Result<std::pair<std::string, std::string>> StartWebLogin(const std::string& source_addr,
                                                             const std::string& user_agent);
  // Polled by the browser: once approved, makes the apex session and returns
  // its cookie value in `session_token` (the login is then used up).
  Result<WebLoginState> FinishWebLogin(const std::string& code, const std::string& secret, std::string* session_token);
  // The session whose cookie value is `token`, valid on `host` only.
  Result<WebIdentity> WebSessionFor(const std::string& token, const std::string& host);
  // A one-time token for `host`, minted from an apex session.
  Result<std::string> MintHostToken(const WebIdentity& apex, const std::string& host);
  // Exchanges a host token on `host` for that host's own session cookie value.
  Result<std::string> RedeemHostToken(const std::string& token, const std::string& host, WebIdentity* who);
  // Ends the browser's login: the session, its apex session and all its hosts'.
  Status WebLogout(const WebIdentity& who);
  // The VMs the apex page lists for an account.
  Result<std::vector<db::Vm>> VmsOf(int64_t account_id);
  // Moves on with every committed change to who may open a VM's URL or where
  // it leads (share set-public/set-private, share add/remove, rm, rename, a
  // VM stopped or started): the front keeps none of its cached answers from
  // before it (TtlCache's epochs), so `share set-private` holds at once.
  uint64_t WebEpoch() const { return web_epoch_.load(std::memory_order_acquire); }

  // The line the gateway shows for a VM the caller may not enter.
  std::string NoEntryMessage(const std::string& name) const;

  std::vector<std::string> LoadHistory(int64_t account_id);
  // The caller's VM names, for completion; empty on any error.
  std::vector<std::string> VmNames(const Caller& caller);
  void AppendHistory(int64_t account_id, const std::string& line);

 private:
  void WebChanged() { web_epoch_.fetch_add(1, std::memory_order_acq_rel); }
  std::atomic<uint64_t> web_epoch_{0};

  Result<std::string> Run(Caller& caller, const Request& req, const StdinReader& read_stdin,
                          const Progress& progress, bool* end_session);
  // VM commands (vms.cc).
  Result<std::string> RunVmCommand(const Caller& caller, const Request& req, const StdinReader& read_stdin,
                                   const Progress& progress);
  Result<std::string> DoNew(const Caller& caller, const NewVm& c, const StdinReader& read_stdin,
                            const Progress& progress, bool json);
  Result<std::string> DoList(const Caller& caller, const ListVms& c, bool json);
  Result<std::string> DoRemove(const Caller& caller, const RemoveVms& c, bool json);
  Result<std::string> DoPower(const Caller& caller, const std::string& name, bool stop, bool start,
                              const Progress& progress, bool json);
  Result<std::string> DoRename(const Caller& caller, const RenameVm& c, bool json);
  Result<std::string> DoCopy(const Caller& caller, const CopyVm& c, const Progress& progress, bool json);
  Result<std::string> DoTag(const Caller& caller, const TagVm& c, bool json);
  Result<std::string> DoStat(const Caller& caller, const StatVm& c, bool json);
  Result<std::string> DoResize(const Caller& caller, const ResizeVm& c, bool json);
  Result<std::string> DoLogs(const Caller& caller, const VmLogs& c, bool json);
  Result<std::string> DoBudget(const Caller& caller, bool json);
  Result<std::string> DoImages(bool json);
  Result<std::string> DoShareShow(const Caller& caller, const ShareShow& c, bool json);
  Result<std::string> DoShareAccess(const Caller& caller, const ShareAccess& c, bool json);
  Result<std::string> DoShareWeb(const Caller& caller, const ShareWeb& c, bool json);
  Result<std::string> DoSharePublic(const Caller& caller, const SharePublic& c, bool json);
  Result<std::string> DoSharePort(const Caller& caller, const SharePort& c, bool json);
  Result<std::string> DoLogin(const Caller& caller, const WebLogin& c, bool json);
  Result<std::string> DoCa(bool json);
  std::string ApexHost() const;
  // Records what a VM should be and is doing (after start/stop).
  Status RecordPower(int64_t vm_id, const std::string& desired, const std::string& status, int pid);
  // Inserts the row (budget checked under the account's row lock), boots it,
  // and removes every trace again if the boot fails or the client leaves.
  Result<db::Vm> CreateVm(const Caller& caller, db::Vm row, const std::string& clone_from, const Progress& progress,
                          bool wait);
  Result<db::Vm> OwnedVm(const Caller& caller, const std::string& name);
  // OwnedVm under the VM's mark (waited for up to 2 min; a conflict error
  // after), read again once the mark is ours: what held it (a boot, the
  // reconciler's restart) may have changed its row.
  struct MarkedVm {
    db::Vm vm;
    vmm::VmLocks::Guard mark;
  };
  Result<MarkedVm> MarkOwnedVm(const Caller& caller, const std::string& name);
  vmm::VmDef DefOf(const db::Vm& vm) const;
  std::string VmJson(const db::Vm& vm) const;
  Result<std::string> DoHelp(const Help& c, bool json);
  Result<std::string> DoWhoami(const Caller& caller, bool json);
  Result<std::string> DoRegister(Caller& caller, const Register& c, bool json);
  Result<std::string> DoKeyList(const Caller& caller, bool json);
  Result<std::string> DoKeyAdd(const Caller& caller, const SshKeyAdd& c, const StdinReader& read_stdin, bool json);
  Result<std::string> DoKeyRemove(const Caller& caller, const SshKeyRemove& c, bool json);
  Result<std::string> DoKeyRename(const Caller& caller, const SshKeyRename& c, bool json);
  // API tokens (api_keys.cc).
  Result<std::string> DoApiKeyGenerate(const Caller& caller, const ApiKeyGenerate& c, bool json);
  Result<std::string> DoApiKeyList(const Caller& caller, bool json);
  Result<std::string> DoApiKeyRevoke(const Caller& caller, const ApiKeyRevoke& c, bool json);

  db::Pool& pool_;
  const ServiceConfig config_;
  vmm::Host* host_;
  vmm::VmLocks own_locks_;
  vmm::VmLocks* locks_;
  RateLimiter api_limiter_{config_.api_rate_per_second, config_.api_burst};  // per API token id
};

}  // namespace control
