#include "sshd/line_editor.h"

#include <algorithm>
#include <utility>

namespace sshd {
namespace {

constexpr unsigned char kEsc = 0x1b;
constexpr size_t kMaxCsiParams = 16;

bool IsContinuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// Bytes in the UTF-8 character `lead` starts, or 0 for a byte that cannot
// start one (continuations, overlong C0/C1 leads, beyond U+10FFFF).
size_t Utf8Length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Terminal columns of one code point. A compact wcwidth: xterm moves the
// cursor by columns, so a CJK character needs two columns of cursor-left to be
// stepped over, and a combining mark none.
size_t CodePointWidth(char32_t cp) {
  struct Range { char32_t lo, hi; };
  static constexpr Range kZero[] = {
      {0x0300, 0x036F}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x200B, 0x200F},
      {0x20D0, 0x20FF}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F},
  };
  static constexpr Range kWide[] = {
      {0x1100, 0x115F},   {0x2E80, 0x303E},   {0x3041, 0x33FF},
      {0x3400, 0x4DBF},   {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},
      {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFE30, 0xFE4F},
      {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x1F300, 0x1F64F},
      {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
  };
  for (const Range& r : kZero) {
    if (cp >= r.lo && cp <= r.hi) return 0;
  }
  for (const Range& r : kWide) {
    if (cp >= r.lo && cp <= r.hi) return 2;
  }
  return 1;
}

}  // namespace

LineEditor::LineEditor(size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

void LineEditor::set_prompt(std::string prompt) { prompt_ = std::move(prompt); }

void LineEditor::set_completer(Completer c) { completer_ = std::move(c); }

void LineEditor::set_history(std::vector<std::string> h) {
  history_ = std::move(h);
  if (history_.size() > history_limit_) {
    history_.erase(history_.begin(),
                   history_.end() - static_cast<std::ptrdiff_t>(history_limit_));
  }
  // The line on screen becomes the live line: the entry it may have been
  // recalled from is no longer meaningful in the new list.
  history_pos_ = history_.size();
  saved_live_.clear();
}

void LineEditor::set_history_limit(size_t n) {
  history_limit_ = n;
  if (history_.size() > n) set_history(std::move(history_));
}

size_t LineEditor::DisplayWidth(std::string_view s) {
  size_t width = 0;
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b == kEsc) {
      // Skip a CSI sequence (colours are ESC [ ... m) as a whole; a bare ESC
      // takes its following byte with it, as the terminal would.
      ++i;
      if (i < s.size() && s[i] == '[') {
        ++i;
        while (i < s.size() &&
               !(static_cast<unsigned char>(s[i]) >= 0x40 &&
                 static_cast<unsigned char>(s[i]) <= 0x7E)) {
          ++i;
        }
      }
      ++i;
      continue;
    }
    if (b < 0x20 || b == 0x7F) {
      ++i;
      continue;
    }
    size_t n = Utf8Length(b);
    if (n == 0 || i + n > s.size()) {  // malformed: one replacement glyph
      ++width;
      ++i;
      continue;
    }
    char32_t cp = n == 1 ? b : b & (0xFF >> (n + 1));
    for (size_t k = 1; k < n; ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    width += CodePointWidth(cp);
    i += n;
  }
  return width;
}

std::string LineEditor::Redraw() const {
  std::string s = "\r" + prompt_ + buffer_ + "\x1b[K";
  size_t back = DisplayWidth(std::string_view(buffer_).substr(cursor_));
  if (back > 0) s += "\x1b[" + std::to_string(back) + "D";
  return s;
}

std::vector<LineEditor::Event> LineEditor::Feed(std::string_view bytes,
                                                std::string* out) {
  std::string scratch;
  std::string& o = out != nullptr ? *out : scratch;
  hit_limit_ = false;
  limit_bell_sent_ = false;
  std::vector<Event> events;
  for (char c : bytes) FeedByte(static_cast<unsigned char>(c), o, events);
  Flush(o);
  return events;
}

