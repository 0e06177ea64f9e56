#include "control/budget.h"

#include <charconv>

#include "control/names.h"

namespace control {
namespace {

using int128 = __int128;

constexpr int64_t kMiBPerGiB = 1024;
constexpr int64_t kMiBPerTiB = 1024 * 1024;
constexpr int64_t kGiBPerTiB = 1024;

constexpr int64_t kMinMemoryMiB = 64;
constexpr int64_t kMaxMemoryMiB = 16 * kMiBPerTiB;
constexpr int64_t kMinDiskGiB = 1;
constexpr int64_t kMaxDiskGiB = 64 * kGiBPerTiB;

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

struct Unit {
  std::string_view name;  // lowercase
  int64_t factor;         // in the result's unit
};

constexpr Unit kMemoryUnits[] = {{"", 1},
                                 {"m", 1},
                                 {"mb", 1},
                                 {"mib", 1},
                                 {"g", kMiBPerGiB},
                                 {"gb", kMiBPerGiB},
                                 {"gib", kMiBPerGiB},
                                 {"t", kMiBPerTiB},
                                 {"tb", kMiBPerTiB},
                                 {"tib", kMiBPerTiB}};

constexpr Unit kDiskUnits[] = {{"", 1},          {"g", 1},          {"gb", 1},
                               {"gib", 1},       {"t", kGiBPerTiB}, {"tb", kGiBPerTiB},
                               {"tib", kGiBPerTiB}};

// A parsed size as an exact fraction: value = numerator / denominator.
struct Size {
  int128 numerator = 0;
  int128 denominator = 1;
  bool whole() const { return numerator % denominator == 0; }
  int128 floor() const { return numerator / denominator; }
  int128 ceil() const { return (numerator + denominator - 1) / denominator; }
};

// Parses "DIGITS[.DIGITS][ ]UNIT" exactly, without floating point, so that
// "1.1G" is recognized as not a whole number of MiB instead of rounding.
template <size_t N>
std::optional<Size> ParseSize(std::string_view text, const Unit (&units)[N]) {
  text = TrimSpaces(text);
  size_t i = 0;
  Size size;
  size_t int_digits = 0, frac_digits = 0;
  // Digits past these limits are read but not counted, which keeps
  // numerator * factor far inside 128 bits: more integer digits only mean
  // "too large" (saturated below), more decimals only lose precision nobody
  // asked for.
  constexpr size_t kMaxIntDigits = 18, kMaxFracDigits = 9;
  for (; i < text.size() && IsDigit(text[i]); ++i, ++int_digits) {
    if (int_digits < kMaxIntDigits) size.numerator = size.numerator * 10 + (text[i] - '0');
  }
  if (i < text.size() && text[i] == '.') {
    for (++i; i < text.size() && IsDigit(text[i]); ++i, ++frac_digits) {
      if (frac_digits < kMaxFracDigits) {
        size.numerator = size.numerator * 10 + (text[i] - '0');
        size.denominator *= 10;
      }
    }
    if (frac_digits == 0) return std::nullopt;
  }
  if (int_digits > kMaxIntDigits) size = {static_cast<int128>(1) << 80, 1};
  if (int_digits + frac_digits == 0) return std::nullopt;
  std::string unit;
  for (char c : TrimSpaces(text.substr(i))) unit.push_back(Lower(c));
  for (const Unit& u : units) {
    if (u.name == unit) {
      size.numerator *= u.factor;
      return size;
    }
  }
  return std::nullopt;
}

std::string ToString(int128 v) {
  if (v < 0) return "-" + ToString(-v);
  std::string s;
  do {
    s.insert(s.begin(), static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  return s;
}

// Shows `value` in the largest unit that renders it exactly with at most two
// decimals; `units` runs from smallest to largest.
template <size_t N>
std::string FormatExact(int128 value, const Unit (&units)[N]) {
  if (value < 0) return "-" + FormatExact(-value, units);
  const Unit* best = &units[0];
  for (const Unit& u : units) {
    if (value >= u.factor && (value * 100) % u.factor == 0) best = &u;
  }
  const int128 hundredths = value * 100 / best->factor;
  std::string out = ToString(hundredths / 100);
  if (const int cents = static_cast<int>(hundredths % 100); cents != 0) {
    out += "." + std::to_string(cents / 10);
    if (cents % 10 != 0) out += std::to_string(cents % 10);
  }
  return out + " " + std::string(best->name);
}

constexpr Unit kMiBDisplay[] = {{"MiB", 1}, {"GiB", kMiBPerGiB}, {"TiB", kMiBPerTiB}};
constexpr Unit kGiBDisplay[] = {{"GiB", 1}, {"TiB", kGiBPerTiB}};

// How to write a size as a flag value in a suggestion: "4G", else "1536M".
std::string MemoryFlag(int64_t mib) {
  return mib % kMiBPerGiB == 0 ? std::to_string(mib / kMiBPerGiB) + "G"
                               : std::to_string(mib) + "M";
}

std::string Cpus(int64_t n) { return std::to_string(n) + (n == 1 ? " CPU" : " CPUs"); }

// The cpus and memory half of the rule: a VM may use up to the whole budget.
std::optional<std::string> CheckWholeBudget(const Resources& budget, const Resources& vm) {
  if (vm.cpus > budget.cpus) {
    if (budget.cpus <= 0) return "the account's budget has no CPUs; ask for a bigger budget";
    return "this VM asks for " + Cpus(vm.cpus) + " but the account's whole budget is " +
           Cpus(budget.cpus) + "; use --cpus " + std::to_string(budget.cpus) + " or less";
  }
  if (vm.memory_mib > budget.memory_mib) {
    if (budget.memory_mib <= 0) {
      return "the account's budget has no memory; ask for a bigger budget";
    }
    return "this VM asks for " + FormatMiB(vm.memory_mib) +
           " of memory but the account's whole budget is " + FormatMiB(budget.memory_mib) +
           "; use --memory " + MemoryFlag(budget.memory_mib) + " or less";
  }
  return std::nullopt;
}

std::optional<std::string> CheckDiskAlone(const Resources& budget, int64_t disk_gib) {
  if (disk_gib <= budget.disk_gib) return std::nullopt;
  if (budget.disk_gib <= 0) return "the account's budget has no disk; ask for a bigger budget";
  return "this VM asks for " + FormatGiB(disk_gib) +
         " of disk but the account's whole budget is " + FormatGiB(budget.disk_gib) +
         "; use --disk " + std::to_string(budget.disk_gib) + "G or less";
}

std::string Provisioned(const Resources& budget, const Resources& usage) {
  return FormatGiB(usage.disk_gib) + " of " + FormatGiB(budget.disk_gib) +
         (usage.disk_gib == 1 ? " is" : " are") + " provisioned";
}

}  // namespace

Result<int64_t> ParseMemoryMiB(std::string_view text) {
  const std::string shown = ForMessage(text);
  auto size = ParseSize(text, kMemoryUnits);
  if (!size) {
    return InvalidError("memory size " + shown +
                        " is not understood; use a number of MiB or a size like 512M, 4G or "
                        "1.5G");
  }
  if (size->floor() < kMinMemoryMiB) {
    return InvalidError("memory size " + shown +
                        " is below the minimum of 64 MiB; use 64M or more");
  }
  if (size->ceil() > kMaxMemoryMiB) {
    return InvalidError("memory size " + shown +
                        " is above the maximum of 16 TiB; use 16T or less");
  }
  if (!size->whole()) {
    return InvalidError("memory size " + shown + " is not a whole number of MiB; use " +
                        ToString(size->floor()) + "M or " + ToString(size->ceil()) + "M");
  }
  return static_cast<int64_t>(size->floor());
}

Result<int64_t> ParseDiskGiB(std::string_view text) {
  const std::string shown = ForMessage(text);
  auto size = ParseSize(text, kDiskUnits);
  if (!size) {
    return InvalidError("disk size " + shown +
                        " is not understood; use a number of GiB or a size like 10G or 1T");
  }
  if (size->ceil() < kMinDiskGiB) {
    return InvalidError("disk size " + shown + " is below the minimum of 1 GiB; use 1G or more");
  }
  if (size->ceil() > kMaxDiskGiB) {
    return InvalidError("disk size " + shown +
                        " is above the maximum of 64 TiB; use 64T or less");
  }
  if (!size->whole()) {
    const std::string ceil = ToString(size->ceil()) + "G";
    return InvalidError("disk size " + shown + " is not a whole number of GiB; use " +
                        (size->floor() >= kMinDiskGiB ? ToString(size->floor()) + "G or " : "") +
                        ceil);
  }
  return static_cast<int64_t>(size->floor());
}

Result<int64_t> ParseCpus(std::string_view text) { return ParseCount(text, 1, 1024, "CPU count"); }

Result<int64_t> ParseCount(std::string_view text, int64_t min, int64_t max,
                           std::string_view what) {
  const std::string_view digits = TrimSpaces(text);
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  // from_chars accepts a leading '-'; a count never has one.
  const bool ok = !digits.empty() && IsDigit(digits.front()) && ec == std::errc() &&
                  end == digits.data() + digits.size() && value >= min && value <= max;
  if (!ok) {
    return InvalidError(std::string(what) + " " + ForMessage(text) +
                        " must be a whole number from " + std::to_string(min) + " to " +
                        std::to_string(max));
  }
  return value;
}

std::string FormatMiB(int64_t mib) { return FormatExact(mib, kMiBDisplay); }

std::string FormatGiB(int64_t gib) { return FormatExact(gib, kGiBDisplay); }

std::optional<std::string> CheckNewVm(const Resources& budget, const Resources& usage,
                                      const Resources& vm) {
  // The VM count first: when it is full, no size will do.
  if (budget.vms <= 0) return "the account's budget allows no VMs; ask for a bigger budget";
  if (usage.vms >= budget.vms) {
    return "VM limit reached: " + std::to_string(usage.vms) + " of " +
           std::to_string(budget.vms) + (budget.vms == 1 ? " VM exists" : " VMs exist") +
           "; remove one with 'rm' first";
  }
  if (auto err = CheckWholeBudget(budget, vm)) return err;
  if (auto err = CheckDiskAlone(budget, vm.disk_gib)) return err;
  const int64_t excess = usage.disk_gib + vm.disk_gib - budget.disk_gib;
  if (excess > 0) {
    return "disk budget exceeded by " + FormatGiB(excess) + ": " + Provisioned(budget, usage) +
           " and this VM needs " + FormatGiB(vm.disk_gib) +
           "; remove a VM, shrink --disk, or ask for a bigger budget";
  }
  return std::nullopt;
}

std::optional<std::string> CheckResize(const Resources& budget, const Resources& usage,
                                       const Resources& before, const Resources& after) {
  if (after.disk_gib < before.disk_gib) {
    return "a disk cannot shrink: this VM has " + FormatGiB(before.disk_gib) + " and " +
           FormatGiB(after.disk_gib) + " was asked for; use --disk " +
           std::to_string(before.disk_gib) + "G or more";
  }
  // Only increases are judged (see the header), so compare each value that
  // grows against the whole budget and leave the others as they were.
  Resources grown;
  grown.cpus = after.cpus > before.cpus ? after.cpus : 0;
  grown.memory_mib = after.memory_mib > before.memory_mib ? after.memory_mib : 0;
  if (auto err = CheckWholeBudget(budget, grown)) return err;
  const int64_t growth = after.disk_gib - before.disk_gib;
  if (growth == 0) return std::nullopt;
  if (auto err = CheckDiskAlone(budget, after.disk_gib)) return err;
  const int64_t excess = usage.disk_gib + growth - budget.disk_gib;
  if (excess > 0) {
    return "disk budget exceeded by " + FormatGiB(excess) + ": " + Provisioned(budget, usage) +
           " and growing this disk needs " + FormatGiB(growth) +
           " more; remove a VM, grow it less, or ask for a bigger budget";
  }
  return std::nullopt;
}

}  // namespace control
