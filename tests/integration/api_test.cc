// The /exec API's tokens against a real PostgreSQL: making, using, limiting,
// expiring, revoking and rate-limiting them, and the HTTP status of each
// kind of answer.
#include <nlohmann/json.hpp>

#include "control/api_token.h"
#include "control/pubkey.h"
#include "control/service.h"
#include "db/audit.h"
#include "tests/integration/fixture.h"

namespace {

using control::ApiReply;
using control::Caller;
using control::Service;
using nlohmann::json;

class ApiTest : public itest::DbTest {
 protected:
  Caller Registered(Service& s, const std::string& name) {
    auto key = control::ParsePublicKey(itest::NewPublicKey());
    EXPECT_TRUE(key.ok());
    Caller c{std::nullopt, "", key->fingerprint, key->Authorized(), "192.0.2.1"};
    auto r = Run(s, c, "register " + name);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return c;
  }
  control::Reply Run(Service& s, Caller& c, const std::string& line) {
    return s.ExecuteLine(c, line, [] { return control::Result<std::string>(std::string()); });
  }
  // Makes a token over "SSH"; returns the --json answer.
  json Generate(Service& s, Caller& c, const std::string& flags = "") {
    auto r = Run(s, c, "ssh-key generate-api-key --json " + flags);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out) : json::object();
  }
  static std::string Bearer(const json& t) { return "Bearer " + t.value("token", std::string()); }
  // The reply, checked to be a JSON object; on errors, one with "error".
  static json Body(const ApiReply& r) {
    auto j = json::parse(r.json, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << r.json;
    if (r.status != 200) {
      EXPECT_TRUE(j.contains("error")) << r.json;
      EXPECT_TRUE(j["error"].is_string()) << r.json;
    }
    return j;
  }
  control::ServiceConfig cfg_;
};

TEST_F(ApiTest, GeneratedTokenRunsWhoamiAsItsAccount) {
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "alice");
  json t = Generate(s, c, "--label ci");
  ASSERT_TRUE(t["token"].is_string());
  EXPECT_EQ(t["token"].get<std::string>().rfind("exed_", 0), 0u);
  EXPECT_EQ(t["label"], "ci");
  EXPECT_TRUE(t["cmds"].is_array() && t["cmds"].empty());
  EXPECT_TRUE(t["expires_at"].is_null());
  EXPECT_TRUE(t["id"].is_number_integer());

  auto r = s.ExecApi(Bearer(t), "whoami", "198.51.100.4");
  ASSERT_EQ(r.status, 200) << r.json;
  json j = Body(r);
  EXPECT_EQ(j["name"], "alice");
  EXPECT_EQ(j["keys"].size(), 1u);
  EXPECT_EQ(j["budget"]["cpus"], cfg_.default_budget.cpus);
  // --json given or not, the answer is the same JSON.
  EXPECT_EQ(json::parse(s.ExecApi(Bearer(t), "whoami --json\n", "198.51.100.4").json), j);
}

TEST_F(ApiTest, MissingMalformedAndUnknownTokensAre401) {
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "bob");
  json t = Generate(s, c);
  struct Case {
    std::string header, says;
  };
  for (const Case& k : std::vector<Case>{{"", "missing"},
                                         {"Basic Ym9iOnB3", "Bearer TOKEN"},
                                         {"Bearer", "Bearer TOKEN"},
                                         {"Bearer notatoken", "start with 'exed_'"},
                                         {"Bearer exed_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "unknown"},
                                         {Bearer(t) + "x", "unknown"}}) {
    auto r = s.ExecApi(k.header, "whoami", "198.51.100.4");
    EXPECT_EQ(r.status, 401) << k.header << ": " << r.json;
    json j = Body(r);
    EXPECT_NE(j.value("error", "").find(k.says), std::string::npos) << j;
  }
}

