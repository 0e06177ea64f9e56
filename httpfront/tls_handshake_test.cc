// TLS handshakes against certs.h's stores through InstallSni, served by the
// front's ServerTlsStream: versions, ciphers, ALPN, SNI, session resumption,
// and a certificate reload under an open connection.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "httpfront/certs.h"
#include "httpfront/tls_stream.h"
#include "httpfront/tls_test_support.h"

namespace httpfront {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;
using tls_testing::Client;
using tls_testing::ClientOptions;
using tls_testing::kDomain;
using tls_testing::LeafOf;
using tls_testing::Pair;
using tls_testing::SelfSigned;
using tls_testing::SessionPtr;
using tls_testing::SubjectCn;
using tls_testing::TempDir;
using tls_testing::WriteFile;
using tls_testing::X509Ptr;

// A TLS echo server on 127.0.0.1:0 (the front's own ServerTlsStream), run
// on its own thread. `setup` prepares the listener context (InstallSni for
// the real thing).
class EchoServer {
 public:
  explicit EchoServer(const std::function<void(ssl::context&)>& setup)
      : listener_(ssl::context::tls_server), acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
    setup(listener_);
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~EchoServer() {
    io_.stop();
    thread_.join();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }

 private:
  using Stream = ServerTlsStream;

  void Accept() {
    acceptor_.async_accept(io_, [this](boost::system::error_code ec, Stream::Socket socket) {
      if (ec) return;
      auto stream = std::make_shared<Stream>(std::move(socket), listener_);
      stream->async_handshake(ssl::stream_base::server, [this, stream](boost::system::error_code ec, size_t) {
        if (!ec) Echo(stream);
      });
      Accept();
    });
  }

  void Echo(const std::shared_ptr<Stream>& stream) {
    auto buf = std::make_shared<std::array<char, 256>>();
    stream->async_read_some(asio::buffer(*buf), [this, stream, buf](boost::system::error_code ec, size_t n) {
      if (ec) {
        // A clean close_notify from the client: answer it, so the session
        // stays resumable.
        stream->async_shutdown([stream](boost::system::error_code, size_t) {});
        return;
      }
      asio::async_write(*stream, asio::buffer(buf->data(), n),
                        [this, stream, buf](boost::system::error_code ec, size_t) {
                          if (!ec) Echo(stream);
                        });
    });
  }

  asio::io_context io_;
  ssl::context listener_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

class HandshakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = OpenInternalCa(dir_ / "ca", kDomain);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(store).value();
    server_ = std::make_unique<EchoServer>([this](ssl::context& ctx) { InstallSni(ctx, *store_); });
  }

  ClientOptions Verified(const std::string& name) {
    ClientOptions o;
    o.sni = name;
    o.verify_host = name;
    o.ca_pem = store_->CaPem();
    return o;
  }

  TempDir dir_;
  std::unique_ptr<CertStore> store_;
  std::unique_ptr<EchoServer> server_;
};

TEST_F(HandshakeTest, Tls13WithAlpnAndACertificateTheClientVerifies) {
  Client c(Verified("foo.exe.localhost"));
  auto ec = c.Connect(server_->port());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(SSL_version(c.ssl()), TLS1_3_VERSION);
  EXPECT_EQ(c.Alpn(), "http/1.1");
  EXPECT_EQ(c.PeerCn(), "foo.exe.localhost");
  EXPECT_EQ(SSL_get_verify_result(c.ssl()), X509_V_OK);
  EXPECT_EQ(c.Echo("hello"), "hello");
  c.Close();
}

TEST_F(HandshakeTest, ClientVerifyingAnotherNameFails) {
  ClientOptions o = Verified("foo.exe.localhost");
  o.verify_host = "bar.exe.localhost";
  Client c(o);
  EXPECT_TRUE(c.Connect(server_->port()));
}

TEST_F(HandshakeTest, NoSniGetsTheApexCertificate) {
  ClientOptions o = Verified(kDomain);
  o.sni.clear();
  Client c(o);
  auto ec = c.Connect(server_->port());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(c.PeerCn(), kDomain);
  c.Close();
}

TEST_F(HandshakeTest, UnknownNameFailsWithUnrecognizedName) {
  ClientOptions o;
  o.sni = "evil.com";
  Client c(o);
  auto ec = c.Connect(server_->port());
  ASSERT_TRUE(ec);
  EXPECT_EQ(ec.category(), asio::error::get_ssl_category()) << ec.message();
  EXPECT_EQ(ERR_GET_REASON(ec.value()), SSL_R_TLSV1_UNRECOGNIZED_NAME) << ec.message();
}

TEST_F(HandshakeTest, ClientWithoutAlpnIsServedAndOneWithoutHttp11IsRefused) {
  ClientOptions none = Verified("foo.exe.localhost");
  none.alpn.clear();
  Client plain(none);
  auto ec = plain.Connect(server_->port());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(plain.Alpn(), "");
  plain.Close();

  ClientOptions h2 = Verified("foo.exe.localhost");
  h2.alpn = {"h2"};
  Client c(h2);
  ec = c.Connect(server_->port());
  ASSERT_TRUE(ec);
  EXPECT_EQ(ERR_GET_REASON(ec.value()), SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL) << ec.message();

  ClientOptions both = Verified("foo.exe.localhost");
  both.alpn = {"h2", "http/1.1"};
  Client d(both);
  ec = d.Connect(server_->port());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(d.Alpn(), "http/1.1");
  d.Close();
}

