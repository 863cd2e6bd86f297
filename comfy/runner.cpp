#include "comfy/runner.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "comfy/client.hpp"
#include "comfy/workflow.hpp"
#include "core/clock.hpp"
#include "core/http.hpp"
#include "core/log.hpp"
#include "core/random.hpp"

namespace autopod::comfy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using core::ErrorCode;
using core::fail;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A fixed set of threads, each with its own HTTP client (own connection), for history reads
// and downloads that must not stall the event loop.
class WorkerPool {
 public:
  using Job = std::function<void(ComfyClient&)>;

  WorkerPool(const std::string& base_url, int n) {
    for (int i = 0; i < std::max(1, n); ++i)
      m_threads.emplace_back([this, base_url] {
        ComfyClient client(base_url, core::make_curl_transport(), core::system_clock());
        for (;;) {
          Job job;
          {
            std::unique_lock lock(m_mutex);
            m_cv.wait(lock, [&] { return m_stop || !m_jobs.empty(); });
            if (m_jobs.empty()) return;
            job = std::move(m_jobs.front());
            m_jobs.pop_front();
          }
          job(client);
        }
      });
  }

  ~WorkerPool() {
    {
      std::lock_guard lock(m_mutex);
      m_stop = true;
      m_jobs.clear();  // jobs not started are dropped; running ones finish
    }
    m_cv.notify_all();
    for (auto& t : m_threads) t.join();
  }

  void push(Job job) {
    {
      std::lock_guard lock(m_mutex);
      m_jobs.push_back(std::move(job));
    }
    m_cv.notify_one();
  }

 private:
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<Job> m_jobs;
  bool m_stop = false;
  std::vector<std::thread> m_threads;
};

struct Conn {
  explicit Conn(asio::io_context& io) : ws(io) {}
  websocket::stream<beast::tcp_stream> ws;
  beast::flat_buffer buffer;
  bool open = false;
  bool ping_in_flight = false;
};

class Runner {
 public:
  Runner(std::string base_url, const RunRequest& request, Display& display, const RunHooks& hooks)
      : m_base(std::move(base_url)),
        m_request(request),
        m_display(display),
        m_hooks(hooks),
        m_http(m_base, core::make_curl_transport(), core::system_clock()),
        m_client_id("autopod-" + core::random_hex(16)) {}

