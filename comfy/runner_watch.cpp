// Runner: events from the socket, and reconciliation over HTTP when the socket is quiet, dropped
// or silenced (see runner.hpp).

#include "comfy/runner.hpp"
#include "core/log.hpp"

namespace autopod::comfy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace fs = std::filesystem;
using core::ErrorCode;
using core::fail;
using nlohmann::json;

void apply_history(RunState& s, const json& entry) {
  auto h = history_outcome(entry);
  s.ended = true;
  s.outcome = h.outcome;
  if (!h.error.is_null()) s.error = h.error;
  if (h.outcome == Outcome::success)
    for (const auto& [id, info] : s.nodes) s.done_nodes.insert(id);
}

Runner::Run* Runner::run_for(const Event& e) {
  if (!e.prompt_id.empty()) {
    auto it = m_index.find(e.prompt_id);
    return it == m_index.end() ? nullptr : &m_runs[it->second];
  }
  // Frames without a prompt id (status, previews of type 1, text, the reconnect `executing`)
  // belong to whichever of our runs is executing.
  for (auto& r : m_runs)
    if (r.state.outcome == Outcome::running && !r.state.ended) return &r;
  return nullptr;
}

void Runner::on_event(const Event& e) {
  if (e.type == EventType::status && e.queue_remaining >= 0) m_status_remaining = e.queue_remaining;
  Run* run = run_for(e);
  if (!run) {
    if (e.type == EventType::status && !m_runs.empty()) m_display.event(m_runs.front().state, e);
    return;
  }
  if (run->finalized || run->finalizing) return;
  // The reconnect frame {node} without a prompt id must not end or restart anything.
  apply(run->state, e, now());
  m_display.event(run->state, e);
  if (run->state.ended) finalize(*run);
}

void Runner::housekeeping() {
  auto t = now();
  m_display.tick();
  reconnect_when_due();
  auto conn = m_conn;
  bool open = conn && conn->open;
  // Ping when quiet (ComfyUI sends no heartbeat; idle proxies cut silent connections).
  if (open && !conn->ping_in_flight && t - std::max(m_last_frame, m_last_pong) >= m_request.ping_interval) {
    conn->ping_in_flight = true;
    conn->ws.async_ping({}, [conn](beast::error_code) { conn->ping_in_flight = false; });
  }
  if (open && t - std::max(m_last_frame, m_last_pong) >= m_request.ping_interval * 5 / 2) {
    m_display.message("comfyui's event stream stopped answering pings; reconnecting");
    close_then_reconnect();
    return;
  }
  bool silent = t - m_last_frame >= m_request.watchdog;
  bool outcome_without_end = std::any_of(m_runs.begin(), m_runs.end(), [&](const Run& r) {
    return !r.state.ended && r.state.outcome_at != time_point{} &&
           t - r.state.outcome_at >= std::chrono::seconds(1);
  });
  if (m_reconcile_due || outcome_without_end || (silent && t - m_last_reconcile >= m_request.watchdog)) {
    m_reconcile_due = false;
    m_last_reconcile = t;
    auto seen = reconcile();
    m_missed = seen.missed_status ? m_missed + 1 : 0;
    // The server can silence a socket that stays open (an older socket with our id closing,
    // §4.1). Signs: the queue changed twice running without the `status` broadcast that
    // accompanies every change, or nothing at all for ten watchdog periods while ours runs
    // (a long model load is quiet too, so that wait is long). A fresh connection registers again.
    if (open && (m_missed >= 2 || (seen.ours_running && t - m_last_frame >= m_request.watchdog * 10))) {
      core::logger("comfy")->info("the event stream looks silenced ({} ms quiet); reconnecting",
                                  std::chrono::duration_cast<std::chrono::milliseconds>(t - m_last_frame).count());
      m_missed = 0;
      m_quiet_reconnect = true;
      close_then_reconnect();
      m_last_frame = now();
    }
  }
}

Runner::Seen Runner::reconcile() {
  Seen seen;
  auto queue = m_http.queue();
  if (!queue) {
    core::logger("comfy")->info("watchdog: {}", queue.error().message);
    return seen;
  }
  int total = static_cast<int>(queue->running.size() + queue->pending.size());
  seen.missed_status = m_status_remaining >= 0 && total != m_status_remaining;
  std::set<std::string> queued;
  std::string running;
  for (const auto& i : queue->running) queued.insert(running = i.prompt_id);
  for (const auto& i : queue->pending) queued.insert(i.prompt_id);
  for (auto& run : m_runs) {
    if (run.finalizing || run.finalized) continue;
    auto h = m_http.history(run.state.prompt_id);
    if (h && h->contains(run.state.prompt_id)) {
      apply_history(run.state, (*h)[run.state.prompt_id]);
      m_display.message("run " + std::to_string(run.state.index) + " ended while the event stream was quiet (" +
                        to_string(run.state.outcome) + ")");
      finalize(run);
      continue;
    }
    if (queued.count(run.state.prompt_id)) {
      run.lost_checks = 0;
      if (run.state.prompt_id == running) seen.ours_running = true;
      continue;
    }
    // Neither queued nor in history: cleared from the queue, or the server restarted. Asked
    // twice, as the history entry is written just before the prompt leaves the queue.
    if (++run.lost_checks >= 2) {
      run.state.outcome = Outcome::lost;
      run.state.ended = true;
      m_display.message("prompt " + run.state.prompt_id +
                        " is neither queued nor in history: it was removed from the queue, or "
                        "ComfyUI restarted");
      finalize(run);
    } else {
      m_reconcile_due = true;
    }
  }
  return seen;
}

}  // namespace autopod::comfy
