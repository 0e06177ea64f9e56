#include "httpfront/acme.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "httpfront/tls_test_support.h"

namespace httpfront {
namespace {

namespace fs = std::filesystem;
namespace ssl = boost::asio::ssl;
using nlohmann::json;
using Clock = std::chrono::system_clock;

using tls_testing::Deleter;
using tls_testing::kDomain;
using tls_testing::KeyPtr;
using tls_testing::LeafOf;
using tls_testing::ReadAll;
using tls_testing::TempDir;
using tls_testing::ToPem;
using tls_testing::WriteFile;
using tls_testing::X509Ptr;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;

KeyPtr NewKey() { return KeyPtr(EVP_EC_gen("P-256")); }

std::string Sha256Base64Url(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  return acme::Base64Url(std::string(reinterpret_cast<char*>(digest), len));
}

// A self-signed certificate for `name` (SAN), valid from an hour ago for `days`.
X509Ptr SelfSigned(EVP_PKEY* key, const std::string& name, int days) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400L * days);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(name.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), subject);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  std::string san = "DNS:" + name;
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
  X509_add_ext(cert.get(), ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(cert.get(), key, EVP_sha256());
  return cert;
}

std::string IssuerCn(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_issuer_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

// --- base64url (RFC 4648 section 10 vectors, URL alphabet, no padding) ---

TEST(AcmeBase64Url, Rfc4648Vectors) {
  EXPECT_EQ(acme::Base64Url(""), "");
  EXPECT_EQ(acme::Base64Url("f"), "Zg");
  EXPECT_EQ(acme::Base64Url("fo"), "Zm8");
  EXPECT_EQ(acme::Base64Url("foo"), "Zm9v");
  EXPECT_EQ(acme::Base64Url("foob"), "Zm9vYg");
  EXPECT_EQ(acme::Base64Url("fooba"), "Zm9vYmE");
  EXPECT_EQ(acme::Base64Url("foobar"), "Zm9vYmFy");
}

TEST(AcmeBase64Url, UsesTheUrlAlphabet) {
  EXPECT_EQ(acme::Base64Url(std::string("\xfb\xff\xbf", 3)), "-_-_");
  EXPECT_EQ(acme::Base64Url(std::string("\xfb\xff", 2)), "-_8");
  // RFC 7515 appendix C: the bytes 3, 236, 255, 224, 193.
  EXPECT_EQ(acme::Base64Url(std::string("\x03\xec\xff\xe0\xc1", 5)), "A-z_4ME");
}

TEST(AcmeBase64Url, DecodesWhatItEncodesAndRefusesJunk) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n = 0; n <= all.size(); n += 37) {
    auto back = acme::Base64UrlDecode(acme::Base64Url(all.substr(0, n)));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, all.substr(0, n));
  }
  EXPECT_FALSE(acme::Base64UrlDecode("Zg==").has_value());  // padding is not base64url
  EXPECT_FALSE(acme::Base64UrlDecode("Z").has_value());
  EXPECT_FALSE(acme::Base64UrlDecode("Zm+v").has_value());
  EXPECT_FALSE(acme::Base64UrlDecode("Zh").has_value());  // non-zero leftover bits
}

// --- JWK and thumbprints ---

TEST(AcmeThumbprint, Rfc7638RsaVector) {
  // RFC 7638 section 3.1, with members the thumbprint must ignore.
  json jwk = {
      {"kty", "RSA"},
      {"n",
       "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknj"
       "hMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQ"
       "vRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzK"
       "nqDKgw"},
      {"e", "AQAB"},
      {"alg", "RS256"},
      {"kid", "2011-04-29"}};
  auto t = acme::Thumbprint(jwk);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(*t, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

TEST(AcmeThumbprint, Rfc8037OkpVector) {
  json jwk = {{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}};
  auto t = acme::Thumbprint(jwk);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(*t, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
}

TEST(AcmeThumbprint, EcKeyUsesCanonicalMemberOrder) {
  KeyPtr key = NewKey();
  json jwk = acme::Jwk(key.get());
  std::string canonical = R"({"crv":"P-256","kty":"EC","x":")" + jwk["x"].get<std::string>() + R"(","y":")" +
                          jwk["y"].get<std::string>() + R"("})";
  auto t = acme::Thumbprint(jwk);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, Sha256Base64Url(canonical));
  EXPECT_EQ(t->size(), 43u);
}

TEST(AcmeThumbprint, RefusesIncompleteOrUnknownKeys) {
  EXPECT_FALSE(acme::Thumbprint(json{{"kty", "EC"}, {"crv", "P-256"}, {"x", "AA"}}).ok());
  EXPECT_FALSE(acme::Thumbprint(json{{"kty", "oct"}, {"k", "AA"}}).ok());
  EXPECT_FALSE(acme::Thumbprint(json::array()).ok());
}

