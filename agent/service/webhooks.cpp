#include "agent/service/webhooks.hpp"

#include <random>

#include "agent/service/secrets.hpp"
#include "agent/service/task.hpp"
#include "core/http.hpp"
#include "core/log.hpp"

namespace autopod::agent::service {

using nlohmann::json;
using steady = std::chrono::steady_clock;

WebhookSender::WebhookSender(std::string secret, WebhookOptions options, Record record)
    : m_secret(std::move(secret)), m_options(options), m_record(std::move(record)) {}

WebhookSender::~WebhookSender() { stop(); }

void WebhookSender::post(const std::string& task_id, const std::string& url, const std::string& event,
                         std::uint64_t event_id, std::string body) {
  std::lock_guard lock(m_mutex);
  if (m_stopping) return;
  auto& lane = m_lanes[task_id];
  if (!lane) lane = std::make_unique<Lane>();
  auto now = steady::now();
  if (event == "progress") {
    if (lane->last_progress != steady::time_point{} && now - lane->last_progress < m_options.progress_interval) return;
    lane->last_progress = now;
  }
  lane->queue.push_back({url, event, std::move(body), event_id});
  if (!lane->running) {
    lane->running = true;
    // The last thread has left the loop (running is false) and takes no lock again.
    if (lane->thread.joinable()) lane->thread.join();
    lane->thread = std::thread([this, task_id] { run_lane(task_id); });
  }
}

void WebhookSender::run_lane(const std::string& task_id) {
  for (;;) {
    Delivery d;
    {
      std::lock_guard lock(m_mutex);
      auto& lane = *m_lanes[task_id];
      if (m_stopping || lane.queue.empty()) {
        lane.running = false;
        return;
      }
      d = std::move(lane.queue.front());
      lane.queue.pop_front();
    }
    if (!deliver(task_id, d)) return;
  }
}

bool WebhookSender::deliver(const std::string& task_id, const Delivery& d) {
  auto transport = core::make_curl_transport();
  core::Backoff backoff(m_options.retry);
  auto first = steady::now();
  for (int attempt = 1;; ++attempt) {
    auto now_unix = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count();
    core::HttpRequest req;
    req.method = "POST";
    req.url = d.url;
    req.body = d.body;
    req.timeout = m_options.timeout;
    req.fresh_connection = true;
    req.headers = {{"Content-Type", "application/json"},
                   {"User-Agent", "autopod-agent"},
                   {"X-Autopod-Event", d.event},
                   {"X-Autopod-Event-Id", std::to_string(d.event_id)},
                   {"X-Autopod-Signature", webhook_signature(m_secret, now_unix, d.body)}};
    auto started = steady::now();
    auto res = transport->send(req);
    json record = {{"eventId", d.event_id}, {"event", d.event}, {"attempt", attempt},
                   {"at", iso_ms(std::chrono::system_clock::now())},
                   {"durationMs", std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - started).count()},
                   {"status", res ? json(res->status) : json()}, {"error", res ? json() : json(res.error().message)}};
    bool delivered = res && res->status >= 200 && res->status < 300;
    bool refused = res && !delivered && res->status < 500;  // 3xx and 4xx: the receiver said no
    auto wait = backoff.next();
    bool out_of_time = steady::now() + wait - first > m_options.give_up;
    record["outcome"] = delivered ? "delivered" : (refused || out_of_time) ? "failed" : "retrying";
    m_record(task_id, record);
    if (delivered || refused || out_of_time) {
      if (!delivered)
        core::logger("agent")->warn("task {}: webhook for event {} not delivered after {} attempt(s)", task_id,
                                    d.event_id, attempt);
      return true;
    }
    std::unique_lock lock(m_mutex);
    if (m_cv.wait_for(lock, wait, [&] { return m_stopping; })) return false;
  }
}

void WebhookSender::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
    for (auto& [id, lane] : m_lanes)
      if (lane->thread.joinable()) threads.push_back(std::move(lane->thread));
  }
  m_cv.notify_all();
  for (auto& t : threads) t.join();
}

}  // namespace autopod::agent::service
