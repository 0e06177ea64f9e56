#include "httpfront/certs.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <array>
#include <boost/asio.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace httpfront {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace fs = std::filesystem;
using asio::ip::tcp;
using Clock = std::chrono::system_clock;

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using SessionPtr = std::unique_ptr<SSL_SESSION, Deleter<SSL_SESSION_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;

constexpr char kDomain[] = "exe.localhost";

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "exed-certs-test-XXXXXX").string();
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

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Replaces `path` the way an operator's tooling (certbot, cp + mv) does.
void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path + ".new") << data;
  fs::rename(path + ".new", path);
}

X509Ptr ParseCert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::string CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, len);
}

std::string KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, len);
}

X509* LeafOf(const std::shared_ptr<ssl::context>& ctx) { return SSL_CTX_get0_certificate(ctx->native_handle()); }

// Runs OpenSSL's own chain verification of `leaf` against `ca_pem` as a TLS
// client would for `host`; returns the X509_V_ERR code (X509_V_OK on success).
int Verify(X509* leaf, const std::string& ca_pem, const std::string& host) {
  StorePtr store(X509_STORE_new());
  X509Ptr ca = ParseCert(ca_pem);
  if (!ca || X509_STORE_add_cert(store.get(), ca.get()) != 1) return -1;
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr) != 1) return -1;
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx.get()), host.c_str(), host.size());
  X509_verify_cert(ctx.get());
  return X509_STORE_CTX_get_error(ctx.get());
}

// A self-signed certificate and key as an operator might bring, for `cn`.
struct Pair {
  std::string cert_pem;
  std::string key_pem;
};
Pair SelfSigned(const std::string& cn) {
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
  return {CertPem(cert.get()), KeyPem(key.get())};
}

std::string SubjectCn(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

// ---------------------------------------------------------------- internal CA

class InternalCaTest : public ::testing::Test {
 protected:
  std::unique_ptr<CertStore> Open(InternalCaOptions options = {}) {
    auto store = OpenInternalCa(dir_ / "ca", kDomain, std::move(options));
    EXPECT_TRUE(store.ok()) << store.error().message;
    return store.ok() ? std::move(store).value() : nullptr;
  }
  TempDir dir_;
};

TEST_F(InternalCaTest, CaIsMadeOnceAndReused) {
  auto first = Open();
  ASSERT_TRUE(first);
  std::string pem = first->CaPem();
  EXPECT_EQ(pem.rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
  EXPECT_EQ(ReadFile(dir_ / "ca/ca.pem"), pem);
  std::string key = ReadFile(dir_ / "ca/ca.key");
  EXPECT_NE(key.find("PRIVATE KEY"), std::string::npos);
  first.reset();

  auto second = Open();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->CaPem(), pem);
  EXPECT_EQ(ReadFile(dir_ / "ca/ca.key"), key);
}

TEST_F(InternalCaTest, CaKeyIsPrivate) {
  ASSERT_TRUE(Open());
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "ca/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ / "ca").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(fs::exists(dir_ / "ca/ca.key.tmp"));
}

TEST_F(InternalCaTest, CaCertificateIsAnEcdsaCa) {
  auto store = Open();
  ASSERT_TRUE(store);
  X509Ptr ca = ParseCert(store->CaPem());
  ASSERT_TRUE(ca);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(SubjectCn(ca.get()), "exed internal CA (exe.localhost)");
  EXPECT_TRUE(X509_get_extension_flags(ca.get()) & EXFLAG_SS);
  int crit = -1;
  BASIC_CONSTRAINTS* bc =
      static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(ca.get(), NID_basic_constraints, &crit, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_TRUE(bc->ca);
  EXPECT_EQ(crit, 1);
  BASIC_CONSTRAINTS_free(bc);
  EXPECT_EQ(X509_get_key_usage(ca.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(ca.get())), EVP_PKEY_EC);
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca.get()), X509_get0_notAfter(ca.get())), 1);
  EXPECT_GE(days, 3649);
  EXPECT_LE(days, 3651);
  // A CA verifies against itself: what a user's trust store will do.
  EXPECT_EQ(X509_verify(ca.get(), X509_get0_pubkey(ca.get())), 1);
}

