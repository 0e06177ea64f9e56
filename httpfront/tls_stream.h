// The HTTPS front's two kinds of connection. Both keep deadlines as
// beast::basic_stream does (expires_after sets a deadline for the operations
// pending or started before it passes; one that is pending then, or started
// after, ends with beast::error::timeout, and the stream is done for), but
// with one timer per connection that is set again only when a deadline moves
// earlier, where basic_stream arms and cancels a timer around every read and
// write (two more scheduler operations each): DeadlineStream.
//
// ServerTlsStream, a client's connection, lets OpenSSL read and write the
// socket itself, as nginx does, instead of Asio's ssl::stream, which runs OpenSSL
// over a memory BIO pair and moves every byte through two more buffers (the
// socket into Asio's buffer, that into the BIO; the BIO into Asio's output
// buffer, that to the socket). Here SSL_read and SSL_write go to the socket;
// when OpenSSL says it would block, the stream waits for the socket to be
// readable or writable and tries again.
//
// Small writes of several buffers go out as one TLS record (a response's
// header with its body's first bytes), as beast::ssl_stream does.
//
// PlainStream, a connection to a VM's web server (and the plain-HTTP
// listener's), is a TCP socket with those deadlines.
//
// In the front one connection lives on one io_context run by one thread
// (front_internal.h), so nothing here locks.
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

// A socket and its deadline (see the top). What the timer's handler may
// outlive the stream with is in Core.
class DeadlineStream {
 public:
  using Executor = boost::asio::io_context::executor_type;
  using executor_type = Executor;
  using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
  using Clock = std::chrono::steady_clock;
  using error_code = boost::beast::error_code;

  DeadlineStream(const DeadlineStream&) = delete;
  DeadlineStream& operator=(const DeadlineStream&) = delete;

  executor_type get_executor() noexcept { return core_->socket.get_executor(); }
  Socket& socket() { return core_->socket; }

  void expires_after(Clock::duration d) { core_->deadline = Clock::now() + d; }
  void expires_never() { core_->deadline = Clock::time_point::max(); }
  // Ends the pending operations (operation_aborted).
  void cancel() {
    error_code ec;
    core_->socket.cancel(ec);
  }
  // Stops the timer, with no operation pending (a pooled connection, which
  // another io thread may take over: then only the socket moves).
  void Disarm();

  // Reads what the peer still sends and drops it, unread, until the peer
  // closes (completes with eof) or the deadline passes (timeout). For a
  // connection closed after a reply while the client may still be sending
  // (a refused header or body): closing with unread bytes makes the kernel
  // send a reset, which can destroy the reply before the client reads it.
  // Shut the sending side first, so the client sees the end (nginx's
  // lingering close).
  template <class Token>
  auto async_discard(Token&& token) {
    return boost::asio::async_compose<Token, void(error_code)>(DiscardOp{*this}, token,
                                                               core_->socket);
  }

 protected:
  explicit DeadlineStream(Socket socket);
  ~DeadlineStream();

  struct Core {
    Socket socket;
    boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>, Executor> timer;
    Clock::time_point deadline = Clock::time_point::max();
    Clock::time_point timer_at = Clock::time_point::max();  // while timer_waiting
    bool timer_waiting = false;
    bool timed_out = false;
    int waits = 0;           // socket operations pending
    uint64_t timer_gen = 0;  // which timer wait is the current one
    // ServerTlsStream's:
    SSL* ssl = nullptr;
    bool broken = false;             // a fatal TLS or socket error: no close_notify
    std::unique_ptr<char[]> gather;  // kCoalesce bytes, for Gather

    explicit Core(Socket s) : socket(std::move(s)), timer(socket.get_executor()) {}
    ~Core() {
      if (ssl) SSL_free(ssl);
    }
  };

  // Before a socket operation: false when the deadline has passed (and the
  // stream is done for); else the timer will fire at the deadline.
  bool BeginWait();
  // After it: its error, a timeout's being beast::error::timeout.
  error_code EndWait(error_code ec);

  std::shared_ptr<Core> core_;

 private:
  struct DiscardOp {
    DeadlineStream& s;
    std::unique_ptr<char[]> scratch;
    enum { kStart, kReading, kPosted } state = kStart;
    static constexpr size_t kScratch = 16 * 1024;

    template <class Self>
    void operator()(Self& self, error_code ec = {}, size_t = 0) {
      if (state == kPosted) return self.complete(boost::beast::error::timeout);
      if (state == kReading) {
        ec = s.EndWait(ec);
        if (ec) return self.complete(ec);
      } else {
        scratch.reset(new char[kScratch]);
      }
      if (!s.BeginWait()) {
        // Not completed from inside the initiating call (Asio's rule).
        state = kPosted;
        return boost::asio::post(std::move(self));
      }
      state = kReading;
      s.core_->socket.async_read_some(boost::asio::buffer(scratch.get(), kScratch), std::move(self));
    }
  };

