// QmpClient: a small synchronous client for QEMU's machine protocol (QMP)
// over the VM's unix socket (VMDIR/qmp.sock).
//
// The protocol: QEMU greets with {"QMP": {...}}; the client must send
// qmp_capabilities before anything else; then each {"execute", "arguments",
// "id"} gets one {"return"} or {"error"} carrying the same id, and
// asynchronous events ({"event": ...}) may arrive at any time, also between
// a command and its reply. Messages are JSON objects, one per line.
//
// Every call has a deadline. After a timeout the connection stays usable: a
// late reply is recognised by its id and skipped.
//
// QEMU's QMP socket serves one client at a time (a second one gets no
// greeting until the first disconnects), so a VM has at most one QmpClient
// open at any moment; the caller (vmm::Host, which serializes calls per VM)
// ensures that.
//
// Not thread-safe: one thread uses an instance at a time. Blocking.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "control/result.h"

namespace vmm {

class QmpClient {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{5000};
  static constexpr size_t kMaxMessageBytes = 1 << 20;  // a reply larger than this is refused
  static constexpr size_t kMaxKeptEvents = 64;         // older events are dropped

  // Connects to `socket_path`, retrying while it is missing or refuses
  // (QEMU creates it a few milliseconds after it starts), reads the
  // greeting and negotiates capabilities, all within `timeout`.
  static control::Result<std::unique_ptr<QmpClient>> Connect(const std::string& socket_path,
                                                             std::chrono::milliseconds timeout);

  // Same handshake over an already connected stream socket; takes ownership
  // of `fd` (closed on failure too). For tests (a socketpair) and callers
  // that connect themselves.
  static control::Result<std::unique_ptr<QmpClient>> Attach(int fd, std::chrono::milliseconds timeout,
                                                            std::string peer = "qmp");

  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Runs `command` with `arguments` (an object, or null for none) and
  // returns its "return" value. Events read meanwhile are kept (events()).
  // Errors: QEMU's refusal ("qemu refused CMD: DESC"), a timeout, a closed
  // or broken connection, malformed JSON; all kInternal.
  control::Result<nlohmann::json> Execute(const std::string& command,
                                          const nlohmann::json& arguments = nullptr,
                                          std::chrono::milliseconds timeout = kDefaultTimeout);

  // "running", "paused", "shutdown", "inmigrate", "internal-error", ...
  control::Result<std::string> QueryStatus(std::chrono::milliseconds timeout = kDefaultTimeout);
  // Presses the ACPI power button: the guest shuts down if it listens (a
  // request, not a command; the caller waits and then kills).
  control::Status SystemPowerdown(std::chrono::milliseconds timeout = kDefaultTimeout);
  control::Status SystemReset(std::chrono::milliseconds timeout = kDefaultTimeout);
  // Ends QEMU at once. Succeeds also when QEMU closes the socket before it
  // replies (it is exiting, which is what was asked).
  control::Status Quit(std::chrono::milliseconds timeout = kDefaultTimeout);
  // The guest's current memory size in bytes, as the balloon reports it.
  control::Result<int64_t> QueryBalloon(std::chrono::milliseconds timeout = kDefaultTimeout);
  // Asks the balloon to bring the guest to `bytes` of memory.
  control::Status SetBalloon(int64_t bytes, std::chrono::milliseconds timeout = kDefaultTimeout);

  // The greeting's "QMP" object (holds QEMU's version).
  const nlohmann::json& greeting() const { return greeting_; }
  // Events received so far, oldest first; TakeEvents empties the list.
  const std::deque<nlohmann::json>& events() const { return events_; }
  std::deque<nlohmann::json> TakeEvents();

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  QmpClient(int fd, std::string peer) : fd_(fd), peer_(std::move(peer)) {}

  control::Status Handshake(Deadline deadline);
  control::Status Send(const std::string& line, Deadline deadline);
  control::Result<nlohmann::json> ReadMessage(Deadline deadline, const std::string& waiting_for);
  control::Result<nlohmann::json> ExecuteUntil(const std::string& command,
                                               const nlohmann::json& arguments, Deadline deadline);
  void KeepEvent(nlohmann::json event);

  int fd_;
  std::string peer_;  // for messages: the socket path
  std::string buffer_;  // bytes read past the last complete line
  nlohmann::json greeting_;
  std::deque<nlohmann::json> events_;
  uint64_t next_id_ = 1;
  bool closed_ = false;  // QEMU closed its end (EOF or EPIPE seen)
};

}  // namespace vmm
