// The ACME client's HTTPS: one request per connection, on a private
// io_context run by the calling thread; every step has a deadline. The
// server's certificate is checked against the system's roots or the
// operator's acme_ca_bundle, always. Also the https:// URL parser. Declared
// in acme_internal.h.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>
#include <exception>
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>

#include "control/names.h"
#include "httpfront/acme_internal.h"

namespace httpfront::acme_internal {
namespace {

namespace beast = boost::beast;
using net::ip::tcp;
using control::ForMessage;
using control::InternalError;
using control::InvalidError;

constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr size_t kMaxResponseBytes = 1 << 20;

// One request and its answer, for Https::Do; `ctx` is its client context.
net::awaitable<void> Exchange(ssl::context& ctx, Url u, http::request<http::string_body> req, HttpResponse* out,
                              std::string* err) {
  auto ex = co_await net::this_coro::executor;
  const std::string where = fmt::format("{}:{}", u.host, u.port);
  beast::error_code ec;
  auto failed = [&](const char* step) {
    *err = ec == beast::error::timeout
               ? fmt::format("{} {}: no answer in {} s", step, where, kRequestTimeout.count())
               : fmt::format("{} {}: {}", step, where, ec.message());
  };
  tcp::resolver resolver(ex);
  auto endpoints = co_await resolver.async_resolve(u.host, u.port, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    failed("cannot resolve");
    co_return;
  }
  beast::ssl_stream<beast::tcp_stream> stream(ex, ctx);
  SSL* s = stream.native_handle();
  beast::error_code ip_ec;
  net::ip::make_address(u.host, ip_ec);
  bool is_ip = !ip_ec;
  if (is_ip) {
    Check(X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), u.host.c_str()) == 1, "X509_VERIFY_PARAM_set1_ip_asc");
  } else {
    Check(SSL_set_tlsext_host_name(s, u.host.c_str()) == 1, "SSL_set_tlsext_host_name");
    Check(SSL_set1_host(s, u.host.c_str()) == 1, "SSL_set1_host");
  }
  auto& tcp_layer = beast::get_lowest_layer(stream);
  tcp_layer.expires_after(kRequestTimeout);
  co_await tcp_layer.async_connect(endpoints, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    failed("cannot connect to");
    co_return;
  }
  tcp_layer.expires_after(kRequestTimeout);
  co_await stream.async_handshake(ssl::stream_base::client, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    long verify = SSL_get_verify_result(s);
    if (verify != X509_V_OK) {
      *err = fmt::format(
          "TLS to {} failed: the server's certificate is not trusted ({}); set acme_ca_bundle to the CA that "
          "issued the ACME server's certificate",
          where, X509_verify_cert_error_string(verify));
    } else {
      failed("TLS handshake with");
    }
    co_return;
  }
  tcp_layer.expires_after(kRequestTimeout);
  co_await http::async_write(stream, req, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    failed("cannot send to");
    co_return;
  }
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(kMaxResponseBytes);
  if (req.method() == http::verb::head) parser.skip(true);
  tcp_layer.expires_after(kRequestTimeout);
  co_await http::async_read(stream, buf, parser, net::redirect_error(net::use_awaitable, ec));
  if (ec) {
    failed("cannot read the answer of");
    co_return;
  }
  auto& res = parser.get();
  out->status = res.result_int();
  out->body = std::move(res.body());
  out->location = std::string(res[http::field::location]);
  out->nonce = std::string(res["Replay-Nonce"]);
  out->retry_after = std::string(res[http::field::retry_after]);
  out->content_type = std::string(res[http::field::content_type]);
  tcp_layer.close();
}

}  // namespace

control::Result<Url> ParseUrl(const std::string& url) {
  constexpr std::string_view kScheme = "https://";
  auto bad = [&](const std::string& why) {
    return InvalidError(fmt::format("ACME URL {} {}", ForMessage(url, 200), why));
  };
  if (url.size() > 2000) return bad("is too long");
  if (url.compare(0, kScheme.size(), kScheme) != 0) return bad("must start with https:// (RFC 8555 requires HTTPS)");
  std::string rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  Url u;
  if (slash != std::string::npos) u.target = rest.substr(slash);
  if (authority.empty() || authority.find('@') != std::string::npos) return bad("has no host, or has user info");
  std::string port;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) return bad("has an unclosed '['");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad("has junk after ']'");
      port = authority.substr(close + 2);
    }
  } else {
    size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return bad("has no host");
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
        std::stoi(port) > 65535) {
      return bad("has a bad port");
    }
    u.port = port;
  }
  for (char c : u.target) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return bad("has spaces or control characters");
  }
  return u;
}

std::string OriginOf(const std::string& url) {
  size_t slash = url.find('/', std::strlen("https://"));
  return url.substr(0, slash);
}

control::Status Https::Trust(const std::string& ca_bundle) {
  SSL_CTX* c = ctx_.native_handle();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  if (ca_bundle.empty()) {
    if (SSL_CTX_set_default_verify_paths(c) != 1) {
      return InternalError("cannot load the system's CA certificates: " + OpensslError());
    }
  } else {
    auto pem = ReadPemFile(ca_bundle, "acme_ca_bundle");
    if (!pem.ok()) return pem.error();
    if (ParseCertificates(*pem).empty() || SSL_CTX_load_verify_locations(c, ca_bundle.c_str(), nullptr) != 1) {
      ERR_clear_error();
      return InvalidError(fmt::format("acme_ca_bundle {} holds no PEM certificate; give the CA certificate(s) "
                                      "the ACME server's TLS certificate chains to",
                                      ForMessage(ca_bundle, 200)));
    }
  }
  SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  return control::Ok{};
}

control::Result<HttpResponse> Https::Do(http::verb verb, const std::string& url, std::string body,
                                        const std::string& content_type, const std::string& accept) {
  auto u = ParseUrl(url);
  if (!u.ok()) return u.error();
  http::request<http::string_body> req{verb, u->target, 11};
  req.set(http::field::host, u->port == "443" ? u->host : u->host + ":" + u->port);
  req.set(http::field::user_agent, "exed-acme/0.1");
  req.set(http::field::connection, "close");
  if (!accept.empty()) req.set(http::field::accept, accept);
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  if (verb == http::verb::post) {
    req.body() = std::move(body);
    req.prepare_payload();
  }
  net::io_context ioc;
  HttpResponse out;
  std::string err;
  net::co_spawn(ioc, Exchange(ctx_, *u, std::move(req), &out, &err), [&](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      err = fmt::format("{}:{}: {}", u->host, u->port, x.what());
    }
  });
  ioc.run();
  if (!err.empty()) return InternalError(err);
  return out;
}

}  // namespace httpfront::acme_internal
