#include "httpfront/acme.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <filesystem>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>

#include "control/names.h"

namespace httpfront {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using net::ip::tcp;
using nlohmann::json;
using Clock = std::chrono::system_clock;
using control::ForMessage;
using control::InternalError;
using control::InvalidError;

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using GenNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;

constexpr char kAcmeErrorPrefix[] = "urn:ietf:params:acme:error:";
constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr size_t kMaxResponseBytes = 1 << 20;
constexpr size_t kMaxPemBytes = 1 << 20;
constexpr size_t kMaxCommonName = 64;
constexpr int kBadNonceRetries = 5;
constexpr size_t kMaxQueued = 64;
constexpr size_t kMaxFailuresKept = 4096;
constexpr auto kFirstBackoff = std::chrono::seconds(60);
constexpr auto kMaxBackoff = std::chrono::seconds(6 * 3600);
constexpr auto kSweepEvery = std::chrono::hours(1);

// The impossible: allocation failure, a constant OpenSSL refuses.
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

std::string Lowercase(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
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

bool IsBase64UrlToken(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
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

// A reader sees the old file or the whole new one: temp file, fsync, rename.
control::Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode) {
  std::string tmp = path + ".tmp";
  auto fail = [&](const char* step) {
    int err = errno;
    ::unlink(tmp.c_str());
    return InternalError(fmt::format("cannot {} {}: {}", step, path, std::strerror(err)));
  };
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return fail("create");
  bool ok = ::fchmod(fd, mode) == 0;
  for (size_t off = 0; ok && off < data.size();) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) off += n;
  }
  ok = ok && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  errno = err;
  if (!ok) return fail("write");
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename into");
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return control::Ok{};
}

control::Status MakeDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0) {
    return InternalError(fmt::format("cannot make the ACME directory {}: {}", dir, ec ? ec.message() : std::strerror(errno)));
  }
  return control::Ok{};
}

BioPtr MemBio(const std::string& data) {
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  Check(bio != nullptr, "BIO_new_mem_buf");
  return bio;
}

int NoPassphrase(char*, int, int, void*) { return -1; }

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

Clock::time_point TimeOf(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return Clock::time_point{};
  return Clock::from_time_t(timegm(&tm));
}

