// Service::ExecApi: the HTTPS /exec API. A bearer token stands for its
// account; the body is one lobby command line, run as in the lobby with
// --json implied, so the API and the lobby can never disagree on what a
// command means.
#include <pqxx/transaction>

#include "control/api_token.h"
#include "control/argsplit.h"
#include "control/edge.h"
#include "control/service.h"
#include "db/api_tokens.h"
#include "db/audit.h"

namespace control {

namespace {

std::string JsonText(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

ApiReply Fail(int status, const std::string& message) { return {status, JsonText({{"error", message}})}; }

int StatusOf(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage:
    case ErrorKind::kInvalid: return 400;
    case ErrorKind::kNotFound: return 404;
    case ErrorKind::kConflict: return 409;
    case ErrorKind::kDenied: return 403;
    case ErrorKind::kInternal: return 500;
  }
  return 500;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "'" : ", '") + s + "'";
  return out;
}

}  // namespace

ApiReply Service::ExecApi(const std::string& authorization_header, const std::string& body,
                          const std::string& source_addr) {
  auto bearer = BearerToken(authorization_header);
  if (!bearer) return Fail(401, bearer.error().message);
  if (body.size() > config_.api_max_body_bytes) {
    return Fail(413, fmt::format("the request body is {} bytes; the limit is {} (one command line)", body.size(),
                                 config_.api_max_body_bytes));
  }
  auto found = Guarded("api auth", [&]() -> Result<std::optional<db::ApiToken>> {
    auto conn = pool_.Acquire();
    pqxx::read_transaction tx(*conn);
    return db::FindApiTokenByHash(tx, ApiTokenHash(*bearer));
  });
  if (!found) return Fail(500, found.error().message);
  if (!found->has_value()) {
    return Fail(401, "unknown or revoked API token; make one over SSH with 'ssh-key generate-api-key'");
  }
  const db::ApiToken& token = **found;
  if (token.expired) {
    return Fail(401, fmt::format("API token {} ({}) expired at {}; make a new one over SSH with "
                                 "'ssh-key generate-api-key'",
                                 token.id, token.label, token.expires_at));
  }
  // After authentication, so strangers cannot spend a token's allowance; the
  // refusal touches no database, so a flood costs one lookup per request.
  std::chrono::milliseconds retry{0};
  if (!api_limiter_.Allow(token.id, &retry)) {
    spdlog::warn("limit=api_rate account={} token_id={} source={}", token.account_name, token.id, source_addr);
    return Fail(429, fmt::format("rate limit: at most {} requests per second per token (bursts of {}); retry in "
                                 "{} ms",
                                 api_limiter_.per_second(), api_limiter_.burst(), retry.count()));
  }

  std::string command;  // the spec's name, once known
  auto run = [&]() -> ApiReply {
    auto words = SplitArgs(body);
    if (!words) return Fail(400, words.error().message);
    auto req = ParseRequest(*words);
    if (!req) return Fail(400, req.error().message);
    req->json = true;
    command = req->name;
    if (!CommandAllowed(token.cmds, command)) {
      return Fail(403, fmt::format("this API token may not run '{}'; it may run {}", command, Join(token.cmds)));
    }
    if (std::holds_alternative<ApiKeyGenerate>(req->command)) {
      return Fail(403, "an API token cannot make API tokens; run 'ssh-key generate-api-key' over SSH");
    }
    Caller caller{token.account_id, token.account_name, fmt::format("api-key:{}", token.id), "", source_addr};
    auto no_stdin = [&]() -> Result<std::string> {
      return UsageError(fmt::format("'{}' reads standard input here, and /exec has none; give the value as an "
                                    "argument",
                                    command));
    };
    bool end_session = false;
    auto out = Run(caller, *req, no_stdin, {}, &end_session);
    if (!out) return Fail(StatusOf(out.error().kind), out.error().message);
    // Every command answers JSON under --json; should one print text, the
    // client still gets a JSON document.
    if (json::accept(*out)) return {200, *out};
    return {200, JsonText({{"output", *out}})};
  };
  ApiReply reply = run();

  auto logged = Guarded("api audit", [&]() -> Status {
    auto conn = pool_.Acquire();
    pqxx::work tx(*conn);
    db::TouchApiToken(tx, token.id);
    db::Audit(tx, {token.account_id, token.account_name, "api.exec",
                   json{{"token_id", token.id}, {"command", command}, {"status", reply.status}}.dump(), source_addr});
    tx.commit();
    return Ok{};
  });
  if (!logged) spdlog::error("op=api-audit token_id={} error={}", token.id, logged.error().message);
  spdlog::debug("api account={} token_id={} command={} status={}", token.account_name, token.id, command,
                reply.status);
  return reply;
}

}  // namespace control
