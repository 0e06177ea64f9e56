#include "exed/config.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <unistd.h>

#include <gtest/gtest.h>

namespace exed {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string WriteFile(const std::string& text) {
  char path[] = "/tmp/exed-config-test-XXXXXX";
  int fd = mkstemp(path);
  ::close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(Config, EmbeddedDefaults) {
  auto c = LoadConfig("", Env({}), {});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ssh_port, 2222);
  EXPECT_EQ(c->https_port, 8443);
  EXPECT_EQ(c->http_port, 8080);
  EXPECT_EQ(c->domain, "exe.localhost");
  EXPECT_EQ(c->state_dir, "./var");
  EXPECT_EQ(c->service.registration, control::Registration::kOpen);
  EXPECT_EQ(c->service.ssh_hint, "ssh -p 2222 localhost");
}

TEST(Config, FileThenEnvThenSetWin) {
  auto file = WriteFile("# comment\nssh_port = 2300\nregistration = invite  # trailing\ndefault_memory = 2G\n");
  auto c = LoadConfig(file, Env({{"EXED_SSH_PORT", "2400"}, {"DATABASE_URL", "postgresql:///x"}}),
                      {"idle_timeout_seconds=5"});
  std::remove(file.c_str());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->ssh_port, 2400) << "environment beats the file";
  EXPECT_EQ(c->service.registration, control::Registration::kInvite);
  EXPECT_EQ(c->service.default_budget.memory_mib, 2048);
  EXPECT_EQ(c->database_url, "postgresql:///x");
  EXPECT_EQ(c->limits.idle_timeout, std::chrono::seconds(5));
  auto d = LoadConfig("", Env({{"EXED_SSH_PORT", "2400"}}), {"ssh_port=22"});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->SshHint(), "ssh localhost") << "--set beats the environment; port 22 needs no -p";
}

TEST(Config, ErrorsNameTheKeyAndTheValue) {
  auto bad_port = LoadConfig("", Env({{"EXED_SSH_PORT", "70000"}}), {});
  ASSERT_FALSE(bad_port.ok());
  EXPECT_NE(bad_port.error().message.find("EXED_SSH_PORT"), std::string::npos) << bad_port.error().message;
  EXPECT_NE(bad_port.error().message.find("70000"), std::string::npos);
  auto bad_mode = LoadConfig("", Env({}), {"registration=sometimes"});
  ASSERT_FALSE(bad_mode.ok());
  EXPECT_NE(bad_mode.error().message.find("open, invite or closed"), std::string::npos);
  auto unknown = LoadConfig("", Env({}), {"no_such_key=1"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("unknown config key 'no_such_key'"), std::string::npos);
  auto file = WriteFile("ssh_port 2300\n");
  auto syntax = LoadConfig(file, Env({}), {});
  std::remove(file.c_str());
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.error().message.find(":1: expected 'key = value'"), std::string::npos);
  EXPECT_FALSE(LoadConfig("/nonexistent/exed.conf", Env({}), {}).ok());
}

TEST(Config, AcmeKeys) {
  auto c = LoadConfig("", Env({{"EXED_TLS", "acme"}, {"EXED_ACME_DIRECTORY", "https://localhost:14000/dir"}}),
                      {"acme_ca_bundle=/tmp/pebble-ca.pem", "acme_email=ops@example.com", "acme_names=any"});
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->tls, "acme");
  EXPECT_EQ(c->acme_directory, "https://localhost:14000/dir");
  EXPECT_EQ(c->acme_ca_bundle, "/tmp/pebble-ca.pem");
  EXPECT_EQ(c->acme_email, "ops@example.com");
  EXPECT_EQ(c->acme_names, "any");
  EXPECT_EQ(LoadConfig("", Env({}), {})->acme_names, "vms");
  auto no_dir = LoadConfig("", Env({}), {"tls=acme"});
  ASSERT_FALSE(no_dir.ok());
  EXPECT_NE(no_dir.error().message.find("needs acme_directory"), std::string::npos) << no_dir.error().message;
  auto insecure = LoadConfig("", Env({}), {"acme_insecure=1"});
  ASSERT_FALSE(insecure.ok());
  EXPECT_NE(insecure.error().message.find("acme_insecure is not supported"), std::string::npos);
  EXPECT_FALSE(LoadConfig("", Env({}), {"acme_names=some"}).ok());
  EXPECT_FALSE(LoadConfig("", Env({}), {"tls=letsencrypt"}).ok());
}

}  // namespace
}  // namespace exed
