// bench-agent: the agent service under load, against the targets.
// 50 generations submitted at once against the ComfyUI fake (20 sampler steps each) and 200 SSE
// subscribers (4 per task) reading raw sockets. Checks that every event reaches every subscriber
// in order, and measures the latency from the fake sending a `progress` frame to a subscriber
// holding the SSE event it caused (target p99 < 20 ms), the agent's peak RSS (target < 64 MiB)
// and its CPU time per delivered event. The agent runs as its own process (argv[1]: autopod).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <latch>
#include <sstream>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/comfy_fake.hpp"

extern char** environ;

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr int k_tasks = 50, k_subscribers = 200, k_steps = 20;

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return -1;
  return fd;
}

std::string request(int port, const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = {}) {
  int fd = connect_to(port);
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " +
                    token + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string all;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) all.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  auto end = all.find("\r\n\r\n");
  return end == std::string::npos ? "" : all.substr(end + 4);
}

struct Received {
  std::uint64_t id;
  std::string event;
  int value;
  std::string step;
  Clock::time_point at;
};

// One subscriber: reads the task's stream to its end over a raw socket.
// `ready` is counted once the stream's header arrived: the agent has registered the subscriber.
std::vector<Received> subscribe(int port, const std::string& token, const std::string& task,
                                std::latch& ready) {
  std::vector<Received> out;
  int fd = connect_to(port);
  std::string req = "GET /v1/tasks/" + task + "/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string buffer, id, event;
  char buf[16384];
  bool counted = false;
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) {
    auto now = Clock::now();
    buffer.append(buf, static_cast<std::size_t>(n));
    if (!counted && buffer.find("\r\n\r\n") != std::string::npos) {
      counted = true;
      ready.count_down();
    }
    for (std::size_t nl; (nl = buffer.find('\n')) != std::string::npos; buffer.erase(0, nl + 1)) {
      std::string line = buffer.substr(0, nl);
      if (line.rfind("id: ", 0) == 0) id = line.substr(4);
      else if (line.rfind("event: ", 0) == 0) event = line.substr(7);
      else if (line.rfind("data: ", 0) == 0) {
        json d = json::parse(line.substr(6));
        out.push_back({std::stoull(id), event, d["progress"]["currentValue"].get<int>(),
                       d["progress"]["currentStep"].get<std::string>(), now});
      }
    }
  }
  ::close(fd);
  return out;
}

long proc_field_kib(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::string(field).size()));
  return -1;
}

std::string read_text(const std::string& path) {
  std::string text;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
    std::fclose(f);
  }
  return text;
}