  static void WaitForDeadline(const std::shared_ptr<Core>& core);
  static void OnTimer(const std::shared_ptr<Core>& core);
};

class ServerTlsStream : public DeadlineStream {
 public:
  // A record's worth: writes of several smaller buffers are gathered up to
  // this into one SSL_write.
  static constexpr size_t kCoalesce = 16 * 1024;

  // Takes the accepted socket; the TLS handshake is async_handshake's.
  ServerTlsStream(Socket socket, boost::asio::ssl::context& ctx);

  SSL* native_handle() { return core_->ssl; }

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
  // a timeout or a fatal error; after the peer's close it sends nothing and
  // only marks the connection closed, which keeps its session resumable.
  template <class Token>
  auto async_shutdown(Token&& token) {
    return Start(std::forward<Token>(token), [core = core_.get()](SSL* ssl, size_t& n) {
      n = 0;
      if (core->broken || core->timed_out) return 1;
      int r = SSL_shutdown(ssl);
      return r >= 0 ? 1 : r;
    });
  }

 private:
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
    if (!core_->gather) core_->gather.reset(new char[kCoalesce]);
    size_t n = 0;
    for (; it != end && n < kCoalesce; ++it) {
      n += boost::asio::buffer_copy(boost::asio::buffer(core_->gather.get() + n, kCoalesce - n),
                                    boost::asio::const_buffer(*it));
    }
    return {core_->gather.get(), n};
  }

  // The error an SSL call's result `r` (after SSL_get_error gave `err`)
  // stands for.
  error_code ErrorOf(int err, int r);

  // One SSL call retried until it neither wants to read nor to write.
  template <class Fn>
  struct Op {
    ServerTlsStream& s;
    Fn fn;
    enum { kStart, kWaiting, kPosted } state = kStart;

    template <class Self>
    void operator()(Self& self, error_code ec = {}, size_t n = 0) {
      Core& core = *s.core_;
      if (state == kPosted) return self.complete(ec, n);
      if (state == kWaiting) {
        ec = s.EndWait(ec);
        if (ec) {
          core.broken = true;
          return self.complete(ec, 0);
        }
      }
      if (core.timed_out) return Done(self, boost::beast::error::timeout, 0);
      ERR_clear_error();
      n = 0;
      int r = fn(core.ssl, n);
      if (r > 0) return Done(self, {}, n);
      int err = SSL_get_error(core.ssl, r);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        if (!s.BeginWait()) return Done(self, boost::beast::error::timeout, 0);
        state = kWaiting;
        core.socket.async_wait(err == SSL_ERROR_WANT_READ ? Socket::wait_read : Socket::wait_write, std::move(self));
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
                                                                        core_->socket);
  }
};

// A TCP connection with deadlines: the VM side of a proxied request.
class PlainStream : public DeadlineStream {
 public:
  explicit PlainStream(Socket socket) : DeadlineStream(std::move(socket)) {}
  explicit PlainStream(const Executor& ex) : DeadlineStream(Socket(ex)) {}

  // Completes as the reads and writes do, with a byte count of 0.
  template <class Token>
  auto async_connect(const boost::asio::ip::tcp::endpoint& to, Token&& token) {
    return Start(std::forward<Token>(token), [to](Socket& socket, auto&& self) {
      socket.async_connect(to, std::forward<decltype(self)>(self));
    });
  }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return Start(std::forward<Token>(token), [buffers](Socket& socket, auto&& self) {
      socket.async_read_some(buffers, std::forward<decltype(self)>(self));
    });
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return Start(std::forward<Token>(token), [buffers](Socket& socket, auto&& self) {
      socket.async_write_some(buffers, std::forward<decltype(self)>(self));
    });
  }

 private:
  // The socket's own operation (`begin` starts it), between BeginWait and
  // EndWait.
  template <class Begin>
  struct Op {
    PlainStream& s;
    Begin begin;
    enum { kStart, kIo, kPosted } state = kStart;

    template <class Self>
    void operator()(Self& self, error_code ec = {}, size_t n = 0) {
      if (state == kStart) {
        if (!s.BeginWait()) {
          state = kPosted;
          boost::asio::post(boost::beast::bind_front_handler(std::move(self), boost::beast::error::timeout, 0));
          return;
        }
        state = kIo;
        begin(s.core_->socket, std::move(self));
        return;
      }
      if (state == kIo) ec = s.EndWait(ec);
      self.complete(ec, n);
    }
  };

  template <class Token, class Begin>
  auto Start(Token&& token, Begin begin) {
    return boost::asio::async_compose<Token, void(error_code, size_t)>(Op<Begin>{*this, std::move(begin)}, token,
                                                                        core_->socket);
  }
};

}  // namespace httpfront
