// ACME (RFC 8555): certificates from a public CA (Let's Encrypt; pebble in
// the tests), one per name, issued on demand and renewed, as the third
// CertStore beside the internal CA and the operator's files.
//
// How a name gets its certificate: the first handshake for a name that has
// none (the apex, or one label under the domain) queues an order and is
// served the FALLBACK context meanwhile: a leaf of exed's internal CA, so a
// browser gets a certificate (one it warns about) rather than a failed
// handshake. The handshake never waits: it runs on an io thread, and an order
// takes seconds (pebble) to minutes (a busy CA). Once the order completes,
// later handshakes get the ACME certificate. One worker thread runs every
// order in turn over blocking HTTPS (Beast) with its own io_context, never
// on the front's io threads.
//
// Challenge: http-01 only. While an order waits on its authorization, the
// key authorization of its token is in the store's challenge map, which the
// plain-HTTP listener serves at /.well-known/acme-challenge/TOKEN
// (FrontConfig::acme_challenge). The CA must reach that listener on port 80
// of the name (pebble: its configured httpPort).
//
// On disk, under STATE_DIR/acme (0700): account.key (ECDSA P-256, 0600; the
// account is found again by this key after a restart) and certs/NAME.key
// (0600) + certs/NAME.pem (the chain as the CA sent it), reused after a
// restart. A certificate is renewed once less than a third of its lifetime
// remains (Let's Encrypt's 90 days: at 30 days left): by the next handshake
// for the name, or by the worker's hourly sweep, whichever is first; the old
// one serves until the new one is in. A failed order is retried for that name
// after a backoff (1 minute, doubling to 6 hours), never in a loop.
//
// Which names may cost an order: AcmeOptions::may_issue, asked on the worker
// thread before each order (exed asks: the apex, or a VM of that name
// exists), so a client sending random SNI names cannot spend the CA's rate
// limits. At most 64 names wait at once; more fall back until a later
// handshake.
//
// Trust of the ACME server's own TLS: the system's roots, or exactly the PEM
// bundle acme_ca_bundle names (pebble's test CA). There is no way to turn the
// verification off. Registering an account agrees to the CA's terms of
// service (as `certbot --agree-tos` does): choosing tls = acme is that choice.
#pragma once

#include <openssl/evp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "control/result.h"
#include "httpfront/certs.h"

namespace httpfront {

// token -> key authorization of the http-01 challenges in progress.
// Thread-safe: written by the ACME worker, read by the io threads.
class AcmeChallenges {
 public:
  void Put(const std::string& token, const std::string& key_authorization);
  void Remove(const std::string& token);
  std::optional<std::string> Get(const std::string& token) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> map_;  // GUARDED_BY(mu_)
};

// The protocol client: one account, one order at a time. Blocking; not
// thread-safe (the store's worker is its only user).
class AcmeClient {
 public:
  struct Issued {
    std::string chain_pem;  // leaf first, then intermediates, as the CA sent them
    std::string key_pem;    // the leaf's private key (ECDSA P-256, made per order)
  };

  // `account_key_pem`: an ECDSA P-256 private key. `ca_bundle`: PEM file the
  // server's TLS certificate must chain to; "" uses the system's roots.
  // Checks its arguments and loads the bundle; contacts no server.
  static control::Result<std::unique_ptr<AcmeClient>> Make(const std::string& directory_url,
                                                           const std::string& ca_bundle, const std::string& email,
                                                           const std::string& account_key_pem,
                                                           AcmeChallenges& challenges);
  ~AcmeClient();

  // Fetches the directory and finds or registers the account. Issue does it
  // when needed; exposed to check the server at start.
  control::Status Connect();
  // newOrder for the one DNS `name`, http-01, finalize with a new key's CSR,
  // download the chain. Gives up after `timeout`. One-line errors.
  control::Result<Issued> Issue(const std::string& name, std::chrono::seconds timeout = std::chrono::seconds(120));
  // From any thread: the order in progress stops at its next wait, failing.
  void Cancel();

  struct Impl;

 private:
  explicit AcmeClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct AcmeOptions {
  std::string directory_url;  // https://.../directory (required)
  std::string ca_bundle;      // PEM file trusted for the ACME server's TLS; "" = the system's roots
  std::string email;          // account contact; optional
  std::string dir;            // where account.key and certs/ live (STATE_DIR/acme)
  std::string domain;         // names served: the domain and one label under it
  // Served while a name has no ACME certificate yet (the internal CA); also
  // answers the names' refusals. Required.
  std::unique_ptr<CertStore> fallback;
  // Whether `name` (a full DNS name the store serves) may get an order; asked
  // on the worker thread, so it may block. Empty: every served name may.
  std::function<bool(const std::string& name)> may_issue;
  // The clock of renewal decisions; empty is the system clock.
  std::function<std::chrono::system_clock::time_point()> now;
  // false: no worker thread, nothing is ordered (tests of the store alone).
  bool start_worker = true;
};

class AcmeStore : public CertStore {
 public:
  // What http://NAME/.well-known/acme-challenge/TOKEN must answer while an
  // order waits on it; nullopt for any other token. Any thread.
  virtual std::optional<std::string> ChallengeResponse(const std::string& token) const = 0;
  // Queues an order for `name` now, as a handshake would (tests, warm-up).
  virtual void Request(const std::string& name) = 0;
};

// Makes options.dir (0700), loads or makes account.key, loads the persisted
// certificates, and starts the worker (which first checks the directory and
// logs what it finds). Errors: a bad URL, an unreadable bundle, a damaged
// account key, a directory it cannot make.
control::Result<std::unique_ptr<AcmeStore>> OpenAcme(AcmeOptions options);

// The encoding pieces of the protocol, exposed for tests.
namespace acme {

// RFC 4648 section 5, without padding.
std::string Base64Url(std::string_view bytes);
std::optional<std::string> Base64UrlDecode(std::string_view text);

// The public JWK of an ECDSA P-256 key: {"crv","kty","x","y"}.
nlohmann::json Jwk(EVP_PKEY* key);
// RFC 7638: base64url(SHA-256(the required members, sorted, no whitespace)),
// for EC, RSA and OKP keys; an error for anything else.
control::Result<std::string> Thumbprint(const nlohmann::json& jwk);
// RFC 8555 section 8.1: token "." thumbprint.
std::string KeyAuthorization(const std::string& token, const std::string& thumbprint);
// A flattened JWS JSON object signed with ES256 (r || s, 32 bytes each).
nlohmann::json SignJws(EVP_PKEY* key, const nlohmann::json& protected_header, const std::string& payload);
// A PKCS#10 request, DER, for one DNS name (CN and the SAN), signed by `key`.
std::string CsrDer(EVP_PKEY* key, const std::string& name);
// Renew once less than a third of [not_before, not_after] remains.
bool NeedsRenewal(std::chrono::system_clock::time_point not_before, std::chrono::system_clock::time_point not_after,
                  std::chrono::system_clock::time_point now);

}  // namespace acme
}  // namespace httpfront
