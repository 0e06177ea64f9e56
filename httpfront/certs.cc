#include "httpfront/certs.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "control/names.h"
#include "httpfront/openssl_util.h"

namespace httpfront {
namespace {

namespace ssl = boost::asio::ssl;
using namespace ossl;
using control::ForMessage;

using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;

// TLS 1.2 suites: forward secret (ECDHE) AEADs only. RSA variants stay for
// operators whose certificate has an RSA key; our own keys are ECDSA.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kTls13Suites[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr char kGroups[] = "X25519:P-256:P-384";
constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
// Every context shares one session id context: a session made under the
// listener's context is looked up again after SNI has switched to a leaf's.
constexpr unsigned char kSessionIdContext[] = {'e', 'x', 'e', 'd'};
constexpr long kSessionTimeoutSeconds = 24 * 3600;

constexpr int kCaDays = 3650;
constexpr int kLeafDays = 90;
constexpr auto kLeafRenewBefore = std::chrono::hours(24 * 30);
// Backdated so a client whose clock is a little behind still accepts it.
constexpr long kBackdateSeconds = 3600;
constexpr size_t kMaxCommonName = 64;

// Accepts only http/1.1. A client that offers only other protocols (say h2)
// is refused rather than answered without ALPN, since it would then speak a
// protocol we do not.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void*) {
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == kAlpnHttp11[0] && std::memcmp(in + i + 1, kAlpnHttp11 + 1, len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

Clock::time_point NotAfter(const X509* cert) { return TimeOf(X509_get0_notAfter(cert)); }

std::string DateOf(Clock::time_point t) { return FormatUtc(t, "%Y-%m-%d"); }

void AddExtension(X509* cert, X509V3_CTX* v3, int nid, const char* value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, v3, nid, value));
  Check(ext && X509_add_ext(cert, ext.get(), -1) == 1, "X509_add_ext");
}

// A version 3 certificate for `key`, valid from now (backdated) for `days`,
// capped at `not_after_cap` when that is set; extensions are added by the
// caller, which then signs.
X509Ptr NewCertificate(EVP_PKEY* key, const std::string& common_name, Clock::time_point now, int days,
                       Clock::time_point not_after_cap = {}) {
  X509Ptr cert(X509_new());
  Check(cert && X509_set_version(cert.get(), X509_VERSION_3) == 1, "X509_new");
  // 127 random bits: positive, unique in practice, as CAs must use.
  BnPtr serial(BN_new());
  Check(serial && BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
            BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) != nullptr,
        "serial number");
  std::time_t t = Clock::to_time_t(now);
  Check(X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -kBackdateSeconds, &t) != nullptr, "notBefore");
  std::time_t end = Clock::to_time_t(now + std::chrono::hours(24) * days);
  if (not_after_cap != Clock::time_point{}) end = std::min(end, Clock::to_time_t(not_after_cap));
  Check(X509_time_adj_ex(X509_getm_notAfter(cert.get()), 0, 0, &end) != nullptr, "notAfter");
  // A CN holds at most 64 characters; a longer name is left to the SAN alone
  // (which the caller then marks critical, as RFC 5280 asks of an empty subject).
  if (common_name.size() <= kMaxCommonName) {
    X509_NAME* name = X509_get_subject_name(cert.get());
    Check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0) == 1,
          "subject");
  }
  Check(X509_set_pubkey(cert.get(), key) == 1, "X509_set_pubkey");
  return cert;
}

// A server context holding `chain` (leaf first) and `key`, with the policy.
control::Result<std::shared_ptr<ssl::context>> NewServerContext(const std::vector<X509Ptr>& chain, EVP_PKEY* key) {
  std::shared_ptr<ssl::context> ctx;
  try {
    ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  } catch (const std::exception& e) {
    return control::InternalError(fmt::format("cannot make a TLS context: {}", e.what()));
  }
  SSL_CTX* c = ctx->native_handle();
  bool ok = SSL_CTX_use_certificate(c, chain.front().get()) == 1;
  for (size_t i = 1; ok && i < chain.size(); ++i) ok = SSL_CTX_add1_chain_cert(c, chain[i].get()) == 1;
  ok = ok && SSL_CTX_use_PrivateKey(c, key) == 1 && SSL_CTX_check_private_key(c) == 1;
  if (!ok) return control::InternalError("cannot load a certificate into a TLS context: " + OpensslError());
  ApplyTlsPolicy(*ctx);
  return ctx;
}

