// One request relayed to a VM's web server and its answer back: pooled
// upstream connections, bodies streamed both ways, WebSocket tunnels, a VM's
// response header read with bare-LF line ends accepted. Declared in
// front_internal.h; the connection loop that calls it is in front.cc.
#include "httpfront/front_internal.h"

#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <limits>
#include <span>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <spdlog/spdlog.h>

namespace httpfront {
namespace {

// Writes `n` buffers of `b` (header, chunk framing, body bytes: one
// gathered write, one TLS record when small).
// Not a coroutine: the write's own awaitable, no frame of its own.
template <class Out>
auto WriteAll(Shared& sh, Out& out, const std::array<net::const_buffer, 4>& b, size_t n) {
  beast::get_lowest_layer(out).expires_after(sh.config.body_timeout);
  return net::async_write(out, std::span<const net::const_buffer>(b.data(), n), kAwait);
}

// Writes the header in `head` (AppendHeader) and streams the message's body
// from `in` to `out` as `p` parses it, 64 KiB at a time through `chunk`,
// framed as `framing` says. The header goes with the first piece of the body
// when that is here already (one write, one TLS record), else alone first, so
// the receiver sees it at once while the sender is still producing the body
// (a stream, a long poll). `head` is empty once written. A Content-Length
// body needs no parsing: its bytes go from `in_buf`, then straight from the
// socket into `chunk`, one copy fewer than through the parser (which is left
// at the end of the header). Returns whether the whole body went through.
http::buffer_body::value_type& BodyOf(RequestParser& p) { return p.get().body(); }
http::buffer_body::value_type& BodyOf(ResponseRelayParser& p) { return p.body(); }

template <class In, class Parser, class Out>
Task<bool> Relay(Shared& sh, In& in, beast::flat_buffer& in_buf, Parser& p, Out& out, std::string& head,
                 Framing framing, std::unique_ptr<char[]>& chunk) {
  std::array<net::const_buffer, 4> b;
  if (!p.is_done() && !chunk) chunk.reset(new char[kChunk]);
  if (!p.is_done() && in_buf.size() == 0) {
    b[0] = net::buffer(head);
    co_await WriteAll(sh, out, b, 1);
    head.clear();
  }
  if (framing == Framing::kRaw && !p.is_done() && p.content_length()) {
    uint64_t left = *p.content_length();
    if (size_t have = static_cast<size_t>(std::min<uint64_t>(left, in_buf.size()))) {
      size_t k = 0;
      if (!head.empty()) b[k++] = net::buffer(head);
      b[k++] = net::buffer(in_buf.data().data(), have);
      co_await WriteAll(sh, out, b, k);
      head.clear();
      in_buf.consume(have);  // what follows the body (a pipelined request) stays
      left -= have;
    }
    while (left > 0) {
      beast::get_lowest_layer(in).expires_after(sh.config.body_timeout);
      size_t n = co_await in.async_read_some(
          net::buffer(chunk.get(), static_cast<size_t>(std::min<uint64_t>(left, kChunk))), kAwait);
      left -= n;
      b[0] = net::buffer(chunk.get(), n);
      co_await WriteAll(sh, out, b, 1);
    }
    co_return true;
  }
  while (true) {
    size_t n = 0;
    if (!p.is_done()) {
      BodyOf(p).data = chunk.get();
      BodyOf(p).size = kChunk;
      // Body bytes read already (with the header, or past the last piece)
      // are parsed here and now; the socket is read only when there are none.
      size_t used = 0;
      if (in_buf.size() > 0) {
        beast::error_code ec;
        p.eager(true);
        used = p.put(in_buf.data(), ec);
        in_buf.consume(used);
        if (ec == http::error::need_buffer || ec == http::error::need_more) ec = {};
        if (ec) throw beast::system_error(ec);
      }
      if (used == 0 && !p.is_done()) {
        beast::get_lowest_layer(in).expires_after(sh.config.body_timeout);
        beast::error_code ec;
        co_await http::async_read(in, in_buf, p, net::redirect_error(kAwait, ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) throw beast::system_error(ec);
      }
      n = kChunk - BodyOf(p).size;
      // Only a chunk's size line parsed: nothing to send yet.
      if (n == 0 && !p.is_done()) continue;
    }
    const bool last = p.is_done();
    char prefix[24];
    size_t k = 0;
    if (!head.empty()) b[k++] = net::buffer(head);
    if (size_t pn = ChunkPrefix(framing, n, prefix)) b[k++] = net::buffer(prefix, pn);
    if (n) b[k++] = net::buffer(chunk.get(), n);
    if (auto suffix = ChunkSuffix(framing, n, last); !suffix.empty()) b[k++] = net::buffer(suffix);
    if (k) co_await WriteAll(sh, out, b, k);
    head.clear();
    if (last) co_return true;
  }
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
// `bare` says whether a line of it ends in a bare LF.
size_t ResponseHeaderEnd(std::string_view have, bool& bare) {
  bare = false;
  for (size_t i = have.find('\n'); i != std::string_view::npos; i = have.find('\n', i + 1)) {
    bare = bare || i == 0 || have[i - 1] != '\r';
    if (i + 1 < have.size() && have[i + 1] == '\n') {
      bare = true;  // the empty line's LF
      return i + 2;
    }
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
Task<void> ReadResponseHeader(TcpStream& up, beast::flat_buffer& buf, ResponseRelayParser& parser,
                              size_t limit, beast::error_code& ec) {
  size_t end = std::string_view::npos;
  bool bare = false;
  while ((end = ResponseHeaderEnd({static_cast<const char*>(buf.data().data()), buf.size()}, bare)) ==
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
// closed one reads EOF at once, and one with bytes nobody asked for (a 408
// sent before closing) is no good either. Only "nothing to read" is idle.
bool StillIdle(TcpStream& s) {
  char c;
  ssize_t n = ::recv(s.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// An idle connection to `port` for a request on `ex`'s io_context: one made
// there, else one moved over from another io_context (the socket moves; its
// old stream, with no operation pending, is dropped), else null. With
// `check`, each is first asked whether the VM closed it (StillIdle, one
// system call); without, the caller sends on it as it is and goes again on
// a new connection if that fails (Proxy, for a request it can send twice).
std::unique_ptr<TcpStream> TakeIdle(Shared& sh, const Executor& ex, int port, bool check) {
  Shared::UpstreamPool& own = sh.PoolOf(ex);
  // Pops idle connections to `port` from `pool` until one still is.
  auto take = [port, check](Shared::UpstreamPool& pool) -> std::unique_ptr<TcpStream> {
    std::lock_guard lock(pool.mu);
    auto it = pool.idle.find(port);
    if (it == pool.idle.end()) return nullptr;
    while (!it->second.empty()) {
      auto s = std::move(it->second.back());
      it->second.pop_back();
      if (s->socket().is_open() && (!check || StillIdle(*s))) return s;
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
  // Its timer stops here, on its own thread: another may take the socket over.
  s->Disarm();
  Shared::UpstreamPool& pool = sh.PoolOf(ex);
  std::lock_guard lock(pool.mu);
  auto& v = pool.idle[port];
  if (v.size() < 32) v.push_back(std::move(s));
}

}  // namespace

// Proxies one request (header read, body not yet) to the VM and its
// response back. Returns whether the client connection may be kept.
Task<bool> Proxy(Shared& sh, TlsStream& client, beast::flat_buffer& cbuf, ConnBuffers& bufs,
                 RequestParser& parser,
                 const control::WebTarget& vm, const std::optional<control::WebIdentity>& who,
                 const std::string& remote, std::string_view host_header) {
  auto& req = parser.get();
  const bool client_keep_alive = req.keep_alive();
  const bool head_request = req.method() == http::verb::head;
  const bool websocket = IsWebSocketUpgrade(req);
  const unsigned version = req.version();

  // The request as the VM sees it.
  DropHopByHop(req, websocket);
  // Fields we set, however the client spells them (FoldedEquals: X_Exed_User
  // would reach a CGI as HTTP_X_EXED_USER just as X-Exed-User does), and
  // Expect, which the front answers itself (below): gone in one pass, so
  // ours are inserted without another look.
  bool expect_continue = false;
  for (auto it = req.begin(); it != req.end();) {
    std::string_view n = SV(it->name_string());
    bool drop = FoldedEquals(n, "x-exed-", true) || FoldedEquals(n, "x-forwarded-for") ||
                FoldedEquals(n, "x-forwarded-proto") || FoldedEquals(n, "x-forwarded-host");
    if (it->name() == http::field::expect) {
      expect_continue = expect_continue || beast::iequals(it->value(), "100-continue");
      drop = true;
    }
    it = drop ? req.erase(it) : std::next(it);
  }
  // Ours go out after the client's fields (AppendHeader's `extra`).
  std::array<ExtraField, 5> added;
  size_t n_added = 0;
  if (who) added[n_added++] = {"X-Exed-User", who->account};
  added[n_added++] = {"X-Forwarded-For", remote};
  added[n_added++] = {"X-Forwarded-Proto", "https"};
  added[n_added++] = {"X-Forwarded-Host", host_header};
  if (req.count(http::field::cookie)) {
    std::string kept = WithoutOurCookies(req[http::field::cookie]);
    if (kept.empty()) {
      req.erase(http::field::cookie);
    } else {
      req.set(http::field::cookie, kept);
    }
  }
  // DropHopByHop left no Connection field but a WebSocket's.
  if (websocket) {
    req.set(http::field::connection, "Upgrade");
  } else if (version < 11) {
    added[n_added++] = {"Connection", "keep-alive"};  // what keep_alive(true) adds for HTTP/1.0
  }

  auto fail = [&](http::status s, const std::string& title, const std::string& html) -> Task<bool> {
    co_await WriteReply(client, ErrorPage(s, title, html, true), version, false, head_request);
    co_return false;
  };

  std::string& head = bufs.head;
  head.clear();
  AppendHeader(head, req, std::span(added.data(), n_added));
  const Framing request_framing = parser.is_done() ? Framing::kNone
                                  : req.chunked()  ? Framing::kChunked
                                                   : Framing::kRaw;
  // A request without a body and with an idempotent method can be sent
  // again: its header is all of it, and RFC 9110 9.2.2 lets a client repeat
  // it. It takes a pooled connection unchecked and, should that one turn out
  // closed by the VM while idle (no answer, or a 408 the VM sent before
  // closing), goes once more on a new connection, as nginx and browsers do.
  // Any other request checks its pooled connection first (StillIdle), for
  // its body cannot be sent twice.
  const http::verb method = req.method();
  const bool replayable = !websocket && request_framing == Framing::kNone &&
                          (method == http::verb::get || head_request || method == http::verb::options ||
                           method == http::verb::put || method == http::verb::delete_ ||
                           method == http::verb::trace);

  // The response. Read in 64 KiB, not Beast's default 512 bytes; its header
  // goes to `rhead` (ResponseRelayParser), the request's stays in `head`
  // until an answer came.
  auto ex = co_await net::this_coro::executor;
  beast::flat_buffer& ubuf = bufs.response;
  std::string& rhead = bufs.response_head;
  std::optional<ResponseRelayParser> rp;
  std::unique_ptr<TcpStream> up = websocket ? nullptr : TakeIdle(sh, ex, vm.web_port, !replayable);
  bool reused = up != nullptr;
  bool continued = false;  // the 100 Continue went out
  while (true) {
    if (!up) {
      up = std::make_unique<TcpStream>(ex);
      up->expires_after(sh.config.upstream_connect_timeout);
      beast::error_code ec;
      co_await up->async_connect(
          tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(vm.web_port)),
          net::redirect_error(kAwait, ec));
      // Header and body go as separate writes: with Nagle, a small body would
      // wait ~40 ms for the VM's delayed ACK.
      if (!ec) up->socket().set_option(tcp::no_delay(true), ec);
      if (ec) {
        // The VM may have stopped since its state was cached: ask again, and
        // say it is stopped rather than that nothing answers.
        sh.targets.Erase(vm.name);
        if (auto now = co_await TargetOf(sh, vm.name); now && now->status != "running") {
          co_await WriteReply(client, NotRunningPage(sh, *now, true), version, false, head_request);
          co_return false;
        }
        co_return co_await fail(
            ec == beast::error::timeout ? http::status::gateway_timeout : http::status::bad_gateway,
            "VM not answering",
            fmt::format("<p>Nothing answers on port {} of VM <b>{}</b> ({}). Is a web server running in it? "
                        "<code>share port {} PORT</code> picks another port.</p>",
                        vm.guest_web_port, HtmlEscape(vm.name), HtmlEscape(ec.message()), HtmlEscape(vm.name)));
      }
    }
    if (expect_continue && !continued) {
      beast::get_lowest_layer(client).expires_after(std::chrono::seconds(30));
      co_await net::async_write(client, net::buffer(std::string_view("HTTP/1.1 100 Continue\r\n\r\n")),
                                kAwait);
      continued = true;
    }

    bool too_large = false;
    std::optional<beast::error_code> malformed, unsent;
    try {
      if (request_framing == Framing::kNone) {  // the header alone, without Relay's frame
        std::array<net::const_buffer, 4> b;
        b[0] = net::buffer(head);
        co_await WriteAll(sh, *up, b, 1);
      } else {
        co_await Relay(sh, client, cbuf, parser, *up, head, request_framing, bufs.request_chunk);
      }
    } catch (const beast::system_error& e) {
      // The client's body broke the HTTP rules (a bad chunk size): a 400, as for
      // a bad header. The VM's connection goes with `up`, mid-request.
      if (e.code() == http::error::body_limit) {
        too_large = true;
      } else if (e.code().category() == beast::error_code(http::error::bad_chunk).category() &&
                 e.code() != http::error::partial_message) {
        malformed = e.code();
      } else {
        // The VM's connection broke (or the client's: then this answer goes
        // nowhere). Nothing of a response has gone out yet: a 502 says so.
        unsent = e.code();
      }
    }
    if (unsent && reused && replayable) {
      up.reset();
      reused = false;
      continue;
    }
    if (unsent) {
      co_return co_await fail(http::status::bad_gateway, "VM connection failed",
                              "<p>The request could not be passed on to the VM: " +
                                  HtmlEscape(unsent->message()) + "</p>");
    }
    if (too_large) {
      co_return co_await fail(http::status::payload_too_large, "Too large",
                              "<p>The request body is too large.</p>");
    }
    if (malformed) {
      spdlog::info("event=http-bad-request error=\"{}\"", malformed->message());
      co_return co_await fail(http::status::bad_request, "Bad request",
                              "<p>exed refused this request: " + HtmlEscape(malformed->message()) + "</p>");
    }

    ubuf.consume(ubuf.size());
    ubuf.reserve(kChunk);
    rhead.clear();
    rp.emplace(rhead, version, websocket);
    rp->body_limit(std::numeric_limits<std::uint64_t>::max());
    rp->header_limit(64 * 1024);
    if (head_request) rp->skip(true);
    up->expires_after(sh.config.upstream_timeout);
    beast::error_code ec;
    co_await ReadResponseHeader(*up, ubuf, *rp, 64 * 1024, ec);
    // A reused connection that closed (or answered 408) before this request
    // reached the VM: once more on a new one. Not after a timeout: the VM
    // got the request and is slow.
    if (reused && replayable && ((ec && ec != beast::error::timeout) || (!ec && rp->status() == 408))) {
      up.reset();
      reused = false;
      continue;
    }
    if (ec == beast::error::timeout) {
      co_return co_await fail(http::status::gateway_timeout, "VM too slow",
                              fmt::format("<p>VM <b>{}</b> did not answer within {} s.</p>", HtmlEscape(vm.name),
                                          sh.config.upstream_timeout.count()));
    }
    if (ec) {
      co_return co_await fail(http::status::bad_gateway, "Bad answer from the VM",
                              "<p>The VM's web server closed the connection or sent something that is not HTTP: " +
                                  HtmlEscape(ec.message()) + "</p>");
    }
    break;
  }
  // `rhead` holds the response's status line and the fields that go on
  // (ResponseRelayParser: no hop-by-hop ones, none of exed's cookies).
  ResponseRelayParser& res = *rp;
  bool upstream_keep_alive = res.keep_alive();
  if (res.upgraded()) {
    FinishHeader(rhead, {});
    beast::get_lowest_layer(client).expires_after(std::chrono::seconds(30));
    co_await net::async_write(client, net::buffer(rhead), kAwait);
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

  const int code = res.status();
  bool keep = client_keep_alive && (res.is_done() || res.content_length() || res.chunked() || head_request ||
                                    code == 204 || code == 304);
  // No Connection field went through: what keep_alive(keep) would write for
  // the client's version.
  std::array<ExtraField, 1> connection;
  size_t n_connection = 0;
  if (version >= 11 && !keep) connection[n_connection++] = {"Connection", "close"};
  if (version < 11 && keep) connection[n_connection++] = {"Connection", "keep-alive"};
  const Framing response_framing = head_request || code / 100 == 1 || code == 204 || code == 304 ? Framing::kNone
                                   : res.chunked()                                              ? Framing::kChunked
                                                                                               : Framing::kRaw;
  FinishHeader(rhead, std::span(connection.data(), n_connection));
  bool whole = co_await Relay(sh, *up, ubuf, res, client, rhead, response_framing, bufs.response_chunk);
  if (upstream_keep_alive && whole && ubuf.size() == 0) {
    up->expires_never();
    GiveBack(sh, ex, vm.web_port, std::move(up));
  }
  co_return keep;
}

}  // namespace httpfront