std::string DateOf(Clock::time_point t) {
  std::time_t tt = Clock::to_time_t(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

// What the TLS server side serves for one name: the chain and its key,
// checked against each other and the name.
struct Served {
  std::shared_ptr<ssl::context> ctx;
  Clock::time_point not_before;
  Clock::time_point not_after;
};

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

// ---------------------------------------------------------------------------
// HTTPS, one request per connection, on a private io_context run by the
// calling thread; every step has a deadline.

struct Url {
  std::string host;
  std::string port = "443";
  std::string target = "/";
};

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

// "https://host:port" of `url`, for resolving a relative Location.
std::string OriginOf(const std::string& url) {
  size_t slash = url.find('/', std::strlen("https://"));
  return url.substr(0, slash);
}

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

  control::Status Trust(const std::string& ca_bundle) {
    SSL_CTX* c = ctx_.native_handle();
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    if (ca_bundle.empty()) {
      if (SSL_CTX_set_default_verify_paths(c) != 1) {
        return InternalError("cannot load the system's CA certificates: " + OpensslError());
      }
    } else {
      auto pem = ReadFile(ca_bundle, "acme_ca_bundle");
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

  control::Result<HttpResponse> Do(http::verb verb, const std::string& url, std::string body,
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
    net::co_spawn(ioc, Exchange(*u, std::move(req), &out, &err), [&](std::exception_ptr e) {
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

 private:
  net::awaitable<void> Exchange(Url u, http::request<http::string_body> req, HttpResponse* out, std::string* err) {
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
    beast::ssl_stream<beast::tcp_stream> stream(ex, ctx_);
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

  ssl::context ctx_;
};

std::string ShortType(const std::string& type) {
  return type.rfind(kAcmeErrorPrefix, 0) == 0 ? type.substr(std::strlen(kAcmeErrorPrefix)) : type;
}

// "rejectedIdentifier: the detail", from an RFC 7807 problem document.
std::string ProblemText(const json& p) {
  std::string type = p.contains("type") && p["type"].is_string() ? ShortType(p["type"].get<std::string>()) : "";
  std::string detail = p.contains("detail") && p["detail"].is_string() ? p["detail"].get<std::string>() : "";
  std::string text = type.empty() ? detail : detail.empty() ? type : type + ": " + detail;
  return ForMessage(text, 300);
}

std::optional<json> ParseJson(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

// ---------------------------------------------------------------------------
// Encodings.

namespace acme {

std::string Base64Url(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
  } else if (i + 2 == bytes.size()) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
  }
  return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  // The leftover bits of a canonical encoding are zero.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

json Jwk(EVP_PKEY* key) {
  BIGNUM* x = nullptr;
  BIGNUM* y = nullptr;
  Check(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
            EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1,
        "EVP_PKEY_get_bn_param");
  BnPtr xp(x), yp(y);
  unsigned char xb[32], yb[32];
  Check(BN_bn2binpad(x, xb, 32) == 32 && BN_bn2binpad(y, yb, 32) == 32, "BN_bn2binpad");
  return json{{"crv", "P-256"},
              {"kty", "EC"},
              {"x", Base64Url(std::string_view(reinterpret_cast<char*>(xb), 32))},
              {"y", Base64Url(std::string_view(reinterpret_cast<char*>(yb), 32))}};
}

control::Result<std::string> Thumbprint(const json& jwk) {
  if (!jwk.is_object()) return InvalidError("a JWK must be a JSON object");
  std::string kty = Str(jwk, "kty");
  std::vector<const char*> members;
  if (kty == "EC") {
    members = {"crv", "kty", "x", "y"};
  } else if (kty == "RSA") {
    members = {"e", "kty", "n"};
  } else if (kty == "OKP") {
    members = {"crv", "kty", "x"};
  } else {
    return InvalidError(fmt::format("JWK key type {} is not EC, RSA or OKP", ForMessage(kty)));
  }
  // nlohmann's object keeps its keys sorted and dump() writes no whitespace:
  // exactly RFC 7638's canonical form for these string-valued members.
  json canonical = json::object();
  for (const char* m : members) {
    auto it = jwk.find(m);
    if (it == jwk.end() || !it->is_string()) return InvalidError(fmt::format("JWK lacks member {}", m));
    canonical[m] = *it;
  }
  std::string text = canonical.dump();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  Check(EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr) == 1, "EVP_Digest");
  return Base64Url(std::string_view(reinterpret_cast<char*>(digest), len));
}

std::string KeyAuthorization(const std::string& token, const std::string& thumbprint) {
  return token + "." + thumbprint;
}

json SignJws(EVP_PKEY* key, const json& protected_header, const std::string& payload) {
  std::string protected64 = Base64Url(protected_header.dump());
  std::string payload64 = Base64Url(payload);
  std::string input = protected64 + "." + payload64;
  MdCtxPtr md(EVP_MD_CTX_new());
  size_t der_len = 0;
  Check(md && EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestSign(md.get(), nullptr, &der_len, reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) == 1,
        "EVP_DigestSignInit");
  std::vector<unsigned char> der(der_len);
  Check(EVP_DigestSign(md.get(), der.data(), &der_len, reinterpret_cast<const unsigned char*>(input.data()),
                       input.size()) == 1,
        "EVP_DigestSign");
  const unsigned char* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len)));
  Check(sig != nullptr, "d2i_ECDSA_SIG");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  unsigned char raw[64];
  Check(BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32, "BN_bn2binpad");
  return json{{"protected", protected64},
              {"payload", payload64},
              {"signature", Base64Url(std::string_view(reinterpret_cast<char*>(raw), sizeof raw))}};
}

std::string CsrDer(EVP_PKEY* key, const std::string& name) {
  ReqPtr req(X509_REQ_new());
  Check(req && X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) == 1 && X509_REQ_set_pubkey(req.get(), key) == 1,
        "X509_REQ_new");
  if (name.size() <= kMaxCommonName) {
    X509_NAME* subject = X509_REQ_get_subject_name(req.get());
    Check(X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(name.c_str()),
                                     -1, -1, 0) == 1,
          "X509_NAME_add_entry_by_txt");
  }
  // The SAN built from its parts, so no character of `name` is read as
  // extension syntax.
  GenNamesPtr names(GENERAL_NAMES_new());
  GENERAL_NAME* dns = GENERAL_NAME_new();
  ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
  Check(names && dns && ia5 && ASN1_STRING_set(ia5, name.data(), static_cast<int>(name.size())) == 1, "GENERAL_NAME");
  GENERAL_NAME_set0_value(dns, GEN_DNS, ia5);
  Check(sk_GENERAL_NAME_push(names.get(), dns) > 0, "sk_GENERAL_NAME_push");
  ExtPtr san(X509V3_EXT_i2d(NID_subject_alt_name, 0, names.get()));
  Check(san != nullptr, "X509V3_EXT_i2d");
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  Check(exts && sk_X509_EXTENSION_push(exts, san.get()) > 0, "sk_X509_EXTENSION_push");
  bool ok = X509_REQ_add_extensions(req.get(), exts) == 1;
  sk_X509_EXTENSION_free(exts);  // the extension itself stays san's
  Check(ok, "X509_REQ_add_extensions");
  Check(X509_REQ_sign(req.get(), key, EVP_sha256()) > 0, "X509_REQ_sign");
  int len = i2d_X509_REQ(req.get(), nullptr);
  Check(len > 0, "i2d_X509_REQ");
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* out = reinterpret_cast<unsigned char*>(der.data());
  Check(i2d_X509_REQ(req.get(), &out) == len, "i2d_X509_REQ");
  return der;
}

bool NeedsRenewal(Clock::time_point not_before, Clock::time_point not_after, Clock::time_point now) {
  if (not_after <= not_before) return true;
  return now >= not_after - (not_after - not_before) / 3;
}

}  // namespace acme

// ---------------------------------------------------------------------------
// Challenges.

void AcmeChallenges::Put(const std::string& token, const std::string& key_authorization) {
  std::lock_guard<std::mutex> lock(mu_);
  map_[token] = key_authorization;
}

void AcmeChallenges::Remove(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  map_.erase(token);
}

std::optional<std::string> AcmeChallenges::Get(const std::string& token) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = map_.find(token);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

// ---------------------------------------------------------------------------
// The client.

struct AcmeClient::Impl {
  Impl(AcmeChallenges& c) : challenges(c) {}

  Https https;
  std::string directory_url;
  std::string email;
  KeyPtr account_key;
  json jwk;
  std::string thumbprint;
  AcmeChallenges& challenges;
  std::atomic<bool> cancelled{false};

  std::string new_nonce_url;
  std::string new_account_url;
  std::string new_order_url;
  std::string kid;    // the account URL, once registered
  std::string nonce;  // the freshest unused Replay-Nonce

  control::Status FetchDirectory() {
    auto r = https.Do(http::verb::get, directory_url, "", "", "application/json");
    if (!r.ok()) return InternalError("cannot fetch the ACME directory: " + r.error().message);
    auto j = r->status == 200 ? ParseJson(r->body) : std::nullopt;
    if (!j) {
      return InternalError(fmt::format("ACME directory {} answered HTTP {} without a directory object; check "
                                       "acme_directory",
                                       ForMessage(directory_url, 200), r->status));
    }
    new_nonce_url = Str(*j, "newNonce");
    new_account_url = Str(*j, "newAccount");
    new_order_url = Str(*j, "newOrder");
    if (new_nonce_url.empty() || new_account_url.empty() || new_order_url.empty()) {
      return InternalError(fmt::format("ACME directory {} lacks newNonce, newAccount or newOrder; check acme_directory",
                                       ForMessage(directory_url, 200)));
    }
    return control::Ok{};
  }

  control::Status FreshNonce() {
    auto r = https.Do(http::verb::head, new_nonce_url, "", "", "");
    if (!r.ok()) return InternalError("cannot get an ACME nonce: " + r.error().message);
    if (r->nonce.empty()) return InternalError(fmt::format("ACME newNonce answered HTTP {} without a Replay-Nonce", r->status));
    nonce = r->nonce;
    return control::Ok{};
  }

  // A signed POST (payload "" is POST-as-GET). Retries a badNonce refusal
  // with the nonce that came with it, as RFC 8555 section 6.5 asks.
  control::Result<HttpResponse> Post(const std::string& url, const std::string& payload, const std::string& what,
                                     bool with_jwk = false, const std::string& accept = "") {
    for (int attempt = 0;; ++attempt) {
      if (nonce.empty()) {
        if (auto st = FreshNonce(); !st.ok()) return st.error();
      }
      json header{{"alg", "ES256"}, {"nonce", nonce}, {"url", url}};
      if (with_jwk) {
        header["jwk"] = jwk;
      } else {
        header["kid"] = kid;
      }
      nonce.clear();
      std::string body = acme::SignJws(account_key.get(), header, payload).dump();
      auto r = https.Do(http::verb::post, url, body, "application/jose+json", accept);
      if (!r.ok()) return InternalError(fmt::format("{}: {}", what, r.error().message));
      if (!r->nonce.empty()) nonce = r->nonce;
      if (r->status >= 200 && r->status < 300) return r;
      auto problem = ParseJson(r->body);
      std::string type = problem ? Str(*problem, "type") : "";
      if (type == std::string(kAcmeErrorPrefix) + "badNonce" && attempt < kBadNonceRetries) {
        spdlog::debug("acme: badNonce, retrying with the fresh one url={}", url);
        continue;
      }
      if (type == std::string(kAcmeErrorPrefix) + "accountDoesNotExist") kid.clear();
      return InternalError(fmt::format("{}: the ACME server answered HTTP {}{}", what, r->status,
                                       problem ? " " + ProblemText(*problem) : ""));
    }
  }

  control::Status Connect() {
    if (auto st = FetchDirectory(); !st.ok()) return st;
    json payload{{"termsOfServiceAgreed", true}};
    if (!email.empty()) payload["contact"] = json::array({"mailto:" + email});
    auto r = Post(new_account_url, payload.dump(), "registering the ACME account", true);
    if (!r.ok()) return r.error();
    if (r->location.empty()) return InternalError("registering the ACME account: the server sent no account URL");
    kid = r->location;
    auto account = ParseJson(r->body);
    std::string status = account ? Str(*account, "status") : "";
    if (!status.empty() && status != "valid") {
      return InternalError(fmt::format("the ACME account {} is {}; move STATE_DIR/acme/account.key away to register "
                                       "a new one",
                                       ForMessage(kid, 200), ForMessage(status)));
    }
    spdlog::info("acme: account ready url={} {}", kid, r->status == 201 ? "(new)" : "(existing)");
    return control::Ok{};
  }

  std::string Absolute(const std::string& url, const std::string& base) {
    if (!url.empty() && url.front() == '/') return OriginOf(base) + url;
    return url;
  }

  // Sleeps `d` unless cancelled; false when cancelled.
  bool Sleep(std::chrono::milliseconds d) {
    auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end) {
      if (cancelled) return false;
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
          std::chrono::milliseconds(100), std::chrono::duration_cast<std::chrono::milliseconds>(
                                              end - std::chrono::steady_clock::now()) +
                                              std::chrono::milliseconds(1)));
    }
    return !cancelled;
  }

  // The next poll's wait: Retry-After (1-10 s) when given, else `*delay`,
  // which grows from 250 ms to 5 s.
  std::chrono::milliseconds NextWait(const HttpResponse& r, std::chrono::milliseconds* delay) {
    std::chrono::milliseconds wait = *delay;
    if (!r.retry_after.empty() && r.retry_after.size() < 6 &&
        r.retry_after.find_first_not_of("0123456789") == std::string::npos) {
      wait = std::chrono::seconds(std::clamp(std::stoi(r.retry_after), 1, 10));
    }
    *delay = std::min<std::chrono::milliseconds>(*delay * 2, std::chrono::seconds(5));
    return wait;
  }

  // Polls `url` (POST-as-GET) while its status is one of `waiting`.
  control::Result<json> Poll(const std::string& url, json current, const std::vector<std::string>& waiting,
                             const std::string& what, std::chrono::steady_clock::time_point deadline,
                             HttpResponse last) {
    std::chrono::milliseconds delay(250);
    while (std::find(waiting.begin(), waiting.end(), Str(current, "status")) != waiting.end()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        return InternalError(fmt::format("{}: still {} when the order's time ran out", what, Str(current, "status")));
      }
      if (!Sleep(NextWait(last, &delay))) return InternalError(what + ": cancelled");
      auto r = Post(url, "", what);
      if (!r.ok()) return r.error();
      auto j = ParseJson(r->body);
      if (!j) return InternalError(what + ": the ACME server sent no JSON object");
      current = std::move(*j);
      last = std::move(*r);
    }
    return current;
  }

  control::Status Authorize(const std::string& name, const std::string& authz_url,
                            std::chrono::steady_clock::time_point deadline) {
    const std::string what = "authorization for " + name;
    auto r = Post(authz_url, "", what);
    if (!r.ok()) return r.error();
    auto authz = ParseJson(r->body);
    if (!authz) return InternalError(what + ": the ACME server sent no JSON object");
    std::string status = Str(*authz, "status");
    if (status == "valid") return control::Ok{};
    if (status != "pending") return InternalError(fmt::format("{} is {}", what, ForMessage(status)));
    const json* chosen = nullptr;
    std::vector<std::string> offered;
    if (auto it = authz->find("challenges"); it != authz->end() && it->is_array()) {
      for (const auto& c : *it) {
        if (!c.is_object()) continue;
        offered.push_back(Str(c, "type"));
        if (Str(c, "type") == "http-01") chosen = &c;
      }
    }
    if (!chosen) {
      return InternalError(fmt::format("{}: the ACME server offers no http-01 challenge (offered: {})", what,
                                       ForMessage(fmt::format("{}", fmt::join(offered, ", ")), 200)));
    }
    std::string token = Str(*chosen, "token");
    std::string challenge_url = Str(*chosen, "url");
    if (!IsBase64UrlToken(token) || challenge_url.empty()) {
      return InternalError(what + ": the http-01 challenge has a bad token or no URL");
    }
    challenges.Put(token, acme::KeyAuthorization(token, thumbprint));
    struct Unpublish {
      AcmeChallenges& c;
      const std::string& t;
      ~Unpublish() { c.Remove(t); }
    } unpublish{challenges, token};
    auto started = Post(challenge_url, "{}", "answering the http-01 challenge for " + name);
    if (!started.ok()) return started.error();
    auto done = Poll(authz_url, *authz, {"pending"}, what, deadline, *started);
    if (!done.ok()) return done.error();
    status = Str(*done, "status");
    if (status == "valid") return control::Ok{};
    std::string detail;
    if (auto it = done->find("challenges"); it != done->end() && it->is_array()) {
      for (const auto& c : *it) {
        if (c.is_object() && Str(c, "type") == "http-01" && c.contains("error") && c["error"].is_object()) {
          detail = ProblemText(c["error"]);
        }
      }
    }
    return InternalError(fmt::format(
        "the http-01 challenge for {} failed ({}){}; the CA must reach http://{}/.well-known/acme-challenge/ on exed's "
        "plain HTTP port",
        name, ForMessage(status), detail.empty() ? "" : ": " + detail, name));
  }

  control::Result<AcmeClient::Issued> Issue(const std::string& name, std::chrono::seconds timeout) {
    if (!IsDnsName(name)) return InvalidError(fmt::format("{} is not a DNS name", ForMessage(name)));
    auto deadline = std::chrono::steady_clock::now() + timeout;
    if (kid.empty()) {
      if (auto st = Connect(); !st.ok()) return st.error();
    }
    json ids{{"identifiers", json::array({json{{"type", "dns"}, {"value", name}}})}};
    auto r = Post(new_order_url, ids.dump(), "ordering a certificate for " + name);
    if (!r.ok()) return r.error();
    auto order = ParseJson(r->body);
    std::string order_url = Absolute(r->location, new_order_url);
    if (!order || order_url.empty()) return InternalError("ordering a certificate for " + name + ": no order in the answer");
    auto authzs = order->find("authorizations");
    if (authzs == order->end() || !authzs->is_array()) {
      return InternalError("the order for " + name + " lists no authorizations");
    }
    for (const auto& a : *authzs) {
      if (!a.is_string()) continue;
      if (auto st = Authorize(name, Absolute(a.get<std::string>(), order_url), deadline); !st.ok()) return st.error();
    }
    // The order turns ready once its authorizations are valid.
    const std::string what = "the order for " + name;
    auto ready = Poll(order_url, *order, {"pending"}, what, deadline, *r);
    if (!ready.ok()) return ready.error();
    if (Str(*ready, "status") != "ready" && Str(*ready, "status") != "valid") {
      return InternalError(fmt::format("{} is {}", what, ForMessage(Str(*ready, "status"))));
    }
    KeyPtr key = NewP256Key();
    json current = *ready;
    HttpResponse last = *r;
    if (Str(current, "status") == "ready") {
      std::string finalize_url = Absolute(Str(current, "finalize"), order_url);
      if (finalize_url.empty()) return InternalError(what + " has no finalize URL");
      json csr{{"csr", acme::Base64Url(acme::CsrDer(key.get(), name))}};
      auto f = Post(finalize_url, csr.dump(), "finalizing " + what);
      if (!f.ok()) return f.error();
      auto j = ParseJson(f->body);
      if (!j) return InternalError("finalizing " + what + ": the ACME server sent no JSON object");
      current = std::move(*j);
      last = std::move(*f);
    }
    auto valid = Poll(order_url, current, {"processing", "ready"}, what, deadline, last);
    if (!valid.ok()) return valid.error();
    if (Str(*valid, "status") != "valid") {
      std::string detail = valid->contains("error") && (*valid)["error"].is_object() ? ": " + ProblemText((*valid)["error"]) : "";
      return InternalError(fmt::format("{} is {}{}", what, ForMessage(Str(*valid, "status")), detail));
    }
    std::string cert_url = Absolute(Str(*valid, "certificate"), order_url);
    if (cert_url.empty()) return InternalError(what + " is valid but names no certificate URL");
    auto c = Post(cert_url, "", "downloading the certificate for " + name, false, "application/pem-certificate-chain");
    if (!c.ok()) return c.error();
    AcmeClient::Issued issued{c->body, KeyToPem(key.get())};
    if (auto served = ServedFrom(issued.chain_pem, issued.key_pem, name); !served.ok()) {
      return InternalError(fmt::format("the certificate the ACME server sent for {} is unusable: {}", name,
                                       served.error().message));
    }
    return issued;
  }
};

