// ACME's protocol: the encodings (base64url, JWK, thumbprint, JWS, CSR), the
// renewal rule, the http-01 challenges in progress, and AcmeClient, which
// registers the account and runs one order at a time (RFC 8555). Its HTTPS
// requests are in acme_https.cc; the store that decides what to order, in
// acme_store.cc; what they share, in acme_internal.h.
#include "httpfront/acme.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "control/names.h"
#include "httpfront/acme_internal.h"

namespace httpfront {
namespace {

using namespace acme_internal;
using nlohmann::json;
using control::ForMessage;
using control::InternalError;
using control::InvalidError;

using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using GenNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;

constexpr char kAcmeErrorPrefix[] = "urn:ietf:params:acme:error:";
constexpr size_t kMaxCommonName = 64;
constexpr int kBadNonceRetries = 5;

bool IsBase64UrlToken(std::string_view s) {
  if (s.empty() || s.size() > 256) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

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
    AcmeClient::Issued issued{c->body, ToPem(key.get())};
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

}  // namespace httpfront
