// Suggest: "did you mean ...?" for a mistyped command or flag.
//
// Pure function; safe to call from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace control {

// Returns the candidate closest to `word` by optimal string alignment
// distance (substitutions, deletions, insertions and swaps of adjacent letters,
// ignoring ASCII case) when it is at most max(1, length of word / 3);
// failing that, the one candidate that `word` is a prefix of. Ties go to the
// earlier candidate, so callers list common commands first. Returns nullopt
// when nothing is close enough to be a confident guess.
std::optional<std::string> Suggest(std::string_view word,
                                   const std::vector<std::string>& candidates);

// The optimal string alignment distance between a and b, exact bytes.
size_t EditDistance(std::string_view a, std::string_view b);

}  // namespace control
