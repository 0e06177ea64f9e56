// Helpers shared by httpfront's certificate tests (certs_test.cc,
// tls_handshake_test.cc, acme_test.cc): a temp dir, files, self-signed pairs.
// They link into one binary, so everything here is inline, a class or a
// template. The OpenSSL owning pointers and PEM writers are openssl_util.h's.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include <boost/asio/ssl.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>

#include "httpfront/openssl_util.h"

namespace httpfront::tls_testing {

namespace fs = std::filesystem;
namespace ssl = boost::asio::ssl;

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

}  // namespace httpfront::tls_testing
