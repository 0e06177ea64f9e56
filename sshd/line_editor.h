// LineEditor: the SSH lobby's readline. A pure state machine: raw bytes typed
// into the pty go in, bytes to echo back to the terminal and completed events
// (a line, ^C, ^D) come out. It does no I/O so that the session loop owns
// every read and write and the editing rules can be tested byte by byte.
//
// One instance per interactive session; not thread-safe. Feed() keeps partial
// escape and UTF-8 sequences between calls, so all of a session's input must
// go through the same instance in order.
//
// The buffer is always valid UTF-8 and the cursor always sits on a character
// boundary: malformed input bytes are dropped rather than echoed, because a
// stray byte would desynchronise the cursor arithmetic from what the terminal
// shows. Rendering assumes the prompt plus line fit on one terminal row.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sshd {

class LineEditor {
 public:
  enum class EventKind { kLine, kInterrupt, kEof };
  struct Event {
    EventKind kind;
    std::string line;  // set for kLine
  };
  // Returns candidate full words for the word being typed (the text after the
  // last space before the cursor). Candidates not starting with that word are
  // ignored, so a completer may return its whole vocabulary.
  using Completer =
      std::function<std::vector<std::string>(std::string_view line_before_cursor)>;

  explicit LineEditor(size_t max_line_bytes = 4096);

  // The prompt may contain ANSI colour codes; they take no columns.
  void set_prompt(std::string prompt);
  void set_completer(Completer c);
  void set_history(std::vector<std::string> h);  // oldest first
  const std::vector<std::string>& history() const { return history_; }
  void set_history_limit(size_t n);  // default 500, oldest dropped

  // The prompt and current buffer drawn from scratch, for the start of a
  // session and after a command's output has moved the cursor elsewhere.
  std::string Redraw() const;

  // Feeds raw bytes from the terminal, appends what must be written back to
  // *out (echo, redraws, "\r\n" after Enter, bell "\a") and returns the events
  // these bytes completed, in order. Enter does not draw the next prompt: the
  // caller prints the command's output first, then writes Redraw().
  std::vector<Event> Feed(std::string_view bytes, std::string* out);

  // True if the last Feed refused input because the line was full, so the
  // caller can explain the bell.
  bool last_feed_hit_limit() const { return hit_limit_; }

  const std::string& buffer() const { return buffer_; }
  size_t cursor() const { return cursor_; }  // byte offset into buffer()
  // Columns the prompt occupies on screen, colour codes excluded.
  size_t prompt_width() const { return DisplayWidth(prompt_); }

  // Terminal columns `s` occupies: CSI sequences and control bytes take none,
  // East Asian wide characters two, combining marks none.
  static size_t DisplayWidth(std::string_view s);

 private:
  enum class Key {
    kLeft, kRight, kHome, kEnd, kUp, kDown,
    kBackspace, kDelete, kKillToStart, kKillToEnd, kKillWord,
    kInterrupt, kEofOrDelete, kClear, kTab, kEnter, kIgnored,
  };
  enum class InputState { kGround, kEsc, kCsi, kSs3 };

  void FeedByte(unsigned char b, std::string& out, std::vector<Event>& events);
  void FeedUtf8(unsigned char b, std::string& out);
  void HandleKey(Key k, std::string& out, std::vector<Event>& events);
  Key CsiKey(char final_byte) const;
  bool Insert(std::string_view text, std::string& out);
  void Erase(size_t from, size_t to);
  void Complete(std::string& out, bool previous_was_tab);
  void HistoryMove(int delta);
  void Flush(std::string& out);
  void ResetLine();
  void Bell(std::string& out) { out += '\a'; }
  size_t PrevChar(size_t pos) const;
  size_t NextChar(size_t pos) const;

  size_t max_line_bytes_;
  std::string prompt_;
  Completer completer_;

  std::vector<std::string> history_;
  size_t history_limit_ = 500;
  // Index into history_ of the entry shown; history_.size() is the live line.
  size_t history_pos_ = 0;
  std::string saved_live_;  // the live line while browsing history

  std::string buffer_;
  size_t cursor_ = 0;

  // Input decoding state, carried across Feed() calls.
  InputState state_ = InputState::kGround;
  std::string csi_params_;
  std::string utf8_pending_;
  size_t utf8_need_ = 0;  // total bytes of the character in utf8_pending_
  bool after_cr_ = false;  // swallow the \n of a \r\n pair
  bool last_key_tab_ = false;

  // Per-Feed output state.
  bool hit_limit_ = false;
  bool limit_bell_sent_ = false;
  // The terminal no longer matches buffer_/cursor_; a full redraw is owed.
  // Deferred to the end of Feed so a paste into the middle redraws once.
  bool dirty_ = false;
};

}  // namespace sshd
