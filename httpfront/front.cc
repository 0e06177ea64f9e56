#include "httpfront/front.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "control/names.h"
#include "httpfront/pages.h"

namespace httpfront {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
// Every connection runs on one io_context (see Front::Shared::iocs), so its
// coroutines, sockets and timers use that context's executor type itself, not
// the type-erased any_io_executor: copying and querying that one was a fifth
// of the front's CPU time per small request (perf, ops/bench/https).
using Executor = net::io_context::executor_type;
template <class T>
using Task = net::awaitable<T, Executor>;
constexpr net::use_awaitable_t<Executor> kAwait;
using Socket = net::basic_stream_socket<tcp, Executor>;
using TcpStream = beast::basic_stream<tcp, Executor>;
using TlsStream = beast::ssl_stream<TcpStream>;
using Timer = net::basic_waitable_timer<Clock, net::wait_traits<Clock>, Executor>;
using Request = http::request<http::buffer_body>;
using Response = http::response<http::buffer_body>;

namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr auto kCacheFor = std::chrono::seconds(2);
constexpr const char* kApexCookie = "__Host-exed";      // apex session
constexpr const char* kVmCookie = "__Host-exed-vm";     // one VM host's session
constexpr const char* kLoginCookie = "__Host-exed-login";  // a login in progress: CODE.SECRET

// A small cache of answers from the control plane. Thread-safe.
template <class V>
class TtlCache {
 public:
  std::optional<V> Get(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end() || it->second.second < Clock::now()) return std::nullopt;
    return it->second.first;
  }
  void Put(const std::string& key, V v) {
    std::lock_guard lock(mu_);
    if (map_.size() > 10000) map_.clear();  // bounded; a refill costs one query each
    map_.insert_or_assign(key, std::make_pair(std::move(v), Clock::now() + kCacheFor));
  }
  void Erase(const std::string& key) {
    std::lock_guard lock(mu_);
    map_.erase(key);
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::pair<V, Clock::time_point>> map_;
};

std::string_view SV(beast::string_view s) { return {s.data(), s.size()}; }

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Host header without port, lowercase.
std::string HostOnly(beast::string_view h) {
  std::string s(h);
  if (auto colon = s.rfind(':'); colon != std::string::npos && s.find(']') == std::string::npos) s.resize(colon);
  return Lower(s);
}

std::string CookieValue(beast::string_view bheader, std::string_view name) {
  std::string_view header = SV(bheader);
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view part = header.substr(pos, end - pos);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name && part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
    pos = end + 1;
  }
  return "";
}

// The Cookie header without exed's own cookies (a VM never sees them).
std::string WithoutOurCookies(beast::string_view bheader) {
  std::string_view header = SV(bheader);
  std::string out;
  size_t pos = 0;
  while (pos < header.size()) {
    size_t end = header.find(';', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view part = header.substr(pos, end - pos);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (!part.empty() && part.substr(0, 11) != "__Host-exed") {
      if (!out.empty()) out += "; ";
      out += part;
    }
    pos = end + 1;
  }
  return out;
}

std::string QueryParam(beast::string_view btarget, std::string_view name) {
  std::string_view target = SV(btarget);
  auto q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    std::string_view kv = rest.substr(0, amp);
    if (kv.size() > name.size() && kv.substr(0, name.size()) == name && kv[name.size()] == '=') {
      return UrlDecode(kv.substr(name.size() + 1));
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return "";
}

// Whether `s` may go into a Location field as it is: no CR/LF, no spaces or
// controls, no backslashes.
bool PlainUrlChars(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](unsigned char c) { return c <= 0x20 || c == 0x7f || c == '\\'; });
}

std::string PathOf(beast::string_view target) { return std::string(target.substr(0, target.find('?'))); }

std::string SetCookie(const char* name, const std::string& value, int64_t max_age) {
  // __Host- cookies: Secure, Path=/, no Domain: sent only to this exact host.
  return fmt::format("{}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}", name, value, max_age);
}

bool IsHopByHop(std::string_view name) {
  static const std::array<std::string_view, 8> kHop = {"connection", "keep-alive", "proxy-connection", "te",
                                                         "trailer", "upgrade", "proxy-authorization",
                                                         "proxy-authenticate"};
  std::string n = Lower(std::string(name));
  return std::find(kHop.begin(), kHop.end(), n) != kHop.end();
}

