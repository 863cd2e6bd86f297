#pragma once
// Internal to agent/service/: webhook delivery. Each task has its own lane (a thread while it has
// something to send), so a slow or dead receiver delays only that task's own webhooks, never
// another task or any event stream. A delivery is retried with exponential backoff on 5xx,
// timeouts and connection failures until `give_up` has passed since its first attempt; a 4xx
// ends it. Every attempt is reported to `record`.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/backoff.hpp"

namespace autopod::agent::service {

struct WebhookOptions {
  core::BackoffSchedule retry{std::chrono::seconds(1), std::chrono::minutes(5), core::Jitter::half};
  std::chrono::milliseconds give_up{std::chrono::hours(1)};
  std::chrono::milliseconds timeout{10000};          // of one attempt
  std::chrono::milliseconds progress_interval{1000};  // at most one progress webhook per task
};

class WebhookSender {
 public:
  // `record(task_id, attempt)` hears each attempt: {eventId, event, attempt, at, status,
  // error, durationMs, outcome: delivered|retrying|failed}.
  using Record = std::function<void(const std::string& task_id, nlohmann::json attempt)>;
  WebhookSender(std::string secret, WebhookOptions options, Record record);
  ~WebhookSender();  // stop()

  // Queues the event's body for `url`; never blocks. Progress is dropped when the task's last
  // progress webhook was queued less than progress_interval ago.
  void post(const std::string& task_id, const std::string& url, const std::string& event,
            std::uint64_t event_id, std::string body);
  // Ends the lanes: waits for attempts in flight (at most `timeout`), drops what is queued.
  void stop();

 private:
  struct Delivery {
    std::string url, event, body;
    std::uint64_t event_id = 0;
  };
  struct Lane {
    std::deque<Delivery> queue;
    std::thread thread;
    bool running = false;
    std::chrono::steady_clock::time_point last_progress{};
  };
  void run_lane(const std::string& task_id);
  // Sends until delivered, refused or given up; false when stopped meanwhile.
  bool deliver(const std::string& task_id, const Delivery& d);

  std::string m_secret;
  WebhookOptions m_options;
  Record m_record;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_stopping = false;
  std::map<std::string, std::unique_ptr<Lane>> m_lanes;
};

}  // namespace autopod::agent::service
