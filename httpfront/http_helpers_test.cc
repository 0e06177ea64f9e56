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
  EXPECT_TRUE(IsHopByHop("Connection"));
  EXPECT_TRUE(IsHopByHop("keep-alive"));
  EXPECT_TRUE(IsHopByHop("Proxy-Authorization"));
  EXPECT_FALSE(IsHopByHop("Content-Length"));
  EXPECT_FALSE(IsHopByHop("Transfer-Encoding"));  // kept: it describes the body
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

}  // namespace
}  // namespace httpfront
