// See tls_stream.h.
#include "httpfront/tls_stream.h"

#include <csignal>
#include <cerrno>

namespace httpfront {

namespace net = boost::asio;

namespace {

// OpenSSL writes to the socket with write(2), which raises SIGPIPE on a
// connection the peer has closed: like nginx, a process with this stream
// ignores SIGPIPE (exed's main does; a test or tool that did not is made to,
// once, rather than killed by its first client that goes away).
void IgnoreSigpipe() {
  static const bool done = [] {
    struct sigaction sa {};
    if (sigaction(SIGPIPE, nullptr, &sa) == 0 && sa.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)done;
}

}  // namespace

DeadlineStream::DeadlineStream(Socket socket) : core_(std::make_shared<Core>(std::move(socket))) {}

DeadlineStream::~DeadlineStream() {
  // The timer's handler (holding core_) runs once more, with
  // operation_aborted, and lets it go.
  Disarm();
  error_code ec;
  core_->socket.close(ec);
}

void DeadlineStream::Disarm() {
  if (!core_->timer_waiting) return;
  core_->timer.cancel();
  core_->timer_waiting = false;
  ++core_->timer_gen;
}

bool DeadlineStream::BeginWait() {
  Core& c = *core_;
  if (c.timed_out) return false;
  if (c.deadline != Clock::time_point::max()) {
    if (c.deadline <= Clock::now()) {
      c.timed_out = true;
      return false;
    }
    // A timer that fires no later than the deadline is left alone: OnTimer
    // waits on to a deadline that moved later (the common case: each
    // request's expires_after moves it on), so most operations set none.
    if (!c.timer_waiting || c.timer_at > c.deadline) WaitForDeadline(core_);
  }
  ++c.waits;
  return true;
}

DeadlineStream::error_code DeadlineStream::EndWait(error_code ec) {
  --core_->waits;
  if (ec && core_->timed_out) return boost::beast::error::timeout;
  return ec;
}

void DeadlineStream::WaitForDeadline(const std::shared_ptr<Core>& core) {
  Core& c = *core;
  c.timer_at = c.deadline;
  c.timer_waiting = true;
  c.timer.expires_at(c.deadline);  // a wait pending before is stale now (timer_gen)
  uint64_t gen = ++c.timer_gen;
  c.timer.async_wait([core, gen](const error_code& ec) {
    if (ec || core->timer_gen != gen) return;
    OnTimer(core);
  });
}

void DeadlineStream::OnTimer(const std::shared_ptr<Core>& core) {
  Core& c = *core;
  c.timer_waiting = false;
  if (c.waits == 0) return;  // nothing pending: the next operation checks the deadline itself
  if (Clock::now() >= c.deadline) {
    c.timed_out = true;
    error_code ec;
    c.socket.cancel(ec);
    return;
  }
  if (c.deadline != Clock::time_point::max()) WaitForDeadline(core);
}

ServerTlsStream::ServerTlsStream(Socket socket, net::ssl::context& ctx) : DeadlineStream(std::move(socket)) {
  IgnoreSigpipe();
  Core& c = *core_;
  error_code ec;
  c.socket.non_blocking(true, ec);
  if (ec) throw boost::beast::system_error(ec);
  c.ssl = SSL_new(ctx.native_handle());
  if (c.ssl == nullptr || SSL_set_fd(c.ssl, static_cast<int>(c.socket.native_handle())) != 1) {
    throw boost::beast::system_error(
        error_code(static_cast<int>(ERR_get_error()), net::error::get_ssl_category()));
  }
  // As Asio's engine and nginx: no 34 KiB of record buffers kept per idle
  // connection.
  SSL_set_mode(c.ssl, SSL_MODE_RELEASE_BUFFERS);
  // A whole record (or more) per recv, not its 5-byte header first.
  SSL_set_read_ahead(c.ssl, 1);
  SSL_set_accept_state(c.ssl);
}

ServerTlsStream::error_code ServerTlsStream::ErrorOf(int err, int r) {
  int sys = errno;
  if (err == SSL_ERROR_ZERO_RETURN) {
    // The peer closed, with close_notify or (SSL_OP_IGNORE_UNEXPECTED_EOF,
    // ApplyTlsPolicy) without. As nginx: no close_notify to a peer that has
    // gone (SSL_shutdown only marks the connection closed).
    SSL_set_quiet_shutdown(core_->ssl, 1);
    return net::error::eof;
  }
  core_->broken = true;
  unsigned long e = ERR_peek_error();
  if (err == SSL_ERROR_SYSCALL && e == 0) {
    return r == 0 || sys == 0 ? error_code(net::error::eof) : error_code(sys, net::error::get_system_category());
  }
  ERR_clear_error();
  return error_code(static_cast<int>(e), net::error::get_ssl_category());
}

}  // namespace httpfront