AcmeClient::AcmeClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AcmeClient::~AcmeClient() = default;

control::Result<std::unique_ptr<AcmeClient>> AcmeClient::Make(const std::string& directory_url,
                                                              const std::string& ca_bundle, const std::string& email,
                                                              const std::string& account_key_pem,
                                                              AcmeChallenges& challenges) {
  if (directory_url.empty()) {
    return InvalidError("acme_directory is not set: give the ACME server's directory URL, like "
                        "https://acme-v02.api.letsencrypt.org/directory");
  }
  if (auto u = ParseUrl(directory_url); !u.ok()) return InvalidError("acme_directory: " + u.error().message);
  if (email.find_first_of(" \t\r\n,<>") != std::string::npos || (!email.empty() && email.find('@') == std::string::npos)) {
    return InvalidError(fmt::format("acme_email {} is not an email address", ForMessage(email)));
  }
  auto impl = std::make_unique<Impl>(challenges);
  if (auto st = impl->https.Trust(ca_bundle); !st.ok()) return st.error();
  impl->directory_url = directory_url;
  impl->email = email;
  impl->account_key = ParsePrivateKey(account_key_pem);
  if (!impl->account_key || !IsP256(impl->account_key.get())) {
    return InvalidError("the ACME account key is not an ECDSA P-256 private key");
  }
  impl->jwk = acme::Jwk(impl->account_key.get());
  auto thumb = acme::Thumbprint(impl->jwk);
  if (!thumb.ok()) return thumb.error();
  impl->thumbprint = *thumb;
  return std::unique_ptr<AcmeClient>(new AcmeClient(std::move(impl)));
}

