// ServerTlsStream (tls_stream.h) against Asio's TLS client: data both ways
// past what a socket buffers (the waits for readable and writable), small
// buffers gathered into one record, how a peer's close reads, and timeouts:
// a deadline passing with an operation pending, one moved later while an
// operation waits, one moved earlier. PlainStream (the same deadlines) to a
// plain TCP server: connect, both ways, a timeout. async_discard until the
// peer closes, and until the deadline.
#include "httpfront/tls_stream.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "httpfront/certs.h"
#include "httpfront/tls_test_support.h"

namespace httpfront {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using tls_testing::Client;
using tls_testing::ClientOptions;
using tls_testing::TempDir;
using Executor = ServerTlsStream::Executor;
template <class T>
using Task = asio::awaitable<T, Executor>;
constexpr asio::use_awaitable_t<Executor> kAwait;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using error_code = boost::system::error_code;
using std::chrono::milliseconds;

constexpr char kHost[] = "foo.exe.localhost";

// Bytes that show where they were cut or reordered.
std::string Pattern(size_t n, char salt) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + salt) % 26);
  return s;
}

// One server connection per Serve, on an io_context of its own thread,
// handshaken with the front's certificates (InstallSni); `script` then runs
// on the stream and says what it saw.
class StreamTest : public ::testing::Test {
 protected:
  using Script = Task<std::string> (*)(ServerTlsStream&);

  void SetUp() override {
    auto store = OpenInternalCa(dir_ / "ca", tls_testing::kDomain);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(store).value();
    InstallSni(listener_, *store_);
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    work_.reset();
    io_.stop();
    thread_.join();
  }

  std::future<std::string> Serve(Script script, milliseconds handshake_timeout = milliseconds(5000)) {
    auto done = std::make_shared<std::promise<std::string>>();
    auto seen = done->get_future();
    asio::co_spawn(io_, Run(acceptor_, listener_, script, handshake_timeout),
                   [done](std::exception_ptr e, std::string what) {
                     done->set_value(e ? std::string("exception") : what);
                   });
    return seen;
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }

  std::unique_ptr<Client> Connected(int max_version = TLS1_3_VERSION) {
    ClientOptions o;
    o.sni = kHost;
    o.verify_host = kHost;
    o.ca_pem = store_->CaPem();
    o.max_version = max_version;
    auto c = std::make_unique<Client>(o);
    auto ec = c->Connect(port());
    EXPECT_FALSE(ec) << ec.message();
    return c;
  }

  static std::string Result(std::future<std::string>& f) {
    if (f.wait_for(std::chrono::seconds(20)) != std::future_status::ready) return "server still running";
    return f.get();
  }

 private:
  static Task<std::string> Run(Acceptor& acceptor, ssl::context& ctx, Script script, milliseconds handshake_timeout) {
    auto socket = co_await acceptor.async_accept(kAwait);
    ServerTlsStream stream(std::move(socket), ctx);
    stream.expires_after(handshake_timeout);
    error_code ec;
    co_await stream.async_handshake(ssl::stream_base::server, asio::redirect_error(kAwait, ec));
    if (ec) co_return "handshake: " + ec.message();
    std::string what = co_await script(stream);
    co_await stream.async_shutdown(asio::redirect_error(kAwait, ec));
    co_return what;
  }

  TempDir dir_;
  std::unique_ptr<CertStore> store_;
  ssl::context listener_{ssl::context::tls_server};
  asio::io_context io_;
  asio::executor_work_guard<Executor> work_ = asio::make_work_guard(io_);
  Acceptor acceptor_{io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};
  std::thread thread_;
};

constexpr size_t kUp = 1 << 20;    // client to server
constexpr size_t kDown = 4 << 20;  // server to client: more than the socket buffers hold

