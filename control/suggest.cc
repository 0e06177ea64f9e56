#include "control/suggest.h"

#include <algorithm>

namespace control {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

size_t EditDistance(std::string_view a, std::string_view b) {
  // Three rows suffice: a swap looks back two rows.
  std::vector<size_t> prev2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::optional<std::string> Suggest(std::string_view word,
                                   const std::vector<std::string>& candidates) {
  if (word.empty()) return std::nullopt;
  // Commands are lowercase; someone typing "LS" still means ls.
  const std::string typed = Lower(word);
  // A third of the word may be wrong; more and the guess is random.
  const size_t limit = std::max<size_t>(1, typed.size() / 3);
  const std::string* best = nullptr;
  size_t best_distance = limit + 1;
  for (const std::string& c : candidates) {
    const size_t d = EditDistance(typed, Lower(c));
    if (d < best_distance) {
      best = &c;
      best_distance = d;
    }
  }
  if (best != nullptr) return *best;

  const std::string* prefix_of = nullptr;
  for (const std::string& c : candidates) {
    if (Lower(c).rfind(typed, 0) == 0) {
      if (prefix_of != nullptr && *prefix_of != c) return std::nullopt;  // ambiguous
      prefix_of = &c;
    }
  }
  return prefix_of ? std::optional<std::string>(*prefix_of) : std::nullopt;
}

}  // namespace control
