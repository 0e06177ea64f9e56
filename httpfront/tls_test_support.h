// Helpers shared by httpfront's certificate tests (certs_test.cc,
// tls_handshake_test.cc, tls_stream_test.cc, acme_test.cc): a temp dir,
// files, self-signed pairs, a TLS client.
// They link into one binary, so everything here is inline, a class or a
// template. The OpenSSL owning pointers and PEM writers are openssl_util.h's.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "httpfront/openssl_util.h"

namespace httpfront::tls_testing {

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;

using ossl::BioPtr;
using ossl::Deleter;
using ossl::KeyPtr;
using ossl::ToPem;
using ossl::X509Ptr;
using SessionPtr = std::unique_ptr<SSL_SESSION, Deleter<SSL_SESSION_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;

inline constexpr char kDomain[] = "exe.localhost";

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "exed-tls-test-XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// Replaces `path` the way an operator's tooling (certbot, cp + mv) does.
inline void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path + ".new") << data;
  fs::rename(path + ".new", path);
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The certificate a context would serve.
inline X509* LeafOf(const std::shared_ptr<ssl::context>& ctx) {
  return SSL_CTX_get0_certificate(ctx->native_handle());
}

// A self-signed certificate and key as an operator might bring, for `cn`.
struct Pair {
  std::string cert_pem;
  std::string key_pem;
};
inline Pair SelfSigned(const std::string& cn) {
  KeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  X509_set_pubkey(cert.get(), key.get());
  X509_sign(cert.get(), key.get(), EVP_sha256());
  return {ToPem(cert.get()), ToPem(key.get())};
}

