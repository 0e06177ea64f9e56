// What the ACME client and store share beyond openssl_util.h: the key kind
// ACME certificates use and the TLS context that serves a name's
// certificate. Declared in acme_internal.h.
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <exception>
#include <string_view>

#include <fmt/format.h>

#include "httpfront/acme_internal.h"
#include "httpfront/certs.h"

namespace httpfront::acme_internal {

using control::InternalError;
using control::InvalidError;

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
