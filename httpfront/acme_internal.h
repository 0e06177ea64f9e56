// Internal to the ACME certificate store, shared by its parts: acme.cc (the
// protocol's encodings and the RFC 8555 client), acme_https.cc (the client's
// HTTPS requests), acme_store.cc (the CertStore that orders, keeps and renews
// the certificates) and acme_served.cc (the TLS context serving a name's certificate). Not
// part of httpfront's interface: that is acme.h.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ssl.hpp>
#include <boost/beast/http/verb.hpp>

#include "control/result.h"
#include "httpfront/openssl_util.h"

namespace httpfront::acme_internal {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using ossl::Clock;

using ossl::Deleter;
using ossl::KeyPtr;
using ossl::X509Ptr;
using ossl::Check;
using ossl::FormatUtc;
using ossl::IsDnsLabel;
using ossl::IsDnsName;
using ossl::Lowercase;
using ossl::NewP256Key;
using ossl::OpensslError;
using ossl::ParseCertificates;
using ossl::ParsePrivateKey;
using ossl::ReadPemFile;
using ossl::TimeOf;
using ossl::ToPem;
using ossl::WriteFileAtomic;

bool IsP256(EVP_PKEY* key);

// What the TLS server side serves for one name: the chain and its key,
// checked against each other and the name.
struct Served {
  std::shared_ptr<ssl::context> ctx;
  Clock::time_point not_before;
  Clock::time_point not_after;
};

control::Result<Served> ServedFrom(const std::string& chain_pem, const std::string& key_pem, const std::string& name);

// ---------------------------------------------------------------------------
// HTTPS, one request per connection, on a private io_context run by the
// calling thread; every step has a deadline.

struct Url {
  std::string host;
  std::string port = "443";
  std::string target = "/";
};

control::Result<Url> ParseUrl(const std::string& url);

// "https://host:port" of `url`, for resolving a relative Location.
std::string OriginOf(const std::string& url);

struct HttpResponse {
  unsigned status = 0;
  std::string body;
  std::string location;
  std::string nonce;
  std::string retry_after;
  std::string content_type;
};

class Https {
 public:
  Https() : ctx_(ssl::context::tls_client) {}

  control::Status Trust(const std::string& ca_bundle);
  control::Result<HttpResponse> Do(http::verb verb, const std::string& url, std::string body,
                                   const std::string& content_type, const std::string& accept);

 private:
  ssl::context ctx_;
};

}  // namespace httpfront::acme_internal