TEST_F(ApiTest, RevokedTokenIs401AndOnlyTheOwnerCanRevoke) {
  Service s(*pool_, cfg_);
  Caller a = Registered(s, "carol"), b = Registered(s, "dave");
  json t1 = Generate(s, a, "--label first"), t2 = Generate(s, a);
  EXPECT_EQ(t2["label"], "api-key-2");
  ASSERT_EQ(s.ExecApi(Bearer(t1), "whoami", "").status, 200);

  // Another account's token cannot name it.
  json tb = Generate(s, b);
  auto other = s.ExecApi(Bearer(tb), "ssh-key revoke-api-key " + std::to_string(t1["id"].get<int64_t>()), "");
  EXPECT_EQ(other.status, 404) << other.json;
  EXPECT_EQ(s.ExecApi(Bearer(t1), "whoami", "").status, 200);

  auto rv = Run(s, a, "ssh-key revoke-api-key first");
  ASSERT_EQ(rv.exit_code, 0) << rv.err;
  EXPECT_NE(rv.out.find("revoked API token"), std::string::npos);
  auto r = s.ExecApi(Bearer(t1), "whoami", "");
  EXPECT_EQ(r.status, 401) << r.json;
  EXPECT_NE(Body(r).value("error", "").find("revoked"), std::string::npos);
  // By id, over the API itself (a token may revoke itself).
  auto self = s.ExecApi(Bearer(t2), "ssh-key revoke-api-key " + std::to_string(t2["id"].get<int64_t>()), "");
  EXPECT_EQ(self.status, 200) << self.json;
  EXPECT_EQ(Body(self)["revoked"]["id"], t2["id"]);
  EXPECT_EQ(s.ExecApi(Bearer(t2), "whoami", "").status, 401);
  auto again = Run(s, a, "ssh-key revoke-api-key first");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("no API token labelled 'first'"), std::string::npos) << again.err;
  // A revoked token's label may be used again.
  EXPECT_EQ(Generate(s, a, "--label first")["label"], "first");
}

TEST_F(ApiTest, ExpiredTokenIs401) {
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "erin");
  json t = Generate(s, c, "--exp 1h --label short");
  ASSERT_TRUE(t["expires_at"].is_string()) << t;
  ASSERT_EQ(s.ExecApi(Bearer(t), "whoami", "").status, 200);
  {
    auto conn = pool_->Acquire();
    pqxx::work tx(*conn);
    tx.exec_params0("UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = $1",
                    t["id"].get<int64_t>());
    tx.commit();
  }
  auto r = s.ExecApi(Bearer(t), "whoami", "");
  EXPECT_EQ(r.status, 401) << r.json;
  EXPECT_NE(Body(r).value("error", "").find("expired"), std::string::npos) << r.json;
  auto list = json::parse(Run(s, c, "ssh-key api-keys --json").out);
  ASSERT_EQ(list["api_keys"].size(), 1u);
  EXPECT_EQ(list["api_keys"][0]["expired"], true);
  EXPECT_NE(Run(s, c, "ssh-key api-keys").out.find("expired"), std::string::npos);
}

TEST_F(ApiTest, TokenRunsOnlyItsCommands) {
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "frank");
  json t = Generate(s, c, "--cmds 'whoami,ssh-key list'");
  EXPECT_EQ(t["cmds"], json({"whoami", "ssh-key list"}));
  EXPECT_EQ(s.ExecApi(Bearer(t), "whoami", "").status, 200);
  EXPECT_EQ(s.ExecApi(Bearer(t), "ssh-key list", "").status, 200);
  EXPECT_EQ(s.ExecApi(Bearer(t), "help", "").status, 200) << "help is always allowed";
  for (const char* line : {"ls", "ssh-key add ssh-ed25519 AAAA", "ssh-key revoke-api-key 1", "rm web"}) {
    auto r = s.ExecApi(Bearer(t), line, "");
    EXPECT_EQ(r.status, 403) << line << ": " << r.json;
    std::string e = Body(r).value("error", "");
    EXPECT_NE(e.find("may not run"), std::string::npos) << e;
    EXPECT_NE(e.find("'whoami', 'ssh-key list'"), std::string::npos) << e;
  }
  EXPECT_NE(Body(s.ExecApi(Bearer(t), "ls -l", "")).value("error", "").find("'ls'"), std::string::npos);
  // A group stands for its subcommands.
  json g = Generate(s, c, "--cmds ssh-key");
  EXPECT_EQ(s.ExecApi(Bearer(g), "ssh-key api-keys", "").status, 200);
  EXPECT_EQ(s.ExecApi(Bearer(g), "whoami", "").status, 403);
}