double cpu_seconds(pid_t pid) {
  std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::vector<std::string> f((std::istream_iterator<std::string>(rest)), {});
  return static_cast<double>(std::stoll(f[11]) + std::stoll(f[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: agent_bench AUTOPOD_BINARY\n");
    return 2;
  }
  autopod::sandbox::ComfyFake fake;
  fake.set_step_delay(std::chrono::milliseconds(5));
  if (!fake.start()) return 1;
  std::mutex frames_mutex;
  std::map<std::pair<std::string, int>, Clock::time_point> frames;  // (prompt, step) -> sent
  fake.on_event_sent([&](const std::string& type, const json& data) {
    if (type != "progress") return;
    std::lock_guard lock(frames_mutex);
    frames[{data.value("prompt_id", ""), data.value("value", 0)}] = Clock::now();
  });
  fake.hold_queue(true);  // every subscriber is listening before the first frame

  auto home = std::filesystem::temp_directory_path() / ("autopod-agent-bench-" + std::to_string(::getpid()));
  int out[2];
  if (::pipe(out) != 0) return 1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  std::vector<std::string> args = {argv[1], "--home", home.string(), "--log-level", "warn", "agent",
                                   "--listen", "127.0.0.1:0", "--url", fake.url()};
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[1], &actions, nullptr, cargs.data(), environ) != 0) return 1;
  ::close(out[1]);
  std::string line;
  for (char c; ::read(out[0], &c, 1) == 1 && c != '\n';) line += c;  // "listening on http://127.0.0.1:PORT"
  if (line.rfind("listening on", 0) != 0) {
    std::fprintf(stderr, "the agent did not start: %s\n", line.c_str());
    return 1;
  }
  int port = std::stoi(line.substr(line.rfind(':') + 1));
  std::string token = read_text((home / "agent.token").string());
  token = token.substr(0, token.find('\n'));

  json wf = json::parse(read_text(AUTOPOD_BENCH_WORKFLOW));
  std::vector<std::string> tasks(k_tasks);
  std::vector<std::thread> posting;
  for (int i = 0; i < k_tasks; ++i)
    posting.emplace_back([&, i] {
      json body = {{"workflow", wf}, {"set", {"KSampler.seed=" + std::to_string(1000 + i)}}};
      tasks[static_cast<std::size_t>(i)] = json::parse(request(port, "POST", "/v1/generations", token, body.dump()))["taskId"];
    });
  for (auto& t : posting) t.join();
  std::vector<std::vector<Received>> seen(k_subscribers);
  std::vector<std::thread> subs;
  std::latch ready(k_subscribers);
  for (int s = 0; s < k_subscribers; ++s)
    subs.emplace_back([&, s] {
      seen[static_cast<std::size_t>(s)] = subscribe(port, token, tasks[static_cast<std::size_t>(s % k_tasks)], ready);
    });
  ready.wait();
  double cpu0 = cpu_seconds(pid);
  auto t0 = Clock::now();
  fake.hold_queue(false);
  for (auto& t : subs) t.join();
  double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu = cpu_seconds(pid) - cpu0;
  long hwm = proc_field_kib(pid, "VmHWM:");

  // Every event to every subscriber, in order, ending with `completed`; latency of sampler steps.
  std::map<std::string, std::string> prompt_of;
  for (const auto& t : tasks) prompt_of[t] = json::parse(request(port, "GET", "/v1/tasks/" + t, token))["result"]["promptId"];
  std::size_t delivered = 0, bad = 0;
  std::vector<double> latency_ms;
  std::map<std::string, std::size_t> events_of;
  for (int s = 0; s < k_subscribers; ++s) {
    const auto& ev = seen[static_cast<std::size_t>(s)];
    const std::string& task = tasks[static_cast<std::size_t>(s % k_tasks)];
    delivered += ev.size();
    for (std::size_t i = 0; i < ev.size(); ++i) bad += ev[i].id != i + 1;
    if (ev.empty() || ev.back().event != "completed") ++bad;
    auto& n = events_of[task];
    if (n && n != ev.size()) ++bad;  // subscribers of one task saw the same events
    n = ev.size();
    std::lock_guard lock(frames_mutex);
    for (const auto& e : ev)
      if (e.event == "progress" && e.step == "Sampling image..." && e.value > 0)
        if (auto f = frames.find({prompt_of[task], e.value}); f != frames.end())
          latency_ms.push_back(std::chrono::duration<double, std::milli>(e.at - f->second).count());
  }
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
  std::filesystem::remove_all(home);

  double p50 = percentile(latency_ms, 0.5), p99 = percentile(latency_ms, 0.99);
  std::printf("agent: %d generations (%d sampler steps each), %d SSE subscribers, %.1f s\n", k_tasks, k_steps,
              k_subscribers, wall);
  std::printf("  events delivered:        %zu (%zu per task), out of order or missing: %zu   [target 0]\n", delivered,
              events_of.empty() ? 0 : events_of.begin()->second, bad);
  std::printf("  frame -> SSE latency:    p50 %.2f ms, p99 %.2f ms over %zu step events   [target p99 < 20 ms]%s\n", p50,
              p99, latency_ms.size(), p99 < 20 ? "" : "  MISSED");
  std::printf("  agent peak RSS:          %.1f MiB   [target < 64 MiB]%s\n", static_cast<double>(hwm) / 1024,
              hwm < 64 * 1024 ? "" : "  MISSED");
  std::printf("  agent CPU per event:     %.1f us (%.2f s CPU for %zu deliveries)\n",
              delivered ? cpu * 1e6 / static_cast<double>(delivered) : 0.0, cpu, delivered);
  return bad == 0 && p99 < 20 && hwm < 64 * 1024 ? 0 : 1;
}
