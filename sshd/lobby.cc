#include "sshd/lobby.h"

#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "control/argsplit.h"
#include "control/commands.h"
#include "sshd/line_editor.h"

namespace sshd {

namespace {

constexpr std::string_view kRed = "\x1b[31m";
constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kReset = "\x1b[0m";

// A pty on the client side expects CRLF; we are the only "line discipline".
std::string Crlf(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  for (char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

Lobby::Lobby(control::Service& service, Terminal& term, control::Caller caller, LobbyOptions options)
    : service_(service), term_(term), caller_(std::move(caller)), options_(options), pty_(options.pty) {}

void Lobby::Out(std::string_view s) { term_.Write(pty_ ? Crlf(s) : std::string(s)); }

void Lobby::Err(std::string_view s) {
  std::string body(s);
  if (options_.colour) body = std::string(kRed) + body + std::string(kReset);
  term_.WriteErr(pty_ ? Crlf(body) : body);
}

control::Result<std::string> Lobby::ReadStdin() {
  if (pty_) {
    return control::UsageError("in the interactive lobby, paste the key on the line: ssh-key add ssh-ed25519 AAAA...");
  }
  std::string data;
  auto deadline = std::chrono::steady_clock::now() + options_.stdin_timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return control::InvalidError(fmt::format("gave up waiting for standard input after {} s; pipe the input in, "
                                               "e.g. ssh-key add < key.pub",
                                               options_.stdin_timeout.count() / 1000));
    }
    auto st = term_.Read(&data, std::min(left, std::chrono::milliseconds(1000)));
    if (data.size() > options_.max_stdin_bytes) {
      return control::InvalidError(fmt::format("standard input is over {} bytes; a public key is much smaller",
                                               options_.max_stdin_bytes));
    }
    if (st == Terminal::ReadStatus::kEof) return data;
    if (st == Terminal::ReadStatus::kError) return control::InternalError("connection lost while reading input");
  }
}

int Lobby::RunOneShot(const std::string& command_line) {
  if (command_line.size() > options_.max_line_bytes) {
    spdlog::warn("limit=max_line_bytes account={} source={} bytes={}", caller_.account_name, caller_.source_addr,
                 command_line.size());
    Err(fmt::format("command line is {} bytes, over the limit of {}; shorten it\n", command_line.size(),
                    options_.max_line_bytes));
    return 2;
  }
  auto reply = service_.ExecuteLine(caller_, command_line, [this] { return ReadStdin(); }, ProgressFn());
  if (!reply.out.empty()) Out(reply.out);
  if (!reply.err.empty()) Err(reply.err);
  return reply.exit_code;
}

int Lobby::RunPlain() {
  std::string pending;
  int last = 0;
  auto last_input = std::chrono::steady_clock::now();
  while (true) {
    auto st = term_.Read(&pending, std::chrono::milliseconds(1000));
    if (st == Terminal::ReadStatus::kData) last_input = std::chrono::steady_clock::now();
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      auto reply = service_.ExecuteLine(caller_, line, [] {
        return control::Result<std::string>(control::UsageError("this session's input is the command stream; "
                                                                 "pass the key as an argument instead"));
      });
      if (!reply.out.empty()) Out(reply.out);
      if (!reply.err.empty()) Err(reply.err);
      last = reply.exit_code;
      if (reply.end_session) return last;
    }
    if (pending.size() > options_.max_line_bytes) {
      Err(fmt::format("input line over {} bytes; shorten it\n", options_.max_line_bytes));
      return 2;
    }
    if (st == Terminal::ReadStatus::kEof || st == Terminal::ReadStatus::kError) return last;
    if (std::chrono::steady_clock::now() - last_input > options_.idle_timeout) {
      Err("no input for too long; closing the session\n");
      return 1;
    }
  }
}

control::Progress Lobby::ProgressFn() {
  auto t0 = std::chrono::steady_clock::now();
  return [this, t0](std::string_view step) {
    // Steps are shown on a terminal only: piped output stays parseable.
    if (pty_ && !step.empty()) {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      term_.WriteErr(Crlf(fmt::format("{:>6.1f}s  {}\n", s, step)));
    }
    return term_.Alive();
  };
}

std::string Lobby::Prompt() const {
  if (!options_.colour) return "exed> ";
  return fmt::format("{}exed{}> ", kBold, kReset);
}

std::vector<std::string> Lobby::Complete(std::string_view before_cursor) const {
  auto words = control::SplitArgs(before_cursor);
  if (!words) return {};
  std::vector<std::string> w = *words;
  bool new_word = before_cursor.empty() || before_cursor.back() == ' ';
  if (new_word) w.emplace_back();
  std::vector<std::string> pool;
  if (w.size() == 1) {
    pool = control::TopLevelNames();
  } else if (w.size() >= 2 && caller_.account_id &&
             std::set<std::string>{"rm", "stop", "start", "restart", "rename", "cp", "tag", "stat", "resize", "logs"}
                 .count(w[0])) {
    pool = service_.VmNames(caller_);
  } else if (w.size() == 2 && (w[0] == "ssh-key" || w[0] == "help")) {
    for (const auto& s : control::CommandSpecs()) {
      if (w[0] == "help") {
        pool.push_back(s.name.substr(0, s.name.find(' ')));
      } else if (StartsWith(s.name, "ssh-key ")) {
        pool.push_back(s.name.substr(8));
      }
    }
  }
  std::vector<std::string> out;
  for (const auto& p : pool) {
    if (StartsWith(p, w.back()) && std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

std::optional<std::vector<LineEditor::Event>> Lobby::NextEvents(LineEditor& editor) {
  auto last_input = std::chrono::steady_clock::now();
  std::string input;
  while (true) {
    auto st = term_.Read(&input, std::chrono::milliseconds(1000));
    if (st == Terminal::ReadStatus::kEof || st == Terminal::ReadStatus::kError) return std::nullopt;
    if (st == Terminal::ReadStatus::kData) break;
    if (std::chrono::steady_clock::now() - last_input > options_.idle_timeout) {
      spdlog::info("limit=idle_timeout account={} source={}", caller_.account_name, caller_.source_addr);
      Err(fmt::format("\nidle for {} s; closing the session (reconnect any time)\n",
                      std::chrono::duration_cast<std::chrono::seconds>(options_.idle_timeout).count()));
      return std::nullopt;
    }
  }
  std::string echo;
  auto events = editor.Feed(input, &echo);
  term_.Write(echo);
  return events;
}

bool Lobby::Register() {
  Out(fmt::format("Welcome to exed!\nThis key ({}) is new here.\n", caller_.fingerprint));
  if (service_.config().registration == control::Registration::kClosed) {
    Err(service_.NotRegisteredMessage(caller_) + "\n");
    return false;
  }
  Out("Choose an account name (3-32 lowercase letters, digits and '-'), or press Ctrl-D to leave.\n");
  LineEditor editor(options_.max_line_bytes);
  std::string asked = "name";
  std::string name;
  editor.set_prompt("account name: ");
  term_.Write(editor.Redraw());
  for (int tries = 0; tries < 10;) {
    auto events = NextEvents(editor);
    if (!events) return false;
    for (const auto& ev : *events) {
      if (ev.kind != LineEditor::EventKind::kLine) return false;  // Ctrl-C or Ctrl-D: they changed their mind
      std::string value = ev.line;
      value.erase(0, value.find_first_not_of(' '));
      value.erase(value.find_last_not_of(' ') + 1);
      if (value.empty()) {
        term_.Write(editor.Redraw());
        continue;
      }
      if (asked == "name" && service_.config().registration == control::Registration::kInvite) {
        name = value;
        asked = "invite";
        editor.set_prompt("invite code: ");
        term_.Write(editor.Redraw());
        continue;
      }
      control::Register reg{asked == "name" ? value : name, asked == "invite" ? value : ""};
      auto reply = service_.Execute(caller_, {reg, false}, [] { return control::Result<std::string>(""); });
      ++tries;
      if (reply.exit_code == 0) {
        Out(reply.out);
        return true;
      }
      Err(reply.err);
      asked = "name";
      editor.set_prompt("account name: ");
      term_.Write(editor.Redraw());
    }
  }
  Err("too many tries; reconnect to try again\n");
  return false;
}

bool Lobby::RunLine(const std::string& line) {
  if (line.find_first_not_of(" \t") == std::string::npos) return true;
  if (caller_.account_id) service_.AppendHistory(*caller_.account_id, line);
  auto reply = service_.ExecuteLine(caller_, line, [this] { return ReadStdin(); }, ProgressFn());
  if (!reply.out.empty()) Out(reply.out);
  if (!reply.err.empty()) Err(reply.err);
  return !reply.end_session;
}

int Lobby::RunInteractive() {
  if (!caller_.account_id && !Register()) return 1;
  Out(fmt::format("Hello, {}{}{}. Type 'help' for commands, Tab to complete, Ctrl-D to leave.\n",
                  options_.colour ? kBold : "", caller_.account_name, options_.colour ? kReset : ""));
  LineEditor editor(options_.max_line_bytes);
  editor.set_prompt(Prompt());
  editor.set_history(service_.LoadHistory(*caller_.account_id));
  editor.set_completer([this](std::string_view before) { return Complete(before); });
  term_.Write(editor.Redraw());
  while (true) {
    auto events = NextEvents(editor);
    if (!events) return 0;
    for (const auto& ev : *events) {
      if (ev.kind == LineEditor::EventKind::kEof) {
        Out("bye\n");
        return 0;
      }
      if (ev.kind == LineEditor::EventKind::kLine && !RunLine(ev.line)) return 0;
      term_.Write(editor.Redraw());
    }
    if (editor.last_feed_hit_limit()) {
      Err(fmt::format("\nline too long: the limit is {} bytes\n", options_.max_line_bytes));
      term_.Write(editor.Redraw());
    }
  }
}

}  // namespace sshd