inline std::string SubjectCn(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

struct ClientOptions {
  std::string sni;          // empty: no SNI sent
  std::string ca_pem;       // empty: no verification
  std::string verify_host;  // checked against the certificate when set
  int min_version = TLS1_2_VERSION;
  int max_version = TLS1_3_VERSION;
  std::vector<std::string> alpn = {"http/1.1"};
  std::string tls12_ciphers;  // empty: OpenSSL's default
  bool legacy = false;        // security level 0, for a TLS 1.1 client
  bool no_ticket = false;
  SSL_SESSION* resume = nullptr;
};

// A TLS client (Asio's) driven step by step in this thread; each step gives up after
// a few seconds so a broken server fails the test instead of hanging it.
class Client {
 public:
  explicit Client(const ClientOptions& o) : ctx_(MakeContext(o)), stream_(io_, ctx_) {
    SSL* s = stream_.native_handle();
    if (!o.sni.empty()) SSL_set_tlsext_host_name(s, o.sni.c_str());
    if (!o.verify_host.empty()) SSL_set1_host(s, o.verify_host.c_str());
    if (o.resume) SSL_set_session(s, o.resume);
    SSL_set_msg_callback(s, &Client::OnMessage);
    SSL_set_msg_callback_arg(s, this);
  }

  boost::system::error_code Connect(unsigned short port) {
    tcp::endpoint ep(asio::ip::address_v4::loopback(), port);
    auto ec = Run([&](auto done) { stream_.lowest_layer().async_connect(ep, done); });
    if (ec) return ec;
    return Run([&](auto done) { stream_.async_handshake(ssl::stream_base::client, done); });
  }

  // Sends `text` and returns what came back ("" on an error).
  std::string Echo(const std::string& text) {
    auto ec = Run([&](auto done) {
      asio::async_write(stream_, asio::buffer(text), [done](boost::system::error_code ec, size_t) { done(ec); });
    });
    if (ec) return "";
    std::string back(text.size(), '\0');
    ec = Run([&](auto done) {
      asio::async_read(stream_, asio::buffer(back), [done](boost::system::error_code ec, size_t) { done(ec); });
    });
    return ec ? "" : back;
  }

  boost::system::error_code Write(const std::string& text) {
    return Run([&](auto done) {
      asio::async_write(stream_, asio::buffer(text), [done](boost::system::error_code ec, size_t) { done(ec); });
    });
  }

  // Reads exactly `n` bytes ("" on an error).
  std::string Read(size_t n) {
    std::string back(n, '\0');
    auto ec = Run([&](auto done) {
      asio::async_read(stream_, asio::buffer(back), [done](boost::system::error_code ec, size_t) { done(ec); });
    });
    return ec ? "" : back;
  }

  // What the next read ends with, once everything before has been read.
  boost::system::error_code ReadError() {
    char c;
    return Run([&](auto done) {
      stream_.async_read_some(asio::buffer(&c, 1), [done](boost::system::error_code ec, size_t) { done(ec); });
    });
  }

  // Sends close_notify and waits for the server's, or its close: Asio's
  // stream_truncated then.
  boost::system::error_code Close() {
    return Run([&](auto done) { stream_.async_shutdown(done); });
  }

  // Ends its side of TCP without TLS's close_notify, then reads the
  // socket (not TLS) until the server closes: the bytes it sent after.
  std::string HalfCloseAndDrain() {
    boost::system::error_code ec;
    stream_.lowest_layer().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return "shutdown: " + ec.message();
    std::string got;
    ec = Run([&](auto done) {
      asio::async_read(stream_.next_layer(), asio::dynamic_buffer(got),
                       [done](boost::system::error_code ec, size_t) { done(ec); });
    });
    return ec == asio::error::eof ? got : "read: " + ec.message();
  }

  // Application data records received so far (TLS 1.2: the outer type is
  // the real one).
  int records_read() const { return records_read_; }

  SSL* ssl() { return stream_.native_handle(); }
  std::string Alpn() {
    const unsigned char* p = nullptr;
    unsigned int len = 0;
    SSL_get0_alpn_selected(ssl(), &p, &len);
    return std::string(reinterpret_cast<const char*>(p), len);
  }
  std::string PeerCn() {
    X509Ptr peer(SSL_get1_peer_certificate(ssl()));
    return peer ? SubjectCn(peer.get()) : "";
  }

 private:
  static void OnMessage(int write_p, int, int content_type, const void* buf, size_t len, SSL*, void* arg) {
    if (write_p == 0 && content_type == SSL3_RT_HEADER && len > 0 &&
        static_cast<const unsigned char*>(buf)[0] == SSL3_RT_APPLICATION_DATA) {
      ++static_cast<Client*>(arg)->records_read_;
    }
  }

  // The context is set up before the stream exists: SSL_new copies versions,
  // ciphers, ALPN and verify mode from it.
  static ssl::context MakeContext(const ClientOptions& o) {
    ssl::context ctx(ssl::context::tls_client);
    SSL_CTX* c = ctx.native_handle();
    if (o.legacy) {
      SSL_CTX_set_security_level(c, 0);
      SSL_CTX_set_cipher_list(c, "DEFAULT:@SECLEVEL=0");
    }
    SSL_CTX_set_min_proto_version(c, o.min_version);
    SSL_CTX_set_max_proto_version(c, o.max_version);
    if (!o.tls12_ciphers.empty()) SSL_CTX_set_cipher_list(c, o.tls12_ciphers.c_str());
    if (o.no_ticket) SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    std::string wire;
    for (const std::string& p : o.alpn) wire += static_cast<char>(p.size()) + p;
    if (!wire.empty()) {
      SSL_CTX_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(wire.data()), wire.size());
    }
    if (!o.ca_pem.empty()) {
      ctx.add_certificate_authority(asio::buffer(o.ca_pem));
      ctx.set_verify_mode(ssl::verify_peer);
    }
    return ctx;
  }

  template <class Start>
  boost::system::error_code Run(Start start) {
    boost::system::error_code result = asio::error::timed_out;
    bool finished = false;
    start([&](boost::system::error_code ec) {
      result = ec;
      finished = true;
    });
    io_.restart();
    io_.run_for(std::chrono::seconds(10));
    if (!finished) {
      boost::system::error_code ignored;
      stream_.lowest_layer().close(ignored);
      io_.restart();
      io_.run();
    }
    return finished ? result : asio::error::timed_out;
  }

  asio::io_context io_;
  ssl::context ctx_;
  ssl::stream<tcp::socket> stream_;
  int records_read_ = 0;
};

}  // namespace httpfront::tls_testing
