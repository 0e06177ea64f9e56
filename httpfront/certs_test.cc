// The certificate stores themselves; TLS handshakes against them are in
// tls_handshake_test.cc.
#include "httpfront/certs.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "httpfront/tls_test_support.h"

namespace httpfront {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;
using tls_testing::BioPtr;
using tls_testing::ToPem;
using tls_testing::ReadAll;
using tls_testing::kDomain;
using tls_testing::LeafOf;
using tls_testing::Pair;
using tls_testing::SelfSigned;
using tls_testing::StoreCtxPtr;
using tls_testing::StorePtr;
using tls_testing::SubjectCn;
using tls_testing::TempDir;
using tls_testing::WriteFile;
using tls_testing::X509Ptr;

X509Ptr ParseCert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// Runs OpenSSL's own chain verification of `leaf` against `ca_pem` as a TLS
// client would for `host`; returns the X509_V_ERR code (X509_V_OK on success).
int Verify(X509* leaf, const std::string& ca_pem, const std::string& host) {
  StorePtr store(X509_STORE_new());
  X509Ptr ca = ParseCert(ca_pem);
  if (!ca || X509_STORE_add_cert(store.get(), ca.get()) != 1) return -1;
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr) != 1) return -1;
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(X509_STORE_CTX_get0_param(ctx.get()), host.c_str(), host.size());
  X509_verify_cert(ctx.get());
  return X509_STORE_CTX_get_error(ctx.get());
}

// ---------------------------------------------------------------- internal CA

class InternalCaTest : public ::testing::Test {
 protected:
  std::unique_ptr<CertStore> Open(InternalCaOptions options = {}) {
    auto store = OpenInternalCa(dir_ / "ca", kDomain, std::move(options));
    EXPECT_TRUE(store.ok()) << store.error().message;
    return store.ok() ? std::move(store).value() : nullptr;
  }
  TempDir dir_;
};

TEST_F(InternalCaTest, CaIsMadeOnceAndReused) {
  auto first = Open();
  ASSERT_TRUE(first);
  std::string pem = first->CaPem();
  EXPECT_EQ(pem.rfind("-----BEGIN CERTIFICATE-----", 0), 0u);
  EXPECT_EQ(ReadAll(dir_ / "ca/ca.pem"), pem);
  std::string key = ReadAll(dir_ / "ca/ca.key");
  EXPECT_NE(key.find("PRIVATE KEY"), std::string::npos);
  first.reset();

  auto second = Open();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->CaPem(), pem);
  EXPECT_EQ(ReadAll(dir_ / "ca/ca.key"), key);
}

TEST_F(InternalCaTest, CaKeyIsPrivate) {
  ASSERT_TRUE(Open());
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "ca/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((dir_ / "ca").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(fs::exists(dir_ / "ca/ca.key.tmp"));
}

TEST_F(InternalCaTest, CaCertificateIsAnEcdsaCa) {
  auto store = Open();
  ASSERT_TRUE(store);
  X509Ptr ca = ParseCert(store->CaPem());
  ASSERT_TRUE(ca);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(SubjectCn(ca.get()), "exed internal CA (exe.localhost)");
  EXPECT_TRUE(X509_get_extension_flags(ca.get()) & EXFLAG_SS);
  int crit = -1;
  BASIC_CONSTRAINTS* bc =
      static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(ca.get(), NID_basic_constraints, &crit, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_TRUE(bc->ca);
  EXPECT_EQ(crit, 1);
  BASIC_CONSTRAINTS_free(bc);
  EXPECT_EQ(X509_get_key_usage(ca.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(ca.get())), EVP_PKEY_EC);
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca.get()), X509_get0_notAfter(ca.get())), 1);
  EXPECT_GE(days, 3649);
  EXPECT_LE(days, 3651);
  // A CA verifies against itself: what a user's trust store will do.
  EXPECT_EQ(X509_verify(ca.get(), X509_get0_pubkey(ca.get())), 1);
}

