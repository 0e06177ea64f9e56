// httpfront::Front: the HTTPS front. Terminates TLS for the apex domain and
// every VM name under it, routes by Host, and reverse-proxies a VM's URL to
// the VM's web port: private until shared, with web login by code.
//
//   https://DOMAIN/             exed's own pages: the VM list, login, logout,
//                               POST /exec (the lobby's commands as an API)
//   https://VM.DOMAIN/          the VM's web server, for those who may see it
//   http://ANY/                 a redirect to https, and ACME http-01 answers
//
// Threading: `threads` io_contexts, each run by one thread; each connection
// is a coroutine on one of them, handed out in turn. Questions to the control plane (blocking
// PostgreSQL round trips) run on a separate thread pool, never on the io
// threads, and their answers are cached for a second or two.
//
// Bodies stream in both directions through a fixed 64 KiB buffer per
// direction: nothing is buffered whole, so a 1 GiB upload costs what a small
// one does.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "control/service.h"
#include "httpfront/certs.h"

namespace httpfront {

struct FrontConfig {
  std::string listen_addr = "127.0.0.1";
  int https_port = 8443;  // 0: any free port (tests)
  int http_port = 8080;   // 0: any free port; -1: none
  std::string domain = "exe.localhost";
  std::string ssh_hint = "ssh -p 2222 localhost";  // what the login page tells users to type
  int threads = 0;                                 // 0: one per core
  size_t max_header_bytes = 16 * 1024;             // request line + fields; more gets 431
  uint64_t max_body_bytes = 0;                     // per request; 0: unlimited
  std::chrono::seconds handshake_timeout{10};
  std::chrono::seconds header_timeout{20};  // from the first byte of a request to its last header
  std::chrono::seconds idle_timeout{60};    // keep-alive wait for the next request
  std::chrono::seconds body_timeout{60};    // longest pause while a body streams
  std::chrono::seconds upstream_connect_timeout{5};
  std::chrono::seconds upstream_timeout{120};  // waiting for the VM's response header
  // ACME http-01: the key authorization for a token of an order in progress
  // (AcmeStore::ChallengeResponse), served as text/plain at
  // http://ANY/.well-known/acme-challenge/TOKEN; nullopt (or no function)
  // and the request is redirected like any other. Called on io threads.
  std::function<std::optional<std::string>(const std::string& token)> acme_challenge;
};

class Front {
 public:
  Front(FrontConfig config, CertStore& certs);
  ~Front();
  Front(const Front&) = delete;
  Front& operator=(const Front&) = delete;

  // Binds both ports. After it, https_port()/http_port() are the real ones.
  control::Status Listen();
  int https_port() const;
  int http_port() const;
  // Serves until Stop(); runs the io threads (the caller's among them).
  // REQUIRES: `service` outlives the Front.
  void Run(control::Service& service);
  // From any thread.
  void Stop();

  struct Shared;

 private:
  std::unique_ptr<Shared> sh_;
};

}  // namespace httpfront
