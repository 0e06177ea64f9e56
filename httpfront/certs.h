// TLS certificates for the HTTPS front, and the TLS policy its contexts get.
//
// A CertStore answers "which certificate serves this SNI name?" with a ready
// ssl::context (certificate, key and policy). Two sources live here, chosen
// in the configuration:
//   - an internal CA made on first start (the default): users trust its PEM,
//     which `ssh host ca` prints; it mints a leaf per name on demand;
//   - the operator's certificate and key files, re-read on SIGHUP.
// ACME is a third CertStore, to be added beside these (it also needs Reload:
// a renewal swaps the context the way a SIGHUP does).
//
// Thread-safety: CertStore implementations are thread-safe: ContextFor may be
// called from any number of io_context threads at once and concurrently with
// Reload. The contexts they hand out are shared by every handshake that gets
// them; callers must not change them. ApplyTlsPolicy and InstallSni change the
// context they are given, so call them before it serves any handshake.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/ssl.hpp>

#include "control/result.h"

namespace httpfront {

// exed's TLS policy: TLS 1.2 and 1.3 only; for 1.2 only ECDHE with AES-GCM or
// ChaCha20-Poly1305 (ECDSA or RSA certificates); groups X25519, P-256, P-384;
// ALPN "http/1.1" only (a client that offers ALPN without it gets the
// no_application_protocol alert; one that offers no ALPN is served); a server
// session cache plus session tickets; no compression, no renegotiation.
void ApplyTlsPolicy(boost::asio::ssl::context& ctx);

class CertStore {
 public:
  virtual ~CertStore() = default;

  // The context (certificate and key for `host`, policy applied) for a
  // handshake whose SNI is `host`; case is ignored, "" means the apex. The
  // returned pointer stays valid however the store changes later. An error
  // (kNotFound) when no certificate of this store may serve the name.
  virtual control::Result<std::shared_ptr<boost::asio::ssl::context>> ContextFor(const std::string& host) = 0;

  // PEM of the CA users should trust (internal CA), or "" when the
  // certificates come from elsewhere.
  virtual std::string CaPem() const = 0;

  // Re-reads the operator's files (SIGHUP); a no-op for the internal CA.
  // Handshakes already done or in progress keep the context they had. On an
  // error the store keeps serving what it served before.
  virtual control::Status Reload() = 0;
};

struct InternalCaOptions {
  // The clock that dates leaves and decides when one is renewed; empty means
  // the system clock. Injected so tests can move past a leaf's renewal time.
  std::function<std::chrono::system_clock::time_point()> now;
  // Leaves kept in memory; past this the least recently used is dropped (a
  // client may send any label under the domain, each costing one key).
  size_t max_cached = 4096;
};

// The internal CA kept in `dir` (the caller passes STATE_DIR/ca): ca.key
// (ECDSA P-256, mode 0600, dir 0700) and ca.pem (self-signed, 10 years), made
// on the first call, reused after. Leaves are ECDSA P-256, valid 90 days, with
// the one DNS name as SAN, made on demand, cached in memory and made anew once
// fewer than 30 days remain. Names served: `domain` itself and exactly one DNS
// label under it ("foo.exe.localhost"); anything else is kNotFound.
control::Result<std::unique_ptr<CertStore>> OpenInternalCa(const std::string& dir, const std::string& domain,
                                                           InternalCaOptions options = {});

// The operator's PEM files: `cert_path` holds the certificate then any
// intermediates, `key_path` its unencrypted private key. Every name gets this
// one certificate. Reload re-reads both files.
control::Result<std::unique_ptr<CertStore>> OpenCertFiles(const std::string& cert_path, const std::string& key_path);

// Makes `listener_ctx` (the acceptor's context) serve each handshake with
// store.ContextFor(its SNI name) by switching the handshake's SSL to that
// context (SSL_set_SSL_CTX); a name the store refuses fails the handshake
// with an unrecognized_name alert. Also applies ApplyTlsPolicy to
// listener_ctx: the switch only swaps certificate and key, while protocol
// versions, ciphers and the session cache stay the listener's. The listener
// needs no certificate of its own: OpenSSL runs the callback for every
// ClientHello, with or without SNI, before a certificate is chosen.
// REQUIRES: `store` outlives `listener_ctx` and every handshake on it.
void InstallSni(boost::asio::ssl::context& listener_ctx, CertStore& store);

}  // namespace httpfront