TEST_F(ApiTest, TokensCannotMakeTokens) {
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "gina");
  json t = Generate(s, c);
  auto r = s.ExecApi(Bearer(t), "ssh-key generate-api-key --label more", "");
  EXPECT_EQ(r.status, 403) << r.json;
  EXPECT_NE(Body(r).value("error", "").find("over SSH"), std::string::npos);
  EXPECT_EQ(json::parse(Run(s, c, "ssh-key api-keys --json").out)["api_keys"].size(), 1u);
}

TEST_F(ApiTest, RateLimitedPerTokenWith429) {
  cfg_.api_rate_per_second = 0.001;  // no refill within the test
  cfg_.api_burst = 3;
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "hank");
  json t = Generate(s, c), other = Generate(s, c);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(s.ExecApi(Bearer(t), "whoami", "").status, 200) << i;
  auto r = s.ExecApi(Bearer(t), "whoami", "");
  EXPECT_EQ(r.status, 429) << r.json;
  EXPECT_EQ(Body(r).value("error", "").rfind("rate limit: ", 0), 0u) << r.json;
  EXPECT_EQ(s.ExecApi(Bearer(other), "whoami", "").status, 200) << "each token has its own bucket";
  EXPECT_EQ(s.ExecApi("Bearer exed_nosuch", "whoami", "").status, 401) << "a bad token is not rate-limited as one";
}

TEST_F(ApiTest, TokenIsStoredOnlyAsItsHash) {
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "jack");
  json t = Generate(s, c, "--label stored");
  std::string token = t["token"];
  ASSERT_EQ(s.ExecApi(Bearer(t), "whoami", "").status, 200);
  auto conn = pool_->Acquire();
  pqxx::work tx(*conn);
  auto row = tx.exec1("SELECT token_hash, t::text FROM api_tokens t");
  EXPECT_EQ(row[0].as<std::string>(), control::ApiTokenHash(token));
  std::string secret = token.substr(5);  // the random part
  EXPECT_EQ(row[1].as<std::string>().find(secret), std::string::npos) << row[1].as<std::string>();
  // Nor anywhere else in the database's tables we write.
  for (const char* q : {"SELECT coalesce(string_agg(a::text, ' '), '') FROM audit_log a",
                        "SELECT coalesce(string_agg(h::text, ' '), '') FROM lobby_history h"}) {
    EXPECT_EQ(tx.exec1(q)[0].as<std::string>().find(secret), std::string::npos) << q;
  }
}

TEST_F(ApiTest, ListShowsTokensAndLastUse) {
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "kate");
  json t = Generate(s, c, "--label deploy --cmds ls,whoami --exp 30d");
  auto before = json::parse(Run(s, c, "ssh-key api-keys --json").out)["api_keys"];
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0]["id"], t["id"]);
  EXPECT_EQ(before[0]["label"], "deploy");
  EXPECT_EQ(before[0]["cmds"], json({"ls", "whoami"}));
  EXPECT_EQ(before[0]["expires_at"], t["expires_at"]);
  EXPECT_TRUE(before[0]["last_used_at"].is_null());
  EXPECT_FALSE(before[0].contains("token"));
  ASSERT_EQ(s.ExecApi(Bearer(t), "whoami", "").status, 200);
  auto after = json::parse(Run(s, c, "ssh-key api-keys --json").out)["api_keys"];
  EXPECT_TRUE(after[0]["last_used_at"].is_string()) << after;
  std::string text = Run(s, c, "ssh-key api-keys").out;
  EXPECT_NE(text.find("deploy"), std::string::npos) << text;
  EXPECT_NE(text.find("ls,whoami"), std::string::npos) << text;
  EXPECT_EQ(text.find(t["token"].get<std::string>()), std::string::npos);
  // Another account sees none of them.
  Caller o = Registered(s, "liam");
  EXPECT_EQ(json::parse(Run(s, o, "ssh-key api-keys --json").out)["api_keys"].size(), 0u);
}