TEST_F(InternalCaTest, LeafVerifiesAgainstCaForItsNameOnly) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto ctx = store->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  X509* leaf = LeafOf(*ctx);
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(Verify(leaf, store->CaPem(), "foo.exe.localhost"), X509_V_OK);
  EXPECT_EQ(Verify(leaf, store->CaPem(), "bar.exe.localhost"), X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(Verify(leaf, store->CaPem(), "exe.localhost"), X509_V_ERR_HOSTNAME_MISMATCH);
  // Against some other CA it must not verify.
  TempDir other;
  auto other_store = OpenInternalCa(other / "ca", kDomain);
  ASSERT_TRUE(other_store.ok());
  EXPECT_NE(Verify(leaf, (*other_store)->CaPem(), "foo.exe.localhost"), X509_V_OK);

  EVP_PKEY* key = X509_get0_pubkey(leaf);
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
  char group[64] = {};
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(key, group, sizeof group, &len), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_check_ca(leaf), 0);
  EXPECT_NE(X509_get0_subject_key_id(leaf), nullptr);
  EXPECT_NE(X509_get0_authority_key_id(leaf), nullptr);
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(sans, nullptr);
  EXPECT_EQ(sk_GENERAL_NAME_num(sans), 1);
  GENERAL_NAMES_free(sans);
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 1);
  EXPECT_EQ(days, 90);
}

TEST_F(InternalCaTest, ApexGetsACertificateAlsoWithoutSni) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto apex = store->ContextFor(kDomain);
  ASSERT_TRUE(apex.ok()) << apex.error().message;
  EXPECT_EQ(Verify(LeafOf(*apex), store->CaPem(), kDomain), X509_V_OK);
  auto none = store->ContextFor("");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->get(), apex->get());
}

TEST_F(InternalCaTest, RefusesNamesOutsideTheDomain) {
  auto store = Open();
  ASSERT_TRUE(store);
  for (const char* name : {"a.b.exe.localhost", "evil.com", "exe.localhost.evil.com", "xexe.localhost",
                           ".exe.localhost", "-foo.exe.localhost", "foo-.exe.localhost", "fo_o.exe.localhost",
                           "localhost", "foo.exe.localhost..", "foo,DNS:evil.com.exe.localhost"}) {
    auto ctx = store->ContextFor(name);
    ASSERT_FALSE(ctx.ok()) << name;
    EXPECT_EQ(ctx.error().kind, control::ErrorKind::kNotFound) << name;
    EXPECT_NE(ctx.error().message.find("no certificate for"), std::string::npos) << ctx.error().message;
    EXPECT_NE(ctx.error().message.find("exe.localhost"), std::string::npos) << ctx.error().message;
  }
  // Longer than a CN may be: the name is in the SAN only, and still verifies.
  std::string label63(63, 'a');
  auto longest = store->ContextFor(label63 + ".exe.localhost");
  ASSERT_TRUE(longest.ok());
  EXPECT_EQ(Verify(LeafOf(*longest), store->CaPem(), label63 + ".exe.localhost"), X509_V_OK);
  EXPECT_FALSE(store->ContextFor(label63 + "a.exe.localhost").ok());
}

TEST_F(InternalCaTest, ContextsAreCached) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto a = store->ContextFor("foo.exe.localhost");
  auto b = store->ContextFor("foo.exe.localhost");
  auto upper = store->ContextFor("FOO.Exe.Localhost");
  auto other = store->ContextFor("bar.exe.localhost");
  ASSERT_TRUE(a.ok() && b.ok() && upper.ok() && other.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_EQ(a->get(), upper->get());
  EXPECT_NE(a->get(), other->get());
}

TEST_F(InternalCaTest, LeafIsRenewedWhenNearExpiry) {
  Clock::time_point now = Clock::now();
  auto store = Open({.now = [&now] { return now; }});
  ASSERT_TRUE(store);
  auto first = store->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(first.ok());
  now += std::chrono::hours(24 * 59);
  auto same = store->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->get(), first->get());
  now += std::chrono::hours(24 * 2);  // 61 days in: under 30 left
  auto renewed = store->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(renewed.ok());
  EXPECT_NE(renewed->get(), first->get());
  EXPECT_EQ(ASN1_TIME_compare(X509_get0_notAfter(LeafOf(*renewed)), X509_get0_notAfter(LeafOf(*first))), 1);
  // The old context is intact for connections that still hold it.
  EXPECT_NE(LeafOf(*first), nullptr);
}

