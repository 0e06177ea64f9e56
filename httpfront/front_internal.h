// Internal to the HTTPS front, shared by its parts: front.cc (listening,
// connections, routing and exed's own pages), proxy.cc (one request relayed
// to a VM and its answer back) and http_helpers.cc (header and cookie
// helpers, exed's own replies). Not part of httpfront's interface: that is
// front.h.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "control/service.h"
#include "httpfront/front.h"
#include "httpfront/pages.h"
#include "httpfront/tls_stream.h"

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
// A TCP socket with deadlines, one timer per connection (tls_stream.h).
using TcpStream = PlainStream;
// OpenSSL on the socket itself (tls_stream.h), not Asio's BIO pair.
using TlsStream = ServerTlsStream;
using Timer = net::basic_waitable_timer<Clock, net::wait_traits<Clock>, Executor>;
// Memory for one connection's header fields. Beast allocates every field
// (name and value) on its own: a dozen allocations per proxied request, a
// tenth of its instructions with the frees (callgrind). Here they come from
// one block, front to back; when the last is given back (the request's
// parsers are gone) the next starts at the front again. What does not fit
// goes to the heap. One connection's, so one thread's: no lock.
class FieldArena {
 public:
  static constexpr size_t kBlock = 4096;
  void* Allocate(size_t n) {
    n = (n + 15) & ~size_t{15};
    if (!block_) block_.reset(new char[kBlock]);
    if (n > kBlock - used_) return ::operator new(n);
    void* p = block_.get() + used_;
    used_ += n;
    ++live_;
    return p;
  }
  void Free(void* p) {
    auto* c = static_cast<char*>(p);
    if (!block_ || c < block_.get() || c >= block_.get() + kBlock) {
      ::operator delete(p);
    } else if (--live_ == 0) {
      used_ = 0;
    }
  }
  size_t used() const { return used_; }

 private:
  std::unique_ptr<char[]> block_;  // new[]: aligned for any fundamental type
  size_t used_ = 0, live_ = 0;
};

template <class T>
struct ArenaAllocator {
  using value_type = T;
  FieldArena* arena;
  explicit ArenaAllocator(FieldArena* a) : arena(a) {}
  template <class U>
  ArenaAllocator(const ArenaAllocator<U>& o) : arena(o.arena) {}  // NOLINT: rebinding
  T* allocate(size_t n) { return static_cast<T*>(arena->Allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t) { arena->Free(p); }
  template <class U>
  bool operator==(const ArenaAllocator<U>& o) const { return arena == o.arena; }
};

using FieldAlloc = ArenaAllocator<char>;
using Fields = http::basic_fields<FieldAlloc>;
using Request = http::request<http::buffer_body, Fields>;
using RequestParser = http::request_parser<http::buffer_body, FieldAlloc>;
// A parser whose fields live in `arena` (returned in place: C++17 elision).
template <class Parser>
Parser ParserIn(FieldArena& arena) {
  return Parser(std::piecewise_construct, std::make_tuple(), std::make_tuple(FieldAlloc(&arena)));
}

inline constexpr size_t kChunk = 64 * 1024;
inline constexpr auto kCacheFor = std::chrono::seconds(2);
// How long a connection we close reads (and drops) what its client still
// sends: ServerTlsStream::async_discard.
inline constexpr auto kLingerTime = std::chrono::seconds(5);
inline constexpr const char* kApexCookie = "__Host-exed";      // apex session
inline constexpr const char* kVmCookie = "__Host-exed-vm";     // one VM host's session
inline constexpr const char* kLoginCookie = "__Host-exed-login";  // a login in progress: CODE.SECRET

// A small cache of answers from the control plane. Thread-safe.
//
// An answer is fresh for kCacheFor. When it expires under load, only the
// first caller gets nullopt (and asks again, then Puts); for up to
// kRefreshFor after the expiry the others keep the old answer rather than all
// asking at once (one database query per expiry, not one per open
// connection). Past that, everyone asks. Erase drops an answer at once.
//
// An answer is also kept with the epoch its asker read before asking
// (control::Service::WebEpoch, which moves on with every change to sharing);
// Get with a later epoch finds nothing, so an answer read before a change,
// even one Put after it, is never used after it. C is the clock (a fake one
// in tests).
template <class V, class C = Clock>
class TtlCache {
 public:
  static constexpr auto kRefreshFor = std::chrono::seconds(1);

