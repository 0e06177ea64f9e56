// exed: the daemon and its operator CLI. The composition root: the only file
// that knows every part and wires them together.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
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
#include "httpfront/acme.h"
#include "httpfront/certs.h"
#include "httpfront/front.h"
#include "sshd/server.h"
#include "vmm/host_impl.h"
#include "vmm/images.h"
#include "vmm/reconciler.h"
#include "vmm/runtime_dir.h"

namespace {

constexpr const char* kUsage =
    "usage: exed [--config FILE] [--set KEY=VALUE]... COMMAND\n"
    "\n"
    "commands:\n"
    "  serve            run the SSH front (applies migrations first)\n"
    "  migrate          apply database migrations and exit\n"
    "  admin ...        operator commands: accounts, budgets, invites, audit ('exed admin --help')\n"
    "  image build NAME build guest image NAME (tiny or debian) into the images directory\n"
    "  image ls         list built images\n"
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

// VM files and images go where the unprivileged VM user can reach them.
void ResolveVmDirs(exed::Config* cfg) {
  std::filesystem::create_directories(cfg->state_dir);
  cfg->runtime_dir = vmm::ResolveRuntimeDir(cfg->state_dir, "exed");
  if (cfg->images_dir.empty()) cfg->images_dir = cfg->runtime_dir + "/images";
  // Disks name their base image by path: it must not depend on the cwd.
  cfg->images_dir = std::filesystem::absolute(cfg->images_dir).lexically_normal().string();
}

vmm::HostConfig HostConfigOf(const exed::Config& cfg) {
  vmm::HostConfig h;
  h.state_dir = cfg.runtime_dir;
  h.images_dir = cfg.images_dir;
  h.qemu_binary = cfg.qemu_binary;
  h.accel_override = cfg.accel == "auto" ? "" : cfg.accel;
  h.boot_timeout = cfg.service.boot_timeout;
  return h;
}

control::Result<std::unique_ptr<vmm::HostImpl>> MakeHost(const exed::Config& cfg) {
  return vmm::HostImpl::Make(HostConfigOf(cfg));
}

// `exed image build NAME` / `exed image ls`.
int Image(const exed::Config& cfg, const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help") {
    std::cout << "usage: exed image build NAME [--if-missing]   (NAME: tiny or debian)\n       exed image ls\n";
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "ls") {
    auto images = vmm::ListImages(cfg.images_dir);
    for (const auto& i : images) std::cout << i.name << "  " << i.dir << "  built " << i.built_at << "\n";
    if (images.empty()) std::cout << "no images in " << cfg.images_dir << "; build one with 'exed image build tiny'\n";
    return 0;
  }
  bool if_missing = args.size() == 3 && args[2] == "--if-missing";
  if (args[0] == "build" && (args.size() == 2 || if_missing)) {
    const std::string& name = args[1];
    if (if_missing && vmm::LoadImage(cfg.images_dir, name)) return 0;
    if (name != "tiny" && name != "debian") return Fail("unknown image '" + name + "'; the recipes are tiny and debian", 2);
    namespace fs = std::filesystem;
    fs::create_directories(cfg.images_dir);
    // Every build gets its own directory and NAME is a symlink to the newest.
    // A VM's disk names its base by real path, so a rebuild never changes the
    // base under an existing disk (that would corrupt it); old builds stay
    // while disks may use them.
    std::string link = cfg.images_dir + "/" + name;
    std::string out = cfg.images_dir + "/." + name + "-" + std::to_string(::time(nullptr));
    std::string cmd = std::string(EXED_SOURCE_DIR) + "/ops/images/build " + name + " '" + out + ".tmp'";
    std::cerr << "building image " << name << " into " << out << "\n";
    fs::remove_all(out + ".tmp");
    if (std::system(cmd.c_str()) != 0) {
      fs::remove_all(out + ".tmp");
      return Fail("building image " + name + " failed (see above); nothing was changed");
    }
    fs::rename(out + ".tmp", out);
    if (fs::exists(link) && !fs::is_symlink(link)) fs::rename(link, out + ".previous");
    fs::remove(link + ".new");
    fs::create_symlink(fs::path(out).filename(), link + ".new");
    fs::rename(link + ".new", link);  // atomic: readers see the old image or the new one
    std::cout << "image " << name << " is ready in " << out << "\n";
    return 0;
  }
  return Fail("usage: exed image build NAME | exed image ls", 2);
}

