// SplitArgs and QuoteArg: the lobby's command-line word splitting.
//
// One-shot commands arrive as a single string (ssh host 'new --name foo'), and
// the interactive lobby reads whole lines, so both need the shell's quoting
// rules to get from a line to argv. Only quoting is done: no variables, globs,
// comments, pipes or redirections, because nothing here runs a shell and a
// character that silently vanished would surprise more than one kept literally.
//
// Pure functions; safe to call from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "control/result.h"

namespace control {

// Splits `line` into words as a POSIX shell would, quoting only:
//  - runs of blanks (space, tab, newline, carriage return) separate words;
//  - '...' is literal up to the next ';
//  - "..." is literal except \" \\ \$ \` and backslash-newline;
//  - outside quotes, \c stands for c, and backslash-newline is removed;
//  - quoted and unquoted parts that touch form one word, and '' is an
//    empty word.
// Fails with kUsage on an unterminated quote or a trailing backslash.
Result<std::vector<std::string>> SplitArgs(std::string_view line);

// Returns `word` as it should be shown in a command line: unchanged when it is
// made only of characters no shell treats specially, else single-quoted.
// SplitArgs(QuoteArg(w)) yields exactly {w}, for any bytes in w, and so does a
// POSIX shell, so a displayed command can be pasted back.
std::string QuoteArg(std::string_view word);

}  // namespace control