control::Status AcmeClient::Connect() { return impl_->Connect(); }

control::Result<AcmeClient::Issued> AcmeClient::Issue(const std::string& name, std::chrono::seconds timeout) {
  return impl_->Issue(name, timeout);
}

void AcmeClient::Cancel() { impl_->cancelled = true; }

// ---------------------------------------------------------------------------
// The store.

namespace {

class AcmeStoreImpl final : public AcmeStore {
 public:
  explicit AcmeStoreImpl(AcmeOptions options) : options_(std::move(options)) {
    if (!options_.now) options_.now = [] { return Clock::now(); };
  }

  ~AcmeStoreImpl() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    if (client_) client_->Cancel();
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  control::Status Open() {
    if (!IsDnsName(options_.domain)) return InvalidError(fmt::format("domain {} is not a DNS name", ForMessage(options_.domain)));
    if (!options_.fallback) return InvalidError("ACME needs a fallback certificate store");
    // The settings are checked before anything is written.
    if (options_.directory_url.empty()) {
      return InvalidError("acme_directory is not set: give the ACME server's directory URL, like "
                          "https://acme-v02.api.letsencrypt.org/directory");
    }
    if (auto u = ParseUrl(options_.directory_url); !u.ok()) return InvalidError("acme_directory: " + u.error().message);
    if (auto st = MakeDir(options_.dir); !st.ok()) return st;
    if (auto st = MakeDir(CertsDir()); !st.ok()) return st;
    const std::string key_path = options_.dir + "/account.key";
    std::error_code ec;
    if (!std::filesystem::exists(key_path, ec)) {
      KeyPtr key = NewP256Key();
      if (auto st = WriteFileAtomic(key_path, KeyToPem(key.get()), 0600); !st.ok()) return st;
      spdlog::info("acme: account key made path={}", key_path);
    }
    auto key_pem = ReadFile(key_path, "ACME account key");
    if (!key_pem.ok()) return key_pem.error();
    if (KeyPtr key = ParsePrivateKey(*key_pem); !key || !IsP256(key.get())) {
      return InternalError(fmt::format(
          "{} is damaged or not an ECDSA P-256 key; move it away to register a new ACME account", key_path));
    }
    auto client = AcmeClient::Make(options_.directory_url, options_.ca_bundle, options_.email, *key_pem, challenges_);
    if (!client.ok()) return client.error();
    client_ = std::move(*client);
    auto loaded = LoadAll();
    if (!loaded.ok()) return loaded.error();
    certs_ = std::move(*loaded);
    spdlog::info("acme: ready directory={} certificates={}", options_.directory_url, certs_.size());
    return control::Ok{};
  }

