// exed's own HTML pages (login, VM list, errors) and the text helpers they
// need. Plain HTML, no JavaScript: usable in any browser, and fast. Pure;
// thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace httpfront {

std::string HtmlEscape(std::string_view s);
// Percent-encoding for a query parameter value, and its inverse ('+' is a
// space; malformed escapes are kept as they are).
std::string UrlEncode(std::string_view s);
std::string UrlDecode(std::string_view s);
// A whole page. With `refresh_url`, the browser goes there every 2 seconds
// (how the login page waits without JavaScript).
std::string Page(std::string_view title, std::string_view body_html, std::string_view refresh_url = "");

}  // namespace httpfront