// Removes hop-by-hop fields (and any the Connection field names), keeping
// Transfer-Encoding, which describes the body the serializer will write.
template <class Fields>
void DropHopByHop(Fields& f, bool keep_upgrade) {
  std::vector<std::string> named;
  for (auto it = f.begin(); it != f.end(); ++it) {
    if (Lower(std::string(it->name_string())) != "connection") continue;
    std::string v(it->value());
    size_t pos = 0;
    while (pos <= v.size()) {
      size_t end = v.find(',', pos);
      if (end == std::string::npos) end = v.size();
      std::string tok = v.substr(pos, end - pos);
      tok.erase(0, tok.find_first_not_of(" \t"));
      tok.erase(tok.find_last_not_of(" \t") + 1);
      if (!tok.empty()) named.push_back(Lower(tok));
      pos = end + 1;
    }
  }
  std::vector<std::string> drop;
  for (auto it = f.begin(); it != f.end(); ++it) {
    std::string n = Lower(std::string(it->name_string()));
    if (n == "transfer-encoding" || n == "content-length") continue;
    if (keep_upgrade && (n == "upgrade" || n == "connection")) continue;
    if (IsHopByHop(n) || std::find(named.begin(), named.end(), n) != named.end()) drop.push_back(n);
  }
  for (const auto& n : drop) f.erase(n);
}

bool IsWebSocketUpgrade(const Request& req) {
  return beast::iequals(req[http::field::upgrade], "websocket") &&
         Lower(std::string(req[http::field::connection])).find("upgrade") != std::string::npos;
}

}  // namespace

struct Front::Shared {
  FrontConfig config;
  CertStore& certs;
  control::Service* service_ptr = nullptr;  // set by Run()
  // One io_context per io thread, each run by that thread alone (as nginx
  // runs one worker per core): a connection lives on one of them, so its
  // handlers need no strand and no lock. The first also runs the acceptors,
  // which hand connections out in turn.
  std::vector<std::unique_ptr<net::io_context>> iocs = Contexts(config.threads);
  std::atomic<size_t> next_ioc{0};
  net::thread_pool blocking{8};
  net::ssl::context listener_ctx{net::ssl::context::tls_server};
  tcp::acceptor https_acceptor{*iocs[0]};
  tcp::acceptor http_acceptor{*iocs[0]};
  int https_port = 0;
  int http_port = 0;
  TtlCache<control::Result<control::WebTarget>> targets;
  TtlCache<control::Result<control::WebIdentity>> sessions;
  TtlCache<bool> views;
  // Idle upstream connections by VM port, one pool per io_context (same
  // index as iocs; see TakeIdle). Each has its own lock: a thread takes and
  // gives back on its own pool, uncontended; it locks another's only to
  // borrow when its own has none for that port.
  struct UpstreamPool {
    std::mutex mu;
    std::map<int, std::vector<std::unique_ptr<TcpStream>>> idle;
  };
  std::vector<std::unique_ptr<UpstreamPool>> pools = Pools(iocs.size());

  Shared(FrontConfig c, CertStore& cs) : config(std::move(c)), certs(cs) {}

  static std::vector<std::unique_ptr<UpstreamPool>> Pools(size_t n) {
    std::vector<std::unique_ptr<UpstreamPool>> v;
    for (size_t i = 0; i < n; ++i) v.push_back(std::make_unique<UpstreamPool>());
    return v;
  }

  // The pool of the io_context `ex` runs on.
  UpstreamPool& PoolOf(const Executor& ex) {
    const auto* ctx = &net::query(ex, net::execution::context);
    for (size_t i = 0; i < iocs.size(); ++i) {
      if (iocs[i].get() == ctx) return *pools[i];
    }
    return *pools[0];  // not one of ours: unreachable, every stream runs on iocs
  }

  static std::vector<std::unique_ptr<net::io_context>> Contexts(int threads) {
    int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::unique_ptr<net::io_context>> v;
    for (int i = 0; i < n; ++i) v.push_back(std::make_unique<net::io_context>(1));
    return v;
  }
  net::io_context& NextContext() { return *iocs[next_ioc++ % iocs.size()]; }
  control::Service& service() { return *service_ptr; }

