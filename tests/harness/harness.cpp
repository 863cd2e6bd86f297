#include "tests/harness/harness.hpp"

#include "sandbox/tcp_target.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

extern char** environ;

namespace autopod::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/autopod-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* made = ::mkdtemp(buf.data());
  if (!made) std::abort();
  m_path = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(m_path, ec);
}

std::string autopod_binary() { return AUTOPOD_TEST_AUTOPOD_BIN; }
std::string sandbox_binary() { return AUTOPOD_TEST_SANDBOX_BIN; }
std::string tunneld_binary() { return AUTOPOD_TEST_TUNNELD_BIN; }
std::string plugin_dir() { return AUTOPOD_TEST_PLUGIN_DIR; }

core::ProcessOutput run_autopod(const std::vector<std::string>& args,
                                const std::vector<std::string>& env) {
  std::vector<std::string> argv = {autopod_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = core::run_capture(argv, {}, env);
  if (!r) return core::ProcessOutput{127, "", r.error().message};
  return *r;
}

core::Result<std::unique_ptr<Child>> Child::start(const std::vector<std::string>& argv,
                                                  const std::string& ready_text,
                                                  int timeout_secs) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0)
    return core::fail(core::ErrorCode::io, std::string("pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // Its own process group, so the whole tree (node spawns children) can be stopped.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::unique_ptr<Child> child(new Child());
  int rc = posix_spawnp(&child->m_pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    child->m_pid = -1;
    return core::fail(core::ErrorCode::not_found, "cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  child->m_out = out[0];
  std::string text;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_secs);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return core::fail(core::ErrorCode::timeout, argv[0] + " never said '" + ready_text + "'; output: " + text);
    pollfd p{child->m_out, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(child->m_out, buf, sizeof buf);
    if (n <= 0) return core::fail(core::ErrorCode::io, argv[0] + " exited before it was ready; output: " + text);
    text.append(buf, static_cast<std::size_t>(n));
    auto at = text.find(ready_text);
    if (at != std::string::npos) {
      auto begin = text.rfind('\n', at);
      auto end = text.find('\n', at);
      child->m_line = text.substr(begin == std::string::npos ? 0 : begin + 1,
                                  end == std::string::npos ? std::string::npos : end - begin - 1);
      // Keep draining so the child never blocks on a full pipe.
      int fd = child->m_out;
      child->m_out = -1;
      std::thread([fd] {
        char sink[4096];
        while (::read(fd, sink, sizeof sink) > 0) {
        }
        ::close(fd);
      }).detach();
      return child;
    }
  }
}

Child::~Child() {
  if (m_pid > 0) {
    ::kill(-m_pid, SIGTERM);
    while (::waitpid(m_pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (m_out >= 0) ::close(m_out);
}

int free_port() { return sandbox::free_loopback_port(); }

SilentListener::SilentListener() {
  m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT(m_fd >= 0 && ::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
         ::listen(m_fd, 16) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len);
  m_port = ntohs(addr.sin_port);
}

SilentListener::~SilentListener() { ::close(m_fd); }

}  // namespace autopod::testing

#include <dirent.h>
#include <sys/inotify.h>

#include "core/fs.hpp"

namespace autopod::testing {

bool wait_for_change(const std::filesystem::path& dir, const std::function<bool()>& done,
                     std::chrono::milliseconds timeout) {
  int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  ::inotify_add_watch(fd, dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool ok = done();
  while (!ok) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    // Also re-check every 250 ms: some state (a process exiting) writes no file.
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 250)));
    char buf[4096];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
    ok = done();
  }
  ::close(fd);
  return ok;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* proc = ::opendir("/proc");
  while (dirent* e = ::readdir(proc)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    auto stat = core::read_file(std::string("/proc/") + e->d_name + "/stat");
    if (!stat) continue;
    auto close = stat->rfind(')');
    if (close == std::string::npos) continue;
    // After ") S " comes the parent pid.
    pid_t ppid = std::atoi(stat->c_str() + close + 4);
    if (ppid == parent) out.push_back(std::atoi(e->d_name));
  }
  ::closedir(proc);
  return out;
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::string out(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : out)
    c = static_cast<char>(rng() & 0xff);
  return out;
}

std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string slurp(const std::filesystem::path& path) {
  auto r = core::read_file(path);
  return r ? *r : std::string();
}

}  // namespace autopod::testing
