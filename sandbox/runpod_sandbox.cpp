// The RunPod sandbox (see runpod_sandbox.hpp): set-up, fault injection and the test API.

#include "sandbox/runpod_sandbox_impl.hpp"

namespace autopod::sandbox {

using namespace runpod_detail;  // NOLINT: the sandbox's own helpers

bool RunpodSandbox::Impl::has_capacity(const std::string& gpu, const std::string& dc) const {
  return !(no_capacity.count({gpu, dc}) || no_capacity.count({"*", dc}) ||
           no_capacity.count({gpu, "*"}) || no_capacity.count({"*", "*"}));
}

json RunpodSandbox::Impl::snapshot_locked() {
  json out = {{"pods", json::array()}, {"volumes", json::array()}, {"requests", requests}};
  for (auto& [id, pod] : pods)
    out["pods"].push_back(pod_json(pod));
  for (const auto& [id, v] : volumes)
    out["volumes"].push_back(v);
  return out;
}

HttpReply RunpodSandbox::Impl::with_rate_headers(HttpReply r) {
  r.headers["RateLimit"] = "\"minute\";r=59;t=60, \"hour\";r=2999;t=3600, \"day\";r=49999;t=86400";
  r.headers["RateLimit-Policy"] =
      "\"minute\";q=60;w=60, \"hour\";q=3000;w=3600, \"day\";q=50000;w=86400";
  return r;
}

// The fault that applies to this request, if any; counts it down.
std::optional<Fault> RunpodSandbox::Impl::take_fault(const HttpExchange& ex) {
  for (auto it = faults.begin(); it != faults.end(); ++it) {
    const Fault& f = it->fault;
    if ((!f.method.empty() && f.method != ex.method) || ex.path.rfind(f.path, 0) != 0)
      continue;
    if (f.kind == "every_other" && it->seen++ % 2 == 1)
      return std::nullopt;
    Fault applied = f;
    if (--it->fault.count <= 0)
      faults.erase(it);
    return applied;
  }
  return std::nullopt;
}

HttpReply RunpodSandbox::Impl::fault_reply(const Fault& fault) {
  if (fault.status == 502 || fault.status == 504) {
    HttpReply r;
    r.status = fault.status;
    r.headers["Content-Type"] = "text/html";
    std::string what = fault.status == 502 ? "502 Bad Gateway" : "504 Gateway Time-out";
    r.body = "<html>\r\n<head><title>" + what + "</title></head>\r\n<body>\r\n<center><h1>" + what +
             "</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";
    return r;
  }
  auto title = fault.status == 429   ? "Too Many Requests"
               : fault.status >= 500 ? "Internal Server Error"
               : fault.status == 422 ? "Unprocessable Entity"
                                     : "Error";
  std::vector<std::string> errors;
  if (fault.status == 422)
    errors = {"injected: property not accepted (not allowed)"};
  auto r = problem(
      fault.status, title,
      fault.status == 429 ? "rate limit exceeded for the minute window" : "injected failure",
      errors);
  if (fault.status == 429)
    r.headers["Retry-After"] = std::to_string(fault.retry_after_secs);
  return with_rate_headers(r);
}

HttpReply RunpodSandbox::Impl::handle(const HttpExchange& ex) {
  std::lock_guard lock(mutex);
  json body;
  if (!ex.body.empty()) {
    try {
      body = json::parse(ex.body);
    } catch (const json::exception&) {
      return problem(400, "Bad Request", "request body is not valid JSON");
    }
  }
  if (ex.path.rfind("/_sandbox/", 0) == 0)
    return control(ex, body);
  requests.push_back({{"method", ex.method}, {"path", ex.target}});
  if (auto denied = check_auth(ex))
    return *denied;

  std::optional<Fault> fault = take_fault(ex);
  if (fault) {
    if (fault->kind == "drop") {
      HttpReply r;
      r.drop = true;
      return r;
    }
    if (fault->kind == "status" || fault->kind == "every_other")
      return fault_reply(*fault);
    if (fault->kind == "malformed") {
      HttpReply r;
      r.headers["Content-Type"] = "application/json";
      r.body = "{\"pods\": [{\"id\": \"trunc";
      return r;
    }
  }
  HttpReply reply = with_rate_headers(route(ex, body));
  if (fault && fault->kind == "lost_answer")
    reply.drop = true;  // done, but nobody hears it
  if (fault && fault->kind == "slow")
    reply.delay = std::chrono::milliseconds(fault->delay_ms);
  return reply;
}

RunpodSandbox::RunpodSandbox(SandboxOptions options) : m_impl(std::make_unique<Impl>()) {
  m_impl->options = std::move(options);
}
RunpodSandbox::~RunpodSandbox() {
  stop();
}

core::Status RunpodSandbox::start(const std::string& address, int port) {
  return m_impl->server.start(address, port);
}
void RunpodSandbox::stop() {
  m_impl->server.stop();
}
std::string RunpodSandbox::url() const {
  return m_impl->server.url();
}
int RunpodSandbox::port() const {
  return m_impl->server.port();
}

void RunpodSandbox::add_fault(const Fault& fault) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->faults.push_back({fault});
}

void RunpodSandbox::set_capacity(const std::string& gpu, const std::string& dc, bool available) {
  std::lock_guard lock(m_impl->mutex);
  if (available)
    m_impl->no_capacity.erase({gpu, dc});
  else
    m_impl->no_capacity.insert({gpu, dc});
}

void RunpodSandbox::set_host_gpus_free(bool free) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->host_gpus_free = free;
}

void RunpodSandbox::set_balance(double usd) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->balance = usd;
}

json RunpodSandbox::snapshot() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->snapshot_locked();
}

}  // namespace autopod::sandbox
