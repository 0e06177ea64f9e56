// The ACME CertStore: certificates kept under STATE_DIR/acme/certs and served
// by name, an order queued by the first handshake for a name without one (the
// fallback store serves meanwhile), one worker thread running the orders with
// AcmeClient, failed orders retried after a backoff, and the hourly sweep for
// certificates due for renewal. OpenAcme, declared in acme.h, opens it.
#include "httpfront/acme.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "control/names.h"
#include "httpfront/acme_internal.h"

namespace httpfront {
namespace {

using namespace acme_internal;
using control::ForMessage;
using control::InternalError;
using control::InvalidError;

constexpr size_t kMaxQueued = 64;
constexpr size_t kMaxFailuresKept = 4096;
constexpr auto kFirstBackoff = std::chrono::seconds(60);
constexpr auto kMaxBackoff = std::chrono::seconds(6 * 3600);
constexpr auto kSweepEvery = std::chrono::hours(1);

control::Status MakeDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || ::chmod(dir.c_str(), 0700) != 0) {
    return InternalError(fmt::format("cannot make the ACME directory {}: {}", dir, ec ? ec.message() : std::strerror(errno)));
  }
  return control::Ok{};
}

std::string DateOf(Clock::time_point t) { return FormatUtc(t, "%Y-%m-%d %H:%M"); }

class AcmeStoreImpl final : public AcmeStore {
 public:
  explicit AcmeStoreImpl(AcmeOptions options) : options_(std::move(options)) {
    if (!options_.now) options_.now = [] { return Clock::now(); };
  }

  ~AcmeStoreImpl() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    if (client_) client_->Cancel();
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  control::Status Open() {
    if (!IsDnsName(options_.domain)) return InvalidError(fmt::format("domain {} is not a DNS name", ForMessage(options_.domain)));
    if (!options_.fallback) return InvalidError("ACME needs a fallback certificate store");
    // The settings are checked before anything is written.
    if (options_.directory_url.empty()) {
      return InvalidError("acme_directory is not set: give the ACME server's directory URL, like "
                          "https://acme-v02.api.letsencrypt.org/directory");
    }
    if (auto u = ParseUrl(options_.directory_url); !u.ok()) return InvalidError("acme_directory: " + u.error().message);
    if (auto st = MakeDir(options_.dir); !st.ok()) return st;
    if (auto st = MakeDir(CertsDir()); !st.ok()) return st;
    const std::string key_path = options_.dir + "/account.key";
    std::error_code ec;
    if (!std::filesystem::exists(key_path, ec)) {
      KeyPtr key = NewP256Key();
      if (auto st = WriteFileAtomic(key_path, ToPem(key.get()), 0600); !st.ok()) return st;
      spdlog::info("acme: account key made path={}", key_path);
    }
    auto key_pem = ReadPemFile(key_path, "ACME account key");
    if (!key_pem.ok()) return key_pem.error();
    if (KeyPtr key = ParsePrivateKey(*key_pem); !key || !IsP256(key.get())) {
      return InternalError(fmt::format(
          "{} is damaged or not an ECDSA P-256 key; move it away to register a new ACME account", key_path));
    }
    auto client = AcmeClient::Make(options_.directory_url, options_.ca_bundle, options_.email, *key_pem, challenges_);
    if (!client.ok()) return client.error();
    client_ = std::move(*client);
    auto loaded = LoadAll();
    if (!loaded.ok()) return loaded.error();
    certs_ = std::move(*loaded);
    spdlog::info("acme: ready directory={} certificates={}", options_.directory_url, certs_.size());
    return control::Ok{};
  }

  void Start() {
    if (options_.start_worker) worker_ = std::thread([this] { Work(); });
  }

