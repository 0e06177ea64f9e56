// Lobby: the terminal front of the control plane. Runs one SSH session's
// commands against control::Service in one of three modes:
//  - one-shot (`ssh host CMD ARGS`): one command, results to stdout, errors to
//    stderr, exit status 0 / 1 / 2;
//  - interactive (a pty): prompt, line editing, history kept per account,
//    completion, colour; an unknown key is walked through registration;
//  - plain (no pty, no command: `echo whoami | ssh -T host`): one command per
//    input line, no echo, no colour.
// Not thread-safe: one Lobby per session, on the session's thread. Blocking.
#pragma once

#include <chrono>
#include <optional>
#include <vector>
#include <string>

#include "control/service.h"
#include "sshd/line_editor.h"
#include "sshd/terminal.h"

namespace sshd {

struct LobbyOptions {
  bool pty = false;     // the client asked for a terminal: CRLF line ends
  bool colour = false;
  size_t max_line_bytes = 4096;
  size_t max_stdin_bytes = 64 * 1024;
  std::chrono::milliseconds idle_timeout{15 * 60 * 1000};
  std::chrono::milliseconds stdin_timeout{30 * 1000};
};

class Lobby {
 public:
  Lobby(control::Service& service, Terminal& term, control::Caller caller, LobbyOptions options);

  // Each returns the exit status to send to the client.
  int RunOneShot(const std::string& command_line);
  int RunInteractive();
  int RunPlain();

  const control::Caller& caller() const { return caller_; }

 private:
  // Waits for input, feeds it to `editor` and echoes; nullopt when the
  // session should end (client gone, or idle past the timeout, said so).
  std::optional<std::vector<LineEditor::Event>> NextEvents(LineEditor& editor);
  // Registration dialogue for an unknown key; false if the user gave up.
  bool Register();
  // Runs one line in interactive mode; false when the session should end.
  bool RunLine(const std::string& line);
  control::Result<std::string> ReadStdin();
  void Out(std::string_view s);
  void Err(std::string_view s);
  std::vector<std::string> Complete(std::string_view before_cursor) const;
  std::string Prompt() const;
  // Shows the steps of long commands on a terminal, and tells the service
  // whether the client is still there.
  control::Progress ProgressFn();

  control::Service& service_;
  Terminal& term_;
  control::Caller caller_;
  const LobbyOptions options_;
  bool pty_ = false;
};

}  // namespace sshd