TEST(AcmeJwk, HoldsThePublicPointPadded) {
  for (int i = 0; i < 8; ++i) {  // some keys have a coordinate with leading zero bytes
    KeyPtr key = NewKey();
    json jwk = acme::Jwk(key.get());
    EXPECT_EQ(jwk["kty"], "EC");
    EXPECT_EQ(jwk["crv"], "P-256");
    EXPECT_EQ(jwk.size(), 4u) << "no private member may appear: " << jwk.dump();
    unsigned char point[65];
    size_t len = 0;
    ASSERT_EQ(EVP_PKEY_get_octet_string_param(key.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &len), 1);
    ASSERT_EQ(len, 65u);
    auto x = acme::Base64UrlDecode(jwk["x"].get<std::string>());
    auto y = acme::Base64UrlDecode(jwk["y"].get<std::string>());
    ASSERT_TRUE(x && y);
    EXPECT_EQ(*x, std::string(reinterpret_cast<char*>(point + 1), 32));
    EXPECT_EQ(*y, std::string(reinterpret_cast<char*>(point + 33), 32));
  }
}

TEST(AcmeKeyAuthorization, IsTokenDotThumbprint) {
  // RFC 8555 section 8.1.
  EXPECT_EQ(acme::KeyAuthorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA",
                                   "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"),
            "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

// --- JWS ---

bool VerifyEs256(EVP_PKEY* key, const std::string& input, const std::string& raw_sig) {
  if (raw_sig.size() != 64) return false;
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw_sig.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw_sig.data()) + 32, 32, nullptr);
  ECDSA_SIG_set0(sig.get(), r, s);
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  MdCtxPtr md(EVP_MD_CTX_new());
  bool ok = EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(md.get(), der, der_len, reinterpret_cast<const unsigned char*>(input.data()),
                             input.size()) == 1;
  OPENSSL_free(der);
  return ok;
}

TEST(AcmeJws, FlattenedEs256WithJwk) {
  KeyPtr key = NewKey();
  json header{{"alg", "ES256"}, {"nonce", "n0nce"}, {"url", "https://ca/acme/new-account"}, {"jwk", acme::Jwk(key.get())}};
  std::string payload = R"({"termsOfServiceAgreed":true})";
  json jws = acme::SignJws(key.get(), header, payload);
  ASSERT_TRUE(jws.contains("protected") && jws.contains("payload") && jws.contains("signature"));
  EXPECT_EQ(jws.size(), 3u);
  auto prot = acme::Base64UrlDecode(jws["protected"].get<std::string>());
  ASSERT_TRUE(prot);
  json decoded = json::parse(*prot);
  EXPECT_EQ(decoded, header);
  EXPECT_EQ(acme::Base64UrlDecode(jws["payload"].get<std::string>()), payload);
  auto sig = acme::Base64UrlDecode(jws["signature"].get<std::string>());
  ASSERT_TRUE(sig);
  EXPECT_EQ(sig->size(), 64u) << "ES256 signatures are r || s, 32 bytes each, not DER";
  std::string input = jws["protected"].get<std::string>() + "." + jws["payload"].get<std::string>();
  EXPECT_TRUE(VerifyEs256(key.get(), input, *sig));
  EXPECT_FALSE(VerifyEs256(key.get(), input + "x", *sig));
  KeyPtr other = NewKey();
  EXPECT_FALSE(VerifyEs256(other.get(), input, *sig));
}

TEST(AcmeJws, PostAsGetHasAnEmptyPayload) {
  KeyPtr key = NewKey();
  json jws = acme::SignJws(key.get(), json{{"alg", "ES256"}, {"kid", "https://ca/acct/1"}, {"nonce", "x"}, {"url", "u"}}, "");
  EXPECT_EQ(jws["payload"], "");
  auto sig = acme::Base64UrlDecode(jws["signature"].get<std::string>());
  ASSERT_TRUE(sig);
  EXPECT_TRUE(VerifyEs256(key.get(), jws["protected"].get<std::string>() + ".", *sig));
}

// --- CSR ---

std::vector<std::string> SanDnsNames(X509_REQ* req) {
  std::vector<std::string> out;
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  if (!exts) return out;
  for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) continue;
    auto* names = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext));
    for (int j = 0; j < sk_GENERAL_NAME_num(names); ++j) {
      GENERAL_NAME* g = sk_GENERAL_NAME_value(names, j);
      int type = 0;
      auto* v = static_cast<ASN1_STRING*>(GENERAL_NAME_get0_value(g, &type));
      out.push_back(type == GEN_DNS ? std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
                                                  ASN1_STRING_length(v))
                                    : "(not DNS)");
    }
    GENERAL_NAMES_free(names);
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  return out;
}