// The internal CA: one CA key on disk, leaves made on demand in memory.
class InternalCa final : public CertStore {
 public:
  InternalCa(std::string domain, X509Ptr ca_cert, KeyPtr ca_key, InternalCaOptions options)
      : domain_(std::move(domain)),
        ca_cert_(std::move(ca_cert)),
        ca_key_(std::move(ca_key)),
        ca_pem_(ToPem(ca_cert_.get())),
        options_(std::move(options)) {
    if (!options_.now) options_.now = [] { return Clock::now(); };
    if (options_.max_cached == 0) options_.max_cached = 1;
  }

  control::Result<std::shared_ptr<ssl::context>> ContextFor(const std::string& host) override {
    std::string name = host.empty() ? domain_ : Lowercase(host);
    if (!name.empty() && name.back() == '.') name.pop_back();
    if (!Serves(name)) {
      return control::NotFoundError(fmt::format("no certificate for {}: this host serves {} and <vm>.{}",
                                                ForMessage(host), domain_, domain_));
    }
    Clock::time_point now = options_.now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = leaves_.find(name);
      if (it != leaves_.end() && now < it->second.renew_at) {
        it->second.last_used = ++uses_;
        return it->second.ctx;
      }
    }
    // Made outside the lock so that handshakes for cached names never wait
    // behind a key generation; two racing makers for one name both succeed
    // and the later one's leaf is the one kept.
    Clock::time_point not_after;
    auto ctx = MakeLeaf(name, now, &not_after);
    if (!ctx.ok()) return ctx.error();
    std::lock_guard<std::mutex> lock(mu_);
    if (leaves_.size() >= options_.max_cached && leaves_.find(name) == leaves_.end()) EvictOne();
    leaves_[name] = Leaf{*ctx, not_after - kLeafRenewBefore, ++uses_};
    spdlog::debug("tls: leaf certificate made name={} not_after={}", name, DateOf(not_after));
    return *ctx;
  }

  std::string CaPem() const override { return ca_pem_; }
  control::Status Reload() override { return control::Ok{}; }

 private:
  struct Leaf {
    std::shared_ptr<ssl::context> ctx;
    Clock::time_point renew_at;
    uint64_t last_used = 0;
  };

  bool Serves(const std::string& name) const {
    if (name == domain_) return true;
    if (name.size() <= domain_.size() + 1) return false;
    size_t dot = name.size() - domain_.size() - 1;
    return name[dot] == '.' && name.compare(dot + 1, std::string::npos, domain_) == 0 &&
           IsDnsLabel(std::string_view(name).substr(0, dot));
  }

  control::Result<std::shared_ptr<ssl::context>> MakeLeaf(const std::string& name, Clock::time_point now,
                                                          Clock::time_point* not_after) const {
    KeyPtr key = NewP256Key();
    X509Ptr cert = NewCertificate(key.get(), name, now, kLeafDays, NotAfter(ca_cert_.get()));
    Check(X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert_.get())) == 1, "X509_set_issuer_name");
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, ca_cert_.get(), cert.get(), nullptr, nullptr, 0);
    AddExtension(cert.get(), &v3, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), &v3, NID_key_usage, "critical,digitalSignature");
    AddExtension(cert.get(), &v3, NID_ext_key_usage, "serverAuth");
    // `name` passed Serves: letters, digits, '-' and '.', nothing the
    // extension syntax would read as a separator.
    std::string san = (name.size() > kMaxCommonName ? "critical,DNS:" : "DNS:") + name;
    AddExtension(cert.get(), &v3, NID_subject_alt_name, san.c_str());
    AddExtension(cert.get(), &v3, NID_subject_key_identifier, "hash");
    AddExtension(cert.get(), &v3, NID_authority_key_identifier, "keyid:always");
    Check(X509_sign(cert.get(), ca_key_.get(), EVP_sha256()) > 0, "X509_sign");
    *not_after = NotAfter(cert.get());
    std::vector<X509Ptr> chain;
    chain.push_back(std::move(cert));
    return NewServerContext(chain, key.get());
  }

  // REQUIRES: mu_ held. Drops the least recently used leaf; open connections
  // keep its context alive.
  void EvictOne() {
    auto oldest = leaves_.begin();
    for (auto it = leaves_.begin(); it != leaves_.end(); ++it) {
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    }
    if (oldest != leaves_.end()) leaves_.erase(oldest);
  }

  const std::string domain_;
  const X509Ptr ca_cert_;
  const KeyPtr ca_key_;
  const std::string ca_pem_;
  InternalCaOptions options_;
  std::mutex mu_;
  std::unordered_map<std::string, Leaf> leaves_;  // GUARDED_BY(mu_)
  uint64_t uses_ = 0;                             // GUARDED_BY(mu_)
};

