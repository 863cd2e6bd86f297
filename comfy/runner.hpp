#pragma once
// Internal to comfy/: the machinery behind run_workflow (run.hpp).
//
// The WebSocket is opened with a fresh client id before the first prompt is submitted, so no
// event is missed. It is pinged (ComfyUI sends no heartbeat) and reconnected with backoff when
// it drops; a reconnect first completes the old socket's close, because ComfyUI silences a new
// socket when an older one with the same id closes (§4.1). A watchdog asks /history/{id} and
// /queue whenever the socket is silent, after every reconnect, and when an outcome arrives
// without its end, so a run never hangs and never misses its completion. A run ends with
// `executing {node: null}` for its prompt id (sent after the history entry is stored); outputs
// are then read from /history/{id} and downloaded through /view by a pool of workers, each with
// its own connection from ComfyClient::another().
//
// One class, its methods in four files along its seams: runner.cpp (the loop and submission),
// runner_socket.cpp (the WebSocket session), runner_watch.cpp (events and reconciliation),
// runner_outputs.cpp (the worker pool and downloads).

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "comfy/run.hpp"
#include "core/backoff.hpp"

namespace autopod::comfy {

// A fixed set of threads, each with its own ComfyClient (own connection), for history reads and
// downloads that must not stall the event loop.
class WorkerPool {
 public:
  using Job = std::function<void(ComfyClient&)>;
  WorkerPool(const ComfyClient& client, int n);
  ~WorkerPool();  // jobs not started are dropped; running ones finish
  void push(Job job);

 private:
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<Job> m_jobs;
  bool m_stop = false;
  std::vector<std::thread> m_threads;
};

struct Conn {
  explicit Conn(boost::asio::io_context& io) : ws(io) {}
  boost::beast::websocket::stream<boost::beast::tcp_stream> ws;
  boost::beast::flat_buffer buffer;
  boost::beast::websocket::response_type handshake;  // the server's answer, for a refusal's status
  bool open = false;
  bool ping_in_flight = false;
};

// A run that ended while we were not listening: its outcome and error from its history entry.
void apply_history(RunState& run, const nlohmann::json& entry);

class Runner {
 public:
  Runner(ComfyClient& client, const RunRequest& request, Display& display, const RunHooks& hooks);
  core::Result<std::vector<RunResult>> run();

 private:
  using time_point = core::Clock::time_point;
  struct Run {
    RunState state;
    bool finalizing = false, finalized = false;
    int lost_checks = 0;
    nlohmann::json dropped = nlohmann::json::object();
    std::vector<std::filesystem::path> files;
    std::vector<std::string> errors;
  };
  struct Seen {
    bool ours_running = false;   // one of our prompts is executing
    bool missed_status = false;  // the queue's length is not what the last status frame said
  };

  time_point now() const { return m_http.clock().now(); }
  core::Status check_timeout();
  core::Status submit_all();
  core::Status attach_all();
  std::vector<RunResult> results();

  // runner_socket.cpp
  void pump(std::chrono::milliseconds d);
  void start_connect();
  void connect_failed(const std::shared_ptr<Conn>& conn, boost::beast::error_code ec);
  void connected(const std::shared_ptr<Conn>& conn);
  void read(const std::shared_ptr<Conn>& conn);
  void reconnect_when_due();
  void schedule_reconnect();
  void close_then_reconnect();
  void close();
  void await_close(const std::shared_ptr<Conn>& conn, std::chrono::milliseconds limit);

  // runner_watch.cpp
  Run* run_for(const Event& e);
  void on_event(const Event& e);
  void housekeeping();
  Seen reconcile();

  // runner_outputs.cpp
  std::filesystem::path out_dir(const Run& run) const;
  std::filesystem::path reserve(const std::filesystem::path& wanted);
  void finalize(Run& run);
  void done(Run& run);

  ComfyClient& m_http;  // the loop thread's connection: submit and reconcile
  const RunRequest& m_request;
  const RunOptions& m_options;
  Display& m_display;
  const RunHooks& m_hooks;
  std::string m_client_id;

  boost::asio::io_context m_io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> m_guard =
      boost::asio::make_work_guard(m_io);
  std::shared_ptr<Conn> m_conn;
  int m_connects = 0;
  std::optional<core::Error> m_connect_error;
  bool m_closing = false;
  bool m_reconnect_pending = false;
  time_point m_reconnect_at{};
  core::Backoff m_backoff;
  time_point m_start{}, m_last_frame{}, m_last_pong{}, m_last_reconcile{};
  bool m_reconcile_due = false;
  int m_status_remaining = -1;  // queue_remaining of the last status frame
  int m_missed = 0;             // watchdog rounds in a row that found a status frame missing
  bool m_quiet_reconnect = false;

  std::vector<Run> m_runs;
  std::map<std::string, std::size_t> m_index;
  std::unique_ptr<WorkerPool> m_pool;
  std::mutex m_reserve_mutex;
  std::set<std::filesystem::path> m_reserved;
};

}  // namespace autopod::comfy
