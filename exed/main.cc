// exed: the daemon and its operator CLI. The composition root: the only file
// that knows every part and wires them together.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <chrono>
#include <thread>

#include <libssh/libssh.h>
#include <pqxx/connection>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "control/admin.h"
#include "control/service.h"
#include "db/migrate.h"
#include "db/pool.h"
#include "exed/config.h"
#include "sshd/server.h"

namespace {

constexpr const char* kUsage =
    "usage: exed [--config FILE] [--set KEY=VALUE]... COMMAND\n"
    "\n"
    "commands:\n"
    "  serve            run the SSH front (applies migrations first)\n"
    "  migrate          apply database migrations and exit\n"
    "  admin ...        operator commands: accounts, budgets, invites, audit ('exed admin --help')\n"
    "  version          print the version\n"
    "\n"
    "Configuration comes from embedded defaults, then FILE (or $EXED_CONFIG), then\n"
    "environment variables EXED_<KEY> (and DATABASE_URL), then --set. Keys:\n";

std::optional<std::string> Env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

int Fail(const std::string& message, int code = 1) {
  std::cerr << "exed: " << message << "\n";
  return code;
}

void SetUpLogging(const exed::Config& cfg) {
  auto logger = spdlog::stderr_color_mt("exed");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
}

int Migrate(const exed::Config& cfg, bool quiet) {
  try {
    pqxx::connection c(cfg.database_url);
    auto r = db::Migrate(c, db::EmbeddedMigrations());
    if (!quiet) {
      std::cout << "migrations: " << r.applied.size() << " applied, schema at version " << r.current << "\n";
    }
    spdlog::info("event=migrate applied={} version={}", r.applied.size(), r.current);
    return 0;
  } catch (const std::exception& e) {
    return Fail(std::string("cannot migrate the database: ") + e.what());
  }
}

int Serve(const exed::Config& cfg) {
  // Signals are taken by one thread with sigwait, so no handler runs inside
  // libssh or libpq. Blocked before any thread starts (the server's watchdog
  // among them): a thread that has them unblocked would die of SIGTERM.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  if (Migrate(cfg, true) != 0) return 1;
  sshd::ServerConfig scfg{cfg.listen_addr, cfg.ssh_port, cfg.state_dir + "/hostkeys", cfg.limits};
  sshd::Server server(scfg);
  if (auto s = server.Listen(); !s) return Fail(s.error().message);
  // With ssh_port = 0 the real port is known only now, and messages that tell
  // users what to type must name it.
  exed::Config shown = cfg;
  shown.ssh_port = server.port();
  control::ServiceConfig service_cfg = cfg.service;
  service_cfg.ssh_hint = shown.SshHint();
  db::Pool pool(cfg.database_url, cfg.db_pool_size);
  control::Service service(pool, service_cfg);

  std::thread signals([&] {
    int sig = 0;
    sigwait(&set, &sig);
    spdlog::info("event=stopping signal={}", sig);
    server.Stop();
  });
  signals.detach();

  spdlog::info("event=listening ssh={}:{} registration={}", cfg.listen_addr, server.port(),
               control::RegistrationName(cfg.service.registration));
  std::cout << "exed is up. In another terminal:\n\n"
            << "  " << shown.SshHint() << "                 # the lobby: register, then 'help'\n"
            << "  " << shown.SshHint() << " whoami --json   # one-shot commands\n\n"
            << "Operator: exed admin --help. Stop with Ctrl-C.\n"
            << std::flush;
  server.Serve(service);
  // Session threads are detached and use the server, service and pool: give
  // them a moment to finish, then leave without running destructors under
  // them. Clients of sessions still open see the connection close.
  for (int i = 0; i < 20 && server.active_connections() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  spdlog::info("event=stopped open_sessions={}", server.active_connections());
  spdlog::shutdown();
  std::fflush(stdout);
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string config_file = Env("EXED_CONFIG").value_or("");
  std::vector<std::string> overrides;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) {
      config_file = args[++i];
    } else if (args[i] == "--set" && i + 1 < args.size()) {
      overrides.push_back(args[++i]);
    } else if (args[i] == "--help" || args[i] == "-h" || args[i] == "help") {
      std::cout << kUsage << exed::ConfigKeysHelp();
      return 0;
    } else {
      break;
    }
  }
  if (i >= args.size()) {
    std::cerr << kUsage << exed::ConfigKeysHelp();
    return 2;
  }
  std::string command = args[i];
  std::vector<std::string> rest(args.begin() + static_cast<long>(i) + 1, args.end());
  if (command == "version" || command == "--version") {
    std::cout << "exed 0.1\n";
    return 0;
  }
  auto cfg = exed::LoadConfig(config_file, Env, overrides);
  if (!cfg) return Fail(cfg.error().message, 2);
  SetUpLogging(*cfg);
  signal(SIGPIPE, SIG_IGN);
  if (command != "serve" && command != "migrate" && command != "admin") {
    return Fail("unknown command '" + command + "'; try 'exed --help'", 2);
  }
  if (command == "admin" && (rest.empty() || rest[0] == "--help" || rest[0] == "-h")) {
    std::cout << control::AdminHelp();
    return rest.empty() ? 2 : 0;
  }
  if (cfg->database_url.empty()) {
    return Fail("no database: set DATABASE_URL (ops/up starts a local PostgreSQL and sets it for you)", 2);
  }
  if (command == "migrate") return Migrate(*cfg, false);
  if (command == "serve") {
    ssh_init();
    int rc = Serve(*cfg);
    return rc;
  }
  // admin
  if (Migrate(*cfg, true) != 0) return 1;
  db::Pool pool(cfg->database_url, 2);
  std::string out, err;
  int rc = control::RunAdmin(pool, cfg->service, rest, &out, &err);
  std::cout << out;
  std::cerr << err;
  return rc;
}
