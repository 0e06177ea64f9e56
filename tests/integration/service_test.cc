// control::Service against a real PostgreSQL: registration, keys, budgets,
// limits, and the races that only a real database shows.
#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "control/pubkey.h"
#include "control/service.h"
#include "db/accounts.h"
#include "db/audit.h"
#include "tests/integration/fixture.h"

namespace {

using control::Caller;
using control::Service;
using nlohmann::json;

class ServiceTest : public itest::DbTest {
 protected:
  Caller NewCaller(const std::string& addr = "192.0.2.1") {
    auto key = control::ParsePublicKey(itest::NewPublicKey());
    EXPECT_TRUE(key.ok());
    return Caller{std::nullopt, "", key->fingerprint, key->Authorized(), addr};
  }
  control::Reply Run(Service& s, Caller& c, const std::string& line, const std::string& stdin_data = "") {
    return s.ExecuteLine(c, line, [&] { return control::Result<std::string>(stdin_data); });
  }
  control::ServiceConfig cfg_;
};

TEST_F(ServiceTest, RegisterGivesDefaultBudgetAndWhoamiJson) {
  cfg_.default_budget = {3, 2048, 20, 4};
  Service s(*pool_, cfg_);
  Caller c = NewCaller();
  auto r = Run(s, c, "register alice");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(c.account_id.has_value());
  auto w = Run(s, c, "whoami --json");
  ASSERT_EQ(w.exit_code, 0) << w.err;
  auto j = json::parse(w.out);
  EXPECT_EQ(j["name"], "alice");
  EXPECT_EQ(j["budget"]["cpus"], 3);
  EXPECT_EQ(j["budget"]["memory_mib"], 2048);
  EXPECT_EQ(j["budget"]["disk_gib"], 20);
  EXPECT_EQ(j["budget"]["vms"], 4);
  EXPECT_EQ(j["usage"]["vms"], 0);
  ASSERT_EQ(j["keys"].size(), 1u);
  EXPECT_EQ(j["keys"][0]["fingerprint"], c.fingerprint);
  // A new connection with the same key is recognised.
  auto again = s.Identify(c.fingerprint, c.public_key, "192.0.2.1");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->account_name, "alice");
}

TEST_F(ServiceTest, UsageIsTheSumOverTheAccountsVms) {
  Service s(*pool_, cfg_);
  Caller c = NewCaller();
  ASSERT_EQ(Run(s, c, "register bob").exit_code, 0);
  {
    auto conn = pool_->Acquire();
    pqxx::work tx(*conn);
    tx.exec_params0("INSERT INTO vms (account_id, name, status, cpus, memory_mib, disk_gib) VALUES "
                    "($1, 'one', 'running', 1, 512, 10), ($1, 'two', 'running', 2, 1024, 5)",
                    *c.account_id);
    tx.commit();
  }
  auto j = json::parse(Run(s, c, "whoami --json").out);
  EXPECT_EQ(j["usage"]["cpus"], 3);
  EXPECT_EQ(j["usage"]["memory_mib"], 1536);
  EXPECT_EQ(j["usage"]["disk_gib"], 15);
  EXPECT_EQ(j["usage"]["vms"], 2);
}

