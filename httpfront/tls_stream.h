// A server-side TLS stream that lets OpenSSL read and write the socket
// itself, as nginx does, instead of Asio's ssl::stream, which runs OpenSSL
// over a memory BIO pair and moves every byte through two more buffers (the
// socket into Asio's buffer, that into the BIO; the BIO into Asio's output
// buffer, that to the socket). Here SSL_read and SSL_write go to the socket;
// when OpenSSL says it would block, the stream waits for the socket to be
// readable or writable and tries again.
//
// Used by the HTTPS front for its clients only: one connection lives on one
// io_context run by one thread (front_internal.h), so nothing here locks.
// Timeouts work as beast::basic_stream's: expires_after sets a deadline for
// the operations pending or started before it passes; one that is pending
// then, or started after, ends with beast::error::timeout, and the stream is
// done for. Small writes of several buffers go out as one TLS record (a
// response's header with its body's first bytes), as beast::ssl_stream does.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>

namespace httpfront {

class ServerTlsStream {
 public:
  using Executor = boost::asio::io_context::executor_type;
  using executor_type = Executor;
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
  using Clock = std::chrono::steady_clock;
  using error_code = boost::beast::error_code;

  // A record's worth: writes of several smaller buffers are gathered up to
  // this into one SSL_write.
  static constexpr size_t kCoalesce = 16 * 1024;

  // Takes the accepted socket; the TLS handshake is async_handshake's.
  ServerTlsStream(Socket socket, boost::asio::ssl::context& ctx);
  ~ServerTlsStream();
  ServerTlsStream(const ServerTlsStream&) = delete;
  ServerTlsStream& operator=(const ServerTlsStream&) = delete;

  executor_type get_executor() noexcept { return impl_->socket.get_executor(); }
  SSL* native_handle() { return impl_->ssl; }
  Socket& socket() { return impl_->socket; }

  void expires_after(Clock::duration d) { impl_->deadline = Clock::now() + d; }
  void expires_never() { impl_->deadline = Clock::time_point::max(); }
  // Ends the pending operations (operation_aborted).
  void cancel() {
    error_code ec;
    impl_->socket.cancel(ec);
  }

