#include "vmm/accel.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include <algorithm>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <sstream>

namespace vmm {
namespace {

Accel Kvm(std::string why) {
  return {"kvm", {"-accel", "kvm", "-cpu", "host"}, {}, std::move(why)};
}

// thread=multi: one host thread per vCPU instead of one for all of them.
// tb-size=64: a 64 MiB translation cache; QEMU's default sizes it from guest
// memory and a 512 MiB guest then costs ~900 MB of host RSS.
// -cpu max: every feature TCG can emulate, so guest software sees a modern CPU.
Accel Tcg(std::string why, uint64_t tsc_khz) {
  Accel a{"tcg", {"-accel", "tcg,thread=multi,tb-size=64", "-cpu", "max"}, {}, std::move(why)};
  if (tsc_khz > 0) a.kernel_args.push_back("tsc_early_khz=" + std::to_string(tsc_khz));
  return a;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// True if a "flags" line of `cpuinfo` has one of `wanted` as a whole word
// ("svm" must not match inside "svm_lock").
bool HasFlag(std::string_view cpuinfo, std::initializer_list<std::string_view> wanted) {
  while (!cpuinfo.empty()) {
    size_t eol = cpuinfo.find('\n');
    std::string_view line = cpuinfo.substr(0, eol);
    cpuinfo = eol == std::string_view::npos ? std::string_view() : cpuinfo.substr(eol + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || Trim(line.substr(0, colon)) != "flags") continue;
    std::string_view flags = line.substr(colon + 1);
    while (!flags.empty()) {
      flags = Trim(flags);
      size_t sp = flags.find_first_of(" \t");
      std::string_view word = flags.substr(0, sp);
      for (std::string_view w : wanted) {
        if (word == w) return true;
      }
      if (sp == std::string_view::npos) break;
      flags.remove_prefix(sp);
    }
  }
  return false;
}

}  // namespace

bool CpuHasVirtualization(std::string_view cpuinfo) { return HasFlag(cpuinfo, {"vmx", "svm"}); }

uint64_t MeasureTscKhz(std::string_view cpuinfo) {
#if defined(__x86_64__) || defined(__i386__)
  // Without an invariant TSC the rate changes with CPU frequency: no single
  // number would be right.
  if (!HasFlag(cpuinfo, {"constant_tsc"})) return 0;
  // A TSC reading paired with the clock: the clock read sits between two
  // TSC reads and gets their midpoint. A pair whose TSC reads lie far apart
  // (the thread was preempted, or the clock read trapped) is taken again.
  auto sample = [](uint64_t* ns, uint64_t* tsc) {
    uint64_t best = ~0ull;
    for (int attempt = 0; attempt < 100 && best > 20000; ++attempt) {
      timespec ts;
      uint64_t a = __rdtsc();
      clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
      uint64_t b = __rdtsc();
      if (b - a < best) {
        best = b - a;
        *ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
        *tsc = a + (b - a) / 2;
      }
    }
  };
  // Three 50 ms intervals, the median. No rounding: microvm has no HPET or
  // PM timer, so the guest never refines this value and its clock runs at
  // exactly the rate we give (an error of 100 ppm is 9 s a day, which NTP
  // in the guest absorbs).
  uint64_t khz[3];
  for (uint64_t& k : khz) {
    uint64_t t0 = 0, c0 = 0, t1 = 0, c1 = 0;
    sample(&t0, &c0);
    timespec fifty_ms{0, 50000000};
    nanosleep(&fifty_ms, nullptr);
    sample(&t1, &c1);
    k = t1 > t0 ? (c1 - c0) * 1000000ull / (t1 - t0) : 0;
  }
  std::sort(std::begin(khz), std::end(khz));
  return khz[1];
#else
  (void)cpuinfo;
  return 0;
#endif
}

std::optional<std::string> CheckAccelOverride(std::string_view value) {
  if (value.empty() || value == "auto" || value == "kvm" || value == "tcg") return std::nullopt;
  return "accel '" + std::string(value) + "' is not known; use auto, kvm or tcg";
}

Accel ChooseAccel(std::string_view cpuinfo, bool kvm_opens, std::string_view override,
                  uint64_t host_tsc_khz) {
  if (override == "kvm") return Kvm("kvm chosen by configuration (accel = kvm)");
  if (override == "tcg") return Tcg("tcg chosen by configuration (accel = tcg)", host_tsc_khz);
  std::string ignored;
  if (!override.empty() && override != "auto") {
    ignored = " (accel '" + std::string(override) + "' is not known and was ignored)";
  }
  bool flags = CpuHasVirtualization(cpuinfo);
  if (flags && kvm_opens) return Kvm("kvm: the CPU has vmx/svm and /dev/kvm opens" + ignored);
  if (!flags && kvm_opens) {
    return Tcg("tcg: /dev/kvm opens but the CPU shows no vmx/svm flag, so it is a paravirtual "
               "KVM that cannot boot ordinary guests" + ignored,
               host_tsc_khz);
  }
  if (flags) return Tcg("tcg: the CPU has vmx/svm but /dev/kvm does not open" + ignored, host_tsc_khz);
  return Tcg("tcg: no hardware virtualization (no vmx/svm flag, no usable /dev/kvm)" + ignored,
             host_tsc_khz);
}

bool KvmOpens(const std::string& kvm_path) {
  int fd = ::open(kvm_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  // A file that merely opens (a stand-in, /dev/null) is not KVM; the API
  // version has been 12 since Linux 2.6.22.
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  ::close(fd);
  return version == KVM_API_VERSION;
}

Accel DetectAccel(std::string_view override, const std::string& cpuinfo_path,
                  const std::string& kvm_path) {
  std::ifstream in(cpuinfo_path);
  std::stringstream text;
  text << in.rdbuf();
  std::string cpuinfo = text.str();
  bool kvm = KvmOpens(kvm_path);
  Accel a = ChooseAccel(cpuinfo, kvm, override);
  if (a.name == "tcg") a = ChooseAccel(cpuinfo, kvm, override, MeasureTscKhz(cpuinfo));
  return a;
}

}  // namespace vmm