TEST_F(StreamTest, CarriesMegabytesBothWays) {
  auto seen = Serve([](ServerTlsStream& s) -> Task<std::string> {
    std::string in(kUp, '\0');
    error_code ec;
    co_await asio::async_read(s, asio::buffer(in), asio::redirect_error(kAwait, ec));
    if (ec) co_return "read: " + ec.message();
    if (in != Pattern(kUp, 1)) co_return "read other bytes";
    // The client reads only once its write is done: this write waits for
    // the socket to drain, again and again.
    std::string out = Pattern(kDown, 2);
    co_await asio::async_write(s, asio::buffer(out), asio::redirect_error(kAwait, ec));
    co_return ec ? "write: " + ec.message() : "ok";
  });
  auto c = Connected();
  ASSERT_FALSE(c->Write(Pattern(kUp, 1)));
  EXPECT_TRUE(c->Read(kDown) == Pattern(kDown, 2));
  EXPECT_EQ(Result(seen), "ok");
  c->Close();
}

TEST_F(StreamTest, SmallBuffersGoOutAsOneRecord) {
  auto seen = Serve([](ServerTlsStream& s) -> Task<std::string> {
    // A response as Beast's serializer hands it over: header pieces, body.
    static const std::string body = Pattern(1000, 3);
    std::array<asio::const_buffer, 3> pieces = {asio::buffer(std::string_view("HTTP/1.1 200 OK\r\n")),
                                                asio::buffer(std::string_view("Content-Length: 1000\r\n\r\n")),
                                                asio::buffer(body)};
    error_code ec;
    co_await asio::async_write(s, pieces, asio::redirect_error(kAwait, ec));
    co_return ec ? "write: " + ec.message() : "ok";
  });
  // TLS 1.2: the session ticket comes in the handshake, so every record
  // counted after it is the response's.
  auto c = Connected(TLS1_2_VERSION);
  int before = c->records_read();
  std::string expected = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + Pattern(1000, 3);
  EXPECT_TRUE(c->Read(expected.size()) == expected);
  EXPECT_EQ(c->records_read() - before, 1);
  EXPECT_EQ(Result(seen), "ok");
  c->Close();
}

// Either way the server then sends nothing: no close_notify to a peer that
// has gone, and no alert (OpenSSL 3's answer to a close without close_notify,
// unless SSL_OP_IGNORE_UNEXPECTED_EOF).
TEST_F(StreamTest, CloseNotifyAndAPlainCloseBothReadAsEofAndGetNothingBack) {
  auto script = [](ServerTlsStream& s) -> Task<std::string> {
    char c;
    error_code ec;
    co_await s.async_read_some(asio::buffer(&c, 1), asio::redirect_error(kAwait, ec));
    std::string seen = ec.message();
    co_await s.async_shutdown(asio::redirect_error(kAwait, ec));
    co_return ec ? seen + ", then shutdown: " + ec.message() : seen;
  };
  auto clean = Serve(script);
  auto a = Connected();
  EXPECT_EQ(a->Close(), ssl::error::stream_truncated);  // no close_notify came back
  EXPECT_EQ(Result(clean), error_code(asio::error::eof).message());

  // TLS 1.2: the session ticket comes in the handshake, so nothing the
  // server sent is still unread before the close.
  auto cut = Serve(script);
  auto b = Connected(TLS1_2_VERSION);
  EXPECT_EQ(b->HalfCloseAndDrain(), "");
  EXPECT_EQ(Result(cut), error_code(asio::error::eof).message());
}

TEST_F(StreamTest, PendingReadEndsWithTimeoutAtTheDeadline) {
  auto seen = Serve([](ServerTlsStream& s) -> Task<std::string> {
    s.expires_after(milliseconds(200));
    char c;
    error_code ec;
    co_await s.async_read_some(asio::buffer(&c, 1), asio::redirect_error(kAwait, ec));
    if (ec != boost::beast::error::timeout) co_return "first read: " + ec.message();
    // Done for: no later operation gets through.
    s.expires_after(std::chrono::seconds(5));
    co_await s.async_read_some(asio::buffer(&c, 1), asio::redirect_error(kAwait, ec));
    co_return ec == boost::beast::error::timeout ? "ok" : "second read: " + ec.message();
  });
  auto c = Connected();
  EXPECT_EQ(Result(seen), "ok");
  // The server sent no close_notify after its timeout; the client sees the
  // connection end when the stream goes.
  EXPECT_TRUE(c->ReadError());
}

