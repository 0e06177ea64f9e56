#include "control/api_token.h"

#include <gtest/gtest.h>

#include <set>

namespace control {
namespace {

TEST(ApiToken, IsPrefixedRandomBase64Url) {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    auto t = NewApiToken();
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t->substr(0, 5), "exed_");
    EXPECT_EQ(t->size(), 5u + 43u) << "32 bytes are 43 unpadded base64 characters";
    EXPECT_EQ(t->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 5),
              std::string::npos)
        << *t;
    seen.insert(*t);
  }
  EXPECT_EQ(seen.size(), 50u);
}

TEST(ApiToken, HashIsSha256Hex) {
  EXPECT_EQ(ApiTokenHash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(ApiTokenHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ApiToken, BearerHeader) {
  EXPECT_EQ(*BearerToken("Bearer exed_abc"), "exed_abc");
  EXPECT_EQ(*BearerToken("  bearer   exed_abc  "), "exed_abc") << "the scheme is case-insensitive";
  for (const char* bad : {"", "   ", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "exed_abc", "Bearer a b",
                          "Bearer abc", "Bearerexed_abc"}) {
    auto r = BearerToken(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kDenied);
  }
  EXPECT_NE(BearerToken("").error().message.find("missing"), std::string::npos);
  EXPECT_NE(BearerToken("Basic x").error().message.find("'Bearer TOKEN'"), std::string::npos);
  EXPECT_EQ(BearerToken("Bearer secretvalue").error().message.find("secretvalue"), std::string::npos)
      << "a wrong token is never echoed";
}

TEST(ApiToken, Durations) {
  EXPECT_EQ(*ParseDuration("90m"), 90 * 60);
  EXPECT_EQ(*ParseDuration("12h"), 12 * 3600);
  EXPECT_EQ(*ParseDuration("30d"), 30 * 86400);
  EXPECT_EQ(*ParseDuration("2w"), 14 * 86400);
  EXPECT_EQ(*ParseDuration("60s"), 60);
  EXPECT_EQ(*ParseDuration("3650d"), 3650LL * 86400);
  for (const char* bad : {"", "d", "30", "30x", "-1d", "1.5h", "30 d", "59s", "3651d", "99999999999999d", "0m"}) {
    auto r = ParseDuration(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
    EXPECT_NE(r.error().message.find("--exp"), std::string::npos);
  }
}

TEST(ApiToken, CommandListsNameRealCommands) {
  auto r = ParseCommandList("ls,new, whoami ,ssh-key list,ls");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, (std::vector<std::string>{"ls", "new", "whoami", "ssh-key list"}));
  EXPECT_EQ(*ParseCommandList("ssh-key"), (std::vector<std::string>{"ssh-key"})) << "a group";
  auto bad = ParseCommandList("ls,lsx");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("'lsx'"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(ParseCommandList("").ok());
  EXPECT_FALSE(ParseCommandList("ls,,new").ok());
  EXPECT_FALSE(ParseCommandList("ssh-key nosuch").ok());
  EXPECT_FALSE(ParseCommandList("ssh").ok()) << "a prefix of a group is not a group";
}

TEST(ApiToken, CommandAllowed) {
  EXPECT_TRUE(CommandAllowed({}, "rm"));
  EXPECT_TRUE(CommandAllowed({"ls", "whoami"}, "whoami"));
  EXPECT_FALSE(CommandAllowed({"ls", "whoami"}, "rm"));
  EXPECT_TRUE(CommandAllowed({"ls"}, "help"));
  EXPECT_TRUE(CommandAllowed({"ssh-key"}, "ssh-key list"));
  EXPECT_FALSE(CommandAllowed({"ssh-key list"}, "ssh-key add"));
  EXPECT_FALSE(CommandAllowed({"share"}, "share-x"));
}

TEST(ApiToken, Labels) {
  EXPECT_FALSE(CheckTokenLabel("ci-deploy_1.prod").has_value());
  EXPECT_TRUE(CheckTokenLabel("").has_value());
  EXPECT_TRUE(CheckTokenLabel("12").has_value()) << "would read as an id";
  EXPECT_TRUE(CheckTokenLabel("has space").has_value());
  EXPECT_TRUE(CheckTokenLabel(std::string(65, 'a')).has_value());
}

}  // namespace
}  // namespace control