  control::Result<std::shared_ptr<ssl::context>> ContextFor(const std::string& host) override {
    std::string name = host.empty() ? options_.domain : Lowercase(host);
    if (!Serves(name)) {
      return control::NotFoundError(
          fmt::format("{} is neither {} nor one name under it", ForMessage(name), options_.domain));
    }
    Clock::time_point now = options_.now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = certs_.find(name);
      if (it != certs_.end() && now < it->second.not_after) {
        if (acme::NeedsRenewal(it->second.not_before, it->second.not_after, now)) QueueLocked(name, now);
        return it->second.ctx;
      }
      QueueLocked(name, now);
    }
    return options_.fallback->ContextFor(host);
  }

  std::string CaPem() const override { return ""; }

  control::Status Reload() override {
    auto loaded = LoadAll();
    if (!loaded.ok()) {
      spdlog::warn("acme: reload failed, keeping the certificates in memory: {}", loaded.error().message);
      return loaded.error();
    }
    std::lock_guard<std::mutex> lock(mu_);
    certs_ = std::move(*loaded);
    spdlog::info("acme: certificates reloaded count={}", certs_.size());
    return control::Ok{};
  }

  std::optional<std::string> ChallengeResponse(const std::string& token) const override {
    return challenges_.Get(token);
  }

  void Request(const std::string& name) override {
    std::string n = Lowercase(name);
    if (!Serves(n)) return;
    std::lock_guard<std::mutex> lock(mu_);
    QueueLocked(n, options_.now());
  }

 private:
  struct Failure {
    Clock::time_point retry_at;
    std::chrono::seconds backoff;
  };

  std::string CertsDir() const { return options_.dir + "/certs"; }

  bool Serves(const std::string& name) const {
    const std::string& d = options_.domain;
    if (name == d) return true;
    if (name.size() <= d.size() + 1) return false;
    size_t dot = name.size() - d.size() - 1;
    return name[dot] == '.' && name.compare(dot + 1, std::string::npos, d) == 0 &&
           IsDnsLabel(std::string_view(name).substr(0, dot));
  }

  // Every NAME.pem with its NAME.key in certs/; a pair that does not load is
  // logged and skipped (the name is then ordered anew).
  control::Result<std::unordered_map<std::string, Served>> LoadAll() const {
    std::unordered_map<std::string, Served> out;
    std::error_code ec;
    std::filesystem::directory_iterator it(CertsDir(), ec);
    if (ec) return InternalError(fmt::format("cannot read {}: {}", CertsDir(), ec.message()));
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
      if (ec) return InternalError(fmt::format("cannot read {}: {}", CertsDir(), ec.message()));
      const auto& path = it->path();
      if (path.extension() != ".pem") continue;
      std::string name = path.stem().string();
      if (!Serves(name)) continue;
      auto chain = ReadPemFile(path.string(), "ACME certificate");
      auto key = ReadPemFile(CertsDir() + "/" + name + ".key", "ACME certificate key");
      if (!chain.ok() || !key.ok()) {
        spdlog::warn("acme: skipping a stored certificate: {}", (!chain.ok() ? chain : key).error().message);
        continue;
      }
      auto served = ServedFrom(*chain, *key, name);
      if (!served.ok()) {
        spdlog::warn("acme: skipping the stored certificate of {}: {}", name, served.error().message);
        continue;
      }
      out[name] = std::move(*served);
    }
    return out;
  }

  // REQUIRES: mu_ held.
  void QueueLocked(const std::string& name, Clock::time_point now) {
    if (!options_.start_worker || queued_.count(name) != 0) return;
    if (auto f = failures_.find(name); f != failures_.end() && now < f->second.retry_at) return;
    if (queue_.size() >= kMaxQueued) return;
    queue_.push_back(name);
    queued_.insert(name);
    cv_.notify_one();
  }

  // REQUIRES: mu_ held.
  void FailedLocked(const std::string& name, Clock::time_point now, std::chrono::seconds backoff) {
    if (failures_.size() >= kMaxFailuresKept) {
      std::erase_if(failures_, [&](const auto& kv) { return kv.second.retry_at <= now; });
      if (failures_.size() >= kMaxFailuresKept) failures_.clear();
    }
    failures_[name] = Failure{now + backoff, backoff};
  }

  void Work() {
    if (auto st = client_->Connect(); !st.ok()) {
      spdlog::error("acme: {} (orders will retry)", st.error().message);
    }
    auto next_sweep = std::chrono::steady_clock::now() + kSweepEvery;
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      cv_.wait_until(lock, next_sweep, [&] { return stop_ || !queue_.empty(); });
      if (stop_) break;
      if (std::chrono::steady_clock::now() >= next_sweep) {
        next_sweep = std::chrono::steady_clock::now() + kSweepEvery;
        Clock::time_point now = options_.now();
        for (const auto& [n, s] : certs_) {
          if (acme::NeedsRenewal(s.not_before, s.not_after, now)) QueueLocked(n, now);
        }
      }
      if (queue_.empty()) continue;
      std::string name = queue_.front();
      queue_.pop_front();
      lock.unlock();
      IssueOne(name);
      lock.lock();
      queued_.erase(name);
    }
  }

  // Runs unlocked on the worker thread.
  void IssueOne(const std::string& name) {
    if (options_.may_issue && !options_.may_issue(name)) {
      spdlog::debug("acme: no order for {}: not a name exed serves (no such VM)", name);
      std::lock_guard<std::mutex> lock(mu_);
      FailedLocked(name, options_.now(), kFirstBackoff);
      return;
    }
    spdlog::info("acme: ordering a certificate name={}", name);
    auto started = std::chrono::steady_clock::now();
    auto issued = client_->Issue(name);
    control::Result<Served> served = issued.ok() ? ServedFrom(issued->chain_pem, issued->key_pem, name)
                                                  : control::Result<Served>(issued.error());
    if (served.ok()) {
      // The key first: a NAME.pem on disk always has its NAME.key.
      const std::string base = CertsDir() + "/" + name;
      auto st = WriteFileAtomic(base + ".key", issued->key_pem, 0600);
      if (st.ok()) st = WriteFileAtomic(base + ".pem", issued->chain_pem, 0644);
      if (!st.ok()) spdlog::error("acme: cannot store the certificate of {} (serving it anyway): {}", name, st.error().message);
    }
    std::lock_guard<std::mutex> lock(mu_);
    Clock::time_point now = options_.now();
    if (!served.ok()) {
      auto f = failures_.find(name);
      auto backoff = f == failures_.end() ? std::chrono::seconds(kFirstBackoff)
                                          : std::min<std::chrono::seconds>(f->second.backoff * 2, kMaxBackoff);
      spdlog::warn("acme: order failed name={} retry_in={}s error=\"{}\"", name, backoff.count(),
                   served.error().message);
      FailedLocked(name, now, backoff);
      return;
    }
    failures_.erase(name);
    spdlog::info("acme: certificate issued name={} not_after=\"{}\" seconds={:.1f}", name,
                 DateOf(served->not_after),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    certs_[name] = std::move(*served);
  }

  AcmeOptions options_;
  AcmeChallenges challenges_;
  std::unique_ptr<AcmeClient> client_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                                    // GUARDED_BY(mu_)
  std::unordered_map<std::string, Served> certs_;        // GUARDED_BY(mu_)
  std::deque<std::string> queue_;                        // GUARDED_BY(mu_)
  std::set<std::string> queued_;                         // GUARDED_BY(mu_): queued or being ordered
  std::unordered_map<std::string, Failure> failures_;    // GUARDED_BY(mu_)
  std::thread worker_;
};

}  // namespace

control::Result<std::unique_ptr<AcmeStore>> OpenAcme(AcmeOptions options) {
  options.domain = Lowercase(options.domain);
  auto store = std::make_unique<AcmeStoreImpl>(std::move(options));
  if (auto st = store->Open(); !st.ok()) return st.error();
  store->Start();
  return std::unique_ptr<AcmeStore>(std::move(store));
}

}  // namespace httpfront