// tls = acme: certificates from the ACME server, one per name, ordered on the
// first handshake for it; until one is in, the internal CA's leaf serves the
// name (httpfront/acme.h). With acme_names = vms only the apex and names of
// existing VMs are ordered, asked of `service` once it is set.
control::Result<std::unique_ptr<httpfront::AcmeStore>> OpenAcme(const exed::Config& cfg,
                                                                const std::atomic<control::Service*>& service) {
  auto fallback = httpfront::OpenInternalCa(cfg.state_dir + "/ca", cfg.domain);
  if (!fallback) return fallback.error();
  httpfront::AcmeOptions o;
  o.directory_url = cfg.acme_directory;
  o.ca_bundle = cfg.acme_ca_bundle;
  o.email = cfg.acme_email;
  o.dir = cfg.state_dir + "/acme";
  o.domain = cfg.domain;
  o.fallback = std::move(*fallback);
  if (cfg.acme_names == "vms") {
    std::string suffix = "." + cfg.domain;
    for (char& c : suffix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    o.may_issue = [&service, suffix](const std::string& name) {
      if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
        return true;  // the apex: the store serves nothing else that lacks the suffix
      }
      control::Service* s = service.load();
      return s != nullptr && s->WebTargetFor(name.substr(0, name.size() - suffix.size())).ok();
    };
  }
  return httpfront::OpenAcme(std::move(o));
}

