#include "providers/runpod/runpod_client.hpp"

#include <algorithm>

#include "core/retry.hpp"
#include "providers/runpod/runpod_api.hpp"

namespace autopod::providers::runpod {

using core::ErrorCode;
using core::fail;
using std::chrono::milliseconds;

namespace {

long long whole_seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

}  // namespace

RunpodClient::RunpodClient(RunpodOptions options, std::unique_ptr<core::HttpTransport> transport,
                           core::Clock& clock)
    : m_options(std::move(options)),
      m_transport(std::move(transport)),
      m_clock(clock),
      m_started(clock.now()),
      m_log(core::logger("runpod")),
      m_rng(std::random_device{}()) {}

std::optional<core::Clock::time_point> RunpodClient::budget_end(milliseconds budget) const {
  auto end = m_clock.now() + budget;
  return m_deadline ? std::min(*m_deadline, end) : end;
}

Result<core::HttpResponse> RunpodClient::send_once(const std::string& method,
                                                   const std::string& path,
                                                   const std::string& body, bool fresh) {
  std::string what = method + " " + path.substr(0, path.find('?'));
  if (m_options.api_key.empty())
    return fail(ErrorCode::auth, "no runpod api key",
                "export RUNPOD_API_KEY=... (console: Settings > API Keys) "
                "or set runpod.api_key in config.yaml");
  core::HttpRequest req;
  req.method = method;
  req.url = m_options.api_url + path;
  req.headers = {{"Authorization", "Bearer " + m_options.api_key}, {"Accept", "application/json"}};
  if (!body.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = body;
  }
  req.fresh_connection = fresh;
  if (m_deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(*m_deadline - m_clock.now());
    if (left <= milliseconds(0))
      return fail(ErrorCode::timeout, "runpod: no time left for " + what,
                  "raise --timeout");
    req.timeout = std::min(req.timeout, left);
  }
  auto r = m_transport->send(req);
  if (!r) {
    auto e = std::move(r).error();
    e.message = "runpod: " + e.message;
    e.hint = "check your network, or RUNPOD_API_URL (now " + core::redact_url(req.url) + ")";
    return fail(e);
  }
  if (r->status >= 200 && r->status < 300) return r;
  return fail(error_from_response(*r, what));
}

Status RunpodClient::wait_before_retry(int attempt, const core::Error& e,
                                       std::optional<core::Clock::time_point> end) {
  if (e.retry_after_secs * 1000L > m_options.retry.max_retry_after.count()) return fail(e);
  auto delay = core::backoff_delay(m_options.retry, attempt, e, m_rng);
  if (end && m_clock.now() + delay > *end) {
    auto waited = whole_seconds(m_clock.now() - m_started);
    return fail(ErrorCode::timeout,
                "runpod still failing when time ran out (after " + std::to_string(waited) +
                    "s, " + std::to_string(attempt) + " attempts): " + e.message,
                "runpod is unreliable right now: try again later, or raise --timeout");
  }
  m_log->warn("retry {} in {} ms: {}", attempt + 1, delay.count(), e.message);
  m_clock.sleep_for(delay);
  return {};
}

Result<core::HttpResponse> RunpodClient::retried(
    const std::function<Result<core::HttpResponse>()>& send) {
  for (int attempt = 1;; ++attempt) {
    auto r = send();
    if (r || !r.error().retryable() || attempt >= m_options.retry.max_attempts) return r;
    TRY(wait_before_retry(attempt, r.error(), m_deadline));
  }
}

Result<nlohmann::json> RunpodClient::call(const std::string& method, const std::string& path,
                                          const std::string& body) {
  TRY_ASSIGN(auto response, retried([&] { return send_once(method, path, body, false); }));
  if (response.body.empty()) return nlohmann::json(nullptr);
  try {
    return nlohmann::json::parse(response.body);
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::protocol,
                "runpod sent an answer to " + method + " " + path.substr(0, path.find('?')) +
                    " that autopod cannot read: " + e.what(),
                "try again; if it persists, check RUNPOD_API_URL or report it");
  }
}

}  // namespace autopod::providers::runpod