TEST_F(ApiTest, GenerateTextShowsTheTokenOnceAndLabelsAreUnique) {
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "mona");
  auto r = Run(s, c, "ssh-key generate-api-key --label laptop");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("exed_"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("will not be shown again"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("never expires"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("may run every command"), std::string::npos) << r.out;
  auto limited = Run(s, c, "ssh-key generate-api-key --cmds ls,whoami --exp 2w");
  ASSERT_EQ(limited.exit_code, 0) << limited.err;
  EXPECT_NE(limited.out.find("may run only ls,whoami; it expires at 20"), std::string::npos) << limited.out;
  auto dup = Run(s, c, "ssh-key generate-api-key --label laptop");
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_NE(dup.err.find("already have an API token labelled 'laptop'"), std::string::npos) << dup.err;
  auto bad = Run(s, c, "ssh-key generate-api-key --cmds ls,bogus");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("'bogus'"), std::string::npos) << bad.err;
}

TEST_F(ApiTest, CommandErrorsMapToHttpStatuses) {
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "nick");
  json t = Generate(s, c);
  struct Case {
    std::string body;
    int status;
    std::string says;
  };
  for (const Case& k : std::vector<Case>{
           {"whomai", 400, "did you mean 'whoami'"},
           {"ls --nosuch", 400, "no flag '--nosuch'"},
           {"'unterminated", 400, "quote"},
           {"", 400, "empty command"},
           {"ssh-key add", 400, "standard input"},
           {"ssh-key add --comment x", 400, "/exec has none"},
           {"ssh-key remove nosuch", 404, "no key 'nosuch'"},
           {"ssh-key remove key-1", 403, "only key"},
           {"register another", 409, "already belongs"},
           {"ls", 500, "runs no VMs"},
       }) {
    auto r = s.ExecApi(Bearer(t), k.body, "");
    EXPECT_EQ(r.status, k.status) << k.body << ": " << r.json;
    EXPECT_NE(Body(r).value("error", "").find(k.says), std::string::npos) << k.body << ": " << r.json;
  }
  // Help prints text for a group; the API still answers JSON.
  auto h = s.ExecApi(Bearer(t), "help ssh-key", "");
  EXPECT_EQ(h.status, 200);
  EXPECT_NE(Body(h).value("output", "").find("generate-api-key"), std::string::npos) << h.json;
}

TEST_F(ApiTest, OversizedBodyIs413) {
  cfg_.api_max_body_bytes = 100;
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "olga");
  json t = Generate(s, c);
  EXPECT_EQ(s.ExecApi(Bearer(t), "whoami" + std::string(94, ' '), "").status, 200) << "100 bytes is the limit";
  auto big = s.ExecApi(Bearer(t), std::string(101, 'x'), "");
  EXPECT_EQ(big.status, 413) << big.json;
  EXPECT_NE(Body(big).value("error", "").find("limit is 100"), std::string::npos);
}

TEST_F(ApiTest, EachCallIsAuditedWithItsToken) {
  Service s(*pool_, cfg_);
  Caller c = Registered(s, "paul");
  json t = Generate(s, c, "--cmds whoami");
  ASSERT_EQ(s.ExecApi(Bearer(t), "whoami", "203.0.113.9").status, 200);
  ASSERT_EQ(s.ExecApi(Bearer(t), "ls", "203.0.113.9").status, 403);
  auto conn = pool_->Acquire();
  pqxx::work tx(*conn);
  auto rows = db::RecentAudit(tx, 10);
  ASSERT_GE(rows.size(), 3u);
  EXPECT_EQ(rows[0].action, "api.exec");
  EXPECT_EQ(rows[0].actor, "paul");
  EXPECT_EQ(rows[0].source_addr, "203.0.113.9");
  json d0 = json::parse(rows[0].detail_json), d1 = json::parse(rows[1].detail_json);
  EXPECT_EQ(d0["token_id"], t["id"]);
  EXPECT_EQ(d0["command"], "ls");
  EXPECT_EQ(d0["status"], 403);
  EXPECT_EQ(d1["command"], "whoami");
  EXPECT_EQ(d1["status"], 200);
  EXPECT_EQ(rows[2].action, "api-key.generate");
}

}  // namespace
