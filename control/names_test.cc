#include "control/names.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace control {
namespace {

TEST(CheckAccountName, AcceptsValidNames) {
  for (const char* name : {"bob", "alice-smith", "a1b2c3", "x9-y8", "abc",
                           "abcdefghijklmnopqrstuvwxyz012345"}) {
    EXPECT_EQ(CheckAccountName(name), std::nullopt) << name;
  }
}

TEST(CheckAccountName, RefusesEachRuleWithItsOwnMessage) {
  EXPECT_EQ(CheckAccountName("Foo"),
            "account name 'Foo' must use lowercase letters, digits and '-'");
  EXPECT_EQ(CheckAccountName("foo_bar"),
            "account name 'foo_bar' must use lowercase letters, digits and '-'");
  EXPECT_EQ(CheckAccountName("1abc"), "account name '1abc' must start with a letter");
  EXPECT_EQ(CheckAccountName("-abc"), "account name '-abc' must start with a letter");
  EXPECT_EQ(CheckAccountName("ab"), "account name 'ab' is too short (2 characters); use 3 to 32");
  EXPECT_EQ(CheckAccountName(std::string(33, 'a')),
            "account name '" + std::string(33, 'a') +
                "' is too long (33 characters); use 3 to 32");
  EXPECT_EQ(CheckAccountName("abc-"), "account name 'abc-' must not end with '-'");
  EXPECT_EQ(CheckAccountName("ab--c"), "account name 'ab--c' must not contain '--'");
  EXPECT_EQ(CheckAccountName(""),
            "account name is empty; use 3 to 32 lowercase letters, digits and '-', starting "
            "with a letter");
}

TEST(CheckAccountName, RefusesReservedNames) {
  EXPECT_EQ(CheckAccountName("root"), "account name 'root' is reserved; pick another");
  for (const char* name : {"admin", "administrator", "exed", "system", "support", "help", "api",
                           "www", "mail", "lobby", "new", "register", "login", "logout", "null",
                           "nobody", "operator", "ca", "ssh", "vm", "vms", "daemon",
                           "postgres"}) {
    auto err = CheckAccountName(name);
    ASSERT_TRUE(err.has_value()) << name;
    EXPECT_NE(err->find("is reserved"), std::string::npos) << *err;
  }
  // Only exact matches are reserved.
  EXPECT_EQ(CheckAccountName("rooty"), std::nullopt);
  EXPECT_EQ(CheckAccountName("my-admin"), std::nullopt);
}

TEST(CheckAccountName, EscapesHostileValuesInMessages) {
  auto err = CheckAccountName("a\x1b[2Jb");
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(*err, "account name 'a\\x1b[2Jb' must use lowercase letters, digits and '-'");
  err = CheckAccountName(std::string(500, 'X'));
  ASSERT_TRUE(err.has_value());
  EXPECT_LT(err->size(), 120u) << *err;
  EXPECT_NE(err->find("...'"), std::string::npos) << *err;
}

TEST(CheckVmName, AcceptsDnsLabels) {
  // "x--y-z": only "--" in the third and fourth places is refused.
  for (const char* name : {"web", "my-vm", "brave-otter", "x--y-z", "abc-1-2-3", "ab-c--d",
                           "abcdefghijklmnopqrstuvwxyz0123456789abcd"}) {
    EXPECT_EQ(CheckVmName(name), std::nullopt) << name;
  }
}

TEST(CheckVmName, RefusesEachRule) {
  EXPECT_EQ(CheckVmName("My-VM"), "VM name 'My-VM' must use lowercase letters, digits and '-'");
  EXPECT_EQ(CheckVmName("my.vm"), "VM name 'my.vm' must use lowercase letters, digits and '-'");
  EXPECT_EQ(CheckVmName("9lives"), "VM name '9lives' must start with a letter");
  EXPECT_EQ(CheckVmName("vm"), "VM name 'vm' is too short (2 characters); use 3 to 40");
  EXPECT_EQ(CheckVmName(std::string(41, 'a')),
            "VM name '" + std::string(41, 'a') + "' is too long (41 characters); use 3 to 40");
  EXPECT_EQ(CheckVmName(std::string(40, 'a')), std::nullopt);
  EXPECT_EQ(CheckVmName("web-"), "VM name 'web-' must not end with '-'");
  auto err = CheckVmName("xn--80ak6aa92e");
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("third and fourth"), std::string::npos) << *err;
}

TEST(CheckVmName, RefusesReservedNames) {
  EXPECT_EQ(CheckVmName("www"), "VM name 'www' is reserved; pick another");
  EXPECT_EQ(CheckVmName("__exed"), "VM name '__exed' is reserved; pick another");
  for (const char* name : {"api", "admin", "login", "logout", "lobby", "ssh", "mail", "exed",
                           "static", "assets", "localhost", "root"}) {
    auto err = CheckVmName(name);
    ASSERT_TRUE(err.has_value()) << name;
    EXPECT_NE(err->find("is reserved"), std::string::npos) << *err;
  }
}