void LineEditor::FeedByte(unsigned char b, std::string& out,
                          std::vector<Event>& events) {
  switch (state_) {
    case InputState::kGround:
      break;
    case InputState::kEsc:
      if (b == '[') {
        state_ = InputState::kCsi;
        csi_params_.clear();
        return;
      }
      if (b == 'O') {
        state_ = InputState::kSs3;
        return;
      }
      // Esc then a key (or Alt-key): drop the Esc, keep the key, so a stray
      // Esc never eats what the user types next. A second Esc starts over.
      state_ = InputState::kGround;
      break;
    case InputState::kCsi:
      if (b >= 0x20 && b <= 0x3F) {  // parameter and intermediate bytes
        // Capped so a hostile stream cannot grow it; a capped string is
        // longer than any parameter we recognise, so it stays unknown.
        if (csi_params_.size() < kMaxCsiParams) csi_params_ += static_cast<char>(b);
        return;
      }
      state_ = InputState::kGround;
      if (b >= 0x40 && b <= 0x7E) {
        HandleKey(CsiKey(static_cast<char>(b)), out, events);
        return;
      }
      break;  // a control byte cut the sequence short: it stands on its own
    case InputState::kSs3:
      state_ = InputState::kGround;
      if (b >= 0x40 && b <= 0x7E) {
        Key k = Key::kIgnored;
        switch (b) {
          case 'A': k = Key::kUp; break;
          case 'B': k = Key::kDown; break;
          case 'C': k = Key::kRight; break;
          case 'D': k = Key::kLeft; break;
          case 'H': k = Key::kHome; break;
          case 'F': k = Key::kEnd; break;
          default: break;
        }
        HandleKey(k, out, events);
        return;
      }
      break;
  }

  if (after_cr_) {
    after_cr_ = false;
    if (b == '\n') return;
  }
  if (utf8_need_ != 0) {
    if (IsContinuation(b)) {
      FeedUtf8(b, out);
      return;
    }
    utf8_pending_.clear();  // truncated character: drop it, keep this byte
    utf8_need_ = 0;
  }
  if (b >= 0x80) {
    FeedUtf8(b, out);
    return;
  }
  if (b >= 0x20 && b != 0x7F) {
    last_key_tab_ = false;
    char c = static_cast<char>(b);
    Insert(std::string_view(&c, 1), out);
    return;
  }

  Key k = Key::kIgnored;
  switch (b) {
    case kEsc: state_ = InputState::kEsc; return;
    case '\r': after_cr_ = true; k = Key::kEnter; break;
    case '\n': k = Key::kEnter; break;
    case 0x01: k = Key::kHome; break;
    case 0x02: k = Key::kLeft; break;
    case 0x03: k = Key::kInterrupt; break;
    case 0x04: k = Key::kEofOrDelete; break;
    case 0x05: k = Key::kEnd; break;
    case 0x06: k = Key::kRight; break;
    case 0x08: k = Key::kBackspace; break;
    case 0x09: k = Key::kTab; break;
    case 0x0B: k = Key::kKillToEnd; break;
    case 0x0C: k = Key::kClear; break;
    case 0x0E: k = Key::kDown; break;
    case 0x10: k = Key::kUp; break;
    case 0x15: k = Key::kKillToStart; break;
    case 0x17: k = Key::kKillWord; break;
    case 0x7F: k = Key::kBackspace; break;
    default: break;
  }
  HandleKey(k, out, events);
}

void LineEditor::FeedUtf8(unsigned char b, std::string& out) {
  if (utf8_need_ == 0) {
    size_t n = Utf8Length(b);
    if (n < 2) return;  // stray continuation or invalid lead byte
    utf8_pending_.assign(1, static_cast<char>(b));
    utf8_need_ = n;
    return;
  }
  if (utf8_pending_.size() == 1) {
    // The second byte's range rules out overlong forms and surrogates.
    auto lead = static_cast<unsigned char>(utf8_pending_[0]);
    unsigned char lo = 0x80, hi = 0xBF;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
    if (b < lo || b > hi) {
      utf8_pending_.clear();
      utf8_need_ = 0;
      return;
    }
  }
  utf8_pending_ += static_cast<char>(b);
  if (utf8_pending_.size() < utf8_need_) return;
  last_key_tab_ = false;
  Insert(utf8_pending_, out);
  utf8_pending_.clear();
  utf8_need_ = 0;
}