// Makes a new CA in `dir`. The key is written before the certificate, so a
// ca.pem on disk always has its ca.key beside it: a crash in between leaves a
// lone key, which the next start replaces.
control::Status MakeCa(const std::string& dir, const std::string& domain, Clock::time_point now) {
  KeyPtr key = NewP256Key();
  X509Ptr cert = NewCertificate(key.get(), "exed internal CA (" + domain + ")", now, kCaDays);
  Check(X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) == 1, "X509_set_issuer_name");
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  AddExtension(cert.get(), &v3, NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(cert.get(), &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(cert.get(), &v3, NID_subject_key_identifier, "hash");
  AddExtension(cert.get(), &v3, NID_authority_key_identifier, "keyid:always");
  Check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "X509_sign");
  if (auto st = WriteFileAtomic(dir + "/ca.key", ToPem(key.get()), 0600); !st.ok()) return st;
  if (auto st = WriteFileAtomic(dir + "/ca.pem", ToPem(cert.get()), 0644); !st.ok()) return st;
  spdlog::info("tls: internal CA made dir={} domain={}", dir, domain);
  return control::Ok{};
}

// The operator's files, re-read on Reload.
class CertFiles final : public CertStore {
 public:
  CertFiles(std::string cert_path, std::string key_path, std::shared_ptr<ssl::context> ctx)
      : cert_path_(std::move(cert_path)), key_path_(std::move(key_path)), ctx_(std::move(ctx)) {}

  // Reads and checks both files into a ready context.
  static control::Result<std::shared_ptr<ssl::context>> Load(const std::string& cert_path,
                                                             const std::string& key_path) {
    auto cert_pem = ReadPemFile(cert_path, "TLS certificate file");
    if (!cert_pem.ok()) return cert_pem.error();
    auto key_pem = ReadPemFile(key_path, "TLS key file");
    if (!key_pem.ok()) return key_pem.error();
    std::vector<X509Ptr> chain = ParseCertificates(*cert_pem);
    if (chain.empty()) {
      return control::InvalidError(fmt::format(
          "TLS certificate file {} holds no PEM certificate; give the certificate chain, each one starting with "
          "'-----BEGIN CERTIFICATE-----'",
          ForMessage(cert_path, 200)));
    }
    KeyPtr key = ParsePrivateKey(*key_pem);
    if (!key) {
      bool encrypted = key_pem->find("ENCRYPTED") != std::string::npos;
      return control::InvalidError(fmt::format("TLS key file {} holds no {}PEM private key; give the unencrypted key",
                                               ForMessage(key_path, 200), encrypted ? "unencrypted " : ""));
    }
    if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
      ERR_clear_error();
      return control::InvalidError(fmt::format(
          "TLS key file {} does not match the certificate in {}; give the key the certificate was issued for",
          ForMessage(key_path, 200), ForMessage(cert_path, 200)));
    }
    Clock::time_point not_after = NotAfter(chain.front().get());
    if (not_after < Clock::now()) {
      spdlog::warn("tls: operator certificate has expired cert={} not_after={}", cert_path, DateOf(not_after));
    }
    return NewServerContext(chain, key.get());
  }

  control::Result<std::shared_ptr<ssl::context>> ContextFor(const std::string&) override {
    std::lock_guard<std::mutex> lock(mu_);
    return ctx_;
  }

  std::string CaPem() const override { return ""; }

  control::Status Reload() override {
    auto ctx = Load(cert_path_, key_path_);
    if (!ctx.ok()) {
      spdlog::warn("tls: reload failed, keeping the old certificate: {}", ctx.error().message);
      return ctx.error();
    }
    std::lock_guard<std::mutex> lock(mu_);
    ctx_ = std::move(*ctx);
    spdlog::info("tls: operator certificate reloaded cert={}", cert_path_);
    return control::Ok{};
  }

 private:
  const std::string cert_path_;
  const std::string key_path_;
  std::mutex mu_;
  std::shared_ptr<ssl::context> ctx_;  // GUARDED_BY(mu_)
};