int Serve(const exed::Config& cfg) {
  // Signals are taken by one thread with sigwait, so no handler runs inside
  // libssh or libpq. Blocked before any thread starts (the server's watchdog
  // among them): a thread that has them unblocked would die of SIGTERM.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A daemon reads no terminal. libssh also encodes the modes of a terminal
  // on stdin into the pty requests the gateway makes to guests; a guest pty
  // gets libssh's defaults instead of the operator's terminal settings.
  if (int null_fd = ::open("/dev/null", O_RDONLY); null_fd >= 0) {
    ::dup2(null_fd, STDIN_FILENO);
    if (null_fd != STDIN_FILENO) ::close(null_fd);
  }
  if (Migrate(cfg, true) != 0) return 1;
  sshd::ServerConfig scfg{cfg.listen_addr, cfg.ssh_port, cfg.state_dir + "/hostkeys", cfg.limits};
  sshd::Server server(scfg);
  if (auto s = server.Listen(); !s) return Fail(s.error().message);
  // With ssh_port = 0 the real port is known only now, and messages that tell
  // users what to type must name it.
  exed::Config shown = cfg;
  shown.ssh_port = server.port();
  // The HTTPS front: certificates first, so a bad tls_cert stops us here.
  std::atomic<control::Service*> acme_service{nullptr};  // outlives `certs`, whose worker reads it
  std::unique_ptr<httpfront::CertStore> certs;
  httpfront::AcmeStore* acme = nullptr;
  if (cfg.tls == "acme") {
    auto opened = OpenAcme(cfg, acme_service);
    if (!opened) return Fail(opened.error().message);
    acme = opened->get();
    certs = std::move(*opened);
  } else {
    auto opened = cfg.tls == "files" ? httpfront::OpenCertFiles(cfg.tls_cert, cfg.tls_key)
                                     : httpfront::OpenInternalCa(cfg.state_dir + "/ca", cfg.domain);
    if (!opened) return Fail(opened.error().message);
    certs = std::move(*opened);
  }
  httpfront::FrontConfig fcfg;
  fcfg.listen_addr = cfg.listen_addr;
  fcfg.https_port = cfg.https_port;
  fcfg.http_port = cfg.http_port;
  fcfg.domain = cfg.domain;
  fcfg.ssh_hint = shown.SshHint();
  fcfg.header_timeout = std::chrono::seconds(cfg.http_header_timeout);
  fcfg.idle_timeout = std::chrono::seconds(cfg.http_idle_timeout);
  fcfg.max_header_bytes = static_cast<size_t>(cfg.http_max_header_bytes);
  fcfg.max_body_bytes = static_cast<uint64_t>(cfg.http_max_body_mib) << 20;
  fcfg.upstream_timeout = std::chrono::seconds(cfg.upstream_timeout);
  if (acme) fcfg.acme_challenge = [acme](const std::string& token) { return acme->ChallengeResponse(token); };
  httpfront::Front front(fcfg, *certs);
  if (auto s = front.Listen(); !s) return Fail(s.error().message);
  control::ServiceConfig service_cfg = cfg.service;
  service_cfg.ssh_hint = shown.SshHint();
  service_cfg.ssh_port = server.port();
  service_cfg.https_port = front.https_port();
  if (cfg.tls == "internal") service_cfg.ca_pem_path = cfg.state_dir + "/ca/ca.pem";
  db::Pool pool(cfg.database_url, cfg.db_pool_size);
  vmm::VmLocks locks;
  auto host = MakeHost(cfg);
  std::unique_ptr<vmm::Reconciler> reconciler;
  if (host) {
    reconciler = std::make_unique<vmm::Reconciler>(pool, **host, locks, std::chrono::seconds(cfg.reconcile_seconds));
    // Re-attach before anyone can ask about a VM; restarting those that are
    // down (all of them after a reboot: a boot each) is the background's.
    auto first = reconciler->RunOnce(vmm::Reconciler::Pass::kNoRestarts);
    spdlog::info("event=reconciled attached={} restarted={} failed={} undone={} strays={} to_restart={}",
                 first.attached, first.restarted, first.failed, first.undone, first.strays, first.deferred);
    reconciler->Start();
  } else {
    spdlog::error("event=no-vms reason=\"{}\"", host.error().message);
    service_cfg.no_vms_reason = host.error().message;
  }
  control::Service service(pool, service_cfg, host ? host->get() : nullptr, &locks);
  acme_service = &service;
  if (acme) acme->Request(cfg.domain);  // the apex (login pages) gets its certificate before anyone asks

  std::thread https([&] { front.Run(service); });
  https.detach();
  std::thread signals([&] {
    while (true) {
      int sig = 0;
      sigwait(&set, &sig);
      if (sig == SIGHUP) {
        // New certificate files: new handshakes get them, open connections keep theirs.
        auto s = certs->Reload();
        if (s) {
          spdlog::info("event=tls-reloaded");
        } else {
          spdlog::error("event=tls-reload-failed error=\"{}\"", s.error().message);
        }
        continue;
      }
      spdlog::info("event=stopping signal={}", sig);
      front.Stop();
      server.Stop();
      return;
    }
  });
  signals.detach();

  spdlog::info("event=listening ssh={}:{} https={}:{} http={}:{} domain={} registration={}", cfg.listen_addr,
               server.port(), cfg.listen_addr, front.https_port(), cfg.listen_addr, front.http_port(), cfg.domain,
               control::RegistrationName(cfg.service.registration));
  std::cout << "exed is up. In another terminal:\n\n"
            << "  " << shown.SshHint() << "                 # the lobby: register, then 'help'\n"
            << "  " << shown.SshHint() << " whoami --json   # one-shot commands\n"
            << "  https://" << cfg.domain << ":" << front.https_port() << "/   # the web side ("
            << shown.SshHint() << " ca > exed-ca.pem to trust its CA)\n\n"
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
  ResolveVmDirs(&*cfg);
  if (command == "image") return Image(*cfg, rest);
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