TEST(CheckKeyComment, AcceptsPrintableUtf8) {
  for (const char* c : {"laptop", "bob@work laptop", "x", "clé de Zoë", "🔑 yubikey"}) {
    EXPECT_EQ(CheckKeyComment(c), std::nullopt) << c;
  }
  EXPECT_EQ(CheckKeyComment(std::string(100, 'k')), std::nullopt);
}

TEST(CheckKeyComment, RefusesBadComments) {
  EXPECT_EQ(CheckKeyComment(""), "key comment is empty; give a short label such as 'laptop'");
  auto err = CheckKeyComment(std::string(101, 'k'));
  ASSERT_TRUE(err.has_value());
  EXPECT_NE(err->find("too long (101 bytes); use at most 100"), std::string::npos) << *err;
  EXPECT_EQ(CheckKeyComment(" laptop"),
            "key comment ' laptop' starts or ends with a space; remove the space");
  EXPECT_TRUE(CheckKeyComment("laptop ").has_value());
  for (std::string bad : {std::string("tab\there"), std::string("new\nline"),
                          std::string("esc\x1b[31m"), std::string("del\x7f"),
                          std::string("c1\xc2\x85"),           // U+0085 NEL
                          std::string("rlo\xe2\x80\xaegpj"),  // U+202E
                          std::string("bad\xff"), std::string("overlong\xc0\xaf"),
                          std::string("surrogate\xed\xa0\x80"), std::string("cut\xe2\x82"),
                          std::string("nul\0x", 5)}) {
    auto e = CheckKeyComment(bad);
    ASSERT_TRUE(e.has_value()) << bad;
    EXPECT_NE(e->find("control characters or invalid UTF-8"), std::string::npos) << *e;
    // The message itself must be safe to print.
    EXPECT_TRUE(IsPrintableUtf8(*e)) << *e;
  }
}

TEST(ForMessage, QuotesEscapesAndTruncates) {
  EXPECT_EQ(ForMessage("abc"), "'abc'");
  EXPECT_EQ(ForMessage("a\nb"), "'a\\x0ab'");
  EXPECT_EQ(ForMessage("\xff"), "'\\xff'");
  EXPECT_EQ(ForMessage("héllo"), "'héllo'");
  EXPECT_EQ(ForMessage("abcdef", 4), "'abcd...'");
  // A multi-byte character is never cut in half.
  EXPECT_EQ(ForMessage("abcé", 4), "'abc...'");
}

// A fixed sequence of numbers, as a deterministic rng.
std::function<uint32_t()> Sequence(std::vector<uint32_t> values) {
  auto i = std::make_shared<size_t>(0);
  return [values, i] { return values[(*i)++ % values.size()]; };
}

TEST(RandomVmName, IsDeterministicGivenTheRng) {
  EXPECT_EQ(RandomVmName(Sequence({0, 0})), "brave-otter");
  EXPECT_EQ(RandomVmName(Sequence({1, 7})), "calm-fox");
  EXPECT_EQ(RandomVmName(Sequence({1, 7})), RandomVmName(Sequence({41, 47})));
  EXPECT_NE(RandomVmName(Sequence({2, 3})), RandomVmName(Sequence({3, 2})));
}

TEST(RandomVmName, EveryNameIsAValidVmName) {
  std::set<std::string> seen;
  for (uint32_t a = 0; a < 40; ++a) {
    for (uint32_t n = 0; n < 40; ++n) {
      const std::string name = RandomVmName(Sequence({a, n}));
      EXPECT_EQ(CheckVmName(name), std::nullopt) << name;
      seen.insert(name);
    }
  }
  // 40 distinct adjectives and 40 distinct nouns: every pair differs.
  EXPECT_EQ(seen.size(), 1600u);
  // Large rng values are fine too.
  EXPECT_EQ(CheckVmName(RandomVmName(Sequence({0xFFFFFFFFu, 0xFFFFFFFEu}))), std::nullopt);
}

}  // namespace
}  // namespace control

TEST(ParseGatewayLogin, VmOrUserPlusVm) {
  using control::ParseGatewayLogin;
  auto plain = ParseGatewayLogin("web-1");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->vm, "web-1");
  EXPECT_EQ(plain->user, "");
  EXPECT_FALSE(plain->explicit_user);
  auto root = ParseGatewayLogin("root+web-1");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->user, "root");
  EXPECT_EQ(root->vm, "web-1");
  EXPECT_TRUE(root->explicit_user);
  EXPECT_EQ(ParseGatewayLogin("_svc-2+box")->user, "_svc-2");
}

TEST(ParseGatewayLogin, AnythingElseIsNotAVm) {
  using control::ParseGatewayLogin;
  for (const char* s : {"", "lobby", "Root", "ab", "a+", "+web-1", "Bad+web-1", "1x+web-1", "a b+web-1",
                        "web_1", "x+y+web-1", "-web"}) {
    EXPECT_FALSE(ParseGatewayLogin(s)) << s;
  }
  EXPECT_FALSE(ParseGatewayLogin(std::string(33, 'u') + "+web-1"));
  EXPECT_TRUE(ParseGatewayLogin(std::string(32, 'u') + "+web-1"));
}