LineEditor::Key LineEditor::CsiKey(char final_byte) const {
  // Modified arrows (ESC [ 1 ; 5 C) carry parameters; only plain ones are ours.
  bool plain = csi_params_.empty() || csi_params_ == "1";
  switch (final_byte) {
    case 'A': return plain ? Key::kUp : Key::kIgnored;
    case 'B': return plain ? Key::kDown : Key::kIgnored;
    case 'C': return plain ? Key::kRight : Key::kIgnored;
    case 'D': return plain ? Key::kLeft : Key::kIgnored;
    case 'H': return plain ? Key::kHome : Key::kIgnored;
    case 'F': return plain ? Key::kEnd : Key::kIgnored;
    case '~':
      if (csi_params_ == "1" || csi_params_ == "7") return Key::kHome;
      if (csi_params_ == "4" || csi_params_ == "8") return Key::kEnd;
      if (csi_params_ == "3") return Key::kDelete;
      return Key::kIgnored;
    default:
      return Key::kIgnored;
  }
}

void LineEditor::HandleKey(Key k, std::string& out, std::vector<Event>& events) {
  bool previous_was_tab = last_key_tab_;
  last_key_tab_ = k == Key::kTab;
  switch (k) {
    case Key::kLeft:
      if (cursor_ > 0) {
        cursor_ = PrevChar(cursor_);
        dirty_ = true;
      }
      break;
    case Key::kRight:
      if (cursor_ < buffer_.size()) {
        cursor_ = NextChar(cursor_);
        dirty_ = true;
      }
      break;
    case Key::kHome:
      if (cursor_ != 0) dirty_ = true;
      cursor_ = 0;
      break;
    case Key::kEnd:
      if (cursor_ != buffer_.size()) dirty_ = true;
      cursor_ = buffer_.size();
      break;
    case Key::kUp:
      HistoryMove(-1);
      break;
    case Key::kDown:
      HistoryMove(+1);
      break;
    case Key::kBackspace:
      if (cursor_ > 0) Erase(PrevChar(cursor_), cursor_);
      break;
    case Key::kDelete:
      if (cursor_ < buffer_.size()) Erase(cursor_, NextChar(cursor_));
      break;
    case Key::kKillToStart:
      Erase(0, cursor_);
      break;
    case Key::kKillToEnd:
      Erase(cursor_, buffer_.size());
      break;
    case Key::kKillWord: {
      // Space is never part of a multi-byte character, so scanning bytes
      // lands on character boundaries.
      size_t p = cursor_;
      while (p > 0 && buffer_[p - 1] == ' ') --p;
      while (p > 0 && buffer_[p - 1] != ' ') --p;
      Erase(p, cursor_);
      break;
    }
    case Key::kInterrupt:
      Flush(out);
      out += "^C\r\n";
      events.push_back({EventKind::kInterrupt, {}});
      ResetLine();
      break;
    case Key::kEofOrDelete:
      if (!buffer_.empty()) {
        if (cursor_ < buffer_.size()) Erase(cursor_, NextChar(cursor_));
        break;
      }
      Flush(out);
      out += "\r\n";
      events.push_back({EventKind::kEof, {}});
      ResetLine();
      break;
    case Key::kClear:
      out += "\x1b[H\x1b[2J";
      out += Redraw();
      dirty_ = false;
      break;
    case Key::kTab:
      if (!completer_) {
        Bell(out);
        break;
      }
      Complete(out, previous_was_tab);
      break;
    case Key::kEnter: {
      Flush(out);
      out += "\r\n";
      std::string line = std::move(buffer_);
      if (!line.empty() && history_limit_ > 0 &&
          (history_.empty() || history_.back() != line)) {
        history_.push_back(line);
        if (history_.size() > history_limit_) history_.erase(history_.begin());
      }
      events.push_back({EventKind::kLine, std::move(line)});
      ResetLine();
      break;
    }
    case Key::kIgnored:
      break;
  }
}

