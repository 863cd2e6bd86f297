// autopod's tunnel daemon side by side with `ssh -N -L` through the same private sshd:
//   loopback: 1 GiB each way, 2,000 round trips of 64 bytes, 32 concurrent 32 MiB streams;
//   WAN-like: a relay in front of sshd delays every byte 25 ms each way (50 ms round trip):
//             256 MiB each way, 200 round trips.
// Prints autopod / ssh ratios against the targets, the daemon's peak RSS and idle CPU.
// As in ../shared/reference/tunnel-baseline.sh, the local side (client, ssh or daemon) runs on
// CPU 0 and the remote side (sshd, target, relay) on CPU 1.
// usage: tunnel_bench PATH_TO_AUTOPOD_TUNNELD [--quick]

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "core/daemon.hpp"
#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/ssh_key.hpp"
#include "sandbox/sshd_harness.hpp"
#include "sandbox/tcp_target.hpp"
#include "tunnel/tunnel.hpp"

using namespace autopod;
using Clock = std::chrono::steady_clock;

namespace {

void pin(pid_t pid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % std::max(1u, std::thread::hardware_concurrency()), &set);
  sched_setaffinity(pid, sizeof set, &set);
}

void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T must(core::Result<T> r, const char* what) {
  if (!r) die(std::string(what) + ": " + r.error().describe());
  return std::move(r).value();
}

// ---- the WAN relay: every byte waits `delay` in each direction ------------------------------

class Relay {
 public:
  Relay(int upstream_port, std::chrono::milliseconds delay) : m_up(upstream_port), m_delay(delay) {
    auto listener = must(sandbox::listen_loopback(64), "relay listen");
    m_fd = listener.fd;
    m_port = listener.port;
    std::thread([this] { accept_loop(); }).detach();
  }
  int port() const { return m_port; }

 private:
  struct Pipe {
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::pair<Clock::time_point, std::string>> q;  // empty string: EOF
  };

  void accept_loop() {
    for (;;) {
      int c = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      auto u = sandbox::connect_tcp(m_up);
      if (!u) {
        ::close(c);
        continue;
      }
      start_direction(c, *u);
      start_direction(*u, c);
    }
  }

  void start_direction(int from, int to) {
    auto pipe = std::make_shared<Pipe>();
    std::thread([this, pipe, from] {
      std::vector<char> buf(1 << 20);
      for (;;) {
        ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
        std::lock_guard lock(pipe->m);
        pipe->q.emplace_back(Clock::now() + m_delay, n > 0 ? std::string(buf.data(), n) : std::string());
        pipe->cv.notify_one();
        if (n <= 0) return;
      }
    }).detach();
    std::thread([pipe, to] {
      for (;;) {
        std::unique_lock lock(pipe->m);
        pipe->cv.wait(lock, [&] { return !pipe->q.empty(); });
        auto due = pipe->q.front().first;
        pipe->cv.wait_until(lock, due, [] { return false; });
        std::string data = std::move(pipe->q.front().second);
        pipe->q.pop_front();
        lock.unlock();
        if (data.empty()) {
          ::shutdown(to, SHUT_WR);
          return;
        }
        std::size_t off = 0;
        while (off < data.size()) {
          ssize_t n = ::send(to, data.data() + off, data.size() - off, MSG_NOSIGNAL);
          if (n <= 0) return;
          off += static_cast<std::size_t>(n);
        }
      }
    }).detach();
  }

  int m_up, m_port = 0, m_fd = -1;
  std::chrono::milliseconds m_delay;
};

// ---- process figures ------------------------------------------------------------------------

long status_kib(pid_t pid, const char* field) {
  auto text = core::read_file("/proc/" + std::to_string(pid) + "/status");
  if (!text) return -1;
  auto at = text->find(field);
  return at == std::string::npos ? -1 : std::atol(text->c_str() + at + std::strlen(field));
}