  // The server side of the handshake (the type is there for Asio's
  // signature; only server is supported).
  template <class Token>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type, Token&& token) {
    return Start(std::forward<Token>(token), [](SSL* ssl, size_t& n) {
      n = 0;
      return SSL_do_handshake(ssl);
    });
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    boost::asio::mutable_buffer b;
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers);
         ++it) {
      if (boost::asio::buffer_size(*it) != 0) {
        b = *it;
        break;
      }
    }
    return Start(std::forward<Token>(token), [b](SSL* ssl, size_t& n) {
      if (b.size() == 0) {
        n = 0;
        return 1;
      }
      return SSL_read_ex(ssl, b.data(), b.size(), &n);
    });
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    boost::asio::const_buffer b = Gather(buffers);
    return Start(std::forward<Token>(token), [b](SSL* ssl, size_t& n) {
      if (b.size() == 0) {
        n = 0;
        return 1;
      }
      return SSL_write_ex(ssl, b.data(), b.size(), &n);
    });
  }

  // Sends close_notify (without waiting for the peer's). Nothing to do after
  // a timeout or a fatal error.
  template <class Token>
  auto async_shutdown(Token&& token) {
    return Start(std::forward<Token>(token), [impl = impl_.get()](SSL* ssl, size_t& n) {
      n = 0;
      if (impl->broken || impl->timed_out) return 1;
      int r = SSL_shutdown(ssl);
      return r >= 0 ? 1 : r;
    });
  }

 private:
  // What the timer's handler may outlive the stream with.
  struct Impl {
    Socket socket;
    boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>, Executor> timer;
    SSL* ssl = nullptr;
    Clock::time_point deadline = Clock::time_point::max();
    Clock::time_point timer_at = Clock::time_point::max();  // while timer_waiting
    bool timer_waiting = false;
    bool timed_out = false;
    bool broken = false;  // a fatal TLS or socket error: no close_notify
    int waits = 0;        // socket waits pending
    uint64_t timer_gen = 0;  // which timer wait is the current one
    std::unique_ptr<char[]> gather;  // kCoalesce bytes, for Gather

    explicit Impl(Socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
    ~Impl() {
      if (ssl) SSL_free(ssl);
    }
  };

  // The buffer one SSL_write takes from `buffers`: the first one alone when
  // it is the only one or a record's worth; else as many bytes as fit
  // kCoalesce, copied together.
  template <class ConstBuffers>
  boost::asio::const_buffer Gather(const ConstBuffers& buffers) {
    auto it = boost::asio::buffer_sequence_begin(buffers);
    auto end = boost::asio::buffer_sequence_end(buffers);
    while (it != end && boost::asio::buffer_size(*it) == 0) ++it;
    if (it == end) return {};
    boost::asio::const_buffer first = *it;
    auto next = it;
    ++next;
    while (next != end && boost::asio::buffer_size(*next) == 0) ++next;
    if (next == end || first.size() >= kCoalesce) return first;
    if (!impl_->gather) impl_->gather.reset(new char[kCoalesce]);
    size_t n = 0;
    for (; it != end && n < kCoalesce; ++it) {
      n += boost::asio::buffer_copy(boost::asio::buffer(impl_->gather.get() + n, kCoalesce - n),
                                    boost::asio::const_buffer(*it));
    }
    return {impl_->gather.get(), n};
  }

  // The error an SSL call's result `r` (after SSL_get_error gave `err`)
  // stands for.
  error_code ErrorOf(int err, int r);
  // Before a socket wait: the timer will fire at the deadline.
  void ArmTimer();
  static void WaitForDeadline(const std::shared_ptr<Impl>& impl);
  static void OnTimer(const std::shared_ptr<Impl>& impl);

  // One SSL call retried until it neither wants to read nor to write.
  template <class Fn>
  struct Op {
    ServerTlsStream& s;
    Fn fn;
    enum { kStart, kWaiting, kPosted } state = kStart;

    template <class Self>
    void operator()(Self& self, error_code ec = {}, size_t n = 0) {
      Impl& impl = *s.impl_;
      if (state == kPosted) return self.complete(ec, n);
      if (state == kWaiting) {
        --impl.waits;
        if (ec) {
          if (impl.timed_out) ec = boost::beast::error::timeout;
          impl.broken = true;
          return self.complete(ec, 0);
        }
      }
      if (impl.timed_out) return Done(self, boost::beast::error::timeout, 0);
      ERR_clear_error();
      n = 0;
      int r = fn(impl.ssl, n);
      if (r > 0) return Done(self, {}, n);
      int err = SSL_get_error(impl.ssl, r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (impl.deadline <= Clock::now()) {
          impl.timed_out = true;
          return Done(self, boost::beast::error::timeout, 0);
        }
        s.ArmTimer();
        ++impl.waits;
        state = kWaiting;
        impl.socket.async_wait(err == SSL_ERROR_WANT_READ ? Socket::wait_read : Socket::wait_write, std::move(self));
        return;
      }
      return Done(self, s.ErrorOf(err, r), 0);
    }

    // Completes; never from inside the initiating call (Asio's rule), so
    // through the executor when nothing had to wait.
    template <class Self>
    void Done(Self& self, error_code ec, size_t n) {
      if (state == kStart) {
        state = kPosted;
        boost::asio::post(boost::beast::bind_front_handler(std::move(self), ec, n));
        return;
      }
      self.complete(ec, n);
    }
  };

  template <class Token, class Fn>
  auto Start(Token&& token, Fn fn) {
    return boost::asio::async_compose<Token, void(error_code, size_t)>(Op<Fn>{*this, std::move(fn)}, token,
                                                                        impl_->socket);
  }

  std::shared_ptr<Impl> impl_;
};

}  // namespace httpfront