  std::string ApexUrl(std::string_view path) const {
    return config.https_port == 443 ? fmt::format("https://{}{}", config.domain, path)
                                    : fmt::format("https://{}:{}{}", config.domain, https_port, path);
  }
  std::string HostUrl(const std::string& host, std::string_view target) const {
    return https_port == 443 ? fmt::format("https://{}{}", host, target)
                             : fmt::format("https://{}:{}{}", host, https_port, target);
  }
};

namespace {

using Shared = Front::Shared;

// Runs `f` (blocking: PostgreSQL) on the blocking pool; resumes on the
// caller's strand. GCC 12 destroys a lambda passed by value to a coroutine (or
// to co_spawn) twice, so callers name the job and pass it by reference.
template <class F>
Task<std::invoke_result_t<F&>> OffLoop(Shared& sh, F& f) {
  using R = std::invoke_result_t<F&>;
  // The handler's result must be default-constructible; Result<T> is not.
  auto r = co_await net::async_initiate<const net::use_awaitable_t<Executor>&, void(std::optional<R>)>(
      [&sh](auto handler, F fn) {
        net::post(sh.blocking, [handler = std::move(handler), fn = std::move(fn)]() mutable {
          std::optional<R> out(fn());
          auto ex = net::get_associated_executor(handler);
          net::post(ex, [handler = std::move(handler), out = std::move(out)]() mutable { handler(std::move(out)); });
        });
      },
      kAwait, F(f));
  co_return std::move(*r);
}

// A whole response of exed's own (a page, a redirect, JSON).
struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "text/html; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;
};

Reply Redirect(const std::string& location, std::vector<std::pair<std::string, std::string>> headers = {}) {
  Reply r{http::status::found, "text/html; charset=utf-8", Page("Redirecting", "<p>Continue to <a href=\"" +
                                                                                   HtmlEscape(location) + "\">" +
                                                                                   HtmlEscape(location) + "</a>.</p>"),
          std::move(headers)};
  r.headers.emplace_back("Location", location);
  return r;
}

Reply ErrorPage(http::status status, const std::string& title, const std::string& text_html, bool close = false) {
  return Reply{status, "text/html; charset=utf-8", Page(title, text_html), {}, close};
}

template <class Stream>
Task<void> WriteReply(Stream& stream, const Reply& r, unsigned version, bool keep_alive, bool head) {
  http::response<http::string_body> res{r.status, version};
  res.set(http::field::server, "exed");
  res.set(http::field::content_type, r.content_type);
  res.set(http::field::cache_control, "no-store");
  for (const auto& [k, v] : r.headers) res.insert(k, v);
  res.body() = r.body;
  res.prepare_payload();
  if (head) res.body().clear();
  res.keep_alive(keep_alive && !r.close);
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
  if (head) {
    http::response_serializer<http::string_body> sr{res};
    co_await http::async_write_header(stream, sr, kAwait);
  } else {
    co_await http::async_write(stream, res, kAwait);
  }
}

// Reads a request's header into `parser`, refusing what must never reach a
// VM. Returns the error status to answer with (and close), or nullopt.
// `ec` is set (and nullopt returned) when the client left or timed out.
Task<std::optional<http::status>> ReadRequestHeader(Shared& sh, TlsStream& stream, beast::flat_buffer& buf,
                                                     http::request_parser<http::buffer_body>& parser, bool first,
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
    auto data = beast::buffers_to_string(buf.data());
    auto end = data.find("\r\n\r\n");
    std::string_view head(data.data(), end == std::string::npos ? data.size() : end);
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
  co_await http::async_read_header(stream, buf, parser, net::redirect_error(kAwait, ec));
  if (ec == http::error::header_limit) {
    ec = {};
    co_return http::status::request_header_fields_too_large;
  }
  if (ec == http::error::body_limit) {
    ec = {};
    co_return http::status::payload_too_large;
  }
  if (ec) {
    // Malformed: bad chunk sizes, both Content-Length and Transfer-Encoding,
    // a bad Content-Length. Refused, never forwarded.
    if (ec != net::error::eof && ec != beast::error::timeout && ec != net::ssl::error::stream_truncated) {
      spdlog::info("event=http-bad-request error=\"{}\"", ec.message());
      ec = {};
      co_return http::status::bad_request;
    }
    co_return std::nullopt;
  }
  const auto& req = parser.get();
  // Two Content-Length fields, or one next to Transfer-Encoding: ambiguous.
  if (req.count(http::field::content_length) > 1 ||
      (req.count(http::field::content_length) && req.count(http::field::transfer_encoding)) ||
      req.count(http::field::host) != 1) {
    co_return http::status::bad_request;
  }
  co_return std::nullopt;
}

