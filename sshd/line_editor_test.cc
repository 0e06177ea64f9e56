#include "sshd/line_editor.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sshd {
namespace {

using EventKind = LineEditor::EventKind;

constexpr char kLeft[] = "\x1b[D";
constexpr char kRight[] = "\x1b[C";
constexpr char kUp[] = "\x1b[A";
constexpr char kDown[] = "\x1b[B";
constexpr char kBackspace[] = "\x7f";
constexpr char kTab[] = "\t";

// Feeds bytes and keeps what was written back, so tests can look at either.
struct Fed {
  std::vector<LineEditor::Event> events;
  std::string out;
};

Fed FeedAll(LineEditor& ed, std::string_view bytes) {
  Fed f;
  f.events = ed.Feed(bytes, &f.out);
  return f;
}

std::string Repeat(std::string_view s, int n) {
  std::string r;
  for (int i = 0; i < n; ++i) r += s;
  return r;
}

// --- typing and Enter --------------------------------------------------------

TEST(LineEditorTest, TypingAtEndEchoesBytes) {
  LineEditor ed;
  ed.set_prompt("$ ");
  Fed f = FeedAll(ed, "ls -l");
  EXPECT_EQ(ed.buffer(), "ls -l");
  EXPECT_EQ(ed.cursor(), 5u);
  EXPECT_EQ(f.out, "ls -l");
  EXPECT_TRUE(f.events.empty());
}

TEST(LineEditorTest, EnterEmitsLineWritesCrlfAndResets) {
  LineEditor ed;
  ed.set_prompt("$ ");
  Fed f = FeedAll(ed, "ls\r");
  ASSERT_EQ(f.events.size(), 1u);
  EXPECT_EQ(f.events[0].kind, EventKind::kLine);
  EXPECT_EQ(f.events[0].line, "ls");
  // Echo then CRLF, and no prompt: the caller draws it after the output.
  EXPECT_EQ(f.out, "ls\r\n");
  EXPECT_EQ(ed.buffer(), "");
  EXPECT_EQ(ed.cursor(), 0u);
  EXPECT_EQ(ed.history(), std::vector<std::string>{"ls"});
}

TEST(LineEditorTest, EmptyEnterEmitsEmptyLineAndSkipsHistory) {
  LineEditor ed;
  Fed f = FeedAll(ed, "\r");
  ASSERT_EQ(f.events.size(), 1u);
  EXPECT_EQ(f.events[0].kind, EventKind::kLine);
  EXPECT_EQ(f.events[0].line, "");
  EXPECT_EQ(f.out, "\r\n");
  EXPECT_TRUE(ed.history().empty());
}

TEST(LineEditorTest, CrLfIsOneEnterEvenAcrossFeeds) {
  LineEditor ed;
  EXPECT_EQ(FeedAll(ed, "a\r\n").events.size(), 1u);
  EXPECT_EQ(FeedAll(ed, "b\r").events.size(), 1u);
  Fed f = FeedAll(ed, "\nc");  // the \n completes the previous \r\n
  EXPECT_TRUE(f.events.empty());
  EXPECT_EQ(ed.buffer(), "c");
}

TEST(LineEditorTest, LoneLfAndRepeatedCrAreEachAnEnter) {
  LineEditor ed;
  Fed f = FeedAll(ed, "a\nb\r\r");
  ASSERT_EQ(f.events.size(), 3u);
  EXPECT_EQ(f.events[0].line, "a");
  EXPECT_EQ(f.events[1].line, "b");
  EXPECT_EQ(f.events[2].line, "");
}

TEST(LineEditorTest, PasteWithNewlinesYieldsSeveralLines) {
  LineEditor ed;
  Fed f = FeedAll(ed, "vm ls\r\nvm start x\ntail");
  ASSERT_EQ(f.events.size(), 2u);
  EXPECT_EQ(f.events[0].line, "vm ls");
  EXPECT_EQ(f.events[1].line, "vm start x");
  EXPECT_EQ(ed.buffer(), "tail");
  EXPECT_EQ(ed.cursor(), 4u);
  EXPECT_EQ(ed.history(), (std::vector<std::string>{"vm ls", "vm start x"}));
}

TEST(LineEditorTest, EventsKeepTheirOrder) {
  LineEditor ed;
  Fed f = FeedAll(ed, "a\rb\x03\r\x04");
  ASSERT_EQ(f.events.size(), 4u);
  EXPECT_EQ(f.events[0].kind, EventKind::kLine);
  EXPECT_EQ(f.events[0].line, "a");
  EXPECT_EQ(f.events[1].kind, EventKind::kInterrupt);
  EXPECT_EQ(f.events[2].kind, EventKind::kLine);
  EXPECT_EQ(f.events[2].line, "");
  EXPECT_EQ(f.events[3].kind, EventKind::kEof);
}

// --- cursor movement ---------------------------------------------------------

TEST(LineEditorTest, LeftRightAllEncodingsAndClamping) {
  for (std::string left : {"\x1b[D", "\x1bOD", "\x02"}) {
    LineEditor ed;
    FeedAll(ed, "abc" + left);
    EXPECT_EQ(ed.cursor(), 2u) << "left encoding " << left.size();
    FeedAll(ed, left + left + left);
    EXPECT_EQ(ed.cursor(), 0u);
    EXPECT_EQ(ed.buffer(), "abc");
  }
  for (std::string right : {"\x1b[C", "\x1bOC", "\x06"}) {
    LineEditor ed;
    FeedAll(ed, "abc\x01" + right);
    EXPECT_EQ(ed.cursor(), 1u) << "right encoding " << right.size();
    FeedAll(ed, right + right + right);
    EXPECT_EQ(ed.cursor(), 3u);
    EXPECT_EQ(ed.buffer(), "abc");
  }
}

TEST(LineEditorTest, HomeAndEndAllEncodings) {
  for (const char* home : {"\x01", "\x1b[H", "\x1bOH", "\x1b[1~", "\x1b[7~"}) {
    LineEditor ed;
    FeedAll(ed, std::string("abc") + home);
    EXPECT_EQ(ed.cursor(), 0u) << "home " << home + 1;
    EXPECT_EQ(ed.buffer(), "abc");
  }
  for (const char* end : {"\x05", "\x1b[F", "\x1bOF", "\x1b[4~", "\x1b[8~"}) {
    LineEditor ed;
    FeedAll(ed, std::string("abc\x01") + end);
    EXPECT_EQ(ed.cursor(), 3u) << "end " << end + 1;
    EXPECT_EQ(ed.buffer(), "abc");
  }
}

TEST(LineEditorTest, InsertInMiddleRedrawsAndPlacesCursor) {
  LineEditor ed;
  ed.set_prompt("$ ");
  FeedAll(ed, "ac");
  EXPECT_EQ(FeedAll(ed, kLeft).out, "\r$ ac\x1b[K\x1b[1D");
  Fed f = FeedAll(ed, "b");
  EXPECT_EQ(ed.buffer(), "abc");
  EXPECT_EQ(ed.cursor(), 2u);
  EXPECT_EQ(f.out, "\r$ abc\x1b[K\x1b[1D");
}

TEST(LineEditorTest, PasteIntoMiddleRedrawsOnce) {
  LineEditor ed;
  ed.set_prompt("> ");
  FeedAll(ed, std::string("ad") + kLeft);
  Fed f = FeedAll(ed, "bc");
  EXPECT_EQ(ed.buffer(), "abcd");
  EXPECT_EQ(f.out, "\r> abcd\x1b[K\x1b[1D");
}

TEST(LineEditorTest, RedrawMatchesStateAndOmitsZeroMove) {
  LineEditor ed;
  ed.set_prompt("$ ");
  FeedAll(ed, "abc");
  EXPECT_EQ(ed.Redraw(), "\r$ abc\x1b[K");
  FeedAll(ed, std::string(kLeft) + kLeft);
  EXPECT_EQ(ed.Redraw(), "\r$ abc\x1b[K\x1b[2D");
}

TEST(LineEditorTest, AppendAfterEditInSameFeedIsOneRedraw) {
  LineEditor ed;
  ed.set_prompt("$ ");
  FeedAll(ed, "ab");
  Fed f = FeedAll(ed, std::string(kBackspace) + "c");
  EXPECT_EQ(ed.buffer(), "ac");
  EXPECT_EQ(f.out, "\r$ ac\x1b[K");
}

TEST(LineEditorTest, AppendAfterMovingBackToEndEchoesAgain) {
  LineEditor ed;
  FeedAll(ed, std::string("ab") + kLeft + kRight);
  EXPECT_EQ(FeedAll(ed, "c").out, "c");
}

// --- deletion ----------------------------------------------------------------

TEST(LineEditorTest, BackspaceInMiddleBothCodes) {
  LineEditor ed;
  FeedAll(ed, std::string("abcd") + kLeft + kLeft + kBackspace);
  EXPECT_EQ(ed.buffer(), "acd");
  EXPECT_EQ(ed.cursor(), 1u);
  FeedAll(ed, "\x08");
  EXPECT_EQ(ed.buffer(), "cd");
  EXPECT_EQ(ed.cursor(), 0u);
  Fed f = FeedAll(ed, kBackspace);  // nothing before the cursor
  EXPECT_EQ(ed.buffer(), "cd");
  EXPECT_EQ(f.out, "");
}

TEST(LineEditorTest, DeleteKeyRemovesCharAtCursor) {
  LineEditor ed;
  FeedAll(ed, "abc\x01\x1b[3~");
  EXPECT_EQ(ed.buffer(), "bc");
  EXPECT_EQ(ed.cursor(), 0u);
  FeedAll(ed, "\x05\x1b[3~");  // at end: nothing to delete
  EXPECT_EQ(ed.buffer(), "bc");
  EXPECT_EQ(ed.cursor(), 2u);
}

TEST(LineEditorTest, CtrlUDeletesToStart) {
  LineEditor ed;
  FeedAll(ed, "hello world" + Repeat(kLeft, 5) + "\x15");
  EXPECT_EQ(ed.buffer(), "world");
  EXPECT_EQ(ed.cursor(), 0u);
}

TEST(LineEditorTest, CtrlKDeletesToEnd) {
  LineEditor ed;
  FeedAll(ed, "hello world\x01" + Repeat(kRight, 5) + "\x0b");
  EXPECT_EQ(ed.buffer(), "hello");
  EXPECT_EQ(ed.cursor(), 5u);
}

TEST(LineEditorTest, CtrlWSkipsTrailingSpacesThenDeletesWord) {
  LineEditor ed;
  FeedAll(ed, "git commit  \x17");
  EXPECT_EQ(ed.buffer(), "git ");
  EXPECT_EQ(ed.cursor(), 4u);
  FeedAll(ed, "\x17");
  EXPECT_EQ(ed.buffer(), "");
  EXPECT_EQ(ed.cursor(), 0u);
}

TEST(LineEditorTest, CtrlWInMiddleKeepsTextAfterCursor) {
  LineEditor ed;
  FeedAll(ed, "foo bar baz" + Repeat(kLeft, 4) + "\x17");
  EXPECT_EQ(ed.buffer(), "foo  baz");
  EXPECT_EQ(ed.cursor(), 4u);
}

// --- history -----------------------------------------------------------------

TEST(LineEditorTest, UpDownWalkHistoryAndRestoreLiveLine) {
  LineEditor ed;
  ed.set_history({"one", "two"});
  FeedAll(ed, "draft");
  FeedAll(ed, kUp);
  EXPECT_EQ(ed.buffer(), "two");
  EXPECT_EQ(ed.cursor(), 3u);
  FeedAll(ed, kUp);
  EXPECT_EQ(ed.buffer(), "one");
  FeedAll(ed, kUp);  // oldest: stays
  EXPECT_EQ(ed.buffer(), "one");
  FeedAll(ed, kDown);
  EXPECT_EQ(ed.buffer(), "two");
  FeedAll(ed, kDown);
  EXPECT_EQ(ed.buffer(), "draft");
  EXPECT_EQ(ed.cursor(), 5u);
  FeedAll(ed, kDown);  // already live: stays
  EXPECT_EQ(ed.buffer(), "draft");
}

TEST(LineEditorTest, HistoryKeysAllEncodings) {
  for (auto [up, down] : {std::pair{"\x1b[A", "\x1b[B"}, std::pair{"\x1bOA", "\x1bOB"},
                          std::pair{"\x10", "\x0e"}}) {
    LineEditor ed;
    ed.set_history({"one", "two"});
    FeedAll(ed, std::string("x") + up + up);
    EXPECT_EQ(ed.buffer(), "one");
    FeedAll(ed, std::string(down) + down);
    EXPECT_EQ(ed.buffer(), "x");
  }
}

TEST(LineEditorTest, EditingRecalledEntryLeavesHistoryAlone) {
  LineEditor ed;
  ed.set_history({"one", "two"});
  FeedAll(ed, std::string(kUp) + "X" + kUp + kDown);
  EXPECT_EQ(ed.buffer(), "two");  // the edit was not written into the entry
  Fed f = FeedAll(ed, "X\r");
  ASSERT_EQ(f.events.size(), 1u);
  EXPECT_EQ(f.events[0].line, "twoX");
  EXPECT_EQ(ed.history(), (std::vector<std::string>{"one", "two", "twoX"}));
}

TEST(LineEditorTest, EnterEndsBrowsingSoUpStartsFromNewest) {
  LineEditor ed;
  ed.set_history({"one", "two"});
  FeedAll(ed, std::string(kUp) + kUp + "\r");  // re-runs "one"
  EXPECT_EQ(ed.history(), (std::vector<std::string>{"one", "two", "one"}));
  FeedAll(ed, kUp);
  EXPECT_EQ(ed.buffer(), "one");
  FeedAll(ed, kUp);
  EXPECT_EQ(ed.buffer(), "two");
  FeedAll(ed, std::string(kDown) + kDown);
  EXPECT_EQ(ed.buffer(), "");  // the live line after Enter was empty
}

TEST(LineEditorTest, HistorySkipsRepeatOfMostRecent) {
  LineEditor ed;
  FeedAll(ed, "a\ra\rb\ra\r");
  EXPECT_EQ(ed.history(), (std::vector<std::string>{"a", "b", "a"}));
}

TEST(LineEditorTest, HistoryLimitDropsOldest) {
  LineEditor ed;
  ed.set_history_limit(3);
  FeedAll(ed, "1\r2\r3\r4\r5\r");
  EXPECT_EQ(ed.history(), (std::vector<std::string>{"3", "4", "5"}));
  ed.set_history({"a", "b", "c", "d"});
  EXPECT_EQ(ed.history(), (std::vector<std::string>{"b", "c", "d"}));
  ed.set_history_limit(1);
  EXPECT_EQ(ed.history(), std::vector<std::string>{"d"});
}

TEST(LineEditorTest, HistoryDefaultLimitIs500) {
  LineEditor ed;
  std::string input;
  for (int i = 0; i < 501; ++i) input += std::to_string(i) + "\r";
  FeedAll(ed, input);
  ASSERT_EQ(ed.history().size(), 500u);
  EXPECT_EQ(ed.history().front(), "1");
  EXPECT_EQ(ed.history().back(), "500");
}

// --- Ctrl-C, Ctrl-D, Ctrl-L --------------------------------------------------

TEST(LineEditorTest, CtrlCDropsLine) {
  LineEditor ed;
  ed.set_history({"old"});
  FeedAll(ed, "partial");
  Fed f = FeedAll(ed, "\x03");
  ASSERT_EQ(f.events.size(), 1u);
  EXPECT_EQ(f.events[0].kind, EventKind::kInterrupt);
  EXPECT_EQ(f.out, "^C\r\n");
  EXPECT_EQ(ed.buffer(), "");
  EXPECT_EQ(ed.cursor(), 0u);
  EXPECT_EQ(ed.history(), std::vector<std::string>{"old"});
}

TEST(LineEditorTest, CtrlCWhileBrowsingReturnsToLiveLine) {
  LineEditor ed;
  ed.set_history({"old"});
  FeedAll(ed, std::string("draft") + kUp + "\x03" + kUp + kDown);
  EXPECT_EQ(ed.buffer(), "");
}

TEST(LineEditorTest, CtrlDOnEmptyLineIsEof) {
  LineEditor ed;
  Fed f = FeedAll(ed, "\x04");
  ASSERT_EQ(f.events.size(), 1u);
  EXPECT_EQ(f.events[0].kind, EventKind::kEof);
  EXPECT_EQ(f.out, "\r\n");
}

TEST(LineEditorTest, CtrlDOnNonEmptyLineDeletesAtCursor) {
  LineEditor ed;
  Fed f = FeedAll(ed, "abc\x01\x04");
  EXPECT_TRUE(f.events.empty());
  EXPECT_EQ(ed.buffer(), "bc");
  EXPECT_EQ(ed.cursor(), 0u);
  f = FeedAll(ed, "\x05\x04");  // at end of a non-empty line: no EOF either
  EXPECT_TRUE(f.events.empty());
  EXPECT_EQ(ed.buffer(), "bc");
}

TEST(LineEditorTest, CtrlLClearsScreenAndRedraws) {
  LineEditor ed;
  ed.set_prompt("$ ");
  FeedAll(ed, std::string("abc") + kLeft);
  Fed f = FeedAll(ed, "\x0c");
  EXPECT_EQ(f.out, "\x1b[H\x1b[2J\r$ abc\x1b[K\x1b[1D");
  EXPECT_EQ(ed.buffer(), "abc");
  EXPECT_EQ(ed.cursor(), 2u);
}

// --- escape sequences and stray bytes ----------------------------------------

TEST(LineEditorTest, EscapeSequenceSplitAcrossFeeds) {
  LineEditor ed;
  FeedAll(ed, "abc\x1b");
  FeedAll(ed, "[");
  EXPECT_EQ(ed.buffer(), "abc");
  FeedAll(ed, "D");
  EXPECT_EQ(ed.buffer(), "abc");
  EXPECT_EQ(ed.cursor(), 2u);
  FeedAll(ed, "\x1b[3");
  FeedAll(ed, "~");
  EXPECT_EQ(ed.buffer(), "ab");
}

TEST(LineEditorTest, UnknownEscapesAndControlBytesAreSwallowed) {
  using namespace std::string_literals;
  LineEditor ed;
  // Ctrl-Right, F1, F5, Insert, PageUp, a CSI with an intermediate byte, an
  // over-long CSI; then NUL, BEL, Ctrl-_.
  Fed f = FeedAll(ed, "a\x1b[1;5C\x1bOP\x1b[15~\x1b[2~\x1b[5~\x1b[2 q"
                      "\x1b[123;45;67;89;10;11;12;13z"
                      "b\0\x07\x1f"
                      "c"s);
  EXPECT_EQ(ed.buffer(), "abc");
  EXPECT_EQ(ed.cursor(), 3u);
  EXPECT_EQ(f.out, "abc");
}

TEST(LineEditorTest, ModifiedArrowDoesNotMove) {
  LineEditor ed;
  FeedAll(ed, "abc\x1b[1;5D");
  EXPECT_EQ(ed.cursor(), 3u);
}

TEST(LineEditorTest, StrayEscDoesNotEatNextKey) {
  LineEditor ed;
  FeedAll(ed, "a\x1bx\x1b\x1b[D");
  EXPECT_EQ(ed.buffer(), "ax");
  EXPECT_EQ(ed.cursor(), 1u);
}

// --- UTF-8 -------------------------------------------------------------------

TEST(LineEditorTest, Utf8TwoByteCharIsOneUnit) {
  LineEditor ed;
  FeedAll(ed, "a\xc3\xa9" "b");  // aéb
  EXPECT_EQ(ed.cursor(), 4u);
  FeedAll(ed, kLeft);
  EXPECT_EQ(ed.cursor(), 3u);
  FeedAll(ed, kLeft);
  EXPECT_EQ(ed.cursor(), 1u);
  FeedAll(ed, kRight);
  EXPECT_EQ(ed.cursor(), 3u);
  FeedAll(ed, kBackspace);
  EXPECT_EQ(ed.buffer(), "ab");
  EXPECT_EQ(ed.cursor(), 1u);
}

TEST(LineEditorTest, Utf8DeleteAtCursorRemovesWholeChar) {
  LineEditor ed;
  FeedAll(ed, "a\xc3\xa9" "b\x01\x1b[C\x1b[3~");
  EXPECT_EQ(ed.buffer(), "ab");
  EXPECT_EQ(ed.cursor(), 1u);
}

TEST(LineEditorTest, Utf8CjkMovesDeletesAndRedrawsByColumns) {
  LineEditor ed;
  ed.set_prompt("$ ");
  FeedAll(ed, "\xe6\x97\xa5\xe6\x9c\xac");  // 日本
  EXPECT_EQ(ed.cursor(), 6u);
  FeedAll(ed, kLeft);
  EXPECT_EQ(ed.cursor(), 3u);
  // 本 takes two terminal columns, so the cursor goes back two.
  EXPECT_EQ(ed.Redraw(), "\r$ \xe6\x97\xa5\xe6\x9c\xac\x1b[K\x1b[2D");
  FeedAll(ed, kBackspace);
  EXPECT_EQ(ed.buffer(), "\xe6\x9c\xac");
  EXPECT_EQ(ed.cursor(), 0u);
  FeedAll(ed, "\x04");
  EXPECT_EQ(ed.buffer(), "");
}

TEST(LineEditorTest, Utf8CharSplitAcrossFeedsEchoedWhole) {
  LineEditor ed;
  Fed f = FeedAll(ed, "\xe6");
  EXPECT_EQ(f.out, "");
  EXPECT_EQ(ed.buffer(), "");
  f = FeedAll(ed, "\x97\xa5");
  EXPECT_EQ(f.out, "\xe6\x97\xa5");
  EXPECT_EQ(ed.buffer(), "\xe6\x97\xa5");
}

TEST(LineEditorTest, MalformedUtf8IsDropped) {
  LineEditor ed;
  // Stray continuation, invalid lead, overlong, truncated before ASCII.
  FeedAll(ed, "\x80" "a\xff\xc0\xaf\xe0\x80\x80\xe6\x97" "b");
  EXPECT_EQ(ed.buffer(), "ab");
}

TEST(LineEditorTest, CtrlWDeletesUtf8Word) {
  LineEditor ed;
  FeedAll(ed, "echo caf\xc3\xa9\x17");
  EXPECT_EQ(ed.buffer(), "echo ");
}

TEST(LineEditorTest, DisplayWidthIgnoresColourCodes) {
  LineEditor ed;
  ed.set_prompt("\x1b[1;32mexed\x1b[0m> ");
  EXPECT_EQ(ed.prompt_width(), 6u);
  EXPECT_EQ(LineEditor::DisplayWidth("\xe6\x97\xa5\xe6\x9c\xac"), 4u);
  EXPECT_EQ(LineEditor::DisplayWidth("caf\xc3\xa9"), 4u);
}

// --- completion --------------------------------------------------------------

LineEditor::Completer Fixed(std::vector<std::string> words,
                            std::string* seen = nullptr) {
  return [words, seen](std::string_view before) {
    if (seen) *seen = std::string(before);
    return words;
  };
}

TEST(LineEditorTest, TabCompletesUniqueCandidateWithSpace) {
  LineEditor ed;
  std::string seen;
  ed.set_completer(Fixed({"status", "help", "vm"}, &seen));
  Fed f = FeedAll(ed, std::string("st") + kTab);
  EXPECT_EQ(seen, "st");
  EXPECT_EQ(ed.buffer(), "status ");
  EXPECT_EQ(ed.cursor(), 7u);
  EXPECT_EQ(f.out, "stat" "us ");
}

TEST(LineEditorTest, TabCompletesLaterWordAndMidLine) {
  LineEditor ed;
  std::string seen;
  ed.set_completer(Fixed({"start", "stop"}, &seen));
  FeedAll(ed, "vm s rest" + Repeat(kLeft, 5) + kTab);
  EXPECT_EQ(seen, "vm s");
  EXPECT_EQ(ed.buffer(), "vm st rest");
  EXPECT_EQ(ed.cursor(), 5u);
}

TEST(LineEditorTest, TabExtendsToCommonPrefixWithoutBell) {
  LineEditor ed;
  ed.set_completer(Fixed({"start", "status", "stop"}));
  Fed f = FeedAll(ed, std::string("s") + kTab);
  EXPECT_EQ(ed.buffer(), "st");
  EXPECT_EQ(f.out.find('\a'), std::string::npos);
}

TEST(LineEditorTest, AmbiguousTabBellsThenListsOnSecondTab) {
  LineEditor ed;
  ed.set_prompt("$ ");
  ed.set_completer(Fixed({"stop", "start", "status"}));
  FeedAll(ed, "vm st");
  Fed first = FeedAll(ed, kTab);
  EXPECT_EQ(first.out, "\a");
  EXPECT_EQ(ed.buffer(), "vm st");
  Fed second = FeedAll(ed, kTab);
  EXPECT_EQ(second.out, "\r\nstart  status  stop\r\n\r$ vm st\x1b[K");
  EXPECT_EQ(ed.buffer(), "vm st");
  EXPECT_EQ(ed.cursor(), 5u);
}

TEST(LineEditorTest, TabAfterExtendingListsOnNextTab) {
  LineEditor ed;
  ed.set_completer(Fixed({"start", "status"}));
  FeedAll(ed, std::string("s") + kTab);
  EXPECT_EQ(ed.buffer(), "sta");
  Fed f = FeedAll(ed, kTab);
  EXPECT_NE(f.out.find("start  status"), std::string::npos);
}

TEST(LineEditorTest, TypingBetweenTabsResetsDoubleTab) {
  LineEditor ed;
  ed.set_completer(Fixed({"start", "status"}));
  FeedAll(ed, "st");
  FeedAll(ed, kTab);
  Fed f = FeedAll(ed, std::string("a") + kTab);
  EXPECT_EQ(f.out, "a\a");  // a first Tab again: bell, no list
}

TEST(LineEditorTest, TabBellsWithoutCompleterOrCandidates) {
  LineEditor none;
  EXPECT_EQ(FeedAll(none, std::string("x") + kTab).out, "x\a");
  EXPECT_EQ(none.buffer(), "x");

  LineEditor empty;
  empty.set_completer(Fixed({}));
  EXPECT_EQ(FeedAll(empty, std::string("x") + kTab).out, "x\a");

  LineEditor mismatched;  // candidates for another word are not applied
  mismatched.set_completer(Fixed({"help"}));
  EXPECT_EQ(FeedAll(mismatched, std::string("x") + kTab).out, "x\a");
  EXPECT_EQ(mismatched.buffer(), "x");
}

TEST(LineEditorTest, CommonPrefixNeverSplitsUtf8Char) {
  LineEditor ed;
  ed.set_completer(Fixed({"caf\xc3\xa9", "caf\xc3\xa8"}));
  FeedAll(ed, std::string("c") + kTab);
  EXPECT_EQ(ed.buffer(), "caf");
}

// --- length limit ------------------------------------------------------------

TEST(LineEditorTest, MaxLengthRefusesWithOneBell) {
  LineEditor ed(5);
  Fed f = FeedAll(ed, "abcdefg");
  EXPECT_EQ(ed.buffer(), "abcde");
  EXPECT_EQ(f.out, "abcde\a");
  EXPECT_TRUE(ed.last_feed_hit_limit());
  FeedAll(ed, kLeft);
  EXPECT_FALSE(ed.last_feed_hit_limit());
  FeedAll(ed, std::string(kBackspace) + "X");
  EXPECT_EQ(ed.buffer(), "abcXe");
  EXPECT_FALSE(ed.last_feed_hit_limit());
}

TEST(LineEditorTest, MaxLengthRefusesWholeUtf8Char) {
  LineEditor ed(4);
  FeedAll(ed, "abc\xc3\xa9");
  EXPECT_EQ(ed.buffer(), "abc");
  EXPECT_TRUE(ed.last_feed_hit_limit());
  FeedAll(ed, "d");
  EXPECT_EQ(ed.buffer(), "abcd");
}

TEST(LineEditorTest, MaxLengthRefusesCompletion) {
  LineEditor ed(6);
  ed.set_completer(Fixed({"status"}));
  Fed f = FeedAll(ed, std::string("st") + kTab);
  EXPECT_EQ(ed.buffer(), "st");  // "status " would be 7 bytes
  EXPECT_TRUE(ed.last_feed_hit_limit());
  EXPECT_EQ(f.out, "st\a");
}

TEST(LineEditorTest, LinesAfterLimitInSameFeedStillWork) {
  LineEditor ed(3);
  Fed f = FeedAll(ed, "abcd\rxy\r");
  ASSERT_EQ(f.events.size(), 2u);
  EXPECT_EQ(f.events[0].line, "abc");
  EXPECT_EQ(f.events[1].line, "xy");
  EXPECT_TRUE(ed.last_feed_hit_limit());
}

}  // namespace
}  // namespace sshd
