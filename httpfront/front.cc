// The HTTPS front: listening, TLS, one coroutine per client connection on
// one of the io_contexts, routing by host name, exed's own pages at the apex
// (login by code, the VM list, /exec) and the plain-HTTP redirect. Relaying a
// request to a VM is in proxy.cc; what the parts share, in front_internal.h.
#include "httpfront/front.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <limits>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <spdlog/spdlog.h>

#include "control/names.h"
#include "httpfront/front_internal.h"

namespace httpfront {

namespace {

// Reads a request's header into `parser`, refusing what must never reach a
// VM. Returns the error status to answer with (and close), or nullopt.
// `ec` is set (and nullopt returned) when the client left or timed out.
Task<std::optional<http::status>> ReadRequestHeader(Shared& sh, TlsStream& stream, beast::flat_buffer& buf,
                                                     RequestParser& parser, bool first,
                                                     beast::error_code& ec) {
  auto& lowest = beast::get_lowest_layer(stream);
  // Wait for the request's first byte (keep-alive idles), then the whole
  // header within header_timeout: a slow client is cut off.
  if (buf.size() == 0) {
    lowest.expires_after(first ? sh.config.header_timeout : sh.config.idle_timeout);
    auto n = co_await stream.async_read_some(buf.prepare(4096), net::redirect_error(kAwait, ec));
    if (ec) co_return std::nullopt;
    buf.commit(n);
  }
  lowest.expires_after(sh.config.header_timeout);
  // The header must end within max_header_bytes. Found in the raw bytes so
  // obs-fold (a field line starting with space or tab) can be refused:
  // Beast's parser would quietly unfold it.
  while (true) {
    std::string_view data(static_cast<const char*>(buf.data().data()), buf.size());
    auto end = data.find("\r\n\r\n");
    std::string_view head = data.substr(0, end);
    if (head.find("\r\n ") != std::string_view::npos || head.find("\r\n\t") != std::string_view::npos) {
      co_return http::status::bad_request;
    }
    // A bare LF ends a line for some servers and not for others (Beast waits
    // for a CRLF, so would wait out the timeout): refused at once, and never
    // forwarded, so a VM cannot read other fields than we did.
    for (size_t i = head.find('\n'); i != std::string_view::npos; i = head.find('\n', i + 1)) {
      if (i == 0 || head[i - 1] != '\r') co_return http::status::bad_request;
    }
    if (end != std::string::npos) break;
    if (buf.size() > sh.config.max_header_bytes) co_return http::status::request_header_fields_too_large;
    auto n = co_await stream.async_read_some(buf.prepare(4096), net::redirect_error(kAwait, ec));
    if (ec) co_return std::nullopt;
    buf.commit(n);
  }
  parser.header_limit(static_cast<uint32_t>(sh.config.max_header_bytes));
  if (sh.config.max_body_bytes) {
    parser.body_limit(sh.config.max_body_bytes);
  } else {
    // Not boost::none: Beast 1.74 compares a Content-Length with the empty
    // optional and calls every body too large.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  }
  // The whole header is in `buf`: parsed here, without a read.
  size_t used = parser.put(buf.data(), ec);
  buf.consume(used);
  if (!ec && !parser.is_header_done()) ec = http::error::partial_message;
  if (ec == http::error::header_limit) {
    ec = {};
    co_return http::status::request_header_fields_too_large;
  }
  if (ec == http::error::body_limit) {
    ec = {};
    co_return http::status::payload_too_large;
  }
  if (ec) {
    // Malformed: both Content-Length and Transfer-Encoding, a bad
    // Content-Length, a bad field. Refused, never forwarded. (Parsed from
    // the buffer: no read, so no eof or timeout here.)
    spdlog::info("event=http-bad-request error=\"{}\"", ec.message());
    ec = {};
    co_return http::status::bad_request;
  }
  // Two Content-Length fields, or one next to Transfer-Encoding: ambiguous.
  // No Host, or two: refused too. (One pass: count() looks each one up.)
  int lengths = 0, encodings = 0, hosts = 0;
  for (const auto& f : parser.get()) {
    lengths += f.name() == http::field::content_length;
    encodings += f.name() == http::field::transfer_encoding;
    hosts += f.name() == http::field::host;
  }
  if (lengths > 1 || (lengths && encodings) || hosts != 1) co_return http::status::bad_request;
  co_return std::nullopt;
}

// ---- exed's own pages ------------------------------------------------------

// Shared::sessions is keyed by a session cookie and the host it was sent to.
std::string SessionKey(const std::string& token, const std::string& host) { return token + "|" + host; }

// The control plane's answers, cached (TtlCache). The request path looks in
// the cache itself and runs these coroutines only on a miss: a coroutine's
// frame is an allocation per call, and a small request has few to spare.
Task<control::Result<control::WebIdentity>> AskSession(Shared& sh, const std::string& key, const std::string& token,
                                                       const std::string& host) {
  auto job1 = [&sh, token, host] { return sh.service().WebSessionFor(token, host); };
  auto r = co_await OffLoop(sh, job1);
  sh.sessions.Put(key, r);
  co_return r;
}

Task<control::Result<control::WebIdentity>> SessionOf(Shared& sh, const std::string& token, const std::string& host) {
  if (token.empty()) co_return control::NotFoundError("not logged in");
  std::string key = SessionKey(token, host);
  if (auto c = sh.sessions.Get(key)) co_return *c;
  co_return co_await AskSession(sh, key, token, host);
}

// `next` as given to the login pages: an https URL on the apex or a VM host
// of this domain, or a path on the apex. Anything else (another site) is
// replaced by the apex's front page, so the login is no open redirect.
std::string SafeNext(Shared& sh, const std::string& next) {
  // It goes into a Location field as it is: no CR/LF (header lines of its
  // own), no spaces, controls or backslashes (browsers drop tabs and read a
  // backslash as '/': "/<TAB>/evil.example" and "/\evil.example" both
  // lead to evil.example).
  if (!PlainUrlChars(next)) return sh.ApexUrl("/");
  if (next.rfind("/", 0) == 0 && next.rfind("//", 0) != 0) return sh.ApexUrl(next);
  std::string prefix = "https://";
  if (next.rfind(prefix, 0) != 0) return sh.ApexUrl("/");
  auto slash = next.find('/', prefix.size());
  std::string authority = next.substr(prefix.size(), slash - prefix.size());
  // A host name and a port only: "exe.localhost:8443@evil.example" is evil.example.
  if (authority.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") !=
      std::string::npos) {
    return sh.ApexUrl("/");
  }
  std::string host = HostOnly(authority);
  const std::string& d = sh.config.domain;
  bool ours = host == d || (host.size() > d.size() + 1 && host.compare(host.size() - d.size(), d.size(), d) == 0 &&
                            host[host.size() - d.size() - 1] == '.' &&
                            host.substr(0, host.size() - d.size() - 1).find('.') == std::string::npos);
  return ours ? next : sh.ApexUrl("/");
}

Task<Reply> LoginPage(Shared& sh, const std::string& code, const std::string& next, bool refresh) {
  std::string wait = sh.ApexUrl("/__exed/login/wait?next=" + UrlEncode(next));
  std::string body = fmt::format(
      "<p>To log in, run this with the SSH key of your account:</p>"
      "<pre>{} login {}</pre>"
      "<p>Code <b class=\"code\">{}</b> is good for 10 minutes. This page continues by itself once you have "
      "approved it; or <a href=\"{}\">continue</a>.</p>",
      HtmlEscape(sh.config.ssh_hint), HtmlEscape(code), HtmlEscape(code), HtmlEscape(wait));
  Reply r{http::status::ok, "text/html; charset=utf-8", Page("Log in to exed", body, refresh ? wait : "")};
  co_return r;
}

Task<Reply> Apex(Shared& sh, const Request& req, const std::string& remote) {
  std::string path = PathOf(req.target());
  std::string cookies(req[http::field::cookie]);
  auto session = co_await SessionOf(sh, CookieValue(cookies, kApexCookie), sh.config.domain);
  std::string next = SafeNext(sh, QueryParam(req.target(), "next"));

  if (path == "/__exed/login") {
    std::string ua(req[http::field::user_agent]);
    auto job2 = [&sh, remote, ua] { return sh.service().StartWebLogin(remote, ua); };
    auto started = co_await OffLoop(sh, job2);
    if (!started) co_return ErrorPage(http::status::service_unavailable, "Try again", HtmlEscape(started.error().message));
    auto r = co_await LoginPage(sh, started->first, next, true);
    r.headers.emplace_back("Set-Cookie", SetCookie(kLoginCookie, started->first + "." + started->second, 600));
    co_return r;
  }
  if (path == "/__exed/login/wait") {
    std::string v = CookieValue(cookies, kLoginCookie);
    auto dot = v.find('.');
    if (dot == std::string::npos) co_return Redirect(sh.ApexUrl("/__exed/login?next=" + UrlEncode(next)));
    std::string code = v.substr(0, dot), secret = v.substr(dot + 1);
    std::string token;
    auto job3 = [&sh, code, secret, &token] {
      return sh.service().FinishWebLogin(code, secret, &token);
    };
    auto state = co_await OffLoop(sh, job3);
    if (!state) co_return ErrorPage(http::status::service_unavailable, "Try again", HtmlEscape(state.error().message));
    if (*state == control::WebLoginState::kPending) co_return co_await LoginPage(sh, code, next, true);
    if (*state == control::WebLoginState::kGone) {
      co_return Redirect(sh.ApexUrl("/__exed/login?next=" + UrlEncode(next)));
    }
    // Logged in. To a VM's page through /__exed/authorize, which hands that
    // host a one-time token: the apex cookie never leaves the apex.
    std::string to = next.rfind(sh.ApexUrl("/"), 0) == 0 ? next : sh.ApexUrl("/__exed/authorize?next=" + UrlEncode(next));
    co_return Redirect(to, {{"Set-Cookie", SetCookie(kApexCookie, token, 30 * 24 * 3600)},
                            {"Set-Cookie", SetCookie(kLoginCookie, "", 0)}});
  }
  if (path == "/__exed/authorize") {
    if (!session) co_return Redirect(sh.ApexUrl("/__exed/login?next=" + UrlEncode(next)));
    std::string rest = next.substr(std::string("https://").size());
    auto slash = rest.find('/');
    std::string host = HostOnly(rest.substr(0, slash));
    std::string target = slash == std::string::npos ? "/" : rest.substr(slash);
    if (host == sh.config.domain) co_return Redirect(next);
    auto who = *session;
    auto job4 = [&sh, who, host] { return sh.service().MintHostToken(who, host); };
    auto token = co_await OffLoop(sh, job4);
    if (!token) co_return ErrorPage(http::status::service_unavailable, "Try again", HtmlEscape(token.error().message));
    co_return Redirect(sh.HostUrl(host, "/__exed/auth?token=" + *token + "&next=" + UrlEncode(target)));
  }
  if (path == "/__exed/logout") {
    if (session) {
      auto who = *session;
      auto job5 = [&sh, who] { return sh.service().WebLogout(who); };
      (void)co_await OffLoop(sh, job5);
      sh.sessions.Erase(SessionKey(CookieValue(cookies, kApexCookie), sh.config.domain));
    }
    Reply r = ErrorPage(http::status::ok, "Logged out",
                        "<p>You are logged out, here and on every VM page.</p><p><a href=\"/__exed/login\">Log in "
                        "again</a></p>");
    r.headers.emplace_back("Set-Cookie", SetCookie(kApexCookie, "", 0));
    co_return r;
  }
  if (path == "/") {
    if (!session) co_return Redirect(sh.ApexUrl("/__exed/login"));
    auto who = *session;
    auto job6 = [&sh, who] { return sh.service().VmsOf(who.account_id); };
    auto vms = co_await OffLoop(sh, job6);
    if (!vms) co_return ErrorPage(http::status::service_unavailable, "Try again", HtmlEscape(vms.error().message));
    std::string rows;
    for (const auto& v : *vms) {
      std::string url = sh.HostUrl(v.name + "." + sh.config.domain, "/");
      rows += fmt::format("<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td><code>{} {}@{}</code></td></tr>",
                          HtmlEscape(url), HtmlEscape(v.name), HtmlEscape(v.status), HtmlEscape(v.image),
                          "ssh", HtmlEscape(v.name), HtmlEscape(sh.config.domain));
    }
    if (rows.empty()) rows = "<tr><td colspan=4>No VMs yet: <code>" + HtmlEscape(sh.config.ssh_hint) + " new</code></td></tr>";
    co_return Reply{http::status::ok, "text/html; charset=utf-8",
                    Page("Your VMs", fmt::format("<p>Logged in as <b>{}</b>. <a href=\"/__exed/logout\">Log out</a></p>"
                                                 "<table><tr><th>VM</th><th>state</th><th>image</th><th>ssh</th></tr>"
                                                 "{}</table>",
                                                 HtmlEscape(who.account), rows))};
  }
  co_return ErrorPage(http::status::not_found, "Not found", "<p>There is no page here.</p>");
}

// A VM host's own /__exed/ paths: the token exchange and logout.
Task<std::optional<Reply>> VmHostPath(Shared& sh, const Request& req, const std::string& host) {
  std::string path = PathOf(req.target());
  if (path == "/__exed/auth") {
    std::string token = QueryParam(req.target(), "token");
    std::string next = QueryParam(req.target(), "next");
    if (next.empty() || next[0] != '/' || next.rfind("//", 0) == 0 || !PlainUrlChars(next)) next = "/";
    control::WebIdentity who;
    auto job7 = [&sh, token, host, &who] { return sh.service().RedeemHostToken(token, host, &who); };
    auto cookie = co_await OffLoop(sh, job7);
    if (!cookie) co_return ErrorPage(http::status::forbidden, "Link expired", HtmlEscape(cookie.error().message));
    co_return Redirect(next, {{"Set-Cookie", SetCookie(kVmCookie, *cookie, 30 * 24 * 3600)}});
  }
  if (path == "/__exed/logout") {
    std::string token = CookieValue(req[http::field::cookie], kVmCookie);
    auto session = co_await SessionOf(sh, token, host);
    if (session) {
      auto who = *session;
      auto job8 = [&sh, who] { return sh.service().WebLogout(who); };
      (void)co_await OffLoop(sh, job8);
      sh.sessions.Erase(SessionKey(token, host));
    }
    co_return Redirect(sh.ApexUrl("/__exed/logout"), {{"Set-Cookie", SetCookie(kVmCookie, "", 0)}});
  }
  co_return std::nullopt;
}

Task<bool> AskMayView(Shared& sh, const std::string& key, const control::WebTarget& vm, int64_t account_id) {
  const uint64_t epoch = sh.WebEpoch();
  auto job10 = [&sh, vm, account_id] { return sh.service().MayView(vm, account_id); };
  auto r = co_await OffLoop(sh, job10);
  bool may = r && *r;
  if (r) sh.views.Put(key, may, epoch);
  co_return may;
}

Task<void> ServeTls(Shared& sh, Socket socket, std::string remote) {
  TlsStream stream(std::move(socket), sh.listener_ctx);
  beast::get_lowest_layer(stream).expires_after(sh.config.handshake_timeout);
  beast::error_code ec;
  co_await stream.async_handshake(net::ssl::stream_base::server, net::redirect_error(kAwait, ec));
  if (ec) co_return;
  const char* sni_c = SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
  std::string sni = sni_c ? Lower(sni_c) : "";
  beast::flat_buffer buf;
  ConnBuffers bufs;
  const std::string& domain = sh.config.domain;
  // The request's Host field, and without port and lowercase; their memory
  // kept from request to request.
  std::string host_header, host;
  // Whether the connection ends with a reply of ours (every way out of the
  // loop but the client's leaving and a broken connection): see below.
  bool linger = true;
  try {
    for (bool first = true;; first = false) {
      auto parser = ParserIn<RequestParser>(bufs.fields);
      auto refused = co_await ReadRequestHeader(sh, stream, buf, parser, first, ec);
      if (ec) {
        linger = false;
        break;
      }
      if (refused) {
        const char* title = *refused == http::status::request_header_fields_too_large ? "Header too large"
                            : *refused == http::status::payload_too_large          ? "Body too large"
                                                                                    : "Bad request";
        co_await WriteReply(stream, ErrorPage(*refused, title, "<p>exed refused this request.</p>", true), 11, false,
                            false);
        break;
      }
      auto& req = parser.get();
      const unsigned version = req.version();
      const bool head = req.method() == http::verb::head;
      host_header.assign(SV(req[http::field::host]));  // a copy: Proxy may drop the field (Connection: Host)
      HostOnly(host_header, host);
      if (!sni.empty() && sni != host) {
        co_await WriteReply(stream,
                            ErrorPage(http::status::misdirected_request, "Misdirected",
                                      "<p>This connection is for another host name.</p>", true),
                            version, false, head);
        break;
      }
      Reply reply;
      bool handled = false;
      if (host == domain) {
        // exed's own pages take small bodies only (POST /exec).
        if (req.method() == http::verb::post && PathOf(req.target()) == "/exec") {
          std::string body;
          std::vector<char> chunk(kChunk);
          while (!parser.is_done()) {
            parser.get().body().data = chunk.data();
            parser.get().body().size = chunk.size();
            beast::get_lowest_layer(stream).expires_after(sh.config.body_timeout);
            co_await http::async_read(stream, buf, parser, net::redirect_error(kAwait, ec));
            if (ec == http::error::need_buffer) ec = {};
            if (ec) throw beast::system_error(ec);
            body.append(chunk.data(), chunk.size() - parser.get().body().size);
            if (body.size() > 64 * 1024) break;
          }
          std::string auth(req[http::field::authorization]);
          auto job11 = [&sh, auth, body, remote] {
            return sh.service().ExecApi(auth, body, remote);
          };
          auto api = co_await OffLoop(sh, job11);
          reply = Reply{static_cast<http::status>(api.status), "application/json", api.json, {}, !parser.is_done()};
        } else {
          reply = co_await Apex(sh, req, remote);
        }
        handled = true;
      } else if (host.size() > domain.size() + 1 && host.compare(host.size() - domain.size(), domain.size(), domain) == 0 &&
                 host[host.size() - domain.size() - 1] == '.') {
        std::string name = host.substr(0, host.size() - domain.size() - 1);
        std::optional<Reply> own;
        if (req.target().starts_with("/__exed/")) own = co_await VmHostPath(sh, req, host);
        if (own) {
          reply = *own;
          handled = true;
        } else {
          auto cached = sh.targets.Get(name, sh.WebEpoch());
          if (!cached) cached = co_await AskTarget(sh, name);
          const auto& vm = *cached;
          std::optional<control::WebIdentity> who;
          if (std::string token = CookieValue(req[http::field::cookie], kVmCookie); vm && !token.empty()) {
            std::string key = SessionKey(token, host);
            auto s = sh.sessions.Get(key);
            if (!s) s = co_await AskSession(sh, key, token, host);
            if (*s) who = **s;
          }
          bool may_view = vm && vm->is_public;
          if (vm && !may_view && who) {
            std::string key = fmt::format("{}|{}", vm->vm_id, who->account_id);
            auto c = sh.views.Get(key, sh.WebEpoch());
            may_view = c ? *c : co_await AskMayView(sh, key, *vm, who->account_id);
          }
          if (!vm) {
            reply = ErrorPage(http::status::not_found, "No such VM",
                              "<p>There is no VM <b>" + HtmlEscape(name) + "</b> here.</p>");
            handled = true;
          } else if (!vm->is_public && !who) {
            std::string here = sh.HostUrl(host, std::string(req.target()));
            reply = Redirect(sh.ApexUrl("/__exed/authorize?next=" + UrlEncode(here)));
            handled = true;
          } else if (!may_view) {
            reply = ErrorPage(http::status::forbidden, "Private VM",
                              fmt::format("<p>VM <b>{}</b> is private and not shared with {}. Its owner can share it: "
                                          "<code>share add {} {}</code>.</p><p><a href=\"/__exed/logout\">Log out</a></p>",
                                          HtmlEscape(name), HtmlEscape(who->account), HtmlEscape(name),
                                          HtmlEscape(who->account)));
            handled = true;
          } else if (vm->status != "running") {
            reply = NotRunningPage(sh, *vm);
            handled = true;
          } else {
            bool keep = co_await Proxy(sh, stream, buf, bufs, parser, *vm, who, remote, host_header);
            if (!keep) break;
            continue;
          }
        }
      } else {
        reply = ErrorPage(http::status::not_found, "Unknown host",
                          "<p>exed serves " + HtmlEscape(domain) + " and its VMs, not " + HtmlEscape(host) + ".</p>");
        handled = true;
      }
      if (handled) {
        // A body we did not read (a page answered before it) ends the connection.
        bool drained = parser.is_done() || (!req.has_content_length() && !req.chunked());
        bool keep = req.keep_alive() && drained && !reply.close;
        co_await WriteReply(stream, reply, version, keep, head);
        if (!keep) break;
      }
    }
  } catch (const std::exception& e) {
    linger = false;
    spdlog::debug("event=http-connection-error source={} error=\"{}\"", remote, e.what());
  }
  auto& lowest = beast::get_lowest_layer(stream);
  lowest.expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(net::redirect_error(kAwait, ec));
  if (linger && !ec) {
    // The client may still be sending (a refused header or body, one the VM
    // answered before reading): read it and drop it until the client closes,
    // or it would be answered with a reset that can destroy our reply.
    lowest.socket().shutdown(tcp::socket::shutdown_send, ec);
    lowest.expires_after(kLingerTime);
    co_await lowest.async_discard(net::redirect_error(kAwait, ec));
  }
}

// ACME http-01: GET /.well-known/acme-challenge/TOKEN gets the key
// authorization while an order waits on TOKEN; nullopt for anything else.
std::optional<std::string> AcmeAnswer(const Shared& sh, const http::request<http::empty_body>& req) {
  constexpr std::string_view kPrefix = "/.well-known/acme-challenge/";
  std::string target(req.target());
  if (!sh.config.acme_challenge || (req.method() != http::verb::get && req.method() != http::verb::head) ||
      target.compare(0, kPrefix.size(), kPrefix) != 0) {
    return std::nullopt;
  }
  return sh.config.acme_challenge(target.substr(kPrefix.size()));
}

// Plain HTTP: everything is redirected to https, but for ACME http-01 answers.
Task<void> ServePlain(Shared& sh, Socket socket, std::string /*remote*/) {
  TcpStream stream(std::move(socket));
  beast::flat_buffer buf;
  try {
    stream.expires_after(sh.config.header_timeout);
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<uint32_t>(sh.config.max_header_bytes));
    co_await http::async_read_header(stream, buf, parser, kAwait);
    auto& req = parser.get();
    std::string host = HostOnly(req[http::field::host]);
    Reply r;
    if (auto key_authorization = AcmeAnswer(sh, req)) {
      r = Reply{http::status::ok, "text/plain", std::move(*key_authorization)};
    } else if (host.empty()) {
      r = ErrorPage(http::status::bad_request, "Bad request", "<p>No Host.</p>", true);
    } else {
      r = Redirect(sh.HostUrl(host, std::string(req.target())));
      r.status = http::status::permanent_redirect;
    }
    co_await WriteReply(stream, r, req.version(), false, req.method() == http::verb::head);
    stream.socket().shutdown(tcp::socket::shutdown_send);
  } catch (const std::exception&) {
  }
}

// Each connection goes to the next io thread, with the client's address as
// accept(2) gave it (asking the socket later is a system call more). When the
// process is out of file descriptors the loop waits a little, rather than
// spinning on a listener that stays readable.
template <class Serve>
Task<void> AcceptLoop(Shared& sh, tcp::acceptor& acceptor, Serve serve) {
  Timer pause(co_await net::this_coro::executor);
  bool short_of_fds = false;  // logged once until an accept succeeds again
  while (acceptor.is_open()) {
    beast::error_code ec;
    tcp::endpoint peer;
    auto socket = co_await acceptor.async_accept(sh.NextContext(), peer, net::redirect_error(kAwait, ec));
    if (ec) {
      if (!acceptor.is_open()) break;
      if (ec == net::error::no_descriptors || ec == beast::errc::too_many_files_open_in_system ||
          ec == net::error::no_buffer_space || ec == net::error::no_memory) {
        if (!short_of_fds) spdlog::warn("event=accept-failed error=\"{}\" retry_every_ms=100", ec.message());
        short_of_fds = true;
        pause.expires_after(std::chrono::milliseconds(100));
        co_await pause.async_wait(net::redirect_error(kAwait, ec));
      }
      continue;
    }
    short_of_fds = false;
    socket.set_option(tcp::no_delay(true), ec);
    auto ex = socket.get_executor();
    net::co_spawn(ex, serve(sh, std::move(socket), peer.address().to_string()), net::detached);
  }
}

control::Status Bind(tcp::acceptor& a, const std::string& addr, int port, int* bound) {
  beast::error_code ec;
  tcp::endpoint ep(net::ip::make_address(addr, ec), static_cast<uint16_t>(port));
  if (ec) return control::InvalidError("bad listen address " + addr);
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return control::InternalError(fmt::format("cannot listen on {}:{}: {}; is another exed running, or set "
                                              "EXED_HTTPS_PORT/EXED_HTTP_PORT to free ports",
                                              addr, port, ec.message()));
  }
  *bound = a.local_endpoint().port();
  return control::Ok{};
}

}  // namespace

