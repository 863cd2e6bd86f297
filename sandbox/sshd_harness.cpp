#include "sandbox/sshd_harness.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/fs.hpp"
#include "core/process.hpp"
#include "sandbox/tcp_target.hpp"

extern char** environ;

namespace autopod::sandbox {

using core::ErrorCode;
using core::fail;

// Reads sshd's stderr for as long as it runs (so it never blocks on a full pipe), copies it
// to sshd.log and signals when the "Server listening" line has appeared.
struct SshdHarness::Drain {
  std::thread thread;
  std::mutex mutex;
  std::condition_variable cv;
  bool listening = false;
  bool closed = false;
  std::string text;
};

namespace {

std::string find_sshd() {
  for (const char* p : {"/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"})
    if (::access(p, X_OK) == 0) return p;
  return core::find_program("sshd");
}

}  // namespace

core::Result<std::unique_ptr<SshdHarness>> SshdHarness::start(const std::filesystem::path& dir) {
  std::string sshd = find_sshd();
  if (sshd.empty())
    return fail(ErrorCode::not_found, "sshd is not installed",
                "apt-get install openssh-server (the tests start their own sshd on 127.0.0.1)");
  if (core::find_program("ssh-keygen").empty())
    return fail(ErrorCode::not_found, "ssh-keygen is not installed",
                "apt-get install openssh-client");
  TRY(core::ensure_dir(dir, 0700));
  std::unique_ptr<SshdHarness> h(new SshdHarness());
  h->m_dir = std::filesystem::absolute(dir);
  passwd* pw = ::getpwuid(::geteuid());
  h->m_user = pw ? pw->pw_name : "root";
  if (::geteuid() == 0) ::mkdir("/run/sshd", 0755);  // sshd's privilege separation directory

  auto host_key = h->m_dir / "host_ed25519";
  if (!std::filesystem::exists(host_key)) {
    TRY_ASSIGN(auto out, core::run_capture({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                                            host_key.string()}));
    if (out.exit_code != 0) return fail(ErrorCode::io, "ssh-keygen failed: " + out.err);
  }
  { std::ofstream(h->authorized_keys(), std::ios::app); }
  ::chmod(h->authorized_keys().c_str(), 0600);

  for (int attempt = 0; attempt < 5; ++attempt) {
    h->m_port = free_loopback_port();
    std::string config =
        "ListenAddress 127.0.0.1:" + std::to_string(h->m_port) + "\n" +
        "HostKey " + host_key.string() + "\n" +
        "PidFile " + (h->m_dir / "sshd.pid").string() + "\n" +
        "AuthorizedKeysFile " + h->authorized_keys().string() + "\n" +
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\n"
        "AllowStreamLocalForwarding yes\nGatewayPorts no\nX11Forwarding no\nPrintMotd no\n"
        "MaxStartups 200:30:400\nMaxSessions 200\nLogLevel VERBOSE\n"
        "Subsystem sftp internal-sftp\n";
    auto config_path = h->m_dir / "sshd_config";
    TRY(core::write_file_atomic(config_path, config, 0600));

    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0)
      return fail(ErrorCode::io, std::string("pipe: ") + std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    std::vector<std::string> args = {sshd, "-D", "-e", "-f", config_path.string()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, sshd.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(err_pipe[1]);
    if (rc != 0) {
      ::close(err_pipe[0]);
      return fail(ErrorCode::io, "cannot start " + sshd + ": " + std::strerror(rc));
    }
    h->m_pid = pid;
    h->m_drain = std::make_unique<Drain>();
    auto* drain = h->m_drain.get();
    auto log_path = h->log_file();
    int fd = err_pipe[0];
    drain->thread = std::thread([drain, fd, log_path] {
      std::ofstream log(log_path, std::ios::app);
      char buf[4096];
      for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        log.write(buf, n);
        log.flush();
        std::lock_guard lock(drain->mutex);
        if (!drain->listening) {
          drain->text.append(buf, static_cast<std::size_t>(n));
          if (drain->text.find("Server listening on") != std::string::npos) {
            drain->listening = true;
            drain->text.clear();
            drain->cv.notify_all();
          }
        }
      }
      ::close(fd);
      std::lock_guard lock(drain->mutex);
      drain->closed = true;
      drain->cv.notify_all();
    });
    std::unique_lock lock(drain->mutex);
    drain->cv.wait_for(lock, std::chrono::seconds(20),
                       [&] { return drain->listening || drain->closed; });
    if (drain->listening) return h;
    std::string said = drain->text;
    lock.unlock();
    ::kill(pid, SIGTERM);
    ::waitpid(pid, nullptr, 0);
    h->m_pid = -1;
    drain->thread.join();
    h->m_drain.reset();
    if (said.find("Address already in use") == std::string::npos &&
        said.find("Bind to port") == std::string::npos)
      return fail(ErrorCode::io, "sshd did not start: " + said,
                  "see " + log_path.string());
  }
  return fail(ErrorCode::io, "sshd found no free port after 5 tries");
}

SshdHarness::~SshdHarness() {
  if (m_pid > 0) {
    ::kill(m_pid, SIGTERM);
    while (::waitpid(m_pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  if (m_drain && m_drain->thread.joinable()) m_drain->thread.join();
}

core::Status SshdHarness::authorize(const std::string& public_key_line) {
  std::ofstream keys(authorized_keys(), std::ios::app);
  keys << public_key_line << "\n";
  if (!keys) return fail(ErrorCode::io, "cannot write " + authorized_keys().string());
  return {};
}

std::vector<std::string> SshdHarness::ssh_argv(const std::filesystem::path& key) const {
  return {"ssh", "-i", key.string(), "-p", std::to_string(m_port),
          "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
          "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
          "-o", "LogLevel=ERROR", m_user + "@127.0.0.1"};
}

}  // namespace autopod::sandbox
