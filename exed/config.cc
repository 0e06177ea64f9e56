#include "exed/config.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "control/budget.h"

namespace exed {

using control::InvalidError;
using control::Result;
using control::Status;

namespace {

struct Key {
  const char* name;
  const char* help;
  std::function<Status(Config&, const std::string&)> set;
};

Result<int64_t> Int(const std::string& key, const std::string& v, int64_t min, int64_t max) {
  int64_t n = 0;
  size_t used = 0;
  try {
    n = std::stoll(v, &used);
  } catch (...) {
    used = 0;
  }
  if (used != v.size() || v.empty() || n < min || n > max) {
    return InvalidError(fmt::format("config {} must be a whole number from {} to {}, not '{}'", key, min, max, v));
  }
  return n;
}

template <class T>
std::function<Status(Config&, const std::string&)> IntKey(const char* key, int64_t min, int64_t max,
                                                         T Config::*field) {
  return [=](Config& c, const std::string& v) -> Status {
    auto n = Int(key, v, min, max);
    if (!n) return n.error();
    c.*field = static_cast<T>(*n);
    return control::Ok{};
  };
}

template <class F>
std::function<Status(Config&, const std::string&)> IntFn(const char* key, int64_t min, int64_t max, F f) {
  return [=](Config& c, const std::string& v) -> Status {
    auto n = Int(key, v, min, max);
    if (!n) return n.error();
    f(c, *n);
    return control::Ok{};
  };
}

std::function<Status(Config&, const std::string&)> StrKey(std::string Config::*field) {
  return [=](Config& c, const std::string& v) -> Status {
    c.*field = v;
    return control::Ok{};
  };
}

const std::vector<Key>& Keys() {
  using std::chrono::seconds;
  static const auto* keys = new std::vector<Key>{
      {"state_dir", "where host keys, disks and the local database live (./var)", StrKey(&Config::state_dir)},
      {"listen_addr", "address the SSH and HTTPS fronts listen on (127.0.0.1)", StrKey(&Config::listen_addr)},
      {"ssh_port", "SSH front port (2222; 0 picks a free one)", IntKey("ssh_port", 0, 65535, &Config::ssh_port)},
      {"https_port", "HTTPS front port (8443)", IntKey("https_port", 0, 65535, &Config::https_port)},
      {"http_port", "plain HTTP port (8080)", IntKey("http_port", 0, 65535, &Config::http_port)},
      {"domain", "domain of VM URLs (exe.localhost)", StrKey(&Config::domain)},
      {"ssh_host", "host name users type to reach the SSH front (localhost)", StrKey(&Config::ssh_host)},
      {"database_url", "PostgreSQL URL (env DATABASE_URL)", StrKey(&Config::database_url)},
      {"db_pool_size", "database connections (16)", IntKey("db_pool_size", 1, 500, &Config::db_pool_size)},
      {"log_level", "debug, info, warn or error (info)", StrKey(&Config::log_level)},
      {"registration", "open, invite or closed (open)",
       [](Config& c, const std::string& v) -> Status {
         auto r = control::ParseRegistration(v);
         if (!r) return r.error();
         c.service.registration = *r;
         return control::Ok{};
       }},
      {"registrations_per_hour", "new accounts per source address per hour (10)",
       IntFn("registrations_per_hour", 0, 1000000, [](Config& c, int64_t n) { c.service.registrations_per_hour = n; })},
      {"default_cpus", "CPUs in a new account's budget (2)",
       IntFn("default_cpus", 1, 1024, [](Config& c, int64_t n) { c.service.default_budget.cpus = n; })},
      {"default_memory", "memory in a new account's budget (8G)",
       [](Config& c, const std::string& v) -> Status {
         auto m = control::ParseMemoryMiB(v);
         if (!m) return InvalidError("config default_memory: " + m.error().message);
         c.service.default_budget.memory_mib = *m;
         return control::Ok{};
       }},
      {"default_disk", "disk in a new account's budget (100G)",
       [](Config& c, const std::string& v) -> Status {
         auto d = control::ParseDiskGiB(v);
         if (!d) return InvalidError("config default_disk: " + d.error().message);
         c.service.default_budget.disk_gib = *d;
         return control::Ok{};
       }},
      {"default_vms", "VMs in a new account's budget (10)",
       IntFn("default_vms", 0, 100000, [](Config& c, int64_t n) { c.service.default_budget.max_vms = n; })},
      {"login_grace_seconds", "time from connect to authenticated (30)",
       IntFn("login_grace_seconds", 1, 3600, [](Config& c, int64_t n) { c.limits.login_grace = seconds(n); })},
      {"max_auth_attempts", "failed authentications per connection (6)",
       IntFn("max_auth_attempts", 1, 100, [](Config& c, int64_t n) { c.limits.max_auth_attempts = int(n); })},
      {"max_connections", "SSH connections in all (1000)",
       IntFn("max_connections", 1, 100000, [](Config& c, int64_t n) { c.limits.max_connections = int(n); })},
      {"max_sessions_per_address", "SSH connections from one address (300)",
       IntFn("max_sessions_per_address", 1, 100000,
             [](Config& c, int64_t n) { c.limits.max_sessions_per_address = int(n); })},
      {"max_sessions_per_account", "lobby sessions of one account (300)",
       IntFn("max_sessions_per_account", 1, 100000,
             [](Config& c, int64_t n) { c.limits.max_sessions_per_account = int(n); })},
      {"max_line_bytes", "longest lobby command line (4096)",
       IntFn("max_line_bytes", 64, 1 << 20, [](Config& c, int64_t n) { c.limits.max_line_bytes = size_t(n); })},
      {"accel", "VM accelerator: auto (KVM when the CPU has vmx/svm), kvm or tcg",
       [](Config& c, const std::string& v) -> Status {
         if (v != "auto" && v != "kvm" && v != "tcg") return InvalidError("config accel must be auto, kvm or tcg");
         c.accel = v;
         return control::Ok{};
       }},
      {"tls", "HTTPS certificates: internal (a CA made on first start; 'ssh HOST ca' prints it), files or acme",
       [](Config& c, const std::string& v) -> Status {
         if (v != "internal" && v != "files" && v != "acme") {
           return InvalidError("config tls must be internal, files or acme");
         }
         c.tls = v;
         return control::Ok{};
       }},
      {"tls_cert", "with tls = files: PEM certificate chain for the domain and *.domain (re-read on SIGHUP)",
       StrKey(&Config::tls_cert)},
      {"tls_key", "with tls = files: its PEM private key", StrKey(&Config::tls_key)},
      {"acme_directory", "with tls = acme: the ACME directory URL (https://acme-v02.api.letsencrypt.org/directory)",
       StrKey(&Config::acme_directory)},
      {"acme_ca_bundle", "with tls = acme: PEM CA file the ACME server's TLS must chain to (default: system roots)",
       StrKey(&Config::acme_ca_bundle)},
      {"acme_email", "with tls = acme: contact address of the ACME account (optional)", StrKey(&Config::acme_email)},
      {"acme_names", "with tls = acme: vms (the apex and existing VMs' names get certificates) or any",
       [](Config& c, const std::string& v) -> Status {
         if (v != "vms" && v != "any") return InvalidError("config acme_names must be vms or any");
         c.acme_names = v;
         return control::Ok{};
       }},
      {"acme_insecure", "not supported: trust a test ACME server with acme_ca_bundle instead",
       [](Config&, const std::string&) -> Status {
         return InvalidError(
             "config acme_insecure is not supported: exed always verifies the ACME server; set acme_ca_bundle to "
             "the CA file of its TLS certificate (for pebble, the CA of the certificate in its config)");
       }},
      {"http_header_timeout", "seconds from a request's first byte to its last header (20)",
       IntKey("http_header_timeout", 1, 3600, &Config::http_header_timeout)},
      {"http_idle_timeout", "seconds an idle kept-alive HTTPS connection stays open (60)",
       IntKey("http_idle_timeout", 1, 3600, &Config::http_idle_timeout)},
      {"http_max_header_bytes", "largest request header; more is answered 431 (16384)",
       IntKey("http_max_header_bytes", 1024, 1 << 20, &Config::http_max_header_bytes)},
      {"http_max_body_mib", "largest request body in MiB; 0 is unlimited (0)",
       IntFn("http_max_body_mib", 0, 1 << 30, [](Config& c, int64_t n) { c.http_max_body_mib = n; })},
      {"upstream_timeout", "seconds a VM's web server may take to answer (120)",
       IntKey("upstream_timeout", 1, 3600, &Config::upstream_timeout)},
      {"images_dir", "where guest images live (STATE_DIR/images, or its runtime dir)", StrKey(&Config::images_dir)},
      {"qemu_binary", "QEMU to run (qemu-system-x86_64)", StrKey(&Config::qemu_binary)},
      {"default_image", "image of 'new' without --image (debian)",
       [](Config& c, const std::string& v) -> Status {
         c.service.default_image = v;
         return control::Ok{};
       }},
      {"vm_cpus", "CPUs of 'new' without --cpus (1)",
       IntFn("vm_cpus", 1, 1024, [](Config& c, int64_t n) { c.service.vm_cpus = n; })},
      {"vm_memory", "memory of 'new' without --memory (1G)",
       [](Config& c, const std::string& v) -> Status {
         auto m = control::ParseMemoryMiB(v);
         if (!m) return InvalidError("config vm_memory: " + m.error().message);
         c.service.vm_memory_mib = *m;
         return control::Ok{};
       }},
      {"vm_disk", "disk of 'new' without --disk (10G)",
       [](Config& c, const std::string& v) -> Status {
         auto d = control::ParseDiskGiB(v);
         if (!d) return InvalidError("config vm_disk: " + d.error().message);
         c.service.vm_disk_gib = *d;
         return control::Ok{};
       }},
      {"boot_timeout_seconds", "how long 'new' and 'start' wait for the guest's sshd (180)",
       IntFn("boot_timeout_seconds", 5, 3600,
             [](Config& c, int64_t n) { c.service.boot_timeout = std::chrono::seconds(n); })},
      {"reconcile_seconds", "how often running VMs are checked against the database (10)",
       IntKey("reconcile_seconds", 1, 3600, &Config::reconcile_seconds)},
      {"idle_timeout_seconds", "lobby session without input (900)",
       IntFn("idle_timeout_seconds", 1, 86400 * 7, [](Config& c, int64_t n) { c.limits.idle_timeout = seconds(n); })},
  };
  return *keys;
}

std::string Trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

Status Set(Config& c, const std::string& key, const std::string& value, const std::string& where) {
  for (const auto& k : Keys()) {
    if (key == k.name) {
      auto s = k.set(c, value);
      if (!s) return InvalidError(fmt::format("{}: {}", where, s.error().message));
      return control::Ok{};
    }
  }
  return InvalidError(fmt::format("{}: unknown config key '{}'; 'exed --help' lists them", where, key));
}

}  // namespace

std::string Config::SshHint() const {
  return ssh_port == 22 ? fmt::format("ssh {}", ssh_host) : fmt::format("ssh -p {} {}", ssh_port, ssh_host);
}

std::string ConfigKeysHelp() {
  std::string out;
  for (const auto& k : Keys()) out += fmt::format("  {:<26} {}\n", k.name, k.help);
  return out;
}

Result<Config> LoadConfig(const std::string& file_path, const EnvLookup& env,
                          const std::vector<std::string>& overrides) {
  Config c;
  if (!file_path.empty()) {
    std::ifstream in(file_path);
    if (!in) return InvalidError(fmt::format("cannot read config file {}", file_path));
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      line = Trim(line.substr(0, line.find('#')));
      if (line.empty()) continue;
      auto eq = line.find('=');
      if (eq == std::string::npos) {
        return InvalidError(fmt::format("{}:{}: expected 'key = value'", file_path, n));
      }
      auto s = Set(c, Trim(line.substr(0, eq)), Trim(line.substr(eq + 1)), fmt::format("{}:{}", file_path, n));
      if (!s) return s.error();
    }
  }
  for (const auto& k : Keys()) {
    std::string var = "EXED_" + std::string(k.name);
    std::transform(var.begin(), var.end(), var.begin(), [](unsigned char ch) { return std::toupper(ch); });
    if (auto v = env(var)) {
      auto s = Set(c, k.name, *v, var);
      if (!s) return s.error();
    }
  }
  if (auto v = env("DATABASE_URL"); v && !v->empty()) c.database_url = *v;
  for (const auto& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos) return InvalidError(fmt::format("--set {}: expected KEY=VALUE", o));
    auto s = Set(c, o.substr(0, eq), o.substr(eq + 1), "--set");
    if (!s) return s.error();
  }
  if (c.tls == "acme" && c.acme_directory.empty()) {
    return InvalidError("config tls = acme needs acme_directory, the ACME server's directory URL (like "
                        "https://acme-v02.api.letsencrypt.org/directory)");
  }
  c.service.ssh_hint = c.SshHint();
  c.service.domain = c.domain;
  c.service.https_port = c.https_port;
  c.service.ssh_host = c.ssh_host;
  c.service.ssh_port = c.ssh_port;
  return c;
}

}  // namespace exed
