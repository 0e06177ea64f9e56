// The front's header, cookie and query helpers (http_helpers.cc) and its
// cache of control-plane answers (TtlCache, front_internal.h).
#include <gtest/gtest.h>

#include "httpfront/front_internal.h"

namespace httpfront {
namespace {

TEST(CookieValueTest, FindsTheNamedCookieAmongOthers) {
  EXPECT_EQ(CookieValue("a=1; __Host-exed-session=abc; b=2", "__Host-exed-session"), "abc");
  EXPECT_EQ(CookieValue("__Host-exed-session=abc", "__Host-exed-session"), "abc");
  EXPECT_EQ(CookieValue("a=1;b=2", "b"), "2");
}

TEST(CookieValueTest, NeedsTheWholeNameAndTakesTheFirst) {
  EXPECT_EQ(CookieValue("xsession=evil; session=good", "session"), "good");
  EXPECT_EQ(CookieValue("session2=no", "session"), "");
  EXPECT_EQ(CookieValue("session=first; session=second", "session"), "first");
  EXPECT_EQ(CookieValue("", "session"), "");
  EXPECT_EQ(CookieValue("session", "session"), "");
}

TEST(WithoutOurCookiesTest, DropsOnlyExedCookies) {
  EXPECT_EQ(WithoutOurCookies("a=1; __Host-exed-session=s; b=2"), "a=1; b=2");
  EXPECT_EQ(WithoutOurCookies("__Host-exed-session=s;__Host-exed-x=y"), "");
  EXPECT_EQ(WithoutOurCookies("theme=dark"), "theme=dark");
  // A VM's own cookie that merely contains the prefix later on stays.
  EXPECT_EQ(WithoutOurCookies("my__Host-exed=1"), "my__Host-exed=1");
}

TEST(QueryParamTest, DecodesTheNamedParameter) {
  EXPECT_EQ(QueryParam("/__exed/login?next=%2Fa%20b&x=1", "next"), "/a b");
  EXPECT_EQ(QueryParam("/p?xnext=1&next=2", "next"), "2");
  EXPECT_EQ(QueryParam("/p", "next"), "");
  EXPECT_EQ(QueryParam("/p?next", "next"), "");
}

TEST(HostOnlyTest, DropsThePortAndLowercases) {
  EXPECT_EQ(HostOnly("Foo.Exe.Localhost:8443"), "foo.exe.localhost");
  EXPECT_EQ(HostOnly("exe.localhost"), "exe.localhost");
  EXPECT_EQ(HostOnly("[::1]"), "[::1]");
}

TEST(PlainUrlCharsTest, RefusesWhatCouldSplitALocationField) {
  EXPECT_TRUE(PlainUrlChars("https://foo.exe.localhost/a?b=c"));
  EXPECT_FALSE(PlainUrlChars("/a\r\nSet-Cookie: x=y"));
  EXPECT_FALSE(PlainUrlChars("/a b"));
  EXPECT_FALSE(PlainUrlChars("/\\evil.example"));
}

TEST(IsHopByHopTest, KnowsTheHopByHopFieldsInAnyCase) {
  for (const char* name : {"Connection", "keep-alive", "Proxy-Connection", "TE", "trailer", "UPGRADE",
                           "Proxy-Authorization", "proxy-authenticate"}) {
    EXPECT_TRUE(IsHopByHop(http::string_to_field(name))) << name;
  }
  EXPECT_FALSE(IsHopByHop(http::field::content_length));
  EXPECT_FALSE(IsHopByHop(http::field::transfer_encoding));  // kept: it describes the body
  EXPECT_FALSE(IsHopByHop(http::field::unknown));
}

TEST(DropHopByHopTest, DropsHopByHopAndConnectionNamedFieldsKeepsTheRest) {
  http::fields f;
  f.insert("Connection", "keep-alive, X-Secret , close");
  f.insert("Host", "vm.exe.localhost");
  f.insert("x-secret", "1");
  f.insert("Keep-Alive", "timeout=5");
  f.insert("TE", "trailers");
  f.insert("Transfer-Encoding", "chunked");
  f.insert("Upgrade", "websocket");
  f.insert("Set-Cookie", "a=1");
  f.insert("Proxy-Authorization", "Basic x");
  f.insert("Set-Cookie", "b=2");
  DropHopByHop(f, false);
  std::vector<std::string> left;
  for (const auto& field : f) left.emplace_back(field.name_string());
  EXPECT_EQ(left, (std::vector<std::string>{"Host", "Transfer-Encoding", "Set-Cookie", "Set-Cookie"}));

  http::fields ws;
  ws.insert("Connection", "Upgrade");
  ws.insert("Upgrade", "websocket");
  ws.insert("Keep-Alive", "timeout=5");
  DropHopByHop(ws, true);
  EXPECT_EQ(ws[http::field::connection], "Upgrade");
  EXPECT_EQ(ws[http::field::upgrade], "websocket");
  EXPECT_EQ(ws.count(http::field::keep_alive), 0u);
}

TEST(AppendHeaderTest, WritesTheRequestLineEveryFieldInOrderThenTheExtras) {
  http::request<http::empty_body> req{http::verb::post, "/a?b=c", 11};
  req.insert("Host", "vm.example");
  req.insert("X-Two", "1");
  req.insert("x-two", "2");
  req.insert("Transfer-Encoding", "chunked");
  std::string out = "kept:";
  AppendHeader(out, req);
  EXPECT_EQ(out,
            "kept:POST /a?b=c HTTP/1.1\r\nHost: vm.example\r\nX-Two: 1\r\nx-two: 2\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
  http::request<http::empty_body> odd{http::verb::unknown, "*", 10};
  odd.method_string("PURGE");
  out.clear();
  AppendHeader(out, odd);
  EXPECT_EQ(out, "PURGE * HTTP/1.0\r\n\r\n");
  // The front's own fields go after the message's, in the order given.
  std::string client = "10.0.0.1";
  const ExtraField extra[] = {{"X-Forwarded-For", client}, {"Connection", "keep-alive"}};
  out.clear();
  AppendHeader(out, odd, extra);
  EXPECT_EQ(out, "PURGE * HTTP/1.0\r\nX-Forwarded-For: 10.0.0.1\r\nConnection: keep-alive\r\n\r\n");
  out.clear();
  AppendHeader(out, req, std::span(extra, 1));
  EXPECT_EQ(out,
            "POST /a?b=c HTTP/1.1\r\nHost: vm.example\r\nX-Two: 1\r\nx-two: 2\r\n"
            "Transfer-Encoding: chunked\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n");
}

TEST(AppendHeaderTest, WritesTheStatusLineWithTheServersReason) {
  http::response_parser<http::empty_body> p;
  beast::error_code ec;
  std::string_view wire = "HTTP/1.1 299 Quite Fine\r\nContent-Length: 0\r\nSet-Cookie: a=1\r\n\r\n";
  p.put(net::buffer(wire.data(), wire.size()), ec);
  ASSERT_FALSE(ec) << ec.message();
  std::string out;
  AppendHeader(out, p.get());
  EXPECT_EQ(out, wire);
  http::response<http::empty_body> res{http::status::not_found, 10};
  out.clear();
  AppendHeader(out, res);
  EXPECT_EQ(out, "HTTP/1.0 404 Not Found\r\n\r\n");
}

// Parses `wire` with a ResponseRelayParser; returns the header it wrote
// (finished with `extra`) and, through `body`, the body bytes (64 KiB room).
std::string RelayResponse(std::string_view wire, unsigned client_version, bool websocket, std::string* body = nullptr,
                          beast::error_code* error = nullptr) {
  std::string out;
  ResponseRelayParser p(out, client_version, websocket);
  p.eager(true);
  std::string room(65536, '\0');
  p.body().data = room.data();
  p.body().size = room.size();
  beast::error_code ec;
  p.put(net::buffer(wire.data(), wire.size()), ec);
  if (error) *error = ec;
  if (body) body->assign(room.data(), room.size() - p.body().size);
  const ExtraField extra[] = {{"Connection", "close"}};
  FinishHeader(out, extra);
  return out;
}

TEST(ResponseRelayParserTest, WritesTheHeaderAsTheClientGetsIt) {
  // Hop-by-hop fields and the ones Connection names (before or after it) go; exed's own
  // cookies go; the rest stays in order, with the client's version in the status line.
  std::string body;
  beast::error_code ec;
  std::string out = RelayResponse(
      "HTTP/1.1 299 Quite Fine\r\nX-Early: 1\r\nServer: t\r\nKeep-Alive: timeout=5\r\n"
      "Set-Cookie: a=1\r\nSet-Cookie: __Host-exed=stolen\r\nset-cookie: __host-EXED-vm=x\r\n"
      "Connection: keep-alive, X-Early, x-late\r\nX-Late: 2\r\nTransfer-Encoding: chunked\r\n"
      "Proxy-Authenticate: Basic\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n\r\n"
      "5\r\nhello\r\n0\r\n\r\n",
      10, false, &body, &ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(out,
            "HTTP/1.0 299 Quite Fine\r\nServer: t\r\nSet-Cookie: a=1\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n");
  EXPECT_EQ(body, "hello");
}

TEST(ResponseRelayParserTest, ConnectionCannotTakeTheBodysFraming) {
  // A client must still see where the body ends (as DropHopByHop keeps them for requests).
  std::string body;
  beast::error_code ec;
  std::string out = RelayResponse(
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: Content-Length, Transfer-Encoding, X-A\r\n"
      "X-A: 1\r\n\r\nabc",
      11, false, &body, &ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(body, "abc");
}

TEST(ResponseRelayParserTest, AWebSocketsSwitchKeepsUpgradeAndConnection) {
  std::string wire =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: abc\r\n\r\n";
  std::string out;
  ResponseRelayParser p(out, 11, true);
  beast::error_code ec;
  p.put(net::buffer(wire), ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_TRUE(p.upgraded());
  FinishHeader(out, {});
  EXPECT_EQ(out, wire);
  // Not asked for a WebSocket: the same answer loses them.
  EXPECT_EQ(RelayResponse(wire, 11, false),
            "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\nConnection: close\r\n\r\n");
}

TEST(ResponseRelayParserTest, BodyGoesIntoTheBufferAsIntoABufferBody) {
  std::string body;
  beast::error_code ec;
  RelayResponse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 11, false, &body, &ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(body, "abc");
  // No room: need_buffer, nothing taken.
  std::string out;
  ResponseRelayParser p(out, 11, false);
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
  size_t used = p.put(net::buffer(wire), ec);
  EXPECT_FALSE(ec) << ec.message();  // the header alone (not eager)
  EXPECT_TRUE(p.is_header_done());
  EXPECT_EQ(p.status(), 200);
  EXPECT_EQ(p.put(net::buffer(wire.data() + used, wire.size() - used), ec), 0u);
  EXPECT_EQ(ec, http::error::need_buffer);
}

TEST(ChunkFramingTest, FramesPiecesAndTheLastChunk) {
  char before[24];
  ASSERT_EQ(ChunkPrefix(Framing::kChunked, 65536, before), 7u);
  EXPECT_EQ(std::string_view(before, 7), "10000\r\n");
  ASSERT_EQ(ChunkPrefix(Framing::kChunked, 10, before), 3u);
  EXPECT_EQ(std::string_view(before, 3), "a\r\n");
  ASSERT_EQ(ChunkPrefix(Framing::kChunked, 0x1f2e3, before), 7u);
  EXPECT_EQ(std::string_view(before, 7), "1f2e3\r\n");
  EXPECT_EQ(ChunkSuffix(Framing::kChunked, 65536, false), "\r\n");
  EXPECT_EQ(ChunkSuffix(Framing::kChunked, 10, true), "\r\n0\r\n\r\n");
  EXPECT_EQ(ChunkPrefix(Framing::kChunked, 0, before), 0u);  // no piece: no "0\r\n" before the end
  EXPECT_EQ(ChunkSuffix(Framing::kChunked, 0, false), "");
  EXPECT_EQ(ChunkSuffix(Framing::kChunked, 0, true), "0\r\n\r\n");
  for (Framing f : {Framing::kRaw, Framing::kNone}) {
    EXPECT_EQ(ChunkPrefix(f, 100, before), 0u);
    EXPECT_EQ(ChunkSuffix(f, 100, true), "");
  }
}

TEST(FieldArenaTest, StartsAtTheFrontAgainOnceEverythingIsGivenBack) {
  FieldArena arena;
  void* a = arena.Allocate(10);
  void* b = arena.Allocate(100);
  EXPECT_EQ(static_cast<char*>(b) - static_cast<char*>(a), 16);  // 16-byte steps
  void* big = arena.Allocate(FieldArena::kBlock);                 // does not fit: the heap's
  EXPECT_EQ(arena.used(), 16u + 112u);
  arena.Free(big);
  arena.Free(a);
  EXPECT_EQ(arena.used(), 128u);  // b still lives
  arena.Free(b);
  EXPECT_EQ(arena.used(), 0u);
  EXPECT_EQ(arena.Allocate(1), a);
}

TEST(FieldArenaTest, ParsersKeepTheirFieldsInTheArenaAndGiveThemBack) {
  FieldArena arena;
  std::string wire = "GET /x HTTP/1.1\r\nHost: a.example\r\nX-One: 1\r\nX-Two: 2\r\n\r\n";
  {
    auto parser = ParserIn<RequestParser>(arena);
    beast::error_code ec;
    parser.put(net::buffer(wire), ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(parser.get()["X-Two"], "2");
    parser.get().set("X-Three", std::string(200, 'v'));
    EXPECT_GT(arena.used(), 200u);
    std::string out;
    AppendHeader(out, parser.get());
    EXPECT_EQ(out, "GET /x HTTP/1.1\r\nHost: a.example\r\nX-One: 1\r\nX-Two: 2\r\nX-Three: " + std::string(200, 'v') +
                       "\r\n\r\n");
  }
  EXPECT_EQ(arena.used(), 0u);
}

TEST(FoldedEqualsTest, IgnoresCaseAndTakesUnderscoreForDash) {
  EXPECT_TRUE(FoldedEquals("X-Forwarded-For", "x-forwarded-for"));
  EXPECT_TRUE(FoldedEquals("x_forwarded_FOR", "x-forwarded-for"));
  EXPECT_FALSE(FoldedEquals("X-Forwarded-Fo", "x-forwarded-for"));
  EXPECT_FALSE(FoldedEquals("X-Forwarded-Form", "x-forwarded-for"));
  EXPECT_TRUE(FoldedEquals("X_Exed_User", "x-exed-", true));
  EXPECT_FALSE(FoldedEquals("X-Exe", "x-exed-", true));
}

struct FakeClock {
  using time_point = Clock::time_point;
  static inline time_point t{};
  static time_point now() { return t; }
};

TEST(TtlCacheTest, OneCallerAsksAgainWhenAnAnswerExpires) {
  TtlCache<int, FakeClock> cache;
  FakeClock::t = Clock::time_point{} + std::chrono::hours(1);
  EXPECT_EQ(cache.Get("vm"), std::nullopt);
  cache.Put("vm", 1);
  FakeClock::t += kCacheFor;
  EXPECT_EQ(cache.Get("vm"), 1) << "fresh up to kCacheFor";
  FakeClock::t += std::chrono::milliseconds(1);
  EXPECT_EQ(cache.Get("vm"), std::nullopt) << "expired: the first caller asks again";
  EXPECT_EQ(cache.Get("vm"), 1) << "the others keep the old answer meanwhile";
  EXPECT_EQ(cache.Get("vm"), 1);
  cache.Put("vm", 2);
  EXPECT_EQ(cache.Get("vm"), 2);
}

TEST(TtlCacheTest, EveryoneAsksWhenTheRefreshNeverCame) {
  TtlCache<int, FakeClock> cache;
  FakeClock::t = Clock::time_point{} + std::chrono::hours(2);
  cache.Put("vm", 1);
  FakeClock::t += kCacheFor + std::chrono::milliseconds(1);
  EXPECT_EQ(cache.Get("vm"), std::nullopt);
  EXPECT_EQ(cache.Get("vm"), 1);
  FakeClock::t += TtlCache<int, FakeClock>::kRefreshFor;
  EXPECT_EQ(cache.Get("vm"), std::nullopt);
  EXPECT_EQ(cache.Get("vm"), std::nullopt) << "too old to serve to anyone";
}

TEST(TtlCacheTest, EraseDropsAtOnce) {
  TtlCache<int, FakeClock> cache;
  cache.Put("session", 1);
  cache.Erase("session");
  EXPECT_EQ(cache.Get("session"), std::nullopt);
  EXPECT_EQ(cache.Get("session"), std::nullopt);
}

TEST(TtlCacheTest, AnAnswerFromBeforeAChangeIsNotUsedAfterIt) {
  TtlCache<int, FakeClock> cache;
  FakeClock::t = Clock::time_point{} + std::chrono::hours(3);
  cache.Put("vm", 1, /*epoch=*/7);
  EXPECT_EQ(cache.Get("vm", 7), 1);
  EXPECT_EQ(cache.Get("vm", 8), std::nullopt) << "sharing changed: ask again";
  EXPECT_EQ(cache.Get("vm", 8), std::nullopt) << "not even the others keep it";
  // An asker that read epoch 7, then got its answer after the change.
  cache.Put("vm", 1, 7);
  EXPECT_EQ(cache.Get("vm", 8), std::nullopt);
  cache.Put("vm", 2, 8);
  EXPECT_EQ(cache.Get("vm", 8), 2);
}

}  // namespace
}  // namespace httpfront
