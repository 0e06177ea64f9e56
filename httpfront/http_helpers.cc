// Small HTTP helpers of the front: header and cookie parsing, the hop-by-hop
// rules, exed's own replies (pages, redirects). Declared in front_internal.h.
#include <algorithm>
#include <cctype>
#include <cstring>

#include "httpfront/front_internal.h"

namespace httpfront {

std::string_view SV(beast::string_view s) { return {s.data(), s.size()}; }

std::string Lower(std::string s) {
  for (char& c : s) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;  // ASCII, no locale
  return s;
}

void HostOnly(beast::string_view h, std::string& out) {
  if (auto colon = h.rfind(':'); colon != beast::string_view::npos && h.find(']') == beast::string_view::npos) {
    h = h.substr(0, colon);
  }
  out.assign(h.data(), h.size());
  out = Lower(std::move(out));  // moved both ways: `out`'s memory stays
}

std::string HostOnly(beast::string_view h) {
  std::string out;
  HostOnly(h, out);
  return out;
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

bool IsHopByHop(http::field f, bool upgrade) {
  switch (f) {
    case http::field::connection:
    case http::field::upgrade:
      return !upgrade;
    case http::field::keep_alive:
    case http::field::proxy_connection:
    case http::field::te:
    case http::field::trailer:
    case http::field::proxy_authorization:
    case http::field::proxy_authenticate:
      return true;
    default:
      return false;
  }
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

namespace {

// "NAME: VALUE" and CRLF: one resize and a memcpy per piece (string appends
// cost about twice as much).
void AppendFieldLine(std::string& out, beast::string_view name, beast::string_view value) {
  size_t at = out.size();
  out.resize(at + name.size() + value.size() + 4);
  char* p = out.data() + at;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  std::memcpy(p, ": ", 2);
  p += 2;
  std::memcpy(p, value.data(), value.size());
  p += value.size();
  std::memcpy(p, "\r\n", 2);
}

template <class F>
void AppendFields(std::string& out, const F& f, std::span<const ExtraField> extra) {
  size_t total = 2;
  for (const auto& field : f) total += field.name_string().size() + field.value().size() + 4;
  for (const auto& e : extra) total += e.name.size() + e.value.size() + 4;
  out.reserve(out.size() + total);
  for (const auto& field : f) AppendFieldLine(out, field.name_string(), field.value());
  FinishHeader(out, extra);
}

void AppendVersion(std::string& out, unsigned version) {
  out.append("HTTP/", 5);
  out.push_back(static_cast<char>('0' + version / 10 % 10));
  out.push_back('.');
  out.push_back(static_cast<char>('0' + version % 10));
}

void AppendStatusLine(std::string& out, unsigned version, unsigned code, beast::string_view reason) {
  AppendVersion(out, version);
  unsigned c = code % 1000;
  const char digits[5] = {' ', static_cast<char>('0' + c / 100), static_cast<char>('0' + c / 10 % 10),
                          static_cast<char>('0' + c % 10), ' '};
  out.append(digits, sizeof digits);
  out.append(reason.data(), reason.size());
  out.append("\r\n", 2);
}

}  // namespace

template <class F>
void AppendHeader(std::string& out, const http::header<true, F>& h, std::span<const ExtraField> extra) {
  out.append(h.method_string().data(), h.method_string().size());
  out.push_back(' ');
  out.append(h.target().data(), h.target().size());
  out.push_back(' ');
  AppendVersion(out, h.version());
  out.append("\r\n", 2);
  AppendFields(out, h, extra);
}

template <class F>
void AppendHeader(std::string& out, const http::header<false, F>& h, std::span<const ExtraField> extra) {
  AppendStatusLine(out, h.version(), h.result_int(), h.reason());
  AppendFields(out, h, extra);
}

template void AppendHeader(std::string&, const http::header<true, http::fields>&, std::span<const ExtraField>);
template void AppendHeader(std::string&, const http::header<false, http::fields>&, std::span<const ExtraField>);
template void AppendHeader(std::string&, const http::header<true, Fields>&, std::span<const ExtraField>);
template void AppendHeader(std::string&, const http::header<false, Fields>&, std::span<const ExtraField>);

void AddConnectionNamed(beast::string_view value, std::vector<std::string>& named) {
  for (size_t pos = 0; pos <= value.size();) {
    size_t end = std::min(value.find(',', pos), value.size());
    beast::string_view tok = value.substr(pos, end - pos);
    while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
    if (!tok.empty() && !beast::iequals(tok, "close") && !beast::iequals(tok, "keep-alive") &&
        !beast::iequals(tok, "upgrade")) {
      named.emplace_back(tok.data(), tok.size());
    }
    pos = end + 1;
  }
}

bool NamedByConnection(http::field f, beast::string_view name, const std::vector<std::string>& named) {
  if (named.empty() || f == http::field::content_length || f == http::field::transfer_encoding) return false;
  return std::any_of(named.begin(), named.end(), [name](const std::string& x) { return beast::iequals(name, x); });
}

void ResponseRelayParser::on_response_impl(int code, beast::string_view reason, int, beast::error_code&) {
  status_ = code;
  named_.clear();
  AppendStatusLine(out_, client_version_, static_cast<unsigned>(code), reason);
  fields_at_ = out_.size();
}

void ResponseRelayParser::on_field_impl(http::field name, beast::string_view name_string, beast::string_view value,
                                        beast::error_code&) {
  if (name == http::field::connection) AddConnectionNamed(value, named_);
  if (IsHopByHop(name, upgraded())) return;
  // A VM may not set (or clear) exed's cookies.
  if (name == http::field::set_cookie && beast::iequals(value.substr(0, 11), "__host-exed")) return;
  AppendFieldLine(out_, name_string, value);
}

void ResponseRelayParser::on_header_impl(beast::error_code&) {
  if (named_.empty()) return;
  // Fields the Connection field names are hop-by-hop too (RFC 9110 7.6.1),
  // wherever they came: the field lines are written again without them.
  std::string kept(out_, 0, fields_at_);
  for (size_t at = fields_at_; at < out_.size();) {
    size_t end = out_.find("\r\n", at) + 2;
    beast::string_view n(out_.data() + at, out_.find(':', at) - at);
    if (!NamedByConnection(http::string_to_field(n), n, named_)) kept.append(out_, at, end - at);
    at = end;
  }
  out_.swap(kept);
}

size_t ResponseRelayParser::on_body_impl(beast::string_view body, beast::error_code& ec) {
  // As buffer_body's reader: as much as fits, need_buffer when not all did.
  if (!body_.data) {
    ec = http::error::need_buffer;
    return 0;
  }
  size_t n = std::min(body.size(), body_.size);
  std::memcpy(body_.data, body.data(), n);
  body_.data = static_cast<char*>(body_.data) + n;
  body_.size -= n;
  if (n < body.size()) ec = http::error::need_buffer;
  return n;
}

void FinishHeader(std::string& out, std::span<const ExtraField> extra) {
  for (const auto& e : extra) AppendFieldLine(out, {e.name.data(), e.name.size()}, {e.value.data(), e.value.size()});
  out.append("\r\n", 2);
}

size_t ChunkPrefix(Framing f, size_t n, char* before) {
  if (f != Framing::kChunked || n == 0) return 0;
  size_t digits = 0;
  for (size_t v = n; v; v >>= 4) ++digits;
  for (size_t i = digits; i-- > 0; n >>= 4) before[i] = "0123456789abcdef"[n & 15];
  before[digits] = '\r';
  before[digits + 1] = '\n';
  return digits + 2;
}

std::string_view ChunkSuffix(Framing f, size_t n, bool last) {
  if (f != Framing::kChunked) return {};
  if (n == 0) return last ? "0\r\n\r\n" : "";
  return last ? "\r\n0\r\n\r\n" : "\r\n";
}

}  // namespace httpfront