TEST_F(ServiceTest, ConcurrentRegistrationsOfOneNameExactlyOneWins) {
  cfg_.registrations_per_hour = 1000;
  Service s(*pool_, cfg_);
  std::vector<Caller> callers;
  for (int i = 0; i < 10; ++i) callers.push_back(NewCaller("192.0.2." + std::to_string(i + 1)));
  std::atomic<int> wins{0}, taken{0}, other{0};
  std::vector<std::thread> threads;
  for (auto& c : callers) {
    threads.emplace_back([&] {
      auto r = Run(s, c, "register carol");
      if (r.exit_code == 0) {
        ++wins;
      } else if (r.err.find("is taken") != std::string::npos) {
        ++taken;
      } else {
        ++other;
        ADD_FAILURE() << r.err;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
  EXPECT_EQ(taken.load(), 9);
  auto conn = pool_->Acquire();
  pqxx::work tx(*conn);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM accounts")[0].as<int>(), 1);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM ssh_keys")[0].as<int>(), 1) << "losers leave no key behind";
}

TEST_F(ServiceTest, SshKeyAddListRenameRemove) {
  Service s(*pool_, cfg_);
  Caller c = NewCaller();
  ASSERT_EQ(Run(s, c, "register dave").exit_code, 0);
  std::string second = itest::NewPublicKey("laptop");
  auto add = Run(s, c, "ssh-key add " + second);
  ASSERT_EQ(add.exit_code, 0) << add.err;
  auto list = json::parse(Run(s, c, "ssh-key list --json").out);
  ASSERT_EQ(list["keys"].size(), 2u);
  EXPECT_EQ(list["keys"][1]["comment"], "laptop");

  auto dup = Run(s, c, "ssh-key add " + second);
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_NE(dup.err.find("already in your account"), std::string::npos) << dup.err;

  auto same_comment = Run(s, c, "ssh-key add --comment laptop", itest::NewPublicKey());
  EXPECT_EQ(same_comment.exit_code, 1);
  EXPECT_NE(same_comment.err.find("already have a key named 'laptop'"), std::string::npos) << same_comment.err;

  ASSERT_EQ(Run(s, c, "ssh-key rename laptop desk").exit_code, 0);
  EXPECT_EQ(json::parse(Run(s, c, "ssh-key list --json").out)["keys"][1]["comment"], "desk");
  ASSERT_EQ(Run(s, c, "ssh-key remove desk").exit_code, 0);
  auto last = Run(s, c, "ssh-key remove key-1");
  EXPECT_EQ(last.exit_code, 1);
  EXPECT_NE(last.err.find("only key"), std::string::npos) << last.err;
  auto missing = Run(s, c, "ssh-key remove nosuch");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no key 'nosuch'"), std::string::npos);
}

TEST_F(ServiceTest, KeyFromStdinAndKeyOfAnotherAccount) {
  Service s(*pool_, cfg_);
  Caller a = NewCaller(), b = NewCaller();
  ASSERT_EQ(Run(s, a, "register erin").exit_code, 0);
  ASSERT_EQ(Run(s, b, "register frank").exit_code, 0);
  auto r = Run(s, a, "ssh-key add", b.public_key + " stolen\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("another account"), std::string::npos) << r.err;
  auto empty = Run(s, a, "ssh-key add", "");
  EXPECT_EQ(empty.exit_code, 2);
  auto ok = Run(s, a, "ssh-key add", itest::NewPublicKey("piped") + "\n");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

TEST_F(ServiceTest, UnregisteredKeyIsToldHowToRegister) {
  cfg_.ssh_hint = "ssh -p 2222 localhost";
  Service s(*pool_, cfg_);
  Caller c = NewCaller();
  auto r = Run(s, c, "whoami");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ssh -p 2222 localhost register NAME"), std::string::npos) << r.err;
  EXPECT_EQ(Run(s, c, "help").exit_code, 0) << "help needs no account";
}

TEST_F(ServiceTest, ClosedAndInviteRegistration) {
  cfg_.registration = control::Registration::kClosed;
  {
    Service s(*pool_, cfg_);
    Caller c = NewCaller();
    auto r = Run(s, c, "register gina");
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("registration is closed"), std::string::npos) << r.err;
  }
  cfg_.registration = control::Registration::kInvite;
  Service s(*pool_, cfg_);
  {
    auto conn = pool_->Acquire();
    pqxx::work tx(*conn);
    db::CreateInvite(tx, "abcd-efgh");
    tx.commit();
  }
  Caller c = NewCaller();
  EXPECT_EQ(Run(s, c, "register gina").exit_code, 1);
  EXPECT_EQ(Run(s, c, "register gina --invite wrong").exit_code, 1);
  EXPECT_FALSE(c.account_id.has_value()) << "a wrong invite creates nothing";
  ASSERT_EQ(Run(s, c, "register gina --invite abcd-efgh").exit_code, 0);
  Caller d = NewCaller();
  auto reuse = Run(s, d, "register hank --invite abcd-efgh");
  EXPECT_EQ(reuse.exit_code, 1);
  EXPECT_NE(reuse.err.find("already used"), std::string::npos) << reuse.err;
}

TEST_F(ServiceTest, RegistrationsPerAddressPerHourAreLimited) {
  cfg_.registrations_per_hour = 2;
  Service s(*pool_, cfg_);
  Caller a = NewCaller("198.51.100.7"), b = NewCaller("198.51.100.7"), c = NewCaller("198.51.100.7");
  Caller other = NewCaller("198.51.100.8");
  EXPECT_EQ(Run(s, a, "register ivan").exit_code, 0);
  EXPECT_EQ(Run(s, b, "register judy").exit_code, 0);
  auto r = Run(s, c, "register kate");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("too many registrations from 198.51.100.7"), std::string::npos) << r.err;
  EXPECT_EQ(Run(s, other, "register kate").exit_code, 0) << "other addresses are not affected";
}

TEST_F(ServiceTest, BadNamesAndUsageErrors) {
  Service s(*pool_, cfg_);
  Caller c = NewCaller();
  auto bad = Run(s, c, "register Bad_Name");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("Bad_Name"), std::string::npos);
  auto unknown = Run(s, c, "whomai");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("did you mean 'whoami'"), std::string::npos) << unknown.err;
  auto quote = Run(s, c, "register 'open");
  EXPECT_EQ(quote.exit_code, 2);
}

TEST_F(ServiceTest, HistoryIsKeptPerAccountAndTrimmed) {
  cfg_.history_keep = 3;
  Service s(*pool_, cfg_);
  Caller a = NewCaller(), b = NewCaller();
  ASSERT_EQ(Run(s, a, "register lena").exit_code, 0);
  ASSERT_EQ(Run(s, b, "register mike").exit_code, 0);
  for (const char* l : {"one", "two", "three", "four"}) s.AppendHistory(*a.account_id, l);
  s.AppendHistory(*b.account_id, "other");
  EXPECT_EQ(s.LoadHistory(*a.account_id), (std::vector<std::string>{"two", "three", "four"}));
  EXPECT_EQ(s.LoadHistory(*b.account_id), (std::vector<std::string>{"other"}));
}

TEST_F(ServiceTest, AuditLogRecordsWhoDidWhat) {
  Service s(*pool_, cfg_);
  Caller c = NewCaller("203.0.113.5");
  ASSERT_EQ(Run(s, c, "register nora").exit_code, 0);
  ASSERT_EQ(Run(s, c, "ssh-key add " + itest::NewPublicKey("x")).exit_code, 0);
  auto conn = pool_->Acquire();
  pqxx::work tx(*conn);
  auto rows = db::RecentAudit(tx, 10);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].action, "ssh-key.add");
  EXPECT_EQ(rows[1].action, "register");
  EXPECT_EQ(rows[1].actor, "nora");
  EXPECT_EQ(rows[1].source_addr, "203.0.113.5");
}

}  // namespace
