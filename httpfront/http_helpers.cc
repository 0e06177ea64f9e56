// Small HTTP helpers of the front: header and cookie parsing, the hop-by-hop
// rules, exed's own replies (pages, redirects). Declared in front_internal.h.
#include <algorithm>
#include <cctype>

#include "httpfront/front_internal.h"

namespace httpfront {

std::string_view SV(beast::string_view s) { return {s.data(), s.size()}; }

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string HostOnly(beast::string_view h) {
  std::string s(h);
  if (auto colon = s.rfind(':'); colon != std::string::npos && s.find(']') == std::string::npos) s.resize(colon);
  return Lower(s);
}

namespace {

// Calls fn(part) for each "name=value" of a Cookie header, leading spaces
// trimmed, until fn returns false.
template <class Fn>
void ForEachCookie(std::string_view header, Fn fn) {
  for (size_t pos = 0; pos < header.size();) {
    size_t end = header.find(';', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view part = header.substr(pos, end - pos);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    if (!fn(part)) return;
    pos = end + 1;
  }
}

}  // namespace

std::string CookieValue(beast::string_view header, std::string_view name) {
  std::string value;
  ForEachCookie(SV(header), [&](std::string_view part) {
    if (part.size() > name.size() && part.substr(0, name.size()) == name && part[name.size()] == '=') {
      value = part.substr(name.size() + 1);
      return false;
    }
    return true;
  });
  return value;
}

std::string WithoutOurCookies(beast::string_view header) {
  std::string out;
  ForEachCookie(SV(header), [&](std::string_view part) {
    if (!part.empty() && part.substr(0, 11) != "__Host-exed") {
      if (!out.empty()) out += "; ";
      out += part;
    }
    return true;
  });
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

bool PlainUrlChars(std::string_view s) {
  return std::none_of(s.begin(), s.end(), [](unsigned char c) { return c <= 0x20 || c == 0x7f || c == '\\'; });
}

std::string PathOf(beast::string_view target) { return std::string(target.substr(0, target.find('?'))); }

std::string SetCookie(const char* name, const std::string& value, int64_t max_age) {
  // __Host- cookies: Secure, Path=/, no Domain: sent only to this exact host.
  return fmt::format("{}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}", name, value, max_age);
}

bool IsHopByHop(std::string_view name) {
  static constexpr std::array<std::string_view, 8> kHop = {"connection", "keep-alive", "proxy-connection", "te",
                                                           "trailer", "upgrade", "proxy-authorization",
                                                           "proxy-authenticate"};
  beast::string_view n(name.data(), name.size());
  return std::any_of(kHop.begin(), kHop.end(),
                     [n](std::string_view h) { return beast::iequals(n, beast::string_view(h.data(), h.size())); });
}

bool FoldedEquals(std::string_view name, std::string_view lower, bool prefix) {
  if (prefix ? name.size() < lower.size() : name.size() != lower.size()) return false;
  for (size_t i = 0; i < lower.size(); ++i) {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(name[i])));
    if ((c == '_' ? '-' : c) != lower[i]) return false;
  }
  return true;
}

bool IsWebSocketUpgrade(const Request& req) {
  return beast::iequals(req[http::field::upgrade], "websocket") &&
         Lower(std::string(req[http::field::connection])).find("upgrade") != std::string::npos;
}

Reply NotRunningPage(const Shared& sh, const control::WebTarget& vm, bool close) {
  return ErrorPage(http::status::service_unavailable, "VM not running",
                   fmt::format("<p>VM <b>{}</b> is {}. Its owner can start it: <code>{} start {}</code></p>",
                               HtmlEscape(vm.name), HtmlEscape(vm.status), HtmlEscape(sh.config.ssh_hint),
                               HtmlEscape(vm.name)),
                   close);
}

Reply Redirect(const std::string& location, std::vector<std::pair<std::string, std::string>> headers) {
  Reply r{http::status::found, "text/html; charset=utf-8", Page("Redirecting", "<p>Continue to <a href=\"" +
                                                                                   HtmlEscape(location) + "\">" +
                                                                                   HtmlEscape(location) + "</a>.</p>"),
          std::move(headers)};
  r.headers.emplace_back("Location", location);
  return r;
}

Reply ErrorPage(http::status status, const std::string& title, const std::string& text_html, bool close) {
  return Reply{status, "text/html; charset=utf-8", Page(title, text_html), {}, close};
}

}  // namespace httpfront