TEST_F(InternalCaTest, LeafVerifiesAgainstCaForItsNameOnly) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto ctx = store->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(ctx.ok()) << ctx.error().message;
  X509* leaf = LeafOf(*ctx);
  ASSERT_NE(leaf, nullptr);
  EXPECT_EQ(Verify(leaf, store->CaPem(), "foo.exe.localhost"), X509_V_OK);
  EXPECT_EQ(Verify(leaf, store->CaPem(), "bar.exe.localhost"), X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(Verify(leaf, store->CaPem(), "exe.localhost"), X509_V_ERR_HOSTNAME_MISMATCH);
  // Against some other CA it must not verify.
  TempDir other;
  auto other_store = OpenInternalCa(other / "ca", kDomain);
  ASSERT_TRUE(other_store.ok());
  EXPECT_NE(Verify(leaf, (*other_store)->CaPem(), "foo.exe.localhost"), X509_V_OK);

  EVP_PKEY* key = X509_get0_pubkey(leaf);
  EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
  char group[64] = {};
  size_t len = 0;
  ASSERT_EQ(EVP_PKEY_get_group_name(key, group, sizeof group, &len), 1);
  EXPECT_STREQ(group, "prime256v1");
  EXPECT_EQ(X509_check_ca(leaf), 0);
  EXPECT_NE(X509_get0_subject_key_id(leaf), nullptr);
  EXPECT_NE(X509_get0_authority_key_id(leaf), nullptr);
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(leaf, NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(sans, nullptr);
  EXPECT_EQ(sk_GENERAL_NAME_num(sans), 1);
  GENERAL_NAMES_free(sans);
  int days = 0, secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)), 1);
  EXPECT_EQ(days, 90);
}

TEST_F(InternalCaTest, ApexGetsACertificateAlsoWithoutSni) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto apex = store->ContextFor(kDomain);
  ASSERT_TRUE(apex.ok()) << apex.error().message;
  EXPECT_EQ(Verify(LeafOf(*apex), store->CaPem(), kDomain), X509_V_OK);
  auto none = store->ContextFor("");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->get(), apex->get());
}

TEST_F(InternalCaTest, RefusesNamesOutsideTheDomain) {
  auto store = Open();
  ASSERT_TRUE(store);
  for (const char* name : {"a.b.exe.localhost", "evil.com", "exe.localhost.evil.com", "xexe.localhost",
                           ".exe.localhost", "-foo.exe.localhost", "foo-.exe.localhost", "fo_o.exe.localhost",
                           "localhost", "foo.exe.localhost..", "foo,DNS:evil.com.exe.localhost"}) {
    auto ctx = store->ContextFor(name);
    ASSERT_FALSE(ctx.ok()) << name;
    EXPECT_EQ(ctx.error().kind, control::ErrorKind::kNotFound) << name;
    EXPECT_NE(ctx.error().message.find("no certificate for"), std::string::npos) << ctx.error().message;
    EXPECT_NE(ctx.error().message.find("exe.localhost"), std::string::npos) << ctx.error().message;
  }
  // Longer than a CN may be: the name is in the SAN only, and still verifies.
  std::string label63(63, 'a');
  auto longest = store->ContextFor(label63 + ".exe.localhost");
  ASSERT_TRUE(longest.ok());
  EXPECT_EQ(Verify(LeafOf(*longest), store->CaPem(), label63 + ".exe.localhost"), X509_V_OK);
  EXPECT_FALSE(store->ContextFor(label63 + "a.exe.localhost").ok());
}