  std::optional<V> Get(const std::string& key, uint64_t epoch = 0) {
    std::lock_guard lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    Entry& e = it->second;
    if (e.epoch != epoch) return std::nullopt;
    auto now = C::now();
    if (now <= e.fresh_until) return e.value;
    if (now > e.fresh_until + kRefreshFor) return std::nullopt;
    if (!e.refreshing) {
      e.refreshing = true;
      return std::nullopt;
    }
    return e.value;
  }
  void Put(const std::string& key, V v, uint64_t epoch = 0) {
    std::lock_guard lock(mu_);
    if (map_.size() > 10000) map_.clear();  // bounded; a refill costs one query each
    map_.insert_or_assign(key, Entry{std::move(v), C::now() + kCacheFor, epoch, false});
  }
  void Erase(const std::string& key) {
    std::lock_guard lock(mu_);
    map_.erase(key);
  }

 private:
  struct Entry {
    V value;
    typename C::time_point fresh_until;
    uint64_t epoch;
    bool refreshing = false;  // someone is asking again
  };
  std::mutex mu_;
  std::map<std::string, Entry> map_;
};

// ---- header and cookie helpers (http_helpers.cc) ---------------------------

std::string_view SV(beast::string_view s);
std::string Lower(std::string s);
// Host header without port, lowercase; into `out`, whose memory a
// connection keeps from request to request.
void HostOnly(beast::string_view h, std::string& out);
std::string HostOnly(beast::string_view h);
std::string CookieValue(beast::string_view bheader, std::string_view name);
// The Cookie header without exed's own cookies (a VM never sees them).
std::string WithoutOurCookies(beast::string_view bheader);
std::string QueryParam(beast::string_view btarget, std::string_view name);
// Whether `s` may go into a Location field as it is: no CR/LF, no spaces or
// controls, no backslashes.
bool PlainUrlChars(std::string_view s);
std::string PathOf(beast::string_view target);
std::string SetCookie(const char* name, const std::string& value, int64_t max_age);
// By the field's code: Beast's parser gives each of these names its code,
// whatever its case. With `upgrade` (a WebSocket's request or its 101),
// Upgrade and Connection go on.
bool IsHopByHop(http::field f, bool upgrade = false);
bool IsWebSocketUpgrade(const Request& req);

// A header's bytes as they go on the wire, appended to `out`: the start line
// (the message's version), every field as it is, in order, and the empty
// line. exed writes proxied messages itself rather than through Beast's
// serializer, whose buffer sequences cost more per small request than the
// rest of the relay (callgrind, ops/bench/https --instructions).
//
// `extra` fields go after the message's own: the front's X-Forwarded-* and
// Connection, written out rather than inserted into the message (each insert
// into Beast's fields is an allocation and a tree insertion, per request).
struct ExtraField {
  std::string_view name, value;
};
template <class F>
void AppendHeader(std::string& out, const http::header<true, F>& h, std::span<const ExtraField> extra = {});
template <class F>
void AppendHeader(std::string& out, const http::header<false, F>& h, std::span<const ExtraField> extra = {});

// A VM's response, parsed as Beast's response_parser<buffer_body> would, but
// with its header written straight out as the client gets it instead of
// into Beast's fields (each field there is an allocation and a tree
// insertion, and the front only copies them out): the status line with the
// client's HTTP version and the VM's code and reason, then the VM's fields
// in order, less the hop-by-hop ones (and any its Connection field names;
// a WebSocket's 101 keeps Upgrade and Connection) and any Set-Cookie for
// exed's own cookies. The empty line is FinishHeader's, after the front's
// own fields. The body goes into body() as into a buffer_body's.
class ResponseRelayParser : public http::basic_parser<false> {
 public:
  // Before parsing: the header is appended to `out`.
  ResponseRelayParser(std::string& out, unsigned client_version, bool websocket)
      : out_(out), client_version_(client_version), websocket_(websocket) {}

  int status() const { return status_; }
  bool upgraded() const { return websocket_ && status_ == 101; }
  http::buffer_body::value_type& body() { return body_; }

 private:
  void on_request_impl(http::verb, beast::string_view, beast::string_view, int, beast::error_code&) override {}
  void on_response_impl(int code, beast::string_view reason, int version, beast::error_code& ec) override;
  void on_field_impl(http::field name, beast::string_view name_string, beast::string_view value,
                     beast::error_code& ec) override;
  void on_header_impl(beast::error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>&, beast::error_code&) override {}
  size_t on_body_impl(beast::string_view body, beast::error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, beast::error_code& ec) override {
    return on_body_impl(body, ec);
  }
  void on_finish_impl(beast::error_code&) override {}