ReqPtr ParseCsr(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  return ReqPtr(d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size())));
}

TEST(AcmeCsr, OneDnsNameSignedByTheKey) {
  KeyPtr key = NewKey();
  std::string der = acme::CsrDer(key.get(), "foo.exe.localhost");
  ReqPtr req = ParseCsr(der);
  ASSERT_TRUE(req);
  EXPECT_EQ(X509_REQ_verify(req.get(), key.get()), 1);
  EVP_PKEY* pub = X509_REQ_get0_pubkey(req.get());
  ASSERT_NE(pub, nullptr);
  EXPECT_EQ(EVP_PKEY_eq(pub, key.get()), 1);
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req.get()), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "foo.exe.localhost");
  EXPECT_EQ(SanDnsNames(req.get()), std::vector<std::string>{"foo.exe.localhost"});
  EXPECT_EQ(X509_REQ_get_signature_nid(req.get()), NID_ecdsa_with_SHA256);
  KeyPtr other = NewKey();
  EXPECT_NE(X509_REQ_verify(req.get(), other.get()), 1);
  ERR_clear_error();
}

TEST(AcmeCsr, LongNameGoesInTheSanOnly) {
  KeyPtr key = NewKey();
  std::string name = std::string(63, 'a') + ".exe.localhost";  // 77 characters: more than a CN may hold
  ReqPtr req = ParseCsr(acme::CsrDer(key.get(), name));
  ASSERT_TRUE(req);
  EXPECT_EQ(X509_NAME_entry_count(X509_REQ_get_subject_name(req.get())), 0);
  EXPECT_EQ(SanDnsNames(req.get()), std::vector<std::string>{name});
}

TEST(AcmeRenewal, AtTwoThirdsOfTheLifetime) {
  Clock::time_point nb = Clock::now();
  Clock::time_point na = nb + std::chrono::hours(24 * 90);
  EXPECT_FALSE(acme::NeedsRenewal(nb, na, nb));
  EXPECT_FALSE(acme::NeedsRenewal(nb, na, nb + std::chrono::hours(24 * 59)));
  EXPECT_TRUE(acme::NeedsRenewal(nb, na, nb + std::chrono::hours(24 * 61)));
  EXPECT_TRUE(acme::NeedsRenewal(nb, na, na + std::chrono::hours(1)));
  EXPECT_TRUE(acme::NeedsRenewal(na, nb, nb));  // nonsense dates: renew
}

TEST(AcmeChallengesTest, PutGetRemove) {
  AcmeChallenges c;
  EXPECT_FALSE(c.Get("t").has_value());
  c.Put("t", "t.thumb");
  EXPECT_EQ(c.Get("t"), "t.thumb");
  EXPECT_FALSE(c.Get("u").has_value());
  c.Remove("t");
  EXPECT_FALSE(c.Get("t").has_value());
}

// --- the store, without a server ---

struct StoreFixture {
  TempDir tmp;

  AcmeOptions Options(bool worker = false) {
    AcmeOptions o;
    o.directory_url = "https://127.0.0.1:1/directory";  // nothing listens there
    o.dir = tmp / "acme";
    o.domain = kDomain;
    auto fallback = OpenInternalCa(tmp / "ca", kDomain);
    EXPECT_TRUE(fallback.ok());
    if (fallback.ok()) o.fallback = std::move(*fallback);
    o.start_worker = worker;
    return o;
  }
};