TEST_F(InternalCaTest, ContextsAreCached) {
  auto store = Open();
  ASSERT_TRUE(store);
  auto a = store->ContextFor("foo.exe.localhost");
  auto b = store->ContextFor("foo.exe.localhost");
  auto upper = store->ContextFor("FOO.Exe.Localhost");
  auto other = store->ContextFor("bar.exe.localhost");
  ASSERT_TRUE(a.ok() && b.ok() && upper.ok() && other.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_EQ(a->get(), upper->get());
  EXPECT_NE(a->get(), other->get());
}

TEST_F(InternalCaTest, LeafIsRenewedWhenNearExpiry) {
  Clock::time_point now = Clock::now();
  auto store = Open({.now = [&now] { return now; }});
  ASSERT_TRUE(store);
  auto first = store->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(first.ok());
  now += std::chrono::hours(24 * 59);
  auto same = store->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->get(), first->get());
  now += std::chrono::hours(24 * 2);  // 61 days in: under 30 left
  auto renewed = store->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(renewed.ok());
  EXPECT_NE(renewed->get(), first->get());
  EXPECT_EQ(ASN1_TIME_compare(X509_get0_notAfter(LeafOf(*renewed)), X509_get0_notAfter(LeafOf(*first))), 1);
  // The old context is intact for connections that still hold it.
  EXPECT_NE(LeafOf(*first), nullptr);
}

TEST_F(InternalCaTest, LeastRecentlyUsedLeafIsDroppedPastTheLimit) {
  auto store = Open({.max_cached = 2});
  ASSERT_TRUE(store);
  auto a = store->ContextFor("aaa.exe.localhost");
  auto b = store->ContextFor("bbb.exe.localhost");
  ASSERT_TRUE(store->ContextFor("aaa.exe.localhost").ok());  // b is now the oldest
  ASSERT_TRUE(store->ContextFor("ccc.exe.localhost").ok());
  auto a2 = store->ContextFor("aaa.exe.localhost");
  auto b2 = store->ContextFor("bbb.exe.localhost");
  ASSERT_TRUE(a.ok() && b.ok() && a2.ok() && b2.ok());
  EXPECT_EQ(a2->get(), a->get());
  EXPECT_NE(b2->get(), b->get());
}

TEST_F(InternalCaTest, ConcurrentLookupsAgree) {
  auto store = Open({.max_cached = 3});
  ASSERT_TRUE(store);
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        std::string name = "vm" + std::to_string((i + t) % 5) + ".exe.localhost";
        auto ctx = store->ContextFor(name);
        if (!ctx.ok() || SubjectCn(LeafOf(*ctx)) != name) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, std::vector<int>(4, 0));
}

TEST_F(InternalCaTest, BadDomainIsRefused) {
  for (const char* domain : {"", "exe..localhost", "exe.localhost.", "-x.localhost", "exe localhost"}) {
    auto store = OpenInternalCa(dir_ / "ca", domain);
    ASSERT_FALSE(store.ok()) << domain;
    EXPECT_EQ(store.error().kind, control::ErrorKind::kInvalid);
    EXPECT_NE(store.error().message.find("is not a DNS name"), std::string::npos) << store.error().message;
  }
  EXPECT_FALSE(fs::exists(dir_ / "ca"));
}

TEST_F(InternalCaTest, MismatchedCaKeyIsRefused) {
  ASSERT_TRUE(Open());
  WriteFile(dir_ / "ca/ca.key", SelfSigned("x").key_pem);
  auto store = OpenInternalCa(dir_ / "ca", kDomain);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("does not match"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("move"), std::string::npos) << store.error().message;
}

TEST_F(InternalCaTest, LoneKeyFromAnInterruptedFirstStartIsReplaced) {
  fs::create_directories(dir_ / "ca");
  WriteFile(dir_ / "ca/ca.key", "half a key");
  auto store = Open();
  ASSERT_TRUE(store);
  auto ctx = store->ContextFor("foo.exe.localhost");
  ASSERT_TRUE(ctx.ok());
  EXPECT_EQ(Verify(LeafOf(*ctx), ReadAll(dir_ / "ca/ca.pem"), "foo.exe.localhost"), X509_V_OK);
}

// ------------------------------------------------------------ operator files

class CertFilesTest : public ::testing::Test {
 protected:
  TempDir dir_;  // first: the paths below are made from it
  std::string cert_ = dir_ / "cert.pem";
  std::string key_ = dir_ / "key.pem";
};

