// Runner: the loop that follows every run to its end, and submission (see runner.hpp).

#include <algorithm>
#include <random>

#include "comfy/runner.hpp"
#include "comfy/workflow.hpp"
#include "core/random.hpp"
#include "core/text.hpp"

namespace autopod::comfy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace fs = std::filesystem;
using core::ErrorCode;
using core::fail;
using nlohmann::json;

Runner::Runner(ComfyClient& client, const RunRequest& request, Display& display, const RunHooks& hooks)
    : m_http(client),
      m_request(request),
      m_options(request.options),
      m_display(display),
      m_hooks(hooks),
      m_client_id(request.client_id.empty() ? "autopod-" + core::random_hex(16) : request.client_id),
      // Reconnects of the event stream: quick at first (a proxy hiccup), at most every 5 s.
      m_backoff({std::chrono::milliseconds(250), std::chrono::milliseconds(5000), core::Jitter::none}) {}

core::Result<std::vector<RunResult>> Runner::run() {
  m_start = now();
  if (m_options.wait) {
    // Connect first: events for a prompt go only to the socket whose id it was submitted with,
    // and are never replayed.
    start_connect();
    while (!m_conn || !m_conn->open) {
      if (m_connect_error) return fail(*m_connect_error);
      if (auto st = check_timeout(); !st) return fail(st.error());
      pump(std::chrono::milliseconds(50));
      reconnect_when_due();
    }
  }
  if (m_options.wait) m_pool = std::make_unique<WorkerPool>(m_http, m_request.download_workers);
  m_last_frame = now();
  TRY(submit_all());
  if (!m_options.wait) return results();
  for (;;) {
    if (std::all_of(m_runs.begin(), m_runs.end(), [](const Run& r) { return r.finalized; })) break;
    if (auto st = check_timeout(); !st) {
      close();
      return fail(st.error());
    }
    if (m_hooks.keep_following && !m_hooks.keep_following()) {
      close();
      return fail(ErrorCode::cancelled, "stopped following; the prompts keep running on the server");
    }
    pump(std::chrono::milliseconds(100));
    housekeeping();
  }
  close();
  m_pool.reset();
  return results();
}

core::Status Runner::check_timeout() {
  if (m_options.timeout.count() <= 0 || now() - m_start < m_options.timeout) return {};
  std::string ids;
  for (const auto& r : m_runs)
    if (!r.finalized) ids += (ids.empty() ? "" : ", ") + r.state.prompt_id;
  return fail(ErrorCode::timeout,
              "gave up after " + core::format_seconds(std::chrono::duration_cast<std::chrono::milliseconds>(now() - m_start)) +
                  " (--timeout " + core::format_seconds(m_options.timeout) + ")" +
                  (ids.empty() ? "" : "; still unfinished: " + ids),
              ids.empty() ? "is ComfyUI reachable? autopod comfy status"
                          : "they keep running on the server: autopod comfy queue, autopod comfy interrupt");
}

core::Status Runner::submit_all() {
  if (!m_request.attach.empty()) return attach_all();
  auto seeds = seed_inputs(m_request.prompt);
  std::uint64_t base_seed = 0;
  if (!seeds.empty()) base_seed = m_request.prompt[seeds[0].first]["inputs"][seeds[0].second].get<std::uint64_t>();
  std::mt19937_64 rng{std::random_device{}()};
  auto infos = node_infos(m_request.prompt);
  for (int i = 0; i < m_options.count; ++i) {
    json prompt = m_request.prompt;
    if (m_options.random_seed) set_seeds(prompt, rng() & ((1ull << 50) - 1));
    else if (i > 0 && !seeds.empty()) set_seeds(prompt, base_seed + static_cast<std::uint64_t>(i));
    auto submitted = m_http.submit(prompt, m_client_id, m_request.extra_data);
    if (!submitted) {
      auto e = std::move(submitted).error();
      if (i > 0) e.message += " (runs 1-" + std::to_string(i) + " were queued and keep running)";
      return fail(e);
    }
    Run run;
    if (!submitted->node_errors.empty()) {
      run.dropped = submitted->node_errors;
      m_display.message("warning: some outputs failed validation and will not run:" +
                        format_prompt_errors({{"node_errors", submitted->node_errors}}));
    }
    run.state.prompt_id = submitted->prompt_id;
    run.state.index = i + 1;
    run.state.count = m_options.count;
    run.state.nodes = infos;
    run.state.submitted = now();
    m_index[run.state.prompt_id] = m_runs.size();
    m_runs.push_back(std::move(run));
    if (m_hooks.on_submitted) m_hooks.on_submitted(m_runs.back().state);
    m_display.message("queued run " + std::to_string(i + 1) + "/" + std::to_string(m_options.count) +
                      " as prompt " + submitted->prompt_id);
    // Follow the runs already queued while the others are submitted: their events are waiting.
    if (m_options.wait) {
      m_io.restart();
      m_io.poll();
    }
  }
  return {};
}

core::Status Runner::attach_all() {
  auto infos = node_infos(m_request.prompt);
  for (const auto& id : m_request.attach) {
    Run run;
    run.state.prompt_id = id;
    run.state.index = static_cast<int>(m_runs.size()) + 1;
    run.state.count = static_cast<int>(m_request.attach.size());
    run.state.nodes = infos;
    run.state.submitted = now();
    m_index[id] = m_runs.size();
    m_runs.push_back(std::move(run));
    if (m_hooks.on_submitted) m_hooks.on_submitted(m_runs.back().state);
  }
  // Ask at once: some may have ended while nobody listened.
  m_reconcile_due = true;
  return {};
}

std::vector<RunResult> Runner::results() {
  std::vector<RunResult> out;
  for (auto& r : m_runs) out.push_back({r.state, r.files, r.errors, r.dropped});
  return out;
}

core::Result<std::vector<RunResult>> run_workflow(ComfyClient& client, const RunRequest& request,
                                                  Display& display, const RunHooks& hooks) {
  if (request.options.count < 1) return fail(ErrorCode::invalid_argument, "--count must be at least 1");
  Runner runner(client, request, display, hooks);
  return runner.run();
}

}  // namespace autopod::comfy
