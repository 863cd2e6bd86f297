#include "core/daemon.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/fs.hpp"

extern char** environ;

namespace autopod::core {

Result<std::uint64_t> process_start_time(pid_t pid) {
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return fail(ErrorCode::not_found, "no process " + std::to_string(pid));
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  auto close = stat->rfind(')');
  if (close == std::string::npos) return fail(ErrorCode::protocol, "unreadable /proc stat");
  std::size_t pos = close + 2;
  for (int field = 3; field < 22; ++field) {
    pos = stat->find(' ', pos);
    if (pos == std::string::npos) return fail(ErrorCode::protocol, "short /proc stat");
    ++pos;
  }
  return std::stoull(stat->substr(pos, stat->find(' ', pos) - pos));
}

bool process_alive(pid_t pid, std::uint64_t start_time) {
  if (pid <= 0) return false;
  auto t = process_start_time(pid);
  if (!t || *t != start_time) return false;
  // A zombie has exited even though /proc still lists it.
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat ? stat->rfind(')') : std::string::npos;
  return close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] != 'Z';
}

Status terminate_process(pid_t pid, std::chrono::milliseconds timeout) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return errno == ESRCH ? Status{} : fail(ErrorCode::io, std::string("pidfd_open: ") + std::strerror(errno));
  if (::kill(pid, SIGTERM) != 0 && errno == ESRCH) {
    ::close(pidfd);
    return {};
  }
  pollfd p{pidfd, POLLIN, 0};  // readable once the process has exited
  int rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (rc == 0) {
    ::kill(pid, SIGKILL);
    ::poll(&p, 1, 5000);
  }
  ::close(pidfd);
  return {};
}

Result<std::string> spawn_daemon(const std::vector<std::string>& argv, const std::string& input,
                                 std::chrono::milliseconds timeout) {
  int in[2], ready[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(ready, O_CLOEXEC) != 0)
    return fail(ErrorCode::io, std::string("pipe: ") + std::strerror(errno));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t child = ::fork();
  if (child < 0) return fail(ErrorCode::io, std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    // Only async-signal-safe calls from here: the parent may have threads.
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(in[0], 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::dup2(ready[1], 3);  // dup2 clears close-on-exec on the copy
    ::execve(args[0], args.data(), environ);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(ready[1]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  // Feed the daemon its input, then wait for its report on the readiness pipe.
  ::signal(SIGPIPE, SIG_IGN);
  std::size_t off = 0;
  while (off < input.size()) {
    ssize_t n = ::write(in[1], input.data() + off, input.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  ::close(in[1]);
  std::string report;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      ::close(ready[0]);
      return fail(ErrorCode::timeout, "the daemon did not report readiness in time");
    }
    pollfd p{ready[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(ready[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    report.append(buf, static_cast<std::size_t>(n));
  }
  ::close(ready[0]);
  return report;
}

void report_readiness(const std::string& report) {
  std::size_t off = 0;
  while (off < report.size()) {
    ssize_t n = ::write(3, report.data() + off, report.size() - off);
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  ::close(3);
}

}  // namespace autopod::core