// OpenSSL's servername callback, run for every ClientHello (with or without
// SNI) before the certificate is chosen.
int OnServerName(SSL* ssl, int* alert, void* arg) {
  auto* store = static_cast<CertStore*>(arg);
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::string host = sni ? sni : "";
  // No exception may unwind through OpenSSL's C frames.
  try {
    auto ctx = store->ContextFor(host);
    if (!ctx.ok()) {
      spdlog::debug("tls: handshake refused sni={} reason={}", ForMessage(host), ctx.error().message);
      *alert = SSL_AD_UNRECOGNIZED_NAME;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    // The SSL takes its own reference to the context, so the store may drop
    // it (a reload, an eviction) while this connection lives on.
    if (SSL_set_SSL_CTX(ssl, (*ctx)->native_handle()) == nullptr) {
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_OK;
  } catch (const std::exception& e) {
    spdlog::error("tls: certificate lookup failed sni={} error={}", ForMessage(host), e.what());
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
}

}  // namespace

void ApplyTlsPolicy(ssl::context& ctx) {
  SSL_CTX* c = ctx.native_handle();
  Check(SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) == 1, "SSL_CTX_set_min_proto_version");
  Check(SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) == 1, "SSL_CTX_set_max_proto_version");
  Check(SSL_CTX_set_cipher_list(c, kTls12Ciphers) == 1, "SSL_CTX_set_cipher_list");
  Check(SSL_CTX_set_ciphersuites(c, kTls13Suites) == 1, "SSL_CTX_set_ciphersuites");
  Check(SSL_CTX_set1_groups_list(c, kGroups) == 1, "SSL_CTX_set1_groups_list");
  // A peer that closes without close_notify reads as one that sent it (as
  // nginx does): else OpenSSL 3 answers the close with a fatal alert, written
  // to a socket the peer has closed. Nothing here reads to the end of a
  // stream to find where a message ends, so a truncation cannot go unseen.
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_clear_options(c, SSL_OP_NO_TICKET | SSL_OP_ALLOW_CLIENT_RENEGOTIATION |
                               SSL_OP_LEGACY_SERVER_CONNECT | SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_timeout(c, kSessionTimeoutSeconds);
  Check(SSL_CTX_set_session_id_context(c, kSessionIdContext, sizeof kSessionIdContext) == 1,
        "SSL_CTX_set_session_id_context");
  SSL_CTX_set_alpn_select_cb(c, SelectAlpn, nullptr);
}

control::Result<std::unique_ptr<CertStore>> OpenInternalCa(const std::string& dir, const std::string& domain_in,
                                                           InternalCaOptions options) {
  std::string domain = Lowercase(domain_in);
  if (!IsDnsName(domain)) {
    return control::InvalidError(fmt::format(
        "domain {} is not a DNS name: use labels of lowercase letters, digits and '-' joined by '.', like "
        "'exe.localhost'",
        ForMessage(domain_in)));
  }
  Clock::time_point now = options.now ? options.now() : Clock::now();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0) {
    return control::InternalError(fmt::format("cannot make the CA directory {}: {}", dir,
                                              ec ? ec.message() : std::strerror(errno)));
  }
  const std::string pem_path = dir + "/ca.pem";
  const std::string key_path = dir + "/ca.key";
  if (!std::filesystem::exists(pem_path, ec)) {
    if (auto st = MakeCa(dir, domain, now); !st.ok()) return st.error();
  }
  const std::string remedy = fmt::format("move {} away to make a new CA (users must then trust the new one)", dir);
  auto cert_pem = ReadPemFile(pem_path, "CA certificate");
  if (!cert_pem.ok()) return cert_pem.error();
  auto key_pem = ReadPemFile(key_path, "CA key");
  if (!key_pem.ok()) return control::InternalError(key_pem.error().message + "; or " + remedy);
  std::vector<X509Ptr> certs = ParseCertificates(*cert_pem);
  KeyPtr key = ParsePrivateKey(*key_pem);
  if (certs.empty() || !key) {
    return control::InternalError(fmt::format("the internal CA in {} is damaged ({} unreadable); {}", dir,
                                              certs.empty() ? "ca.pem" : "ca.key", remedy));
  }
  X509Ptr cert = std::move(certs.front());
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return control::InternalError(fmt::format("ca.key in {} does not match ca.pem; {}", dir, remedy));
  }
  if (X509_check_ca(cert.get()) != 1) {
    return control::InternalError(fmt::format("ca.pem in {} is not a CA certificate; {}", dir, remedy));
  }
  if (NotAfter(cert.get()) <= now) {
    return control::InternalError(
        fmt::format("the internal CA in {} expired on {}; {}", dir, DateOf(NotAfter(cert.get())), remedy));
  }
  return std::unique_ptr<CertStore>(
      std::make_unique<InternalCa>(std::move(domain), std::move(cert), std::move(key), std::move(options)));
}

control::Result<std::unique_ptr<CertStore>> OpenCertFiles(const std::string& cert_path, const std::string& key_path) {
  auto ctx = CertFiles::Load(cert_path, key_path);
  if (!ctx.ok()) return ctx.error();
  return std::unique_ptr<CertStore>(std::make_unique<CertFiles>(cert_path, key_path, std::move(*ctx)));
}

void InstallSni(ssl::context& listener_ctx, CertStore& store) {
  ApplyTlsPolicy(listener_ctx);
  SSL_CTX* c = listener_ctx.native_handle();
  SSL_CTX_set_tlsext_servername_callback(c, OnServerName);
  SSL_CTX_set_tlsext_servername_arg(c, &store);
}

}  // namespace httpfront