  core::Result<std::vector<RunResult>> run() {
    TRY(parse_url());
    m_start = Clock::now();
    if (m_request.wait) {
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
    if (m_request.wait) m_pool = std::make_unique<WorkerPool>(m_base, m_request.download_workers);
    m_last_frame = Clock::now();
    TRY(submit_all());
    if (!m_request.wait) return results();
    for (;;) {
      if (std::all_of(m_runs.begin(), m_runs.end(), [](const Run& r) { return r.finalized; })) break;
      if (auto st = check_timeout(); !st) {
        close();
        return fail(st.error());
      }
      pump(std::chrono::milliseconds(100));
      housekeeping();
    }
    close();
    m_pool.reset();
    return results();
  }

 private:
  struct Run {
    RunState state;
    bool finalizing = false, finalized = false;
    int lost_checks = 0;
    std::vector<fs::path> files;
    std::vector<std::string> errors;
  };

  core::Status parse_url() {
    std::string rest = m_base;
    if (rest.rfind("http://", 0) != 0)
      return fail(ErrorCode::invalid_argument, "comfyui url " + m_base + ": only http:// is supported",
                  "the tunnel serves http://127.0.0.1:PORT");
    rest = rest.substr(7);
    auto slash = rest.find('/');
    if (slash != std::string::npos) {
      m_path_prefix = rest.substr(slash);
      rest = rest.substr(0, slash);
    }
    while (!m_path_prefix.empty() && m_path_prefix.back() == '/') m_path_prefix.pop_back();
    auto colon = rest.rfind(':');
    m_host = colon == std::string::npos ? rest : rest.substr(0, colon);
    m_port = colon == std::string::npos ? "80" : rest.substr(colon + 1);
    m_host_header = rest;
    return {};
  }

  core::Status check_timeout() {
    if (m_request.timeout.count() <= 0 || Clock::now() - m_start < m_request.timeout) return {};
    std::string ids;
    for (const auto& r : m_runs)
      if (!r.finalized) ids += (ids.empty() ? "" : ", ") + r.state.prompt_id;
    return fail(ErrorCode::timeout,
                "gave up after --timeout " + std::to_string(m_request.timeout.count() / 1000) + " s" +
                    (ids.empty() ? "" : "; still unfinished: " + ids),
                ids.empty() ? "is ComfyUI reachable? autopod comfy status"
                            : "they keep running on the server: autopod comfy queue, autopod comfy interrupt");
  }

  // --- submission ----------------------------------------------------------------------------

  core::Status submit_all() {
    auto seeds = seed_inputs(m_request.prompt);
    std::uint64_t base_seed = 0;
    if (!seeds.empty()) base_seed = m_request.prompt[seeds[0].first]["inputs"][seeds[0].second].get<std::uint64_t>();
    std::mt19937_64 rng{std::random_device{}()};
    auto infos = node_infos(m_request.prompt);
    for (int i = 0; i < m_request.count; ++i) {
      json prompt = m_request.prompt;
      if (m_request.random_seed) set_seeds(prompt, rng() & ((1ull << 50) - 1));
      else if (i > 0 && !seeds.empty()) set_seeds(prompt, base_seed + static_cast<std::uint64_t>(i));
      auto submitted = m_http.submit(prompt, m_client_id, m_request.extra_data);
      if (!submitted) {
        auto e = std::move(submitted).error();
        if (i > 0) e.message += " (runs 1-" + std::to_string(i) + " were queued and keep running)";
        return fail(e);
      }
      if (!submitted->node_errors.empty())
        m_display.message("warning: some outputs failed validation and will not run:" +
                          format_prompt_errors({{"node_errors", submitted->node_errors}}));
      Run run;
      run.state.prompt_id = submitted->prompt_id;
      run.state.index = i + 1;
      run.state.count = m_request.count;
      run.state.nodes = infos;
      run.state.submitted = Clock::now();
      m_index[run.state.prompt_id] = m_runs.size();
      m_runs.push_back(std::move(run));
      m_display.message("queued run " + std::to_string(i + 1) + "/" + std::to_string(m_request.count) +
                        " as prompt " + submitted->prompt_id);
      // Follow the runs already queued while the others are submitted: their events are waiting.
      if (m_request.wait) {
        m_io.restart();
        m_io.poll();
      }
    }
    return {};
  }

  // --- the socket ----------------------------------------------------------------------------

  void pump(std::chrono::milliseconds d) {
    m_io.restart();
    m_io.run_for(d);
  }

  void start_connect() {
    auto conn = std::make_shared<Conn>(m_io);
    m_conn = conn;
    ++m_connects;
    tcp::resolver resolver(m_io);
    beast::error_code ec;
    auto endpoints = resolver.resolve(m_host, m_port, ec);
    if (ec) return connect_failed(conn, ec);
    beast::get_lowest_layer(conn->ws).expires_after(std::chrono::seconds(10));
    beast::get_lowest_layer(conn->ws).async_connect(endpoints, [this, conn](beast::error_code e, const tcp::endpoint&) {
      if (conn != m_conn) return;
      if (e) return connect_failed(conn, e);
      beast::get_lowest_layer(conn->ws).expires_never();
      auto t = websocket::stream_base::timeout::suggested(beast::role_type::client);
      t.handshake_timeout = std::chrono::seconds(10);
      conn->ws.set_option(t);
      // Beast adds no Origin header; ComfyUI answers 403 to a mismatched one on loopback.
      conn->ws.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
        req.set(beast::http::field::user_agent, "autopod/0.1");
      }));
      conn->ws.read_message_max(64ull << 20);
      // The stream keeps this callback: a raw pointer, or the connection would own itself.
      conn->ws.control_callback([this, raw = conn.get()](websocket::frame_type kind, beast::string_view) {
        if (kind == websocket::frame_type::pong && raw == m_conn.get()) m_last_pong = Clock::now();
      });
      conn->ws.async_handshake(m_host_header, m_path_prefix + "/ws?clientId=" + m_client_id,
                               [this, conn](beast::error_code he) {
                                 if (conn != m_conn) return;
                                 if (he) return connect_failed(conn, he);
                                 connected(conn);
                               });
    });
  }

  void connect_failed(const std::shared_ptr<Conn>& conn, beast::error_code ec) {
    beast::error_code ignored;
    beast::get_lowest_layer(conn->ws).socket().close(ignored);
    std::string what = "cannot open the WebSocket to " + m_base + "/ws: " + ec.message();
    if (m_runs.empty() && m_connects >= 3) {
      // Nothing submitted yet: do not queue prompts whose events we could not follow.
      m_connect_error = core::make_error(ErrorCode::network, what,
                                         "is ComfyUI running on the pod, and the tunnel up? autopod comfy status");
      return;
    }
    core::logger("comfy")->info("{}", what);
    schedule_reconnect();
  }

  void connected(const std::shared_ptr<Conn>& conn) {
    conn->open = true;
    m_backoff = std::chrono::milliseconds(250);
    m_last_frame = m_last_pong = Clock::now();
    if (m_connects > 1) {
      if (!m_quiet_reconnect) m_display.message("reconnected to comfyui's event stream");
      m_quiet_reconnect = false;
      m_reconcile_due = true;  // events sent while we were away are not replayed
    }
    read(conn);
  }

  void read(const std::shared_ptr<Conn>& conn) {
    conn->ws.async_read(conn->buffer, [this, conn](beast::error_code ec, std::size_t) {
      if (conn != m_conn) return;
      if (ec) {
        conn->open = false;
        if (!m_closing) {
          m_display.message("comfyui's event stream dropped (" + ec.message() + "); reconnecting");
          beast::error_code ignored;
          beast::get_lowest_layer(conn->ws).socket().close(ignored);
          schedule_reconnect();
          m_reconcile_due = true;  // what was sent meanwhile is lost: ask over HTTP at once
        }
        return;
      }
      m_last_frame = Clock::now();
      std::string_view frame(static_cast<const char*>(conn->buffer.data().data()), conn->buffer.size());
      auto event = conn->ws.got_binary() ? parse_binary_frame(frame) : parse_text_frame(frame);
      conn->buffer.consume(conn->buffer.size());
      if (event) on_event(*event);
      else core::logger("comfy")->debug("{}", event.error().message);
      read(conn);
    });
  }

  void reconnect_when_due() {
    if (!m_reconnect_pending || Clock::now() < m_reconnect_at) return;
    m_reconnect_pending = false;
    start_connect();
  }

  void schedule_reconnect() {
    m_reconnect_at = Clock::now() + m_backoff;
    m_backoff = std::min(m_backoff * 2, std::chrono::milliseconds(5000));
    m_reconnect_pending = true;
  }

  // Closes the current socket and waits (bounded) for the close to complete before the next
  // connection: a late close of an older socket would silence the new one.
  void close_then_reconnect() {
    auto conn = m_conn;
    if (!conn || !conn->open) return;
    conn->open = false;
    m_conn = nullptr;
    await_close(conn, std::chrono::seconds(2));
    start_connect();
  }

  void close() {
    m_closing = true;
    if (m_conn && m_conn->open) await_close(m_conn, std::chrono::seconds(1));
    m_conn = nullptr;
  }

  // A close handshake, waited for up to `limit`; then the TCP connection is closed regardless.
  void await_close(const std::shared_ptr<Conn>& conn, std::chrono::milliseconds limit) {
    auto done = std::make_shared<bool>(false);
    conn->open = false;
    conn->ws.async_close(websocket::close_code::normal, [done, conn](beast::error_code) { *done = true; });
    auto deadline = Clock::now() + limit;
    while (!*done && Clock::now() < deadline) pump(std::chrono::milliseconds(10));
    beast::error_code ignored;
    beast::get_lowest_layer(conn->ws).socket().close(ignored);
  }

  // --- events --------------------------------------------------------------------------------

  Run* run_for(const Event& e) {
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

  void on_event(const Event& e) {
    if (e.type == EventType::status && e.queue_remaining >= 0) m_status_remaining = e.queue_remaining;
    Run* run = run_for(e);
    if (!run) {
      if (e.type == EventType::status && !m_runs.empty()) m_display.event(m_runs.front().state, e);
      return;
    }
    if (run->finalized || run->finalizing) return;
    // The reconnect frame {node} without a prompt id must not end or restart anything.
    apply(run->state, e, Clock::now());
    m_display.event(run->state, e);
    if (run->state.ended) finalize(*run);
  }

  // --- reconciliation ------------------------------------------------------------------------

  void housekeeping() {
    auto now = Clock::now();
    m_display.tick();
    reconnect_when_due();
    auto conn = m_conn;
    bool open = conn && conn->open;
    // Ping when quiet (ComfyUI sends no heartbeat; idle proxies cut silent connections).
    if (open && !conn->ping_in_flight && now - std::max(m_last_frame, m_last_pong) >= m_request.ping_interval) {
      conn->ping_in_flight = true;
      conn->ws.async_ping({}, [conn](beast::error_code) { conn->ping_in_flight = false; });
    }
    if (open && now - std::max(m_last_frame, m_last_pong) >= m_request.ping_interval * 5 / 2) {
      m_display.message("comfyui's event stream stopped answering pings; reconnecting");
      close_then_reconnect();
      return;
    }
    bool silent = now - m_last_frame >= m_request.watchdog;
    bool outcome_without_end = std::any_of(m_runs.begin(), m_runs.end(), [&](const Run& r) {
      return !r.state.ended && r.state.outcome_at != Clock::time_point{} &&
             now - r.state.outcome_at >= std::chrono::seconds(1);
    });
    if (m_reconcile_due || outcome_without_end || (silent && now - m_last_reconcile >= m_request.watchdog)) {
      m_reconcile_due = false;
      m_last_reconcile = now;
      auto seen = reconcile();
      m_missed = seen.missed_status ? m_missed + 1 : 0;
      // The server can silence a socket that stays open (an older socket with our id closing,
      // §4.1). Signs: the queue changed twice running without the `status` broadcast that
      // accompanies every change, or nothing at all for ten watchdog periods while ours runs
      // (a long model load is quiet too, so that wait is long). A fresh connection registers again.
      if (open && (m_missed >= 2 || (seen.ours_running && now - m_last_frame >= m_request.watchdog * 10))) {
        core::logger("comfy")->info("the event stream looks silenced ({} ms quiet); reconnecting",
                                    std::chrono::duration_cast<std::chrono::milliseconds>(now - m_last_frame).count());
        m_missed = 0;
        m_quiet_reconnect = true;
        close_then_reconnect();
        m_last_frame = Clock::now();
      }
    }
  }

  struct Seen {
    bool ours_running = false;   // one of our prompts is executing
    bool missed_status = false;  // the queue's length is not what the last status frame said
  };

  // Asks /history and /queue about every unfinished run.
  Seen reconcile() {
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

  static void apply_history(RunState& s, const json& entry) {
    s.ended = true;
    json status = entry.value("status", json::object());
    std::string str = status.value("status_str", "");
    json messages = status.value("messages", json::array());
    Outcome outcome = str == "success" ? Outcome::success : str == "error" ? Outcome::error : Outcome::success;
    for (const auto& m : messages) {
      if (!m.is_array() || m.size() < 2) continue;
      if (m[0] == "execution_interrupted") {
        outcome = Outcome::interrupted;
        s.error = m[1];
      } else if (m[0] == "execution_error") {
        outcome = Outcome::error;
        s.error = m[1];
      }
    }
    s.outcome = outcome;
    if (outcome == Outcome::success)
      for (const auto& [id, info] : s.nodes) s.done_nodes.insert(id);
  }

  // --- outputs -------------------------------------------------------------------------------

  fs::path out_dir(const Run& run) const {
    return m_request.out_dir.empty() ? fs::path("outputs") / run.state.prompt_id : m_request.out_dir;
  }

  // A destination no other download of this process took and no file already has.
  fs::path reserve(const fs::path& wanted) {
    std::lock_guard lock(m_reserve_mutex);
    fs::path p = wanted;
    std::error_code ec;
    for (int i = 1; m_reserved.count(p) || fs::exists(p, ec); ++i)
      p = wanted.parent_path() / (wanted.stem().string() + " (" + std::to_string(i) + ")" + wanted.extension().string());
    m_reserved.insert(p);
    return p;
  }

  void finalize(Run& run) {
    if (run.finalizing || run.finalized) return;
    run.finalizing = true;
    if (run.state.outcome != Outcome::success && run.state.outcome != Outcome::running &&
        run.state.outcome != Outcome::pending) {
      // Failed runs keep what finished before the failure on the server; nothing to download.
      return done(run);
    }
    std::size_t index = m_index[run.state.prompt_id];
    std::string id = run.state.prompt_id;
    fs::path dir = out_dir(run);
    m_pool->push([this, index, id, dir](ComfyClient& client) {
      // `executing {node: null}` comes after the history write; `execution_success` alone may
      // not (§4.4), so an empty answer is asked again for a while.
      json entry;
      for (int attempt = 0; attempt < 100; ++attempt) {
        auto h = client.history(id);
        if (h && h->contains(id)) {
          entry = (*h)[id];
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (entry.is_null()) {
        asio::post(m_io, [this, index] {
          m_runs[index].errors.push_back("no history entry appeared for the prompt");
          done(m_runs[index]);
        });
        return;
      }
      auto files = output_files(entry);
      auto state = std::make_shared<std::pair<std::mutex, std::size_t>>();
      state->second = files.size();
      asio::post(m_io, [this, index, entry] {
        RunState& s = m_runs[index].state;
        if (s.outcome != Outcome::success) apply_history(s, entry);
      });
      if (files.empty()) {
        asio::post(m_io, [this, index] { done(m_runs[index]); });
        return;
      }
      for (auto& ref : files) {
        m_pool->push([this, index, dir, ref, state](ComfyClient& c) {
          fs::path dest = reserve(local_output_path(dir, ref));
          auto st = c.download(ref, dest);
          bool last;
          {
            std::lock_guard lock(state->first);
            last = --state->second == 0;
          }
          asio::post(m_io, [this, index, dest, st, last] {
            Run& r = m_runs[index];
            if (st) {
              r.files.push_back(dest);
              m_display.saved(r.state, dest.string());
            } else {
              r.errors.push_back(st.error().message);
              m_display.message("error: " + st.error().message);
            }
            if (last) done(r);
          });
        });
      }
    });
  }

  void done(Run& run) {
    run.finalized = true;
    if (run.state.outcome == Outcome::success && m_hooks.on_outputs_saved) m_hooks.on_outputs_saved(run.state.prompt_id);
    m_display.finished(run.state);
  }

  std::vector<RunResult> results() {
    std::vector<RunResult> out;
    for (auto& r : m_runs) out.push_back({r.state, r.files, r.errors});
    return out;
  }

  std::string m_base;
  const RunRequest& m_request;
  Display& m_display;
  const RunHooks& m_hooks;
  ComfyClient m_http;
  std::string m_client_id;
  std::string m_host, m_port, m_host_header, m_path_prefix;

  asio::io_context m_io;
  asio::executor_work_guard<asio::io_context::executor_type> m_guard = asio::make_work_guard(m_io);
  std::shared_ptr<Conn> m_conn;
  int m_connects = 0;
  std::optional<core::Error> m_connect_error;
  bool m_closing = false;
  bool m_reconnect_pending = false;
  Clock::time_point m_reconnect_at{};
  std::chrono::milliseconds m_backoff{250};
  Clock::time_point m_start{}, m_last_frame{}, m_last_pong{}, m_last_reconcile{};
  bool m_reconcile_due = false;
  int m_status_remaining = -1;  // queue_remaining of the last status frame
  int m_missed = 0;             // watchdog rounds in a row that found a status frame missing
  bool m_quiet_reconnect = false;

  std::vector<Run> m_runs;
  std::map<std::string, std::size_t> m_index;
  std::unique_ptr<WorkerPool> m_pool;
  std::mutex m_reserve_mutex;
  std::set<fs::path> m_reserved;
};

}  // namespace

core::Result<std::vector<RunResult>> run_workflow(const std::string& base_url, const RunRequest& request,
                                                  Display& display, const RunHooks& hooks) {
  if (request.count < 1)
    return fail(ErrorCode::invalid_argument, "--count must be at least 1");
  Runner runner(base_url, request, display, hooks);
  return runner.run();
}

}  // namespace autopod::comfy