TEST_F(HandshakeTest, Tls11ClientIsRefused) {
  ClientOptions o = Verified("foo.exe.localhost");
  o.legacy = true;
  o.min_version = TLS1_1_VERSION;
  o.max_version = TLS1_1_VERSION;
  o.alpn.clear();

  // The same client does get TLS 1.1 from a server without exed's policy, so
  // the refusal below is the policy's doing.
  auto leaf = store_->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(leaf.ok());
  EchoServer permissive([&](ssl::context& ctx) {
    SSL_CTX* c = ctx.native_handle();
    SSL_CTX_set_security_level(c, 0);
    SSL_CTX_set_min_proto_version(c, TLS1_VERSION);
    SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_use_certificate(c, LeafOf(*leaf));
    SSL_CTX_use_PrivateKey(c, SSL_CTX_get0_privatekey((*leaf)->native_handle()));
  });
  Client control(o);
  auto ec = control.Connect(permissive.port());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(SSL_version(control.ssl()), TLS1_1_VERSION);
  control.Close();

  Client c(o);
  ec = c.Connect(server_->port());
  ASSERT_TRUE(ec);
  EXPECT_EQ(ERR_GET_REASON(ec.value()), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION) << ec.message();
}

TEST_F(HandshakeTest, Tls12UsesOnlyEcdheAeadSuites) {
  ClientOptions o = Verified("foo.exe.localhost");
  o.max_version = TLS1_2_VERSION;
  Client c(o);
  auto ec = c.Connect(server_->port());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(SSL_version(c.ssl()), TLS1_2_VERSION);
  const SSL_CIPHER* cipher = SSL_get_current_cipher(c.ssl());
  EXPECT_EQ(SSL_CIPHER_get_kx_nid(cipher), NID_kx_ecdhe) << SSL_CIPHER_get_name(cipher);
  EXPECT_TRUE(SSL_CIPHER_is_aead(cipher)) << SSL_CIPHER_get_name(cipher);
  c.Close();

  for (const char* weak : {"ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA"}) {
    o.tls12_ciphers = weak;
    Client w(o);
    EXPECT_TRUE(w.Connect(server_->port())) << weak;
  }
}

// Connects twice with a TLS 1.2-only client, the second time offering the
// session from the first; returns whether it was resumed.
class ResumptionTest : public HandshakeTest {
 protected:
  bool ConnectTwice(ClientOptions o) {
    Client first(o);
    auto ec = first.Connect(server_->port());
    EXPECT_FALSE(ec) << ec.message();
    if (ec) return false;
    EXPECT_EQ(SSL_version(first.ssl()), o.max_version);
    EXPECT_FALSE(SSL_session_reused(first.ssl()));
    // After the echo, TLS 1.3's post-handshake tickets have been read too.
    EXPECT_EQ(first.Echo("one"), "one");
    SessionPtr session(SSL_get1_session(first.ssl()));
    first.Close();
    EXPECT_TRUE(session && SSL_SESSION_is_resumable(session.get()));
    // Without a ticket, resumption can only come from the server's cache.
    if (session) {
      EXPECT_EQ(SSL_SESSION_has_ticket(session.get()) == 1, !o.no_ticket);
    }
    o.resume = session.get();
    Client second(o);
    ec = second.Connect(server_->port());
    EXPECT_FALSE(ec) << ec.message();
    if (ec) return false;
    EXPECT_EQ(second.Echo("two"), "two");
    EXPECT_EQ(SSL_version(second.ssl()), o.max_version);
    EXPECT_EQ(second.PeerCn(), o.sni);
    bool reused = SSL_session_reused(second.ssl()) == 1;
    second.Close();
    return reused;
  }
};

TEST_F(ResumptionTest, Tls12ResumesWithATicket) {
  ClientOptions o = Verified("foo.exe.localhost");
  o.max_version = TLS1_2_VERSION;
  EXPECT_TRUE(ConnectTwice(o));
}

TEST_F(ResumptionTest, Tls12ResumesFromTheServerSessionCache) {
  ClientOptions o = Verified("foo.exe.localhost");
  o.max_version = TLS1_2_VERSION;
  o.no_ticket = true;
  EXPECT_TRUE(ConnectTwice(o));
}

TEST_F(ResumptionTest, Tls13Resumes) {
  EXPECT_TRUE(ConnectTwice(Verified("foo.exe.localhost")));
}

// An operator's certificate replaced and reloaded while a connection is open:
// that connection keeps working, the next one gets the new certificate.
TEST(CertFilesHandshakeTest, ReloadKeepsOpenConnections) {
  TempDir dir;
  Pair a = SelfSigned("a.example.test");
  WriteFile(dir / "cert.pem", a.cert_pem);
  WriteFile(dir / "key.pem", a.key_pem);
  auto store = OpenCertFiles(dir / "cert.pem", dir / "key.pem");
  ASSERT_TRUE(store.ok()) << store.error().message;
  EchoServer server([&](ssl::context& ctx) { InstallSni(ctx, **store); });

  ClientOptions o;
  o.sni = "www.example.test";
  Client old(o);
  auto ec = old.Connect(server.port());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(old.PeerCn(), "a.example.test");
  EXPECT_EQ(old.Echo("before"), "before");

  Pair b = SelfSigned("b.example.test");
  WriteFile(dir / "cert.pem", b.cert_pem);
  WriteFile(dir / "key.pem", b.key_pem);
  ASSERT_TRUE((*store)->Reload().ok());

  EXPECT_EQ(old.Echo("after"), "after");
  Client fresh(o);
  ec = fresh.Connect(server.port());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(fresh.PeerCn(), "b.example.test");
  fresh.Close();
  old.Close();
}

}  // namespace
}  // namespace httpfront