  void Start() {
    if (options_.start_worker) worker_ = std::thread([this] { Work(); });
  }

  control::Result<std::shared_ptr<ssl::context>> ContextFor(const std::string& host) override {
    std::string name = host.empty() ? options_.domain : Lowercase(host);
    if (!Serves(name)) {
      return control::NotFoundError(
          fmt::format("{} is neither {} nor one name under it", ForMessage(name), options_.domain));
    }
    Clock::time_point now = options_.now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = certs_.find(name);
      if (it != certs_.end() && now < it->second.not_after) {
        if (acme::NeedsRenewal(it->second.not_before, it->second.not_after, now)) QueueLocked(name, now);
        return it->second.ctx;
      }
      QueueLocked(name, now);
    }
    return options_.fallback->ContextFor(host);
  }

  std::string CaPem() const override { return ""; }

  control::Status Reload() override {
    auto loaded = LoadAll();
    if (!loaded.ok()) {
      spdlog::warn("acme: reload failed, keeping the certificates in memory: {}", loaded.error().message);
      return loaded.error();
    }
    std::lock_guard<std::mutex> lock(mu_);
    certs_ = std::move(*loaded);
    spdlog::info("acme: certificates reloaded count={}", certs_.size());
    return control::Ok{};
  }

  std::optional<std::string> ChallengeResponse(const std::string& token) const override {
    return challenges_.Get(token);
  }