TEST_F(InternalCaTest, LeastRecentlyUsedLeafIsDroppedPastTheLimit) {
  auto store = Open({.max_cached = 2});
  ASSERT_TRUE(store);
  auto a = store->ContextFor("aaa.exe.localhost");
  auto b = store->ContextFor("bbb.exe.localhost");
  ASSERT_TRUE(store->ContextFor("aaa.exe.localhost").ok());  // b is now the oldest
  ASSERT_TRUE(store->ContextFor("ccc.exe.localhost").ok());
  auto a2 = store->ContextFor("aaa.exe.localhost");
  auto b2 = store->ContextFor("bbb.exe.localhost");
  ASSERT_TRUE(a.ok() && b.ok() && a2.ok() && b2.ok());
  EXPECT_EQ(a2->get(), a->get());
  EXPECT_NE(b2->get(), b->get());
}

TEST_F(InternalCaTest, ConcurrentLookupsAgree) {
  auto store = Open({.max_cached = 3});
  ASSERT_TRUE(store);
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        std::string name = "vm" + std::to_string((i + t) % 5) + ".exe.localhost";
        auto ctx = store->ContextFor(name);
        if (!ctx.ok() || SubjectCn(LeafOf(*ctx)) != name) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST_F(InternalCaTest, BadDomainIsRefused) {
  for (const char* domain : {"", "exe..localhost", "exe.localhost.", "-x.localhost", "exe localhost"}) {
    auto store = OpenInternalCa(dir_ / "ca", domain);
    ASSERT_FALSE(store.ok()) << domain;
    EXPECT_EQ(store.error().kind, control::ErrorKind::kInvalid);
    EXPECT_NE(store.error().message.find("is not a DNS name"), std::string::npos) << store.error().message;
  }
  EXPECT_FALSE(fs::exists(dir_ / "ca"));
}

TEST_F(InternalCaTest, MismatchedCaKeyIsRefused) {
  ASSERT_TRUE(Open());
  WriteFile(dir_ / "ca/ca.key", SelfSigned("x").key_pem);
  auto store = OpenInternalCa(dir_ / "ca", kDomain);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("does not match"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("move"), std::string::npos) << store.error().message;
}

TEST_F(InternalCaTest, LoneKeyFromAnInterruptedFirstStartIsReplaced) {
  fs::create_directories(dir_ / "ca");
  WriteFile(dir_ / "ca/ca.key", "half a key");
  auto store = Open();
  ASSERT_TRUE(store);
  auto ctx = store->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(ctx.ok());
  EXPECT_EQ(Verify(LeafOf(*ctx), ReadFile(dir_ / "ca/ca.pem"), "foo.exe.localhost"), X509_V_OK);
}

// ------------------------------------------------------------ operator files

class CertFilesTest : public ::testing::Test {
 protected:
  TempDir dir_;  // first: the paths below are made from it
  std::string cert_ = dir_ / "cert.pem";
  std::string key_ = dir_ / "key.pem";
};

TEST_F(CertFilesTest, ServesTheOperatorsCertificateForEveryName) {
  Pair pair = SelfSigned("www.example.test");
  WriteFile(cert_, pair.cert_pem);
  WriteFile(key_, pair.key_pem);
  auto store = OpenCertFiles(cert_, key_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ((*store)->CaPem(), "");
  for (const char* name : {"", "www.example.test", "anything.else"}) {
    auto ctx = (*store)->ContextFor(name);
    ASSERT_TRUE(ctx.ok());
    EXPECT_EQ(CertPem(LeafOf(*ctx)), pair.cert_pem);
  }
}

TEST_F(CertFilesTest, MismatchedKeyIsRefusedClearly) {
  WriteFile(cert_, SelfSigned("a.example.test").cert_pem);
  WriteFile(key_, SelfSigned("b.example.test").key_pem);
  auto store = OpenCertFiles(cert_, key_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, control::ErrorKind::kInvalid);
  EXPECT_EQ(store.error().message.find('\n'), std::string::npos);
  EXPECT_NE(store.error().message.find("does not match the certificate"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find(key_), std::string::npos) << store.error().message;
}

TEST_F(CertFilesTest, UnreadableOrWrongFilesAreRefusedClearly) {
  Pair pair = SelfSigned("a.example.test");
  WriteFile(key_, pair.key_pem);
  auto missing = OpenCertFiles(cert_, key_);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos) << missing.error().message;
  EXPECT_NE(missing.error().message.find(cert_), std::string::npos) << missing.error().message;

  WriteFile(cert_, pair.key_pem);  // a key where the certificate belongs
  auto not_cert = OpenCertFiles(cert_, key_);
  ASSERT_FALSE(not_cert.ok());
  EXPECT_NE(not_cert.error().message.find("holds no PEM certificate"), std::string::npos) << not_cert.error().message;

  WriteFile(cert_, pair.cert_pem);
  WriteFile(key_, pair.cert_pem);  // and the other way round
  auto not_key = OpenCertFiles(cert_, key_);
  ASSERT_FALSE(not_key.ok());
  EXPECT_NE(not_key.error().message.find("holds no PEM private key"), std::string::npos) << not_key.error().message;
}

TEST_F(CertFilesTest, ReloadPicksUpReplacedFilesAndKeepsOldContextsAlive) {
  Pair a = SelfSigned("a.example.test");
  WriteFile(cert_, a.cert_pem);
  WriteFile(key_, a.key_pem);
  auto store = OpenCertFiles(cert_, key_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto before = (*store)->ContextFor("x");
  ASSERT_TRUE(before.ok());

  Pair b = SelfSigned("b.example.test");
  WriteFile(cert_, b.cert_pem);
  WriteFile(key_, b.key_pem);
  EXPECT_EQ(SubjectCn(LeafOf(*(*store)->ContextFor("x"))), "a.example.test");  // not before Reload
  auto st = (*store)->Reload();
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(SubjectCn(LeafOf(*(*store)->ContextFor("x"))), "b.example.test");
  EXPECT_EQ(SubjectCn(LeafOf(*before)), "a.example.test");
}

TEST_F(CertFilesTest, FailedReloadKeepsServingTheOldCertificate) {
  Pair a = SelfSigned("a.example.test");
  WriteFile(cert_, a.cert_pem);
  WriteFile(key_, a.key_pem);
  auto store = OpenCertFiles(cert_, key_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  WriteFile(cert_, SelfSigned("b.example.test").cert_pem);  // key not yet replaced
  auto st = (*store)->Reload();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("does not match"), std::string::npos) << st.error().message;
  EXPECT_EQ(SubjectCn(LeafOf(*(*store)->ContextFor("x"))), "a.example.test");
}

// ------------------------------------------------------------ TLS handshakes

// A TLS echo server on 127.0.0.1:0, run on its own thread. `setup` prepares
// the listener context (InstallSni for the real thing).
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
  using Stream = ssl::stream<tcp::socket>;

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      auto stream = std::make_shared<Stream>(std::move(socket), listener_);
      stream->async_handshake(ssl::stream_base::server, [this, stream](boost::system::error_code ec) {
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
        stream->async_shutdown([stream](boost::system::error_code) {});
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

// A TLS client driven step by step in this thread; each step gives up after
// a few seconds so a broken server fails the test instead of hanging it.
class Client {
 public:
  explicit Client(const ClientOptions& o) : ctx_(MakeContext(o)), stream_(io_, ctx_) {
    SSL* s = stream_.native_handle();
    if (!o.sni.empty()) SSL_set_tlsext_host_name(s, o.sni.c_str());
    if (!o.verify_host.empty()) SSL_set1_host(s, o.verify_host.c_str());
    if (o.resume) SSL_set_session(s, o.resume);
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

  void Close() {
    Run([&](auto done) { stream_.async_shutdown(done); });
  }

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