TEST(AcmeStoreTest, MakesAPrivateAccountKeyOnceAndReusesIt) {
  StoreFixture f;
  {
    auto store = OpenAcme(f.Options());
    ASSERT_TRUE(store.ok()) << store.error().message;
  }
  struct stat st {};
  ASSERT_EQ(::stat((f.tmp / "acme/account.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((f.tmp / "acme").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::string first = ReadAll(f.tmp / "acme/account.key");
  auto again = OpenAcme(f.Options());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ReadAll(f.tmp / "acme/account.key"), first);
}

TEST(AcmeStoreTest, ServesTheFallbackUntilANameHasACertificate) {
  StoreFixture f;
  auto store = OpenAcme(f.Options());
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto ctx = (*store)->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  EXPECT_NE(IssuerCn(LeafOf(*ctx)).find("exed internal CA"), std::string::npos);
  EXPECT_EQ((*store)->CaPem(), "");
  EXPECT_FALSE((*store)->ChallengeResponse("some-token").has_value());
}

TEST(AcmeStoreTest, RefusesNamesOutsideTheDomain) {
  StoreFixture f;
  auto store = OpenAcme(f.Options());
  ASSERT_TRUE(store.ok());
  for (const char* bad : {"a.b.exe.localhost", "example.com", "xexe.localhost", "-x.exe.localhost"}) {
    auto ctx = (*store)->ContextFor(bad);
    ASSERT_FALSE(ctx.ok()) << bad;
    EXPECT_EQ(ctx.error().kind, control::ErrorKind::kNotFound);
  }
}

TEST(AcmeStoreTest, ServesStoredCertificatesAfterARestartAndOnReload) {
  StoreFixture f;
  auto store = OpenAcme(f.Options());
  ASSERT_TRUE(store.ok());
  KeyPtr key = NewKey();
  X509Ptr cert = SelfSigned(key.get(), "foo.exe.localhost", 90);
  WriteFile(f.tmp / "acme/certs/foo.exe.localhost.key", ToPem(key.get()));
  WriteFile(f.tmp / "acme/certs/foo.exe.localhost.pem", ToPem(cert.get()));
  // A pair whose key is not the certificate's is skipped, not served.
  KeyPtr stray = NewKey();
  X509Ptr bar = SelfSigned(key.get(), "bar.exe.localhost", 90);
  WriteFile(f.tmp / "acme/certs/bar.exe.localhost.key", ToPem(stray.get()));
  WriteFile(f.tmp / "acme/certs/bar.exe.localhost.pem", ToPem(bar.get()));

  ASSERT_TRUE((*store)->Reload().ok());
  auto ctx = (*store)->ContextFor("FOO.exe.localhost");
  ASSERT_TRUE(ctx.ok());
  EXPECT_EQ(X509_cmp(LeafOf(*ctx), cert.get()), 0);
  auto fallback = (*store)->ContextFor("bar.exe.localhost");
  ASSERT_TRUE(fallback.ok());
  EXPECT_NE(X509_cmp(LeafOf(*fallback), bar.get()), 0);

  store->reset();
  auto reopened = OpenAcme(f.Options());
  ASSERT_TRUE(reopened.ok());
  auto again = (*reopened)->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(X509_cmp(LeafOf(*again), cert.get()), 0);
}

TEST(AcmeStoreTest, AnExpiredStoredCertificateIsNotServed) {
  StoreFixture f;
  AcmeOptions o = f.Options();
  o.now = [] { return Clock::now() + std::chrono::hours(24 * 100); };
  KeyPtr key = NewKey();
  X509Ptr cert = SelfSigned(key.get(), "foo.exe.localhost", 90);
  fs::create_directories(f.tmp / "acme/certs");
  WriteFile(f.tmp / "acme/certs/foo.exe.localhost.key", ToPem(key.get()));
  WriteFile(f.tmp / "acme/certs/foo.exe.localhost.pem", ToPem(cert.get()));
  auto store = OpenAcme(std::move(o));
  ASSERT_TRUE(store.ok());
  auto ctx = (*store)->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(ctx.ok());
  EXPECT_NE(X509_cmp(LeafOf(*ctx), cert.get()), 0);
}

TEST(AcmeStoreTest, ClearErrorsForBadSettings) {
  {
    StoreFixture f;
    AcmeOptions o = f.Options();
    o.directory_url = "http://127.0.0.1:14000/dir";
    auto s = OpenAcme(std::move(o));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("must start with https://"), std::string::npos) << s.error().message;
  }
  {
    StoreFixture f;
    AcmeOptions o = f.Options();
    o.directory_url = "";
    auto s = OpenAcme(std::move(o));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("acme_directory is not set"), std::string::npos) << s.error().message;
  }
  {
    StoreFixture f;
    AcmeOptions o = f.Options();
    o.ca_bundle = f.tmp / "missing.pem";
    auto s = OpenAcme(std::move(o));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("cannot read acme_ca_bundle"), std::string::npos) << s.error().message;
  }
  {
    StoreFixture f;
    AcmeOptions o = f.Options();
    WriteFile(f.tmp / "junk.pem", "not a certificate\n");
    o.ca_bundle = f.tmp / "junk.pem";
    auto s = OpenAcme(std::move(o));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("holds no PEM certificate"), std::string::npos) << s.error().message;
  }
  {
    StoreFixture f;
    AcmeOptions o = f.Options();
    fs::create_directories(f.tmp / "acme");
    WriteFile(f.tmp / "acme/account.key", "garbage");
    auto s = OpenAcme(std::move(o));
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("account.key is damaged"), std::string::npos) << s.error().message;
  }
}

TEST(AcmeClientTest, UnreachableServerIsOneClearLine) {
  AcmeChallenges challenges;
  KeyPtr key = NewKey();
  auto client = AcmeClient::Make("https://127.0.0.1:1/directory", "", "", ToPem(key.get()), challenges);
  ASSERT_TRUE(client.ok()) << client.error().message;
  auto st = (*client)->Connect();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("cannot fetch the ACME directory: cannot connect to 127.0.0.1:1"),
            std::string::npos)
      << st.error().message;
  EXPECT_EQ(st.error().message.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace httpfront
