#pragma once
// Internal to models/: the state one download shares between its connections, its hasher and
// the thread that watches for pause and cancel.

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>

#include "models/internal.hpp"
#include "models/models.hpp"
#include "models/transfer_state.hpp"

namespace autopod::models {

struct Engine {
  Engine(const TransferOptions& o, Claim& c) : opt(o), claim(c) {}
  const TransferOptions& opt;
  Claim& claim;
  int fd = -1;
  bool ranged = true;  // false: one plain GET, whose retries start again from byte 0

  std::mutex mu;                 // guards everything below that is not atomic
  std::condition_variable cv;    // a chunk finished, a worker ended, or stop was raised
  PartState state;
  std::size_t next_chunk = 0;
  std::string url;
  std::string origin;  // the resolved file's origin: only requests to its host get the token
  int url_generation = 0;
  std::optional<core::Error> error;
  bool discard = false;          // the partial file is useless (416, changed file)
  bool restart = false;          // 200 to a Range: start again with one plain stream
  int running = 0;
  std::chrono::steady_clock::time_point last_save{};

  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> on_disk{0};
  std::atomic<std::int64_t> fetched{0};
  std::atomic<std::int64_t> learned_size{-1};  // size of a body whose size was unknown

  std::size_t chunks() const { return state.done.size(); }
  std::int64_t first_byte(std::size_t i) const {
    return static_cast<std::int64_t>(i) * state.chunk_bytes;
  }
  // Inclusive; -1 when the size is unknown.
  std::int64_t last_byte(std::size_t i) const {
    return state.size < 0 ? -1 : std::min(state.size, first_byte(i + 1)) - 1;
  }
  // Records the first failure and stops every connection.
  void fail(core::Error e, bool discard_partial = false);
};

// Each connection runs this until no chunk is left or stop is raised.
void run_worker(Engine& engine);

// Hashes chunks in file order as they complete (they are still in the page cache), so that the
// verification costs no second pass over the file. Empty when stopped before the end.
std::string hash_in_order(Engine& engine);

}  // namespace autopod::models