double cpu_seconds(pid_t pid) {
  auto stat = core::read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return -1;
  std::size_t pos = stat->rfind(')') + 2;
  for (int field = 3; field < 14; ++field) pos = stat->find(' ', pos) + 1;
  unsigned long utime = 0, stime = 0;
  std::sscanf(stat->c_str() + pos, "%lu %lu", &utime, &stime);
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

pid_t find_process(const std::string& needle) {
  DIR* proc = ::opendir("/proc");
  pid_t found = -1;
  while (dirent* e = ::readdir(proc)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    auto cmd = core::read_file(std::string("/proc/") + e->d_name + "/cmdline");
    if (!cmd) continue;
    std::replace(cmd->begin(), cmd->end(), '\0', ' ');
    if (cmd->find(needle) != std::string::npos && cmd->rfind("ssh ", 0) == 0) found = std::atoi(e->d_name);
  }
  ::closedir(proc);
  return found;
}

// ---- workloads ------------------------------------------------------------------------------

double mb_per_s(std::uint64_t bytes, Clock::duration d) {
  return static_cast<double>(bytes) / 1e6 / std::chrono::duration<double>(d).count();
}

double bulk(int port, std::uint64_t bytes, bool push) {
  auto t0 = Clock::now();
  auto st = push ? sandbox::push_bytes(port, bytes) : sandbox::pull_bytes(port, bytes);
  if (!st) die(std::string(push ? "push" : "pull") + ": " + st.error().message);
  return mb_per_s(bytes, Clock::now() - t0);
}

struct Rtt {
  double mean_us, p50_us, p99_us;
};

Rtt round_trips(int port, int n) {
  int fd = must(sandbox::connect_tcp(port), "rtt connect");
  char cmd = 'E';
  if (::send(fd, &cmd, 1, 0) != 1) die("rtt");
  char msg[64], back[64];
  std::memset(msg, 'r', sizeof msg);
  // One untimed exchange first: the first request after the 1-byte command meets Nagle on sshd's
  // connection to the target and a 40 ms delayed ACK, for ssh -L and autopod alike.
  if (::send(fd, msg, sizeof msg, 0) != static_cast<ssize_t>(sizeof msg) ||
      ::recv(fd, back, sizeof back, MSG_WAITALL) != static_cast<ssize_t>(sizeof back))
    die("rtt warm-up");
  std::vector<double> us;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    if (::send(fd, msg, sizeof msg, 0) != static_cast<ssize_t>(sizeof msg)) die("rtt send");
    if (::recv(fd, back, sizeof back, MSG_WAITALL) != static_cast<ssize_t>(sizeof back)) die("rtt recv");
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  ::close(fd);
  if (std::getenv("BENCH_DEBUG")) {
    for (int i = 0; i < 6 && i < n; ++i) std::printf("%.0f ", us[i]);
    std::printf("(first round trips, us)\n");
  }
  std::sort(us.begin(), us.end());
  return {std::accumulate(us.begin(), us.end(), 0.0) / n, us[us.size() / 2], us[us.size() * 99 / 100]};
}

struct Concurrent {
  double aggregate_mb_s, slowest_s, median_s;
};

Concurrent concurrent(int port, int streams, std::uint64_t bytes) {
  auto t0 = Clock::now();
  std::vector<std::future<double>> runs;
  for (int i = 0; i < streams; ++i)
    runs.push_back(std::async(std::launch::async, [=] {
      auto s0 = Clock::now();
      auto st = sandbox::push_bytes(port, bytes);
      if (!st) die("concurrent: " + st.error().message);
      return std::chrono::duration<double>(Clock::now() - s0).count();
    }));
  std::vector<double> secs;
  for (auto& r : runs) secs.push_back(r.get());
  double total = mb_per_s(bytes * streams, Clock::now() - t0);
  std::sort(secs.begin(), secs.end());
  return {total, secs.back(), secs[secs.size() / 2]};
}

// ---- the two tunnels ------------------------------------------------------------------------

struct Tunnels {
  int ssh_port = 0, autopod_port = 0;
  pid_t ssh_pid = -1, autopod_pid = -1;
};

Tunnels start_tunnels(const std::string& autopod, const std::filesystem::path& home,
                      const std::filesystem::path& work, int ssh_server_port,
                      const std::string& user, int target_port) {
  Tunnels t;
  // Pin the host key for ssh as autopod would (trust on first use), from the harness's key.
  auto host_pub = must(core::read_file(work / "sshd" / "host_ed25519.pub"), "host key");
  auto kh = work / ("known_hosts_" + std::to_string(ssh_server_port));
  (void)core::write_file_atomic(kh, "[127.0.0.1]:" + std::to_string(ssh_server_port) + " " + host_pub, 0600);
  t.ssh_port = sandbox::free_loopback_port();
  std::string forward = "127.0.0.1:" + std::to_string(t.ssh_port) + ":127.0.0.1:" + std::to_string(target_port);
  // -f backgrounds ssh only once the forward is up: its exit is the readiness signal.
  auto ssh = core::run_capture({"ssh", "-F", "/dev/null", "-f", "-N", "-o", "BatchMode=yes",
                                "-o", "ExitOnForwardFailure=yes", "-o", "StrictHostKeyChecking=yes",
                                "-o", "UserKnownHostsFile=" + kh.string(), "-o", "ServerAliveInterval=15",
                                "-i", (home / "id_ed25519").string(), "-p", std::to_string(ssh_server_port),
                                "-L", forward, user + "@127.0.0.1"});
  if (!ssh || ssh->exit_code != 0) die("ssh -L failed: " + (ssh ? ssh->err : ssh.error().message));
  t.ssh_pid = find_process(forward);
  if (t.ssh_pid < 0) die("cannot find the ssh -L process");

  tunnel::TunnelManager manager(core::Home(home), {autopod});
  tunnel::TunnelSpec spec;
  spec.pod_id = "bench-" + std::to_string(ssh_server_port);
  spec.pod_name = spec.pod_id;
  spec.ssh = {"127.0.0.1", ssh_server_port, user, home / "id_ed25519"};
  spec.log_level = "warn";
  t.autopod_port = sandbox::free_loopback_port();
  spec.forwards = {{"127.0.0.1", t.autopod_port, "127.0.0.1", target_port}};
  auto info = must(manager.start(spec), "autopod tunnel");
  t.autopod_pid = info.pid;
  pin(t.ssh_pid, 0);
  pin(t.autopod_pid, 0);
  return t;
}

void stop_tunnels(const Tunnels& t) {
  (void)core::terminate_process(t.ssh_pid, std::chrono::seconds(5));
  (void)core::terminate_process(t.autopod_pid, std::chrono::seconds(5));
}

int g_failures = 0;
int g_reps = 3;

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Runs `measure(port)` g_reps times for each tunnel, alternating so drift hits both alike;
// returns the medians {autopod, ssh}.
template <typename F>
std::pair<double, double> paired(const Tunnels& t, F measure) {
  std::vector<double> a, b;
  for (int i = 0; i < g_reps; ++i) {
    a.push_back(measure(t.autopod_port));
    b.push_back(measure(t.ssh_port));
  }
  return {median_of(a), median_of(b)};
}

void row(const char* what, double autopod, double ssh, const char* unit, double target, bool higher_is_better) {
  double ratio = autopod / ssh;
  bool ok = higher_is_better ? ratio >= target : ratio <= target;
  if (!ok) ++g_failures;
  std::printf("%-34s %12.1f %12.1f %-6s %7.2fx   %s %.2fx  %s\n", what, autopod, ssh, unit, ratio,
              higher_is_better ? ">=" : "<=", target, ok ? "ok" : "MISSED");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: tunnel_bench PATH_TO_AUTOPOD_TUNNELD [--quick]");
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string autopod = argv[1];
  bool quick = argc > 2 && std::string(argv[2]) == "--quick";
  std::uint64_t loop_bulk = quick ? 128ull << 20 : 1ull << 30;
  std::uint64_t wan_bulk = quick ? 32ull << 20 : 256ull << 20;
  int loop_rtts = 2000, wan_rtts = quick ? 40 : 200;
  if (quick) g_reps = 1;
  std::uint64_t conc_bytes = quick ? 4ull << 20 : 32ull << 20;

  char tmpl[] = "/tmp/autopod-tunnel-bench-XXXXXX";
  if (!::mkdtemp(tmpl)) die("mkdtemp");
  std::filesystem::path work = tmpl, home = work / "home";

  // The remote side lives in a child process on CPU 1: the target service and the relay.
  // Two pipes: one pipe read at both ends could hand the parent its own write.
  int to_parent[2], to_child[2];
  if (::pipe(to_parent) != 0 || ::pipe(to_child) != 0) die("pipe");
  pid_t remote = ::fork();
  if (remote == 0) {
    pin(0, 1);
    sandbox::TcpTarget target;
    if (!target.start()) ::_exit(1);
    int p = target.port();
    if (::write(to_parent[1], &p, sizeof p) != sizeof p) ::_exit(1);
    int sshd_port = 0;
    if (::read(to_child[0], &sshd_port, sizeof sshd_port) != sizeof sshd_port) ::_exit(1);
    Relay relay(sshd_port, std::chrono::milliseconds(25));
    int rp = relay.port();
    if (::write(to_parent[1], &rp, sizeof rp) != sizeof rp) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  int target_port = 0;
  if (::read(to_parent[0], &target_port, sizeof target_port) != sizeof target_port) die("target");
  pin(0, 0);

  auto sshd = must(sandbox::SshdHarness::start(work / "sshd"), "sshd");
  pin(sshd->pid(), 1);
  int sp = sshd->port();
  if (::write(to_child[1], &sp, sizeof sp) != sizeof sp) die("pipe");
  int relay_port = 0;
  if (::read(to_parent[0], &relay_port, sizeof relay_port) != sizeof relay_port) die("relay");
  auto key = must(core::ensure_ssh_key(home / "id_ed25519", true), "key");
  if (!sshd->authorize(key.public_key)) die("authorize");

  std::printf("autopod tunnel vs ssh -N -L (OpenSSH defaults) through one sshd; MB = 10^6 bytes\n\n");
  std::printf("%-34s %12s %12s %-6s %8s   %s\n", "figure", "autopod", "ssh -L", "unit", "ratio", "target");

  // Loopback.
  Tunnels lo = start_tunnels(autopod, home, work, sshd->port(), sshd->user(), target_port);
  double idle0_a = cpu_seconds(lo.autopod_pid), idle0_s = cpu_seconds(lo.ssh_pid);
  std::this_thread::sleep_for(std::chrono::seconds(quick ? 2 : 10));  // measuring idleness itself
  double idle_a = (cpu_seconds(lo.autopod_pid) - idle0_a) * 1000;
  double idle_s = (cpu_seconds(lo.ssh_pid) - idle0_s) * 1000;
  if (std::getenv("BENCH_DEBUG")) {
    round_trips(target_port, 20);
    round_trips(lo.autopod_port, 20);
    round_trips(lo.ssh_port, 20);
  }
  auto push = paired(lo, [&](int port) { return bulk(port, loop_bulk, true); });
  auto pull = paired(lo, [&](int port) { return bulk(port, loop_bulk, false); });
  auto rtt = paired(lo, [&](int port) { return round_trips(port, loop_rtts).mean_us; });
  auto rtt50 = paired(lo, [&](int port) { return round_trips(port, loop_rtts).p50_us; });
  auto rtt99 = paired(lo, [&](int port) { return round_trips(port, loop_rtts).p99_us; });
  Rtt rtt_d = round_trips(target_port, loop_rtts);
  std::vector<double> agg_a, agg_s, spread_a_v, spread_s_v;
  for (int i = 0; i < g_reps; ++i) {
    Concurrent a = concurrent(lo.autopod_port, 32, conc_bytes);
    Concurrent b = concurrent(lo.ssh_port, 32, conc_bytes);
    agg_a.push_back(a.aggregate_mb_s);
    agg_s.push_back(b.aggregate_mb_s);
    spread_a_v.push_back(a.slowest_s / a.median_s);
    spread_s_v.push_back(b.slowest_s / b.median_s);
  }
  std::printf("-- loopback (medians of %d runs each, alternating)\n", g_reps);
  row("bulk to pod (push)", push.first, push.second, "MB/s", 0.45, true);
  row("bulk from pod (pull)", pull.first, pull.second, "MB/s", 0.45, true);
  row("round trip, mean", rtt.first, rtt.second, "us", 1.10, false);
  std::printf("%-34s %12.1f %12.1f %-6s (direct, no tunnel: %.1f us)\n", "round trip, p50",
              rtt50.first, rtt50.second, "us", rtt_d.p50_us);
  std::printf("%-34s %12.1f %12.1f %-6s\n", "round trip, p99", rtt99.first, rtt99.second, "us");
  row("32 streams, aggregate", median_of(agg_a), median_of(agg_s), "MB/s", 0.45, true);
  double spread_a = median_of(spread_a_v), spread_s = median_of(spread_s_v);
  bool spread_ok = spread_a <= 1.5;
  if (!spread_ok) ++g_failures;
  std::printf("%-34s %12.2f %12.2f %-6s %8s   <= 1.50x  %s\n", "32 streams, slowest / median",
              spread_a, spread_s, "x", "", spread_ok ? "ok" : "MISSED");
  long rss_a = status_kib(lo.autopod_pid, "VmHWM:"), rss_s = status_kib(lo.ssh_pid, "VmHWM:");
  stop_tunnels(lo);

  // WAN-like: the same sshd behind a relay adding 25 ms each way.
  Tunnels wan = start_tunnels(autopod, home, work, relay_port, sshd->user(), target_port);
  auto wpush = paired(wan, [&](int port) { return bulk(port, wan_bulk, true); });
  auto wpull = paired(wan, [&](int port) { return bulk(port, wan_bulk, false); });
  auto wrtt = paired(wan, [&](int port) { return round_trips(port, wan_rtts).mean_us / 1000; });
  std::printf("-- WAN-like (25 ms each way; medians of %d runs each)\n", g_reps);
  row("bulk to pod (push)", wpush.first, wpush.second, "MB/s", 0.9, true);
  row("bulk from pod (pull)", wpull.first, wpull.second, "MB/s", 2.0, true);
  row("round trip, mean", wrtt.first, wrtt.second, "ms", 1.05, false);
  rss_a = std::max(rss_a, status_kib(wan.autopod_pid, "VmHWM:"));
  rss_s = std::max(rss_s, status_kib(wan.ssh_pid, "VmHWM:"));
  stop_tunnels(wan);

  std::printf("-- the daemon\n");
  bool rss_ok = rss_a < 16 * 1024, idle_ok = idle_a < 10;
  g_failures += !rss_ok + !idle_ok;
  std::printf("%-34s %12.1f %12.1f %-6s %8s   < 16 MiB  %s\n", "peak RSS", rss_a / 1024.0, rss_s / 1024.0, "MiB", "", rss_ok ? "ok" : "MISSED");
  std::printf("%-34s %12.1f %12.1f %-6s %8s   < 10 ms   %s\n", quick ? "idle CPU over 2 s" : "idle CPU over 10 s", idle_a, idle_s, "ms", "", idle_ok ? "ok" : "MISSED");

  ::kill(remote, SIGKILL);
  ::waitpid(remote, nullptr, 0);
  sshd.reset();
  std::error_code ec;
  std::filesystem::remove_all(work, ec);
  std::printf("\n%s\n", g_failures ? "some targets MISSED" : "all targets met");
  return g_failures ? 1 : 0;
}