bool LineEditor::Insert(std::string_view text, std::string& out) {
  if (buffer_.size() + text.size() > max_line_bytes_) {
    hit_limit_ = true;
    // One bell per Feed: a long paste should not ring hundreds of times.
    if (!limit_bell_sent_) Bell(out);
    limit_bell_sent_ = true;
    return false;
  }
  bool at_end = cursor_ == buffer_.size();
  buffer_.insert(cursor_, text);
  cursor_ += text.size();
  // Appending to an up-to-date line is what the terminal would show anyway.
  if (at_end && !dirty_) {
    out += text;
  } else {
    dirty_ = true;
  }
  return true;
}

void LineEditor::Erase(size_t from, size_t to) {
  if (from >= to) return;
  buffer_.erase(from, to - from);
  cursor_ = from;
  dirty_ = true;
}

void LineEditor::Complete(std::string& out, bool previous_was_tab) {
  std::string_view before(buffer_.data(), cursor_);
  size_t space = before.rfind(' ');
  std::string word(space == std::string_view::npos ? before
                                                   : before.substr(space + 1));
  std::vector<std::string> matches;
  for (std::string& c : completer_(before)) {
    if (c.starts_with(word)) matches.push_back(std::move(c));
  }
  std::sort(matches.begin(), matches.end());
  matches.erase(std::unique(matches.begin(), matches.end()), matches.end());

  if (matches.empty()) {
    Bell(out);
    return;
  }
  if (matches.size() == 1) {
    Insert(matches[0].substr(word.size()) + " ", out);
    return;
  }
  // Sorted, so the common prefix of all is that of the first and last.
  const std::string& first = matches.front();
  const std::string& last = matches.back();
  size_t common = 0;
  while (common < first.size() && common < last.size() &&
         first[common] == last[common]) {
    ++common;
  }
  // Never stop inside a UTF-8 character (é and è share their lead byte).
  while (common > word.size() && common < first.size() &&
         IsContinuation(static_cast<unsigned char>(first[common]))) {
    --common;
  }
  if (common > word.size()) {
    Insert(std::string_view(first).substr(word.size(), common - word.size()), out);
    return;
  }
  if (!previous_was_tab) {
    Bell(out);
    return;
  }
  Flush(out);
  out += "\r\n";
  for (size_t i = 0; i < matches.size(); ++i) {
    if (i > 0) out += "  ";
    out += matches[i];
  }
  out += "\r\n";
  out += Redraw();
}

void LineEditor::HistoryMove(int delta) {
  if (delta < 0) {
    if (history_pos_ == 0) return;
    if (history_pos_ == history_.size()) saved_live_ = buffer_;
    --history_pos_;
    buffer_ = history_[history_pos_];
  } else {
    if (history_pos_ >= history_.size()) return;
    ++history_pos_;
    buffer_ = history_pos_ == history_.size() ? saved_live_ : history_[history_pos_];
  }
  cursor_ = buffer_.size();
  dirty_ = true;
}

void LineEditor::Flush(std::string& out) {
  if (!dirty_) return;
  out += Redraw();
  dirty_ = false;
}

void LineEditor::ResetLine() {
  buffer_.clear();
  cursor_ = 0;
  history_pos_ = history_.size();
  saved_live_.clear();
  // The cursor is on a fresh row and the caller draws the prompt next.
  dirty_ = false;
}

size_t LineEditor::PrevChar(size_t pos) const {
  if (pos == 0) return 0;
  --pos;
  while (pos > 0 && IsContinuation(static_cast<unsigned char>(buffer_[pos]))) --pos;
  return pos;
}

size_t LineEditor::NextChar(size_t pos) const {
  if (pos >= buffer_.size()) return buffer_.size();
  ++pos;
  while (pos < buffer_.size() &&
         IsContinuation(static_cast<unsigned char>(buffer_[pos]))) {
    ++pos;
  }
  return pos;
}

}  // namespace sshd