TEST_F(StreamTest, DeadlineMovedLaterWhileTheTimerRunsIsKept) {
  auto seen = Serve([](ServerTlsStream& s) -> Task<std::string> {
    char c;
    error_code ec;
    // The timer is set for 200 ms by this read...
    s.expires_after(milliseconds(200));
    co_await s.async_read_some(asio::buffer(&c, 1), asio::redirect_error(kAwait, ec));
    if (ec) co_return "first read: " + ec.message();
    // ...and this read, whose deadline is later, waits past it.
    s.expires_after(std::chrono::seconds(10));
    co_await s.async_read_some(asio::buffer(&c, 1), asio::redirect_error(kAwait, ec));
    co_return ec ? "second read: " + ec.message() : std::string(1, c);
  });
  auto c = Connected();
  ASSERT_FALSE(c->Write("a"));
  std::this_thread::sleep_for(milliseconds(600));
  ASSERT_FALSE(c->Write("b"));
  EXPECT_EQ(Result(seen), "b");
  c->Close();
}

TEST_F(StreamTest, DeadlineMovedEarlierIsKept) {
  auto seen = Serve([](ServerTlsStream& s) -> Task<std::string> {
    char c;
    error_code ec;
    s.expires_after(std::chrono::seconds(60));
    co_await s.async_read_some(asio::buffer(&c, 1), asio::redirect_error(kAwait, ec));
    if (ec) co_return "first read: " + ec.message();
    s.expires_after(milliseconds(200));
    auto start = std::chrono::steady_clock::now();
    co_await s.async_read_some(asio::buffer(&c, 1), asio::redirect_error(kAwait, ec));
    // Long before the first deadline: the timer was set again, earlier.
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(30)) co_return "too late";
    co_return ec == boost::beast::error::timeout ? "ok" : "second read: " + ec.message();
  });
  auto c = Connected();
  ASSERT_FALSE(c->Write("a"));
  EXPECT_EQ(Result(seen), "ok");
}

TEST_F(StreamTest, SilentClientTimesTheHandshakeOut) {
  auto seen = Serve([](ServerTlsStream&) -> Task<std::string> { co_return "no handshake expected"; },
                    milliseconds(200));
  asio::io_context io;
  tcp::socket raw(io);
  raw.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port()));
  EXPECT_EQ(Result(seen), "handshake: " + error_code(boost::beast::error::timeout).message());
}

