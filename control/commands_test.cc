#include "control/commands.h"

#include <gtest/gtest.h>

#include "control/argsplit.h"

namespace control {
namespace {

Result<Request> Parse(std::string_view line) {
  auto words = SplitArgs(line);
  EXPECT_TRUE(words.ok());
  return ParseRequest(*words);
}

TEST(Commands, NewTakesSizesEnvTagsAndScript) {
  auto r = Parse("new --name web --image tiny --cpus 2 --memory 1.5G --disk 20G --env A=1 --env 'B=two words' "
                 "--tag x --tag y --setup-script 'echo hi' --json");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->json);
  const auto& n = std::get<NewVm>(r->command);
  EXPECT_EQ(n.name, "web");
  EXPECT_EQ(n.image, "tiny");
  EXPECT_EQ(n.cpus, 2);
  EXPECT_EQ(n.memory_mib, 1536);
  EXPECT_EQ(n.disk_gib, 20);
  ASSERT_EQ(n.env.size(), 2u);
  EXPECT_EQ(n.env[1], (std::pair<std::string, std::string>{"B", "two words"}));
  EXPECT_EQ(n.tags, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(n.setup_script, "echo hi");
  EXPECT_FALSE(n.setup_from_stdin);
  auto d = Parse("new --setup-script -");
  EXPECT_TRUE(std::get<NewVm>(d->command).setup_from_stdin);
  auto defaults = Parse("new");
  EXPECT_FALSE(std::get<NewVm>(defaults->command).cpus.has_value());
}

TEST(Commands, BadValuesAreUsageErrorsNamingTheFlag) {
  auto r = Parse("new --memory lots");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
  EXPECT_NE(r.error().message.find("--memory"), std::string::npos) << r.error().message;
  auto env = Parse("new --env NOEQUALS");
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.error().message.find("KEY=VALUE"), std::string::npos);
  auto twice = Parse("new --name a --name b");
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().message.find("given twice"), std::string::npos);
  auto resize = Parse("resize web");
  ASSERT_FALSE(resize.ok());
  EXPECT_NE(resize.error().message.find("at least one of"), std::string::npos);
  EXPECT_FALSE(Parse("rm").ok());
  EXPECT_FALSE(Parse("rename only-one").ok());
}

TEST(Commands, ShortFlagsAndSubcommands) {
  auto ls = Parse("ls -l 'web-*'");
  ASSERT_TRUE(ls.ok());
  EXPECT_TRUE(std::get<ListVms>(ls->command).long_format);
  EXPECT_EQ(std::get<ListVms>(ls->command).pattern, "web-*");
  auto tag = Parse("tag -d web a b");
  ASSERT_TRUE(tag.ok());
  EXPECT_TRUE(std::get<TagVm>(tag->command).remove);
  EXPECT_EQ(std::get<TagVm>(tag->command).tags.size(), 2u);
  auto logs = Parse("logs web -n 5");
  EXPECT_EQ(std::get<VmLogs>(logs->command).lines, 5);
  EXPECT_TRUE(std::holds_alternative<ListImages>(Parse("image ls")->command));
  auto rm = Parse("rm a b c");
  EXPECT_EQ(std::get<RemoveVms>(rm->command).names.size(), 3u);
  auto help = Parse("new --help");
  EXPECT_EQ(std::get<Help>(help->command).topic, "new");
}

TEST(Commands, Share) {
  auto show = Parse("share show web --json");
  ASSERT_TRUE(show.ok());
  EXPECT_EQ(std::get<ShareShow>(show->command).name, "web");
  EXPECT_TRUE(show->json);
  auto allow = Parse("share access allow web bob");
  ASSERT_TRUE(allow.ok());
  EXPECT_EQ(std::get<ShareAccess>(allow->command).name, "web");
  EXPECT_EQ(std::get<ShareAccess>(allow->command).account, "bob");
  EXPECT_TRUE(std::get<ShareAccess>(allow->command).allow);
  EXPECT_FALSE(std::get<ShareAccess>(Parse("share access deny web bob")->command).allow);
  auto bad = Parse("share access permit web bob");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind, ErrorKind::kUsage);
  EXPECT_NE(bad.error().message.find("'allow' or 'deny'"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(Parse("share access allow web").ok());
}

TEST(Commands, WebSharingLoginAndCa) {
  EXPECT_TRUE(std::get<SharePublic>(Parse("share set-public web")->command).is_public);
  EXPECT_FALSE(std::get<SharePublic>(Parse("share set-private web")->command).is_public);
  auto add = Parse("share add web bob");
  ASSERT_TRUE(add.ok());
  EXPECT_EQ(std::get<ShareWeb>(add->command).account, "bob");
  EXPECT_TRUE(std::get<ShareWeb>(add->command).add);
  EXPECT_FALSE(std::get<ShareWeb>(Parse("share remove web bob")->command).add);
  EXPECT_EQ(std::get<SharePort>(Parse("share port web 8080")->command).port, 8080);
  EXPECT_FALSE(Parse("share port web 0").ok());
  EXPECT_FALSE(Parse("share port web 70000").ok());
  EXPECT_FALSE(Parse("share port web http").ok());
  EXPECT_EQ(std::get<WebLogin>(Parse("login ABCD-EFGH")->command).code, "ABCD-EFGH");
  EXPECT_FALSE(Parse("login").ok());
  EXPECT_TRUE(std::holds_alternative<ShowCa>(Parse("ca")->command));
}

TEST(Commands, UnknownWordsSuggest) {
  auto r = Parse("nwe");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("did you mean 'new'"), std::string::npos) << r.error().message;
  auto f = Parse("new --nmae x");
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("did you mean '--name'"), std::string::npos) << f.error().message;
}