  void Request(const std::string& name) override {
    std::string n = Lowercase(name);
    if (!Serves(n)) return;
    std::lock_guard<std::mutex> lock(mu_);
    QueueLocked(n, options_.now());
  }

 private:
  struct Failure {
    Clock::time_point retry_at;
    std::chrono::seconds backoff;
  };

  std::string CertsDir() const { return options_.dir + "/certs"; }

  bool Serves(const std::string& name) const {
    const std::string& d = options_.domain;
    if (name == d) return true;
    if (name.size() <= d.size() + 1) return false;
    size_t dot = name.size() - d.size() - 1;
    return name[dot] == '.' && name.compare(dot + 1, std::string::npos, d) == 0 &&
           IsDnsLabel(std::string_view(name).substr(0, dot));
  }

  // Every NAME.pem with its NAME.key in certs/; a pair that does not load is
  // logged and skipped (the name is then ordered anew).
  control::Result<std::unordered_map<std::string, Served>> LoadAll() const {
    std::unordered_map<std::string, Served> out;
    std::error_code ec;
    std::filesystem::directory_iterator it(CertsDir(), ec);
    if (ec) return InternalError(fmt::format("cannot read {}: {}", CertsDir(), ec.message()));
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
      if (ec) return InternalError(fmt::format("cannot read {}: {}", CertsDir(), ec.message()));
      const auto& path = it->path();
      if (path.extension() != ".pem") continue;
      std::string name = path.stem().string();
      if (!Serves(name)) continue;
      auto chain = ReadFile(path.string(), "ACME certificate");
      auto key = ReadFile(CertsDir() + "/" + name + ".key", "ACME certificate key");
      if (!chain.ok() || !key.ok()) {
        spdlog::warn("acme: skipping a stored certificate: {}", (!chain.ok() ? chain : key).error().message);
        continue;
      }
      auto served = ServedFrom(*chain, *key, name);
      if (!served.ok()) {
        spdlog::warn("acme: skipping the stored certificate of {}: {}", name, served.error().message);
        continue;
      }
      out[name] = std::move(*served);
    }
    return out;
  }

  // REQUIRES: mu_ held.
  void QueueLocked(const std::string& name, Clock::time_point now) {
    if (!options_.start_worker || queued_.count(name) != 0) return;
    if (auto f = failures_.find(name); f != failures_.end() && now < f->second.retry_at) return;
    if (queue_.size() >= kMaxQueued) return;
    queue_.push_back(name);
    queued_.insert(name);
    cv_.notify_one();
  }

  // REQUIRES: mu_ held.
  void FailedLocked(const std::string& name, Clock::time_point now, std::chrono::seconds backoff) {
    if (failures_.size() >= kMaxFailuresKept) {
      std::erase_if(failures_, [&](const auto& kv) { return kv.second.retry_at <= now; });
      if (failures_.size() >= kMaxFailuresKept) failures_.clear();
    }
    failures_[name] = Failure{now + backoff, backoff};
  }

  void Work() {
    if (auto st = client_->Connect(); !st.ok()) {
      spdlog::error("acme: {} (orders will retry)", st.error().message);
    }
    auto next_sweep = std::chrono::steady_clock::now() + kSweepEvery;
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_until(lock, next_sweep, [&] { return stop_ || !queue_.empty(); });
      if (stop_) break;
      if (std::chrono::steady_clock::now() >= next_sweep) {
        next_sweep = std::chrono::steady_clock::now() + kSweepEvery;
        Clock::time_point now = options_.now();
        for (const auto& [n, s] : certs_) {
          if (acme::NeedsRenewal(s.not_before, s.not_after, now)) QueueLocked(n, now);
        }
      }
      if (queue_.empty()) continue;
      std::string name = queue_.front();
      queue_.pop_front();
      lock.unlock();
      IssueOne(name);
      lock.lock();
      queued_.erase(name);
    }
  }

  // Runs unlocked on the worker thread.
  void IssueOne(const std::string& name) {
    if (options_.may_issue && !options_.may_issue(name)) {
      spdlog::debug("acme: no order for {}: not a name exed serves (no such VM)", name);
      std::lock_guard<std::mutex> lock(mu_);
      FailedLocked(name, options_.now(), kFirstBackoff);
      return;
    }
    spdlog::info("acme: ordering a certificate name={}", name);
    auto started = std::chrono::steady_clock::now();
    auto issued = client_->Issue(name);
    control::Result<Served> served = issued.ok() ? ServedFrom(issued->chain_pem, issued->key_pem, name)
                                                  : control::Result<Served>(issued.error());
    if (served.ok()) {
      // The key first: a NAME.pem on disk always has its NAME.key.
      const std::string base = CertsDir() + "/" + name;
      auto st = WriteFileAtomic(base + ".key", issued->key_pem, 0600);
      if (st.ok()) st = WriteFileAtomic(base + ".pem", issued->chain_pem, 0644);
      if (!st.ok()) spdlog::error("acme: cannot store the certificate of {} (serving it anyway): {}", name, st.error().message);
    }
    std::lock_guard<std::mutex> lock(mu_);
    Clock::time_point now = options_.now();
    if (!served.ok()) {
      auto f = failures_.find(name);
      auto backoff = f == failures_.end() ? std::chrono::seconds(kFirstBackoff)
                                          : std::min<std::chrono::seconds>(f->second.backoff * 2, kMaxBackoff);
      spdlog::warn("acme: order failed name={} retry_in={}s error=\"{}\"", name, backoff.count(),
                   served.error().message);
      FailedLocked(name, now, backoff);
      return;
    }
    failures_.erase(name);
    spdlog::info("acme: certificate issued name={} not_after=\"{}\" seconds={:.1f}", name,
                 DateOf(served->not_after),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    certs_[name] = std::move(*served);
  }

  AcmeOptions options_;
  AcmeChallenges challenges_;
  std::unique_ptr<AcmeClient> client_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                                    // GUARDED_BY(mu_)
  std::unordered_map<std::string, Served> certs_;        // GUARDED_BY(mu_)
  std::deque<std::string> queue_;                        // GUARDED_BY(mu_)
  std::set<std::string> queued_;                         // GUARDED_BY(mu_): queued or being ordered
  std::unordered_map<std::string, Failure> failures_;    // GUARDED_BY(mu_)
  std::thread worker_;
};

}  // namespace

control::Result<std::unique_ptr<AcmeStore>> OpenAcme(AcmeOptions options) {
  options.domain = Lowercase(options.domain);
  auto store = std::make_unique<AcmeStoreImpl>(std::move(options));
  if (auto st = store->Open(); !st.ok()) return st.error();
  store->Start();
  return std::unique_ptr<AcmeStore>(std::move(store));
}

}  // namespace httpfront
