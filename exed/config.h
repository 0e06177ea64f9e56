// exed's configuration: embedded defaults, then a `key = value` file
// (EXED_CONFIG or --config), then environment variables (EXED_<KEY>, and
// DATABASE_URL), then --set key=value, later ones winning. Value type.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "control/result.h"
#include "control/service.h"
#include "sshd/limits.h"

namespace exed {

struct Config {
  std::string state_dir = "./var";
  std::string listen_addr = "127.0.0.1";
  int ssh_port = 2222;
  int https_port = 8443;
  int http_port = 8080;
  std::string domain = "exe.localhost";
  std::string ssh_host = "localhost";  // what users type after `ssh -p PORT`
  std::string database_url;
  size_t db_pool_size = 16;
  std::string log_level = "info";
  std::string accel = "auto";      // auto | kvm | tcg
  std::string images_dir;          // default RUNTIME_DIR/images
  std::string runtime_dir;         // resolved at start (vmm/runtime_dir.h), not configured
  std::string qemu_binary = "qemu-system-x86_64";
  int reconcile_seconds = 10;
  std::string tls = "internal";  // internal (a CA of our own) | files (tls_cert + tls_key) | acme
  std::string tls_cert;          // PEM: certificate, then intermediates
  std::string tls_key;           // PEM: its private key
  std::string acme_directory;    // with tls = acme: the ACME server's directory URL (https)
  std::string acme_ca_bundle;    // PEM file the ACME server's own TLS certificate chains to; "": system roots
  std::string acme_email;        // account contact; optional
  std::string acme_names = "vms";  // vms (the apex and names of existing VMs) | any (every name under the domain)
  int http_header_timeout = 20;  // seconds from a request's first byte to its last header
  int http_idle_timeout = 60;    // seconds a kept-alive connection waits for the next request
  int http_max_header_bytes = 16 * 1024;
  int64_t http_max_body_mib = 0;  // 0: unlimited
  int upstream_timeout = 120;     // seconds a VM may take to start its response
  control::ServiceConfig service;
  sshd::Limits limits;

  // "ssh -p 2222 localhost", or "ssh localhost" on port 22.
  std::string SshHint() const;
};

// The documented keys, one line each, for --help.
std::string ConfigKeysHelp();

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// REQUIRES: file_path empty or readable. Errors name the key or line at fault.
control::Result<Config> LoadConfig(const std::string& file_path, const EnvLookup& env,
                                   const std::vector<std::string>& overrides);

}  // namespace exed
