#include "control/argsplit.h"

namespace control {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Inside double quotes a backslash only escapes the characters the shell
// would otherwise interpret there; "C:\dir" keeps its backslash.
bool EscapableInDoubleQuotes(char c) {
  return c == '"' || c == '\\' || c == '$' || c == '`' || c == '\n';
}

}  // namespace

Result<std::vector<std::string>> SplitArgs(std::string_view line) {
  std::vector<std::string> words;
  std::string word;
  // Separate from word.empty(): '' must produce a word that is empty.
  bool in_word = false;
  size_t i = 0;
  const size_t n = line.size();
  while (i < n) {
    const char c = line[i];
    if (IsBlank(c)) {
      if (in_word) {
        words.push_back(std::move(word));
        word.clear();
        in_word = false;
      }
      ++i;
    } else if (c == '\'') {
      const size_t close = line.find('\'', i + 1);
      if (close == std::string_view::npos) {
        return UsageError("unterminated ' quote in command line; close it and try again");
      }
      word.append(line.substr(i + 1, close - i - 1));
      in_word = true;
      i = close + 1;
    } else if (c == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        const char d = line[i];
        if (d == '"') {
          closed = true;
          ++i;
          break;
        }
        if (d == '\\' && i + 1 < n && EscapableInDoubleQuotes(line[i + 1])) {
          if (line[i + 1] != '\n') word.push_back(line[i + 1]);
          i += 2;
          continue;
        }
        word.push_back(d);
        ++i;
      }
      if (!closed) {
        return UsageError("unterminated \" quote in command line; close it and try again");
      }
      in_word = true;
    } else if (c == '\\') {
      if (i + 1 == n) {
        return UsageError(
            "command line ends with a lone \\; remove it, or write \\\\ for a literal backslash");
      }
      // Backslash-newline is a line continuation: it joins, it adds nothing,
      // and on its own it does not start a word.
      if (line[i + 1] != '\n') {
        word.push_back(line[i + 1]);
        in_word = true;
      }
      i += 2;
    } else {
      word.push_back(c);
      in_word = true;
      ++i;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

std::string QuoteArg(std::string_view word) {
  // Characters no shell gives a meaning to. '~', '#' and the glob characters
  // are absent, and a leading '=' is quoted (zsh expands =cmd), because the
  // display is meant to survive being pasted into a real shell too.
  auto safe = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '/' || c == ':' || c == ',' || c == '@' ||
           c == '%' || c == '+' || c == '=';
  };
  bool plain = !word.empty() && word.front() != '=';
  for (char c : word) plain = plain && safe(c);
  if (plain) return std::string(word);

  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";  // close, escaped quote, reopen: the only way in sh
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

}  // namespace control