TEST(Commands, StartsWithLobbyCommand) {
  EXPECT_TRUE(StartsWithLobbyCommand("ls"));
  EXPECT_TRUE(StartsWithLobbyCommand("  share show web --json"));
  EXPECT_TRUE(StartsWithLobbyCommand("'new' --name x"));
  EXPECT_TRUE(StartsWithLobbyCommand(""));
  EXPECT_TRUE(StartsWithLobbyCommand("ls 'open"));  // the lobby explains the quote
  EXPECT_FALSE(StartsWithLobbyCommand("uname -a"));
  EXPECT_FALSE(StartsWithLobbyCommand("sh -c 'echo hi'"));
  EXPECT_FALSE(StartsWithLobbyCommand("lsx"));
}

TEST(Commands, ApiKeys) {
  auto g = Parse("ssh-key generate-api-key --label ci --cmds 'ls,whoami,ssh-key list' --exp 30d --json");
  ASSERT_TRUE(g.ok()) << g.error().message;
  EXPECT_TRUE(g->json);
  EXPECT_EQ(g->name, "ssh-key generate-api-key");
  const auto& k = std::get<ApiKeyGenerate>(g->command);
  EXPECT_EQ(k.label, "ci");
  EXPECT_EQ(k.cmds, (std::vector<std::string>{"ls", "whoami", "ssh-key list"}));
  EXPECT_EQ(k.expires_in, 30 * 86400);
  auto plain = Parse("ssh-key generate-api-key");
  ASSERT_TRUE(plain.ok());
  const auto& d = std::get<ApiKeyGenerate>(plain->command);
  EXPECT_TRUE(d.label.empty());
  EXPECT_TRUE(d.cmds.empty()) << "no --cmds: every command";
  EXPECT_FALSE(d.expires_in.has_value()) << "no --exp: never expires";
  EXPECT_EQ(std::get<ApiKeyGenerate>(Parse("ssh-key generate-api-key --exp=90m")->command).expires_in, 5400);

  EXPECT_TRUE(std::holds_alternative<ApiKeyList>(Parse("ssh-key api-keys --json")->command));
  EXPECT_EQ(std::get<ApiKeyRevoke>(Parse("ssh-key revoke-api-key ci")->command).which, "ci");
  EXPECT_EQ(Parse("ssh-key revoke-api-key 12")->name, "ssh-key revoke-api-key");
  EXPECT_FALSE(Parse("ssh-key revoke-api-key").ok());
  EXPECT_FALSE(Parse("ssh-key api-keys extra").ok());
}

TEST(Commands, ApiKeyBadFlagsAreUsageErrors) {
  for (const char* line : {"ssh-key generate-api-key --cmds ls,nosuch", "ssh-key generate-api-key --cmds ''",
                           "ssh-key generate-api-key --exp 30", "ssh-key generate-api-key --exp soon",
                           "ssh-key generate-api-key --label 'two words'", "ssh-key generate-api-key --label 42",
                           "ssh-key generate-api-key extra"}) {
    auto r = Parse(line);
    ASSERT_FALSE(r.ok()) << line;
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage) << line;
  }
  auto r = Parse("ssh-key generate-api-key --cmds 'ls,ssh-key lst'");
  EXPECT_NE(r.error().message.find("'ssh-key lst'"), std::string::npos) << r.error().message;
}

TEST(Commands, RequestsCarryTheirCommandName) {
  EXPECT_EQ(Parse("ls -l")->name, "ls");
  EXPECT_EQ(Parse("ssh-key list")->name, "ssh-key list");
  EXPECT_EQ(Parse("new --help")->name, "help");
  EXPECT_EQ(Parse("help new")->name, "help");
}

}  // namespace
}  // namespace control
