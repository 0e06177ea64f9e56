// The HTTPS front's sessions against a real PostgreSQL: login by code, the
// apex session, one-time host tokens, host-bound cookies, logout.
#include "control/pubkey.h"
#include "control/service.h"
#include "db/accounts.h"
#include "tests/integration/fixture.h"

namespace {

using control::Caller;
using control::Service;
using control::WebLoginState;

class WebTest : public itest::DbTest {
 protected:
  void SetUp() override {
    DbTest::SetUp();
    cfg_.domain = "exe.localhost";
    service_ = std::make_unique<Service>(*pool_, cfg_);
    alice_ = Register("alice");
  }
  Caller Register(const std::string& name) {
    auto key = control::ParsePublicKey(itest::NewPublicKey());
    Caller c{std::nullopt, "", key->fingerprint, key->Authorized(), "192.0.2.7"};
    auto r = service_->ExecuteLine(c, "register " + name, [] { return control::Result<std::string>(""); });
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return c;
  }
  control::Reply Run(Caller& c, const std::string& line) {
    return service_->ExecuteLine(c, line, [] { return control::Result<std::string>(""); });
  }
  // A browser logged in as `who`: the apex session's cookie value.
  std::string LogIn(Caller& who) {
    auto started = service_->StartWebLogin("198.51.100.9", "test-browser");
    EXPECT_TRUE(started.ok());
    auto r = Run(who, "login " + started->first);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string token;
    auto state = service_->FinishWebLogin(started->first, started->second, &token);
    EXPECT_TRUE(state.ok());
    EXPECT_EQ(*state, WebLoginState::kApproved);
    return token;
  }
  control::ServiceConfig cfg_;
  std::unique_ptr<Service> service_;
  Caller alice_;
};

TEST_F(WebTest, LoginByCodeGivesAnApexSession) {
  auto started = service_->StartWebLogin("198.51.100.9", "test-browser");
  ASSERT_TRUE(started.ok());
  EXPECT_EQ(started->first.size(), 9u) << started->first;  // XXXX-XXXX
  std::string token;
  EXPECT_EQ(*service_->FinishWebLogin(started->first, started->second, &token), WebLoginState::kPending);
  // Someone else's browser (another secret) cannot finish it.
  EXPECT_EQ(*service_->FinishWebLogin(started->first, "not-the-secret", &token), WebLoginState::kGone);
  // `login` says what it approves: the browser's address and agent.
  std::string lower = started->first;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto r = Run(alice_, "login " + lower);  // codes are not case-sensitive
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("198.51.100.9"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("test-browser"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("alice"), std::string::npos) << r.out;
  EXPECT_EQ(Run(alice_, "login " + started->first).exit_code, 1) << "approving twice";
  ASSERT_EQ(*service_->FinishWebLogin(started->first, started->second, &token), WebLoginState::kApproved);
  EXPECT_FALSE(token.empty());
  auto who = service_->WebSessionFor(token, "exe.localhost");
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->account, "alice");
  // The login is used up, and the apex cookie is worth nothing on a VM host.
  EXPECT_EQ(*service_->FinishWebLogin(started->first, started->second, &token), WebLoginState::kGone);
  EXPECT_FALSE(service_->WebSessionFor(token, "web.exe.localhost").ok());
}

TEST_F(WebTest, UnknownCodeIsExplained) {
  auto r = Run(alice_, "login ABCD-EFGH");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no login waiting"), std::string::npos) << r.err;
}

TEST_F(WebTest, HostTokensAreOneTimeAndBoundToTheirHost) {
  std::string apex_token = LogIn(alice_);
  auto apex = service_->WebSessionFor(apex_token, "exe.localhost");
  ASSERT_TRUE(apex.ok());
  auto t = service_->MintHostToken(*apex, "web.exe.localhost");
  ASSERT_TRUE(t.ok());
  control::WebIdentity who;
  // Presented on another host: refused, and used up.
  EXPECT_FALSE(service_->RedeemHostToken(*t, "evil.exe.localhost", &who).ok());
  EXPECT_FALSE(service_->RedeemHostToken(*t, "web.exe.localhost", &who).ok());
  auto t2 = service_->MintHostToken(*apex, "web.exe.localhost");
  auto cookie = service_->RedeemHostToken(*t2, "web.exe.localhost", &who);
  ASSERT_TRUE(cookie.ok());
  EXPECT_EQ(who.account, "alice");
  EXPECT_FALSE(service_->RedeemHostToken(*t2, "web.exe.localhost", &who).ok()) << "a token works once";
  EXPECT_TRUE(service_->WebSessionFor(*cookie, "web.exe.localhost").ok());
  EXPECT_FALSE(service_->WebSessionFor(*cookie, "other.exe.localhost").ok()) << "host-only";
  EXPECT_FALSE(service_->WebSessionFor(*cookie, "exe.localhost").ok());
  // Only hashes are stored.
  pqxx::connection c(url_);
  pqxx::work tx(c);
  EXPECT_EQ(tx.exec_params1("SELECT count(*) FROM web_sessions WHERE token_hash = $1", *cookie)[0].as<int>(), 0);
}

TEST_F(WebTest, LogoutOnAnyHostEndsTheWholeLogin) {
  std::string apex_token = LogIn(alice_);
  auto apex = service_->WebSessionFor(apex_token, "exe.localhost");
  control::WebIdentity who;
  auto c1 = service_->RedeemHostToken(*service_->MintHostToken(*apex, "a1.exe.localhost"), "a1.exe.localhost", &who);
  auto c2 = service_->RedeemHostToken(*service_->MintHostToken(*apex, "b2.exe.localhost"), "b2.exe.localhost", &who);
  ASSERT_TRUE(c1.ok() && c2.ok());
  std::string other = LogIn(alice_);  // another browser's login survives
  auto on_a1 = service_->WebSessionFor(*c1, "a1.exe.localhost");
  ASSERT_TRUE(on_a1.ok());
  ASSERT_TRUE(service_->WebLogout(*on_a1).ok());
  EXPECT_FALSE(service_->WebSessionFor(apex_token, "exe.localhost").ok());
  EXPECT_FALSE(service_->WebSessionFor(*c1, "a1.exe.localhost").ok());
  EXPECT_FALSE(service_->WebSessionFor(*c2, "b2.exe.localhost").ok());
  EXPECT_TRUE(service_->WebSessionFor(other, "exe.localhost").ok());
}

}  // namespace