  std::string& out_;
  const unsigned client_version_;
  const bool websocket_;
  int status_ = 0;
  size_t fields_at_ = 0;            // where in out_ the field lines start
  std::vector<std::string> named_;  // fields the Connection field names
  http::buffer_body::value_type body_{};
};
// The end of a header ResponseRelayParser wrote: `extra` fields, the empty line.
void FinishHeader(std::string& out, std::span<const ExtraField> extra);

// How a relayed message's body goes on the wire, as its header says: no body
// at all (a request without one; a response to HEAD, 1xx, 204, 304), chunked,
// or as it comes (Content-Length, or until the connection closes).
enum class Framing { kNone, kChunked, kRaw };

// The framing around `n` body bytes: "SIZE\r\n" before them (written to
// `before`, at least 20 bytes; its length returned) and what follows them
// (CRLF, and the last chunk when `last`). kRaw and kNone frame nothing.
size_t ChunkPrefix(Framing f, size_t n, char* before);
std::string_view ChunkSuffix(Framing f, size_t n, bool last);

// Whether `name` is `lower` (given in lowercase, '-' for '_'), ignoring case
// and taking '_' as '-': CGI (and frameworks that follow it) map both to '_',
// so X_Forwarded_For reaches a VM as HTTP_X_FORWARDED_FOR just as
// X-Forwarded-For does. With `prefix`, whether `name` starts with it.
bool FoldedEquals(std::string_view name, std::string_view lower, bool prefix = false);

// Adds to `named` the field names a Connection field's value lists, besides
// the usual tokens (close, keep-alive, upgrade): hop-by-hop too.
void AddConnectionNamed(beast::string_view value, std::vector<std::string>& named);
// Whether field `f` (spelled `name`) is one of those `named` and so goes:
// never Content-Length or Transfer-Encoding, which frame the body, whatever
// Connection says.
bool NamedByConnection(http::field f, beast::string_view name, const std::vector<std::string>& named);

// Removes hop-by-hop fields (and any the Connection field names), keeping
// Content-Length and Transfer-Encoding, which say how the body is framed.
// One pass and no allocation unless Connection names other fields.
template <class Fields>
void DropHopByHop(Fields& f, bool keep_upgrade) {
  std::vector<std::string> named;  // fields a Connection value names, besides the usual tokens
  for (auto it = f.begin(); it != f.end(); ++it) {
    if (it->name() == http::field::connection) AddConnectionNamed(it->value(), named);
  }
  for (auto it = f.begin(); it != f.end();) {
    bool drop = IsHopByHop(it->name(), keep_upgrade) || NamedByConnection(it->name(), it->name_string(), named);
    it = drop ? f.erase(it) : std::next(it);
  }
}

// ---- state shared by every connection --------------------------------------

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
  // For targets and views (TtlCache): read before asking and before looking.
  uint64_t WebEpoch() const { return service_ptr->WebEpoch(); }

  std::string ApexUrl(std::string_view path) const {
    return config.https_port == 443 ? fmt::format("https://{}{}", config.domain, path)
                                    : fmt::format("https://{}:{}{}", config.domain, https_port, path);
  }
  std::string HostUrl(const std::string& host, std::string_view target) const {
    return https_port == 443 ? fmt::format("https://{}{}", host, target)
                             : fmt::format("https://{}:{}{}", host, https_port, target);
  }
};

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
  // A literal: no string to build for each request that is not ours (a
  // Reply is made before the loop knows whether it proxies).
  const char* content_type = "text/html; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;
};

Reply Redirect(const std::string& location, std::vector<std::pair<std::string, std::string>> headers = {});
Reply ErrorPage(http::status status, const std::string& title, const std::string& text_html, bool close = false);
// 503: the VM is stopped (or starting, or failed), and how its owner starts it.
Reply NotRunningPage(const Shared& sh, const control::WebTarget& vm, bool close = false);

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

// What one client connection reuses from request to request.
struct ConnBuffers {
  // A body's 64 KiB on its way through, each direction; made on first use
  // (not zero-filled; none at all while no message has a body).
  std::unique_ptr<char[]> request_chunk, response_chunk;
  beast::flat_buffer response;  // the VM's bytes
  std::string head;             // the request's header on its way out (AppendHeader)
  std::string response_head;    // the response's (ResponseRelayParser)
  FieldArena fields;            // the request's and the response's fields
};

// ---- front.cc --------------------------------------------------------------

// Where VM `name` is and its state: the database's answer, cached for
// kCacheFor; Shared::targets.Erase(name) asks again.
Task<control::Result<control::WebTarget>> TargetOf(Shared& sh, const std::string& name);
// TargetOf without the cache look-up (a miss): asks, and caches the answer.
Task<control::Result<control::WebTarget>> AskTarget(Shared& sh, const std::string& name);

// ---- proxy.cc --------------------------------------------------------------

// Proxies one request (header read, body not yet) to the VM and its
// response back. Returns whether the client connection may be kept.
Task<bool> Proxy(Shared& sh, TlsStream& client, beast::flat_buffer& cbuf, ConnBuffers& bufs,
                 RequestParser& parser,
                 const control::WebTarget& vm, const std::optional<control::WebIdentity>& who,
                 const std::string& remote, std::string_view host_header);

}  // namespace httpfront
