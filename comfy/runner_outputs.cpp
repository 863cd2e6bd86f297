// Runner: outputs. When a run ends, a worker reads its history entry and downloads every file it
// lists into the output directory, each under a name no other file has (see runner.hpp).

#include <boost/asio/post.hpp>

#include "comfy/runner.hpp"

namespace autopod::comfy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace fs = std::filesystem;
using core::ErrorCode;
using core::fail;
using nlohmann::json;

WorkerPool::WorkerPool(const ComfyClient& client, int n) {
  for (int i = 0; i < std::max(1, n); ++i)
    m_threads.emplace_back([this, http = client.another()]() mutable {
      for (;;) {
        Job job;
        {
          std::unique_lock lock(m_mutex);
          m_cv.wait(lock, [&] { return m_stop || !m_jobs.empty(); });
          if (m_jobs.empty()) return;
          job = std::move(m_jobs.front());
          m_jobs.pop_front();
        }
        job(http);
      }
    });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
    m_jobs.clear();
  }
  m_cv.notify_all();
  for (auto& t : m_threads) t.join();
}

void WorkerPool::push(Job job) {
  {
    std::lock_guard lock(m_mutex);
    m_jobs.push_back(std::move(job));
  }
  m_cv.notify_one();
}

fs::path Runner::out_dir(const Run& run) const {
  return m_options.out_dir.empty() ? fs::path("outputs") / run.state.prompt_id : m_options.out_dir;
}

fs::path Runner::reserve(const fs::path& wanted) {
  std::lock_guard lock(m_reserve_mutex);
  fs::path p = wanted;
  std::error_code ec;
  for (int i = 1; m_reserved.count(p) || fs::exists(p, ec); ++i)
    p = wanted.parent_path() / (wanted.stem().string() + " (" + std::to_string(i) + ")" + wanted.extension().string());
  m_reserved.insert(p);
  return p;
}

void Runner::finalize(Run& run) {
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

void Runner::done(Run& run) {
  run.finalized = true;
  // It ran, but without the outputs whose branches failed validation at submission.
  if (run.state.outcome == Outcome::success && !run.dropped.empty()) run.state.outcome = Outcome::partial;
  if (run.state.outcome != Outcome::error && run.state.outcome != Outcome::interrupted &&
      run.state.outcome != Outcome::lost && m_hooks.on_outputs_saved) m_hooks.on_outputs_saved(run.state.prompt_id);
  m_display.finished(run.state);
}

}  // namespace autopod::comfy
