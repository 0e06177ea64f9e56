#include "vmm/qmp.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

namespace vmm {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 1 << 30));
}

control::Error Internal(std::string m) { return control::InternalError(std::move(m)); }

}  // namespace

QmpClient::~QmpClient() {
  if (fd_ >= 0) ::close(fd_);
}

control::Result<std::unique_ptr<QmpClient>> QmpClient::Connect(const std::string& socket_path,
                                                               milliseconds timeout) {
  Deadline deadline = Clock::now() + timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return Internal(fmt::format("qmp socket path {} is too long", socket_path));
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  for (;;) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Internal(fmt::format("cannot create a socket: {}", std::strerror(errno)));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      return Attach(fd, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()),
                    socket_path);
    }
    int err = errno;
    ::close(fd);
    // Missing or refusing: QEMU has not created it yet (or has exited).
    bool transient = err == ENOENT || err == ECONNREFUSED || err == EAGAIN || err == EINTR;
    if (!transient || RemainingMs(deadline) == 0) {
      return Internal(fmt::format("cannot connect to qmp socket {}: {}", socket_path,
                                  std::strerror(err)));
    }
    std::this_thread::sleep_for(std::min(milliseconds(10), milliseconds(RemainingMs(deadline))));
  }
}

control::Result<std::unique_ptr<QmpClient>> QmpClient::Attach(int fd, milliseconds timeout,
                                                              std::string peer) {
  std::unique_ptr<QmpClient> c(new QmpClient(fd, std::move(peer)));
  control::Status st = c->Handshake(Clock::now() + timeout);
  if (!st) return st.error();
  return c;
}

control::Status QmpClient::Handshake(Deadline deadline) {
  auto greeting = ReadMessage(deadline, "the QMP greeting");
  if (!greeting) return greeting.error();
  if (!greeting->is_object() || !greeting->contains("QMP")) {
    return Internal(fmt::format("{} is not a QMP socket: it greeted with {}", peer_,
                                greeting->dump().substr(0, 200)));
  }
  greeting_ = (*greeting)["QMP"];
  auto r = ExecuteUntil("qmp_capabilities", nullptr, deadline);
  if (!r) return r.error();
  return control::Ok{};
}

control::Status QmpClient::Send(const std::string& line, Deadline deadline) {
  size_t off = 0;
  while (off < line.size()) {
    // MSG_NOSIGNAL: a QEMU that died must give an error, not SIGPIPE.
    ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      closed_ = true;
      return Internal(fmt::format("{} closed the connection", peer_));
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return Internal(fmt::format("cannot write to {}: {}", peer_, std::strerror(errno)));
    }
    pollfd p{fd_, POLLOUT, 0};
    int rc = ::poll(&p, 1, RemainingMs(deadline));
    if (rc == 0) return Internal(fmt::format("{} did not accept a command in time", peer_));
    if (rc < 0 && errno != EINTR) {
      return Internal(fmt::format("cannot poll {}: {}", peer_, std::strerror(errno)));
    }
  }
  return control::Ok{};
}

control::Result<json> QmpClient::ReadMessage(Deadline deadline, const std::string& waiting_for) {
  for (;;) {
    size_t eol = buffer_.find('\n');
    if (eol == std::string::npos ? buffer_.size() > kMaxMessageBytes : eol > kMaxMessageBytes) {
      return Internal(fmt::format("{} sent a message over {} bytes", peer_, kMaxMessageBytes));
    }
    if (eol != std::string::npos) {
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      json msg = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (msg.is_discarded()) {
        return Internal(fmt::format("{} sent malformed JSON: {}", peer_, line.substr(0, 200)));
      }
      return msg;
    }
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, RemainingMs(deadline));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return Internal(fmt::format("cannot poll {}: {}", peer_, std::strerror(errno)));
    }
    if (rc == 0) return Internal(fmt::format("{} did not send {} in time", peer_, waiting_for));
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (errno == ECONNRESET) closed_ = true;
      return Internal(fmt::format("cannot read from {}: {}", peer_, std::strerror(errno)));
    }
    if (n == 0) {
      closed_ = true;
      return Internal(fmt::format("{} closed the connection before {}", peer_, waiting_for));
    }
    buffer_.append(buf, static_cast<size_t>(n));
  }
}

control::Result<json> QmpClient::ExecuteUntil(const std::string& command, const json& arguments,
                                              Deadline deadline) {
  uint64_t id = next_id_++;
  json request = {{"execute", command}, {"id", id}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  control::Status sent = Send(request.dump() + "\n", deadline);
  if (!sent) return sent.error();
  std::string waiting_for = "the reply to " + command;
  for (;;) {
    auto msg = ReadMessage(deadline, waiting_for);
    if (!msg) return msg.error();
    if (!msg->is_object()) continue;
    if (msg->contains("event")) {
      KeepEvent(std::move(*msg));
      continue;
    }
    // A reply with another id answers a command that timed out earlier. One
    // without an id is QEMU's answer to a request it could not parse, which
    // can only be the one in flight.
    if (msg->contains("id") && (*msg)["id"] != id) continue;
    if (msg->contains("return")) return (*msg)["return"];
    if (msg->contains("error")) {
      const json& e = (*msg)["error"];
      std::string desc = e.is_object() && e.contains("desc") && e["desc"].is_string()
                             ? e["desc"].get<std::string>()
                             : e.dump();
      return Internal(fmt::format("qemu refused {}: {}", command, desc));
    }
  }
}

control::Result<json> QmpClient::Execute(const std::string& command, const json& arguments,
                                         milliseconds timeout) {
  return ExecuteUntil(command, arguments, Clock::now() + timeout);
}

void QmpClient::KeepEvent(json event) {
  events_.push_back(std::move(event));
  while (events_.size() > kMaxKeptEvents) events_.pop_front();
}

std::deque<json> QmpClient::TakeEvents() {
  std::deque<json> out;
  out.swap(events_);
  return out;
}

control::Result<std::string> QmpClient::QueryStatus(milliseconds timeout) {
  auto r = Execute("query-status", nullptr, timeout);
  if (!r) return r.error();
  if (!r->is_object() || !r->contains("status") || !(*r)["status"].is_string()) {
    return Internal(fmt::format("query-status answered without a status: {}", r->dump()));
  }
  return (*r)["status"].get<std::string>();
}

control::Status QmpClient::SystemPowerdown(milliseconds timeout) {
  auto r = Execute("system_powerdown", nullptr, timeout);
  if (!r) return r.error();
  return control::Ok{};
}

control::Status QmpClient::SystemReset(milliseconds timeout) {
  auto r = Execute("system_reset", nullptr, timeout);
  if (!r) return r.error();
  return control::Ok{};
}

control::Status QmpClient::Quit(milliseconds timeout) {
  auto r = Execute("quit", nullptr, timeout);
  if (r) return control::Ok{};
  // QEMU may exit (closing the socket) before its reply is read.
  if (closed_) return control::Ok{};
  return r.error();
}

control::Result<int64_t> QmpClient::QueryBalloon(milliseconds timeout) {
  auto r = Execute("query-balloon", nullptr, timeout);
  if (!r) return r.error();
  if (!r->is_object() || !r->contains("actual") || !(*r)["actual"].is_number_integer()) {
    return Internal(fmt::format("query-balloon answered without a size: {}", r->dump()));
  }
  return (*r)["actual"].get<int64_t>();
}

control::Status QmpClient::SetBalloon(int64_t bytes, milliseconds timeout) {
  auto r = Execute("balloon", {{"value", bytes}}, timeout);
  if (!r) return r.error();
  return control::Ok{};
}

}  // namespace vmm