Task<control::Result<control::WebTarget>> AskTarget(Shared& sh, const std::string& name) {
  const uint64_t epoch = sh.WebEpoch();
  auto job9 = [&sh, name] { return sh.service().WebTargetFor(name); };
  auto r = co_await OffLoop(sh, job9);
  sh.targets.Put(name, r, epoch);
  co_return r;
}

Task<control::Result<control::WebTarget>> TargetOf(Shared& sh, const std::string& name) {
  if (auto c = sh.targets.Get(name, sh.WebEpoch())) co_return *c;
  co_return co_await AskTarget(sh, name);
}

Front::Front(FrontConfig config, CertStore& certs) : sh_(std::make_unique<Shared>(std::move(config), certs)) {}

Front::~Front() { Stop(); }

control::Status Front::Listen() {
  InstallSni(sh_->listener_ctx, sh_->certs);
  // The listener needs a certificate of its own before SNI switches it.
  auto apex = sh_->certs.ContextFor(sh_->config.domain);
  if (!apex) return apex.error();
  SSL_CTX_use_certificate(sh_->listener_ctx.native_handle(), SSL_CTX_get0_certificate((*apex)->native_handle()));
  SSL_CTX_use_PrivateKey(sh_->listener_ctx.native_handle(), SSL_CTX_get0_privatekey((*apex)->native_handle()));
  if (auto s = Bind(sh_->https_acceptor, sh_->config.listen_addr, sh_->config.https_port, &sh_->https_port); !s) return s;
  if (sh_->config.http_port >= 0) {
    if (auto s = Bind(sh_->http_acceptor, sh_->config.listen_addr, sh_->config.http_port, &sh_->http_port); !s) return s;
  }
  return control::Ok{};
}