TEST_F(CertFilesTest, ServesTheOperatorsCertificateForEveryName) {
  Pair pair = SelfSigned("www.example.test");
  WriteFile(cert_, pair.cert_pem);
  WriteFile(key_, pair.key_pem);
  auto store = OpenCertFiles(cert_, key_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ((*store)->CaPem(), "");
  for (const char* name : {"", "www.example.test", "anything.else"}) {
    auto ctx = (*store)->ContextFor(name);
    ASSERT_TRUE(ctx.ok());
    EXPECT_EQ(ToPem(LeafOf(*ctx)), pair.cert_pem);
  }
}

TEST_F(CertFilesTest, MismatchedKeyIsRefusedClearly) {
  WriteFile(cert_, SelfSigned("a.example.test").cert_pem);
  WriteFile(key_, SelfSigned("b.example.test").key_pem);
  auto store = OpenCertFiles(cert_, key_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().kind, control::ErrorKind::kInvalid);
  EXPECT_EQ(store.error().message.find('\n'), std::string::npos);
  EXPECT_NE(store.error().message.find("does not match the certificate"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find(key_), std::string::npos) << store.error().message;
}

TEST_F(CertFilesTest, UnreadableOrWrongFilesAreRefusedClearly) {
  Pair pair = SelfSigned("a.example.test");
  WriteFile(key_, pair.key_pem);
  auto missing = OpenCertFiles(cert_, key_);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos) << missing.error().message;
  EXPECT_NE(missing.error().message.find(cert_), std::string::npos) << missing.error().message;

  WriteFile(cert_, pair.key_pem);  // a key where the certificate belongs
  auto not_cert = OpenCertFiles(cert_, key_);
  ASSERT_FALSE(not_cert.ok());
  EXPECT_NE(not_cert.error().message.find("holds no PEM certificate"), std::string::npos) << not_cert.error().message;

  WriteFile(cert_, pair.cert_pem);
  WriteFile(key_, pair.cert_pem);  // and the other way round
  auto not_key = OpenCertFiles(cert_, key_);
  ASSERT_FALSE(not_key.ok());
  EXPECT_NE(not_key.error().message.find("holds no PEM private key"), std::string::npos) << not_key.error().message;
}

TEST_F(CertFilesTest, ReloadPicksUpReplacedFilesAndKeepsOldContextsAlive) {
  Pair a = SelfSigned("a.example.test");
  WriteFile(cert_, a.cert_pem);
  WriteFile(key_, a.key_pem);
  auto store = OpenCertFiles(cert_, key_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  auto before = (*store)->ContextFor("x");
  ASSERT_TRUE(before.ok());

  Pair b = SelfSigned("b.example.test");
  WriteFile(cert_, b.cert_pem);
  WriteFile(key_, b.key_pem);
  EXPECT_EQ(SubjectCn(LeafOf(*(*store)->ContextFor("x"))), "a.example.test");  // not before Reload
  auto st = (*store)->Reload();
  ASSERT_TRUE(st.ok()) << st.error().message;
  EXPECT_EQ(SubjectCn(LeafOf(*(*store)->ContextFor("x"))), "b.example.test");
  EXPECT_EQ(SubjectCn(LeafOf(*before)), "a.example.test");
}

TEST_F(CertFilesTest, FailedReloadKeepsServingTheOldCertificate) {
  Pair a = SelfSigned("a.example.test");
  WriteFile(cert_, a.cert_pem);
  WriteFile(key_, a.key_pem);
  auto store = OpenCertFiles(cert_, key_);
  ASSERT_TRUE(store.ok()) << store.error().message;
  WriteFile(cert_, SelfSigned("b.example.test").cert_pem);  // key not yet replaced
  auto st = (*store)->Reload();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("does not match"), std::string::npos) << st.error().message;
  EXPECT_EQ(SubjectCn(LeafOf(*(*store)->ContextFor("x"))), "a.example.test");
}

}  // namespace
}  // namespace httpfront
