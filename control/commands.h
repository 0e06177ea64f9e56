// The lobby's command language: one typed struct per command, the table of
// command specs (names, flags, help text), and the parser from words to a
// typed Request. Used by every front (SSH lobby, HTTPS /exec, admin CLI), so
// a command means the same wherever it is typed. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "control/result.h"

namespace control {

struct Help { std::string topic; };  // empty: all commands
struct Whoami {};
struct SshKeyList {};
struct SshKeyAdd {
  std::string key_line;  // "TYPE BASE64 [COMMENT]"; empty: read it from stdin
  std::string comment;   // --comment; overrides the key line's comment
};
struct SshKeyRemove { std::string which; };  // fingerprint or comment
struct SshKeyRename { std::string which; std::string comment; };
// API tokens of the HTTPS /exec API (api_keys.cc).
struct ApiKeyGenerate {
  std::string label;                  // empty: "api-key-N"
  std::vector<std::string> cmds;      // command names it may run; empty: all
  std::optional<int64_t> expires_in;  // seconds; unset: never expires
};
struct ApiKeyList {};
struct ApiKeyRevoke { std::string which; };  // id or label
struct Register { std::string name; std::string invite; };
struct Exit {};

// VM commands. Sizes are parsed here, so a bad value is a usage error before
// anything runs; unset optionals take the configured defaults.
struct NewVm {
  std::string name;   // empty: a readable random name
  std::string image;  // empty: the default image
  std::optional<int64_t> cpus, memory_mib, disk_gib;
  std::vector<std::pair<std::string, std::string>> env;
  std::vector<std::string> tags;
  std::string setup_script;   // the script itself
  bool setup_from_stdin = false;  // --setup-script -
  bool no_wait = false;
};
struct ListVms { std::string pattern; bool long_format = false; };
struct RemoveVms { std::vector<std::string> names; };
struct StopVm { std::string name; };
struct StartVm { std::string name; };
struct RestartVm { std::string name; };
struct RenameVm { std::string from, to; };
struct CopyVm { std::string from, to; };  // to empty: a random name
struct TagVm { std::string name; std::vector<std::string> tags; bool remove = false; };
struct StatVm { std::string name; };
struct ResizeVm { std::string name; std::optional<int64_t> cpus, memory_mib, disk_gib; };
struct VmLogs { std::string name; int64_t lines = 50; };
struct ShowBudget {};
struct ListImages {};
struct ShareShow { std::string name; };
// share access allow|deny VM ACCOUNT
struct ShareAccess { std::string name; std::string account; bool allow = true; };
struct ShareWeb { std::string name; std::string account; bool add = true; };  // share add|remove VM ACCOUNT
struct SharePublic { std::string name; bool is_public = true; };              // share set-public|set-private VM
struct SharePort { std::string name; int port = 80; };                        // share port VM PORT
struct WebLogin { std::string code; };                                        // login CODE
struct ShowCa {};

using Command = std::variant<Help, Whoami, SshKeyList, SshKeyAdd, SshKeyRemove, SshKeyRename, Register, Exit, NewVm,
                             ListVms, RemoveVms, StopVm, StartVm, RestartVm, RenameVm, CopyVm, TagVm, StatVm, ResizeVm,
                             VmLogs, ShowBudget, ListImages, ShareShow, ShareAccess, ShareWeb, SharePublic, SharePort, WebLogin, ShowCa,
                             ApiKeyGenerate, ApiKeyList, ApiKeyRevoke>;

struct Request {
  Command command;
  bool json = false;
  std::string name;  // the spec's name ("ssh-key list"); "help" for any help request
};

struct FlagSpec {
  std::string name;        // "--comment"
  std::string value_name;  // "TEXT"; empty for a boolean flag
  std::string help;
  bool repeatable = false;
};

struct CommandSpec {
  std::string name;   // "ssh-key add"
  std::string args;   // "[KEY]"
  std::string summary;
  std::string description;
  std::vector<FlagSpec> flags;  // --json and --help are implied
  bool needs_account = true;    // false: usable by a key not yet registered
};

const std::vector<CommandSpec>& CommandSpecs();
const CommandSpec* FindSpec(std::string_view name);
// Command names for completion and suggestions ("help", "ssh-key", ...).
std::vector<std::string> TopLevelNames();
// Whether a one-shot command line (ssh host 'CMD ...') starts with a lobby
// command's name. A line that does not split (an open quote) counts as one:
// the lobby says what is wrong with it.
bool StartsWithLobbyCommand(std::string_view line);

// Words (as split by SplitArgs) to a typed request. Errors are kUsage with a
// sentence that names the command and says what to type instead.
Result<Request> ParseRequest(const std::vector<std::string>& words);

// "help" output and "CMD --help" output. `ssh_hint` is how users reach us
// ("ssh -p 2222 localhost"), used in examples.
std::string HelpText(std::string_view ssh_hint);
std::string CommandHelp(const CommandSpec& spec, std::string_view ssh_hint);

}  // namespace control
