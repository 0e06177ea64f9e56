// The helpers the ACME client and store share: OpenSSL's failures, DNS
// names, reading a PEM file, PEM keys and certificates, and the TLS context
// that serves a name's certificate. Declared in acme_internal.h.
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>

#include <fmt/format.h>

#include "control/names.h"
#include "httpfront/acme_internal.h"
#include "httpfront/certs.h"

namespace httpfront::acme_internal {
namespace {

using control::ForMessage;
using control::InternalError;
using control::InvalidError;

using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;

constexpr size_t kMaxPemBytes = 1 << 20;

BioPtr MemBio(const std::string& data) {
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  Check(bio != nullptr, "BIO_new_mem_buf");
  return bio;
}

int NoPassphrase(char*, int, int, void*) { return -1; }

Clock::time_point TimeOf(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return Clock::time_point{};
  return Clock::from_time_t(timegm(&tm));
}

}  // namespace

void Check(bool ok, const char* what) {
  if (ok) return;
  spdlog::critical("acme: {} failed: {}", what, ERR_reason_error_string(ERR_peek_last_error()));
  std::abort();
}

std::string OpensslError() {
  unsigned long last = 0;
  while (unsigned long e = ERR_get_error()) last = e;
  const char* reason = last ? ERR_reason_error_string(last) : nullptr;
  return reason ? reason : "unknown OpenSSL error";
}

bool IsDnsLabel(std::string_view s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

bool IsDnsName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (size_t start = 0;;) {
    size_t dot = s.find('.', start);
    if (!IsDnsLabel(s.substr(start, dot == std::string_view::npos ? dot : dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

control::Result<std::string> ReadFile(const std::string& path, const std::string& what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return InvalidError(fmt::format("cannot read {} {}: {}", what, ForMessage(path, 200), std::strerror(errno)));
  }
  std::string data;
  char buf[16384];
  ssize_t n = 0;
  while (data.size() <= kMaxPemBytes) {
    n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    data.append(buf, n);
  }
  int err = errno;
  ::close(fd);
  if (n < 0) return InvalidError(fmt::format("cannot read {} {}: {}", what, ForMessage(path, 200), std::strerror(err)));
  if (data.size() > kMaxPemBytes) {
    return InvalidError(fmt::format("{} {} is larger than 1 MiB", what, ForMessage(path, 200)));
  }
  return data;
}

std::vector<X509Ptr> ParseCertificates(const std::string& pem) {
  std::vector<X509Ptr> certs;
  BioPtr bio = MemBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)) certs.emplace_back(x);
  ERR_clear_error();
  return certs;
}

KeyPtr ParsePrivateKey(const std::string& pem) {
  BioPtr bio = MemBio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  return key;
}

std::string KeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  Check(bio && PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, len);
}

KeyPtr NewP256Key() {
  KeyPtr key(EVP_EC_gen("P-256"));
  Check(key != nullptr, "EVP_EC_gen");
  return key;
}

bool IsP256(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC") != 1) return false;
  char group[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1) return false;
  return std::string_view(group, len) == "prime256v1" || std::string_view(group, len) == "P-256";
}

control::Result<Served> ServedFrom(const std::string& chain_pem, const std::string& key_pem, const std::string& name) {
  std::vector<X509Ptr> chain = ParseCertificates(chain_pem);
  if (chain.empty()) return InvalidError("no PEM certificate in the chain");
  KeyPtr key = ParsePrivateKey(key_pem);
  if (!key) return InvalidError("no PEM private key");
  if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
    ERR_clear_error();
    return InvalidError("the key does not match the certificate");
  }
  if (X509_check_host(chain.front().get(), name.data(), name.size(), X509_CHECK_FLAG_NO_WILDCARDS, nullptr) != 1) {
    return InvalidError(fmt::format("the certificate is not for {}", name));
  }
  std::shared_ptr<ssl::context> ctx;
  try {
    ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  } catch (const std::exception& e) {
    return InternalError(fmt::format("cannot make a TLS context: {}", e.what()));
  }
  SSL_CTX* c = ctx->native_handle();
  bool ok = SSL_CTX_use_certificate(c, chain.front().get()) == 1;
  for (size_t i = 1; ok && i < chain.size(); ++i) ok = SSL_CTX_add1_chain_cert(c, chain[i].get()) == 1;
  ok = ok && SSL_CTX_use_PrivateKey(c, key.get()) == 1 && SSL_CTX_check_private_key(c) == 1;
  if (!ok) return InternalError("cannot load a certificate into a TLS context: " + OpensslError());
  ApplyTlsPolicy(*ctx);
  return Served{ctx, TimeOf(X509_get0_notBefore(chain.front().get())), TimeOf(X509_get0_notAfter(chain.front().get()))};
}

}  // namespace httpfront::acme_internal