// What one client connection reuses from request to request.
struct ConnBuffers {
  // A body's 64 KiB on its way through, each direction; made on first use
  // (not zero-filled; none at all while no message has a body).
  std::unique_ptr<char[]> request_chunk, response_chunk;
  beast::flat_buffer response;  // the VM's bytes
};

// Streams the rest of the message in `parser` (whose header may be written
// already through `sr`, or goes with the first piece) from `in` to `out`,
// 64 KiB at a time through `chunk`.
template <bool isRequest, class In, class Out>
Task<void> RelayBody(Shared& sh, In& in, beast::flat_buffer& in_buf, http::parser<isRequest, http::buffer_body>& p,
                     Out& out, http::serializer<isRequest, http::buffer_body>& sr, std::unique_ptr<char[]>& chunk) {
  if (!p.is_done() && !chunk) chunk.reset(new char[kChunk]);
  do {
    if (!p.is_done()) {
      p.get().body().data = chunk.get();
      p.get().body().size = kChunk;
      beast::get_lowest_layer(in).expires_after(sh.config.body_timeout);
      beast::error_code ec;
      co_await http::async_read(in, in_buf, p, net::redirect_error(kAwait, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) throw beast::system_error(ec);
      p.get().body().size = kChunk - p.get().body().size;
      p.get().body().data = chunk.get();
      p.get().body().more = !p.is_done();
    } else {
      p.get().body().data = nullptr;
      p.get().body().size = 0;
      p.get().body().more = false;
    }
    beast::get_lowest_layer(out).expires_after(sh.config.body_timeout);
    beast::error_code ec;
    co_await http::async_write(out, sr, net::redirect_error(kAwait, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) throw beast::system_error(ec);
  } while (!p.is_done() && !sr.is_done());
}

// Copies bytes from `from` to `to` until either side closes (a WebSocket,
// after the 101).
template <class From, class To>
Task<void> Splice(From& from, To& to) {
  std::vector<char> chunk(kChunk);
  try {
    while (true) {
      beast::get_lowest_layer(from).expires_never();
      size_t n = co_await from.async_read_some(net::buffer(chunk), kAwait);
      beast::get_lowest_layer(to).expires_after(std::chrono::seconds(60));
      co_await net::async_write(to, net::buffer(chunk.data(), n), kAwait);
    }
  } catch (const std::exception&) {
  }
  beast::get_lowest_layer(from).cancel();
  beast::get_lowest_layer(to).cancel();
}

// Where a response header that ends in `have` ends (just past its empty
// line), with CRLF or bare LF line ends; npos when it is not all here yet.
size_t ResponseHeaderEnd(std::string_view have) {
  for (size_t i = have.find('\n'); i != std::string_view::npos; i = have.find('\n', i + 1)) {
    if (i + 1 < have.size() && have[i + 1] == '\n') return i + 2;
    if (i + 2 < have.size() && have[i + 1] == '\r' && have[i + 2] == '\n') return i + 3;
  }
  return std::string_view::npos;
}

// Reads a VM's response header into `buf` and parses it with `parser`, as
// http::async_read_header does, except that a bare LF ends a line as CRLF
// does (RFC 9112 2.2 lets a recipient accept it): CGI scripts that print
// their header with `echo` are common, and browsers and nginx take them.
// Requests, which could smuggle, stay strict. Bytes past the header stay in
// `buf`.
Task<void> ReadResponseHeader(TcpStream& up, beast::flat_buffer& buf, http::response_parser<http::buffer_body>& parser,
                              size_t limit, beast::error_code& ec) {
  size_t end = std::string_view::npos;
  while ((end = ResponseHeaderEnd({static_cast<const char*>(buf.data().data()), buf.size()})) ==
         std::string_view::npos) {
    if (buf.size() >= limit) {
      ec = http::error::header_limit;
      co_return;
    }
    size_t n = co_await up.async_read_some(buf.prepare(std::max<size_t>(4096, buf.capacity() - buf.size())),
                                           net::redirect_error(kAwait, ec));
    if (ec) co_return;
    buf.commit(n);
  }
  std::string_view have(static_cast<const char*>(buf.data().data()), buf.size());
  std::string_view header = have.substr(0, end);
  bool bare = false;
  for (size_t i = header.find('\n'); i != std::string_view::npos && !bare; i = header.find('\n', i + 1)) {
    bare = i == 0 || header[i - 1] != '\r';
  }
  if (bare) {
    std::string fixed;
    fixed.reserve(have.size() + 64);
    for (char c : header) {
      if (c == '\n' && (fixed.empty() || fixed.back() != '\r')) fixed += '\r';
      fixed += c;
    }
    fixed.append(have.substr(end));
    buf.consume(buf.size());
    buf.commit(net::buffer_copy(buf.prepare(fixed.size()), net::buffer(fixed)));
  }
  size_t used = parser.put(buf.data(), ec);
  buf.consume(used);
  if (!ec && !parser.is_header_done()) ec = http::error::partial_message;
}

// Whether a pooled connection is still good to send a request on. The VM may
// have closed it while idle (servers time idle keep-alive connections out): a
// closed one reads EOF at once, and one with bytes nobody asked for is no
// good either. Only "nothing to read" is idle.
bool StillIdle(TcpStream& s) {
  if (!s.socket().is_open()) return false;
  char c;
  ssize_t n = ::recv(s.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// An idle connection to `port` for a request on `ex`'s io_context: one made
// there, else one moved over from another io_context (the socket moves; its
// old stream, with no operation pending, is dropped), else null.
std::unique_ptr<TcpStream> TakeIdle(Shared& sh, const Executor& ex, int port) {
  Shared::UpstreamPool& own = sh.PoolOf(ex);
  // Pops idle connections to `port` from `pool` until one still is.
  auto take = [port](Shared::UpstreamPool& pool) -> std::unique_ptr<TcpStream> {
    std::lock_guard lock(pool.mu);
    auto it = pool.idle.find(port);
    if (it == pool.idle.end()) return nullptr;
    while (!it->second.empty()) {
      auto s = std::move(it->second.back());
      it->second.pop_back();
      if (StillIdle(*s)) return s;
    }
    return nullptr;
  };
  if (auto s = take(own)) return s;
  for (auto& pool : sh.pools) {
    if (pool.get() == &own) continue;
    auto s = take(*pool);
    if (!s) continue;
    beast::error_code ec;
    auto fd = s->socket().release(ec);
    if (ec) continue;
    auto moved = std::make_unique<TcpStream>(ex);
    moved->socket().assign(tcp::v4(), fd, ec);
    if (ec) {
      ::close(fd);
      continue;
    }
    return moved;
  }
  return nullptr;
}

void GiveBack(Shared& sh, const Executor& ex, int port, std::unique_ptr<TcpStream> s) {
  Shared::UpstreamPool& pool = sh.PoolOf(ex);
  std::lock_guard lock(pool.mu);
  auto& v = pool.idle[port];
  if (v.size() < 32) v.push_back(std::move(s));
}

// Proxies one request (header read, body not yet) to the VM and its
// response back. Returns whether the client connection may be kept.
Task<bool> Proxy(Shared& sh, TlsStream& client, beast::flat_buffer& cbuf, ConnBuffers& bufs,
                 http::request_parser<http::buffer_body>& parser,
                 const control::WebTarget& vm, const std::optional<control::WebIdentity>& who,
                 const std::string& remote, const std::string& host_header) {
  auto& req = parser.get();
  const bool client_keep_alive = req.keep_alive();
  const bool head = req.method() == http::verb::head;
  const bool websocket = IsWebSocketUpgrade(req);
  const unsigned version = req.version();

  // The request as the VM sees it.
  DropHopByHop(req, websocket);
  // Fields we set, however the client spells them: CGI (and frameworks that
  // follow it) map '_' and '-' alike, so X_Exed_User would reach a VM as
  // HTTP_X_EXED_USER just as X-Exed-User does.
  std::vector<std::string> ours;
  for (auto it = req.begin(); it != req.end(); ++it) {
    std::string n = Lower(std::string(it->name_string()));
    std::replace(n.begin(), n.end(), '_', '-');
    if (n.rfind("x-exed-", 0) == 0 || n == "x-forwarded-for" || n == "x-forwarded-proto" || n == "x-forwarded-host") {
      ours.emplace_back(it->name_string());
    }
  }
  for (const auto& n : ours) req.erase(n);
  if (who) req.set("X-Exed-User", who->account);
  req.set("X-Forwarded-For", remote);
  req.set("X-Forwarded-Proto", "https");
  req.set("X-Forwarded-Host", host_header);
  if (req.count(http::field::cookie)) {
    std::string kept = WithoutOurCookies(req[http::field::cookie]);
    if (kept.empty()) {
      req.erase(http::field::cookie);
    } else {
      req.set(http::field::cookie, kept);
    }
  }
  bool expect_continue = beast::iequals(req[http::field::expect], "100-continue");
  req.erase(http::field::expect);
  if (websocket) {
    req.set(http::field::connection, "Upgrade");
  } else {
    req.keep_alive(true);
  }

  auto fail = [&](http::status s, const std::string& title, const std::string& html) -> Task<bool> {
    co_await WriteReply(client, ErrorPage(s, title, html, true), version, false, head);
    co_return false;
  };

  // An idle pooled connection, else a new one.
  auto ex = co_await net::this_coro::executor;
  std::unique_ptr<TcpStream> up = websocket ? nullptr : TakeIdle(sh, ex, vm.web_port);
  bool reused = up != nullptr;
  if (!up) {
    up = std::make_unique<TcpStream>(ex);
    up->expires_after(sh.config.upstream_connect_timeout);
    beast::error_code ec;
    co_await up->async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(vm.web_port)),
                               net::redirect_error(kAwait, ec));
    // Header and body go as separate writes: with Nagle, a small body would
    // wait ~40 ms for the VM's delayed ACK.
    if (!ec) up->socket().set_option(tcp::no_delay(true), ec);
    if (ec) {
      co_return co_await fail(
          ec == beast::error::timeout ? http::status::gateway_timeout : http::status::bad_gateway,
          "VM not answering",
          fmt::format("<p>Nothing answers on port {} of VM <b>{}</b> ({}). Is a web server running in it? "
                      "<code>share port {} PORT</code> picks another port.</p>",
                      vm.guest_web_port, HtmlEscape(vm.name), HtmlEscape(ec.message()), HtmlEscape(vm.name)));
    }
  }
  if (expect_continue) {
    beast::get_lowest_layer(client).expires_after(std::chrono::seconds(30));
    co_await net::async_write(client, net::buffer(std::string_view("HTTP/1.1 100 Continue\r\n\r\n")),
                              kAwait);
  }

  http::request_serializer<http::buffer_body> sr{req};
  {
    beast::error_code ec;
    up->expires_after(std::chrono::seconds(30));
    co_await http::async_write_header(*up, sr, net::redirect_error(kAwait, ec));
    if (ec) {
      co_return co_await fail(http::status::bad_gateway, "VM connection failed",
                              "<p>The connection to the VM broke: " + HtmlEscape(ec.message()) + "</p>");
    }
  }
  bool too_large = false;
  std::optional<beast::error_code> malformed;
  try {
    co_await RelayBody<true>(sh, client, cbuf, parser, *up, sr, bufs.request_chunk);
  } catch (const beast::system_error& e) {
    // The client's body broke the HTTP rules (a bad chunk size): a 400, as for
    // a bad header. The VM's connection goes with `up`, mid-request.
    if (e.code() == http::error::body_limit) {
      too_large = true;
    } else if (e.code().category() == beast::error_code(http::error::bad_chunk).category() &&
               e.code() != http::error::partial_message) {
      malformed = e.code();
    } else {
      throw;
    }
  }
  if (too_large) {
    co_return co_await fail(http::status::payload_too_large, "Too large", "<p>The request body is too large.</p>");
  }
  if (malformed) {
    spdlog::info("event=http-bad-request error=\"{}\"", malformed->message());
    co_return co_await fail(http::status::bad_request, "Bad request",
                            "<p>exed refused this request: " + HtmlEscape(malformed->message()) + "</p>");
  }

  // The response. Read in 64 KiB, not Beast's default 512 bytes.
  beast::flat_buffer& ubuf = bufs.response;
  ubuf.consume(ubuf.size());
  ubuf.reserve(kChunk);
  http::response_parser<http::buffer_body> rp;
  rp.body_limit(std::numeric_limits<std::uint64_t>::max());
  rp.header_limit(64 * 1024);
  if (head) rp.skip(true);
  up->expires_after(sh.config.upstream_timeout);
  beast::error_code ec;
  co_await ReadResponseHeader(*up, ubuf, rp, 64 * 1024, ec);
  if (ec) {
    (void)reused;
    if (ec == beast::error::timeout) {
      co_return co_await fail(http::status::gateway_timeout, "VM too slow",
                              fmt::format("<p>VM <b>{}</b> did not answer within {} s.</p>", HtmlEscape(vm.name),
                                          sh.config.upstream_timeout.count()));
    }
    co_return co_await fail(http::status::bad_gateway, "Bad answer from the VM",
                            "<p>The VM's web server closed the connection or sent something that is not HTTP: " +
                                HtmlEscape(ec.message()) + "</p>");
  }
  auto& res = rp.get();
  bool upstream_keep_alive = rp.keep_alive();
  bool upgraded = websocket && res.result() == http::status::switching_protocols;
  DropHopByHop(res, upgraded);
  // A VM may not set (or clear) exed's cookies.
  std::vector<std::string> cookies;
  for (auto it = res.find(http::field::set_cookie); it != res.end() && it->name() == http::field::set_cookie; ++it) {
    if (Lower(std::string(it->value())).rfind("__host-exed", 0) != 0) cookies.emplace_back(it->value());
  }
  res.erase(http::field::set_cookie);
  for (const auto& c : cookies) res.insert(http::field::set_cookie, c);

  if (upgraded) {
    http::response_serializer<http::buffer_body> rsr{res};
    beast::get_lowest_layer(client).expires_after(std::chrono::seconds(30));
    co_await http::async_write_header(client, rsr, kAwait);
    // Bytes read past either header belong to the tunnel.
    if (ubuf.size()) {
      co_await net::async_write(client, ubuf.data(), kAwait);
      ubuf.consume(ubuf.size());
    }
    if (cbuf.size()) {
      co_await net::async_write(*up, cbuf.data(), kAwait);
      cbuf.consume(cbuf.size());
    }
    auto upstream = std::shared_ptr<TcpStream>(std::move(up));
    auto done = std::make_shared<Timer>(ex, Clock::time_point::max());
    int* left = new int(2);
    auto finish = [done, left](std::exception_ptr) {
      if (--*left == 0) {
        delete left;
        done->cancel();
      }
    };
    net::co_spawn(ex, Splice(*upstream, client), finish);
    net::co_spawn(ex, Splice(client, *upstream), finish);
    beast::error_code wait_ec;
    co_await done->async_wait(net::redirect_error(kAwait, wait_ec));
    co_return false;
  }

  bool keep = client_keep_alive && (rp.is_done() || res.has_content_length() || res.chunked() || head ||
                                    res.result_int() == 204 || res.result_int() == 304);
  res.keep_alive(keep);
  res.version(version);
  http::response_serializer<http::buffer_body> rsr{res};
  // The header goes out with the first piece of the body (one TLS record,
  // one write) when that piece is here already; alone when the VM is still
  // producing the body (a stream, a long poll), so the client sees it at once.
  if (ubuf.size() == 0 && !rp.is_done()) {
    beast::get_lowest_layer(client).expires_after(std::chrono::seconds(30));
    co_await http::async_write_header(client, rsr, kAwait);
  }
  co_await RelayBody<false>(sh, *up, ubuf, rp, client, rsr, bufs.response_chunk);
  if (upstream_keep_alive && rp.is_done() && ubuf.size() == 0) {
    up->expires_never();
    GiveBack(sh, ex, vm.web_port, std::move(up));
  }
  co_return keep;
}

// ---- exed's own pages ------------------------------------------------------

Task<control::Result<control::WebIdentity>> SessionOf(Shared& sh, const std::string& token, const std::string& host) {
  if (token.empty()) co_return control::NotFoundError("not logged in");
  std::string key = token + "|" + host;
  if (auto c = sh.sessions.Get(key)) co_return *c;
  auto job1 = [&sh, token, host] { return sh.service().WebSessionFor(token, host); };
  auto r = co_await OffLoop(sh, job1);
  sh.sessions.Put(key, r);
  co_return r;
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
      sh.sessions.Erase(CookieValue(cookies, kApexCookie) + "|" + sh.config.domain);
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
      sh.sessions.Erase(token + "|" + host);
    }
    co_return Redirect(sh.ApexUrl("/__exed/logout"), {{"Set-Cookie", SetCookie(kVmCookie, "", 0)}});
  }
  co_return std::nullopt;
}

