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

ServerTlsStream::ServerTlsStream(Socket socket, net::ssl::context& ctx)
    : impl_(std::make_shared<Impl>(std::move(socket))) {
  IgnoreSigpipe();
  Impl& i = *impl_;
  error_code ec;
  i.socket.non_blocking(true, ec);
  if (ec) throw boost::beast::system_error(ec);
  i.ssl = SSL_new(ctx.native_handle());
  if (i.ssl == nullptr ||
      SSL_set_fd(i.ssl, static_cast<int>(i.socket.native_handle())) != 1) {
    throw boost::beast::system_error(
        error_code(static_cast<int>(ERR_get_error()), net::error::get_ssl_category()));
  }
  // As Asio's engine and nginx: no 34 KiB of record buffers kept per idle
  // connection.
  SSL_set_mode(i.ssl, SSL_MODE_RELEASE_BUFFERS);
  // A whole record (or more) per recv, not its 5-byte header first.
  SSL_set_read_ahead(i.ssl, 1);
  SSL_set_accept_state(i.ssl);
}

ServerTlsStream::~ServerTlsStream() {
  // The timer's handler (holding impl_) runs once more, with
  // operation_aborted, and lets it go.
  impl_->timer.cancel();
  ++impl_->timer_gen;
  error_code ec;
  impl_->socket.close(ec);
}

ServerTlsStream::error_code ServerTlsStream::ErrorOf(int err, int r) {
  int sys = errno;
  if (err == SSL_ERROR_ZERO_RETURN) return net::error::eof;  // close_notify
  impl_->broken = true;
  unsigned long e = ERR_peek_error();
  // The peer closed without close_notify (OpenSSL 3 says so with an SSL
  // error, 1.1 with SSL_ERROR_SYSCALL and nothing queued).
  if ((err == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
      (err == SSL_ERROR_SYSCALL && e == 0 && (r == 0 || sys == 0))) {
    ERR_clear_error();
    return net::ssl::error::stream_truncated;
  }
  if (err == SSL_ERROR_SYSCALL && e == 0) return error_code(sys, net::error::get_system_category());
  ERR_clear_error();
  return error_code(static_cast<int>(e), net::error::get_ssl_category());
}

void ServerTlsStream::ArmTimer() {
  Impl& i = *impl_;
  if (i.deadline == Clock::time_point::max()) return;
  // One that fires no later than the deadline is left alone: OnTimer waits
  // on to a deadline that moved later (the common case: each request's
  // expires_after moves it on), so most operations set no timer at all.
  if (i.timer_waiting && i.timer_at <= i.deadline) return;
  WaitForDeadline(impl_);
}

void ServerTlsStream::WaitForDeadline(const std::shared_ptr<Impl>& impl) {
  Impl& i = *impl;
  i.timer_at = i.deadline;
  i.timer_waiting = true;
  i.timer.expires_at(i.deadline);  // a wait pending before is stale now (timer_gen)
  uint64_t gen = ++i.timer_gen;
  i.timer.async_wait([impl, gen](const error_code& ec) {
    if (ec || impl->timer_gen != gen) return;
    OnTimer(impl);
  });
}

void ServerTlsStream::OnTimer(const std::shared_ptr<Impl>& impl) {
  Impl& i = *impl;
  i.timer_waiting = false;
  if (i.waits == 0) return;  // nothing pending: the next operation checks the deadline itself
  if (Clock::now() >= i.deadline) {
    i.timed_out = true;
    error_code ec;
    i.socket.cancel(ec);
    return;
  }
  if (i.deadline != Clock::time_point::max()) WaitForDeadline(impl);
}

}  // namespace httpfront