// PlainStream connects to a loopback server on this thread's io_context; the
// server side is a plain socket driven by the same context.
class PlainStreamTest : public ::testing::Test {
 protected:
  // Runs `client` against an accepted connection whose server side echoes
  // `echo` bytes once and then stays silent; returns what the client said.
  template <class Client>
  std::string Run(Client client, size_t echo) {
    Acceptor acceptor(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    std::string result = "not run";
    asio::co_spawn(io_, Serve(acceptor, echo), asio::detached);
    asio::co_spawn(io_, client(acceptor.local_endpoint()), [&](std::exception_ptr e, std::string r) {
      result = e ? "exception" : r;
      io_.stop();
    });
    io_.run_for(std::chrono::seconds(20));
    return result;
  }

 private:
  static Task<void> Serve(Acceptor& acceptor, size_t echo) {
    auto peer = std::make_shared<ServerTlsStream::Socket>(co_await acceptor.async_accept(kAwait));
    std::string buf(echo, '\0');
    co_await asio::async_read(*peer, asio::buffer(buf), kAwait);
    co_await asio::async_write(*peer, asio::buffer(buf), kAwait);
    // Silent from here on, open until the test ends.
    asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, Executor> wait(
        co_await asio::this_coro::executor, std::chrono::seconds(30));
    co_await wait.async_wait(kAwait);
  }

  asio::io_context io_;
};

Task<void> WriteAll(PlainStream& s, const std::string& out) {
  co_await asio::async_write(s, asio::buffer(out), kAwait);
}

TEST_F(PlainStreamTest, ConnectsAndCarriesBytesBothWays) {
  auto client = [](tcp::endpoint to) -> Task<std::string> {
    PlainStream s(co_await asio::this_coro::executor);
    s.expires_after(std::chrono::seconds(5));
    co_await s.async_connect(to, kAwait);
    std::string out = Pattern(3 << 20, 4), in(3 << 20, '\0');
    // Written and read at once: 3 MiB is more than the sockets hold.
    asio::co_spawn(co_await asio::this_coro::executor, WriteAll(s, out), asio::detached);
    co_await asio::async_read(s, asio::buffer(in), kAwait);
    co_return in == out ? "ok" : "other bytes came back";
  };
  EXPECT_EQ(Run(client, 3 << 20), "ok");
}

TEST_F(PlainStreamTest, PendingReadEndsWithTimeoutAtTheDeadline) {
  auto client = [](tcp::endpoint to) -> Task<std::string> {
    PlainStream s(co_await asio::this_coro::executor);
    s.expires_after(std::chrono::seconds(5));
    co_await s.async_connect(to, kAwait);
    co_await asio::async_write(s, asio::buffer(std::string_view("x")), kAwait);
    char c[2];
    error_code ec;
    co_await asio::async_read(s, asio::buffer(c, 1), asio::redirect_error(kAwait, ec));
    if (ec) co_return "echo: " + ec.message();
    // The deadline moves earlier: the timer, set for 5 s, is set again.
    s.expires_after(milliseconds(200));
    auto start = std::chrono::steady_clock::now();
    co_await asio::async_read(s, asio::buffer(c, 1), asio::redirect_error(kAwait, ec));
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(4)) co_return "too late";
    co_return ec == boost::beast::error::timeout ? "ok" : "second read: " + ec.message();
  };
  EXPECT_EQ(Run(client, 1), "ok");
}

// async_discard (a closing connection's lingering read): bytes the peer
// sends are dropped until it closes (eof); a peer that sends nothing and stays
// open is left at the deadline (timeout).
TEST(DiscardTest, DropsWhatThePeerSendsUntilItClosesOrTheDeadline) {
  asio::io_context io;
  Acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  auto peers = [&acceptor]() -> Task<void> {
    auto talker = co_await acceptor.async_accept(kAwait);
    std::string out = Pattern(3 << 20, 5);  // more than the sockets hold
    co_await asio::async_write(talker, asio::buffer(out), kAwait);
    talker.close();
    auto silent = co_await acceptor.async_accept(kAwait);
    asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>, Executor> wait(
        co_await asio::this_coro::executor, std::chrono::seconds(30));
    co_await wait.async_wait(kAwait);
  };
  auto discard = [](tcp::endpoint to) -> Task<std::string> {
    std::string seen;
    for (int i = 0; i < 2; ++i) {
      PlainStream s(co_await asio::this_coro::executor);
      s.expires_after(std::chrono::seconds(5));
      co_await s.async_connect(to, kAwait);
      s.expires_after(i == 0 ? std::chrono::seconds(10) : milliseconds(200));
      auto start = std::chrono::steady_clock::now();
      error_code ec;
      co_await s.async_discard(asio::redirect_error(kAwait, ec));
      auto took = std::chrono::steady_clock::now() - start;
      seen += (i ? " " : "") + ec.message();
      if (i == 1 && took > std::chrono::seconds(4)) seen += " (too late)";
    }
    co_return seen;
  };
  std::string result = "not run";
  asio::co_spawn(io, peers(), asio::detached);
  asio::co_spawn(io, discard(acceptor.local_endpoint()), [&](std::exception_ptr e, std::string r) {
    result = e ? "exception" : r;
    io.stop();
  });
  io.run_for(std::chrono::seconds(20));
  EXPECT_EQ(result, error_code(asio::error::eof).message() + " " + error_code(boost::beast::error::timeout).message());
}

}  // namespace
}  // namespace httpfront