int Front::https_port() const { return sh_->https_port; }
int Front::http_port() const { return sh_->http_port; }

void Front::Run(control::Service& service) {
  sh_->service_ptr = &service;
  auto& first = *sh_->iocs[0];
  net::co_spawn(first, AcceptLoop(*sh_, sh_->https_acceptor, ServeTls), net::detached);
  if (sh_->http_acceptor.is_open()) net::co_spawn(first, AcceptLoop(*sh_, sh_->http_acceptor, ServePlain), net::detached);
  // Until Stop(), also while a context has no connection.
  std::vector<net::executor_work_guard<net::io_context::executor_type>> keep_running;
  for (auto& ioc : sh_->iocs) keep_running.push_back(net::make_work_guard(*ioc));
  std::vector<std::thread> threads;
  for (size_t i = 1; i < sh_->iocs.size(); ++i) {
    threads.emplace_back([ioc = sh_->iocs[i].get()] { ioc->run(); });
  }
  first.run();
  for (auto& t : threads) t.join();
}

void Front::Stop() {
  if (!sh_) return;
  net::post(*sh_->iocs[0], [sh = sh_.get()] {
    beast::error_code ec;
    sh->https_acceptor.close(ec);
    sh->http_acceptor.close(ec);
  });
  for (auto& ioc : sh_->iocs) ioc->stop();
}

}  // namespace httpfront