Task<control::Result<control::WebTarget>> TargetOf(Shared& sh, const std::string& name) {
  if (auto c = sh.targets.Get(name)) co_return *c;
  auto job9 = [&sh, name] { return sh.service().WebTargetFor(name); };
  auto r = co_await OffLoop(sh, job9);
  sh.targets.Put(name, r);
  co_return r;
}

Task<bool> MayView(Shared& sh, const control::WebTarget& vm, int64_t account_id) {
  std::string key = fmt::format("{}|{}", vm.vm_id, account_id);
  if (auto c = sh.views.Get(key)) co_return *c;
  auto job10 = [&sh, vm, account_id] { return sh.service().MayView(vm, account_id); };
  auto r = co_await OffLoop(sh, job10);
  bool may = r && *r;
  if (r) sh.views.Put(key, may);
  co_return may;
}

Task<void> ServeTls(Shared& sh, Socket socket) {
  std::string remote;
  try {
    remote = socket.remote_endpoint().address().to_string();
  } catch (const std::exception&) {
    co_return;
  }
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
  try {
    for (bool first = true;; first = false) {
      http::request_parser<http::buffer_body> parser;
      auto refused = co_await ReadRequestHeader(sh, stream, buf, parser, first, ec);
      if (ec) break;
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
      std::string host_header(req[http::field::host]);
      std::string host = HostOnly(host_header);
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
        if (auto own = co_await VmHostPath(sh, req, host)) {
          reply = *own;
          handled = true;
        } else {
          auto vm = co_await TargetOf(sh, name);
          std::optional<control::WebIdentity> who;
          if (vm) {
            auto s = co_await SessionOf(sh, CookieValue(req[http::field::cookie], kVmCookie), host);
            if (s) who = *s;
          }
          if (!vm) {
            reply = ErrorPage(http::status::not_found, "No such VM",
                              "<p>There is no VM <b>" + HtmlEscape(name) + "</b> here.</p>");
            handled = true;
          } else if (!vm->is_public && !who) {
            std::string here = sh.HostUrl(host, std::string(req.target()));
            reply = Redirect(sh.ApexUrl("/__exed/authorize?next=" + UrlEncode(here)));
            handled = true;
          } else if (!vm->is_public && !(co_await MayView(sh, *vm, who->account_id))) {
            reply = ErrorPage(http::status::forbidden, "Private VM",
                              fmt::format("<p>VM <b>{}</b> is private and not shared with {}. Its owner can share it: "
                                          "<code>share add {} {}</code>.</p><p><a href=\"/__exed/logout\">Log out</a></p>",
                                          HtmlEscape(name), HtmlEscape(who->account), HtmlEscape(name),
                                          HtmlEscape(who->account)));
            handled = true;
          } else if (vm->status != "running") {
            reply = ErrorPage(http::status::service_unavailable, "VM not running",
                              fmt::format("<p>VM <b>{}</b> is {}. Its owner can start it: <code>{} start {}</code></p>",
                                          HtmlEscape(name), HtmlEscape(vm->status), HtmlEscape(sh.config.ssh_hint),
                                          HtmlEscape(name)));
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
    spdlog::debug("event=http-connection-error source={} error=\"{}\"", remote, e.what());
  }
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
  co_await stream.async_shutdown(net::redirect_error(kAwait, ec));
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
Task<void> ServePlain(Shared& sh, Socket socket) {
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

template <class Serve>
Task<void> AcceptLoop(Shared& sh, tcp::acceptor& acceptor, Serve serve) {
  while (acceptor.is_open()) {
    beast::error_code ec;
    auto socket = co_await acceptor.async_accept(sh.NextContext(), net::redirect_error(kAwait, ec));
    if (ec) {
      if (!acceptor.is_open()) break;
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    auto ex = socket.get_executor();
    net::co_spawn(ex, serve(sh, std::move(socket)), net::detached);
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
