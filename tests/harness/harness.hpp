#pragma once
// Shared test helpers: temp dirs, the built binaries, child processes that signal readiness.

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/process.hpp"

namespace autopod::testing {

// A fresh directory under $TMPDIR, removed with everything in it at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return m_path; }
  std::filesystem::path operator/(const std::string& name) const { return m_path / name; }

 private:
  std::filesystem::path m_path;
};

// Paths of the binaries this build made (set by CMake).
std::string autopod_binary();
std::string sandbox_binary();
std::string tunneld_binary();
std::string plugin_dir();  // where the test plugins were built

// Runs the autopod binary with `args` and `env` ("NAME=value") added to the environment;
// stdin is empty (not a terminal).
core::ProcessOutput run_autopod(const std::vector<std::string>& args,
                                const std::vector<std::string>& env);

// A background child whose stdout is read until a line containing `ready_text` appears
// (the child's own readiness signal). Killed (SIGTERM, then waited for) at destruction.
class Child {
 public:
  static core::Result<std::unique_ptr<Child>> start(const std::vector<std::string>& argv,
                                                   const std::string& ready_text,
                                                   int timeout_secs = 60);
  ~Child();
  pid_t pid() const { return m_pid; }
  const std::string& ready_line() const { return m_line; }

 private:
  Child() = default;
  pid_t m_pid = -1;
  int m_out = -1;
  std::string m_line;
};

// A free TCP port on 127.0.0.1 at the time of the call.
int free_port();

// A listener on 127.0.0.1 that never accepts: the kernel completes connections into its queue,
// and nothing ever answers (a hung server, or a tunnel whose far end is gone).
class SilentListener {
 public:
  SilentListener();
  ~SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  int port() const { return m_port; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }

 private:
  int m_fd = -1;
  int m_port = 0;
};

}  // namespace autopod::testing

namespace autopod::testing {

// Waits until `done()` holds, re-checking each time a file in `dir` is written or renamed
// into place (inotify), at most `timeout`. Returns the last value of done().
bool wait_for_change(const std::filesystem::path& dir, const std::function<bool()>& done,
                     std::chrono::milliseconds timeout);

// PIDs whose parent is `parent`.
std::vector<pid_t> children_of(pid_t parent);

// `n` pseudo-random bytes from `seed`: the same seed gives the same bytes.
std::string random_bytes(std::size_t n, unsigned seed);

// Names of the files in `dir`, sorted (none when it does not exist).
std::vector<std::string> names_in(const std::filesystem::path& dir);

// A file's whole content; "" when it cannot be read.
std::string slurp(const std::filesystem::path& path);

// Polls `cond` every 20 ms until it holds, for at most 30 s; false when it never did. For
// conditions no file event or signal announces (another process's state, say).
template <typename F>
bool eventually(F cond) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    if (cond())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace autopod::testing
