#include "control/argsplit.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace control {
namespace {

using Words = std::vector<std::string>;

Words Split(std::string_view line) {
  auto r = SplitArgs(line);
  EXPECT_TRUE(r.ok()) << "SplitArgs(" << line << "): " << r.error().message;
  return r.ok() ? r.value() : Words{"<error>"};
}

TEST(SplitArgs, BlanksSeparateWords) {
  EXPECT_EQ(Split("new --name foo"), (Words{"new", "--name", "foo"}));
  EXPECT_EQ(Split("  ls\t\t-l  \r\n"), (Words{"ls", "-l"}));
  EXPECT_EQ(Split(""), Words{});
  EXPECT_EQ(Split(" \t "), Words{});
}

TEST(SplitArgs, SingleQuotesAreLiteral) {
  EXPECT_EQ(Split("echo 'a b'"), (Words{"echo", "a b"}));
  EXPECT_EQ(Split(R"('a\b "c" $d')"), (Words{R"(a\b "c" $d)"}));
  EXPECT_EQ(Split("'line\nbreak'"), (Words{"line\nbreak"}));
}

TEST(SplitArgs, DoubleQuotesEscapeOnlyShellSpecials) {
  EXPECT_EQ(Split(R"("a \"b\" c")"), (Words{R"(a "b" c)"}));
  EXPECT_EQ(Split(R"("\\ \$ \`")"), (Words{R"(\ $ `)"}));
  // Other backslashes stay, as in sh: "C:\dir" keeps it.
  EXPECT_EQ(Split(R"("C:\dir\n")"), (Words{R"(C:\dir\n)"}));
  EXPECT_EQ(Split("\"one\\\ntwo\""), (Words{"onetwo"}));
  EXPECT_EQ(Split(R"("it's")"), (Words{"it's"}));
}

TEST(SplitArgs, BackslashOutsideQuotes) {
  EXPECT_EQ(Split(R"(a\ b c)"), (Words{"a b", "c"}));
  EXPECT_EQ(Split(R"(\'x\")"), (Words{R"('x")"}));
  EXPECT_EQ(Split(R"(a\\b)"), (Words{R"(a\b)"}));
  // Backslash-newline continues the line without starting a word.
  EXPECT_EQ(Split("ls \\\n -l"), (Words{"ls", "-l"}));
  EXPECT_EQ(Split("ab\\\ncd"), (Words{"abcd"}));
}

TEST(SplitArgs, AdjacentPartsJoin) {
  EXPECT_EQ(Split(R"(a'b'"c")"), (Words{"abc"}));
  EXPECT_EQ(Split(R"(--name="my vm"x)"), (Words{"--name=my vmx"}));
}

TEST(SplitArgs, EmptyQuotesMakeEmptyWords) {
  EXPECT_EQ(Split("''"), (Words{""}));
  EXPECT_EQ(Split(R"(a "" b '')"), (Words{"a", "", "b", ""}));
}

TEST(SplitArgs, NoExpansions) {
  EXPECT_EQ(Split("echo $HOME ~ * # x;y|z"),
            (Words{"echo", "$HOME", "~", "*", "#", "x;y|z"}));
}

TEST(SplitArgs, UnterminatedSingleQuote) {
  auto r = SplitArgs("new --name 'foo");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
  EXPECT_EQ(r.error().message, "unterminated ' quote in command line; close it and try again");
}

TEST(SplitArgs, UnterminatedDoubleQuote) {
  for (const char* line : {"say \"hi", R"(say "hi\")"}) {
    auto r = SplitArgs(line);
    ASSERT_FALSE(r.ok()) << line;
    EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
    EXPECT_EQ(r.error().message, "unterminated \" quote in command line; close it and try again");
  }
}

TEST(SplitArgs, TrailingBackslash) {
  auto r = SplitArgs("ls \\");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::kUsage);
  EXPECT_NE(r.error().message.find("lone \\"), std::string::npos) << r.error().message;
}

TEST(QuoteArg, PlainWordsStayUnquoted) {
  EXPECT_EQ(QuoteArg("new"), "new");
  EXPECT_EQ(QuoteArg("--memory=4G"), "--memory=4G");
  EXPECT_EQ(QuoteArg("user@host:/tmp/a_b.c,d+e%f"), "user@host:/tmp/a_b.c,d+e%f");
}

TEST(QuoteArg, SpecialWordsAreSingleQuoted) {
  EXPECT_EQ(QuoteArg(""), "''");
  EXPECT_EQ(QuoteArg("a b"), "'a b'");
  EXPECT_EQ(QuoteArg("$HOME"), "'$HOME'");
  EXPECT_EQ(QuoteArg("~"), "'~'");
  EXPECT_EQ(QuoteArg("=ls"), "'=ls'");
  EXPECT_EQ(QuoteArg("it's"), R"('it'\''s')");
}

TEST(QuoteArg, RoundTripsThroughSplitArgs) {
  std::vector<std::string> odd = {
      "",          "plain",        "two words", "it's",       "'",         "''",
      "\"",        "\\",           "a\\",       "tab\there",  "new\nline", "back\\\nslash",
      "$(rm -rf)", "`id`",         "*?[]",      "#comment",   " lead",     "trail ",
      "ünïcödé",   "semi;colon|&", "=x",        "a'b\"c\\d$e"};
  std::string all_bytes;
  for (int c = 1; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  odd.push_back(all_bytes);
  odd.push_back(std::string("nul\0byte", 8));

  for (const std::string& w : odd) {
    auto r = SplitArgs(QuoteArg(w));
    ASSERT_TRUE(r.ok()) << QuoteArg(w) << ": " << r.error().message;
    EXPECT_EQ(r.value(), Words{w}) << "quoted as " << QuoteArg(w);
  }

  // A whole command line of quoted words splits back into the same words.
  std::string line;
  for (const std::string& w : odd) line += QuoteArg(w) + " ";
  auto r = SplitArgs(line);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value(), odd);
}

}  // namespace
}  // namespace control
