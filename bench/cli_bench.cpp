// Median wall time of `autopod --version` and `autopod ls --json` (against the sandbox with a
// few pods), over 20 runs each after one warm-up. Target: both under 50 ms.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "sandbox/runpod_sandbox.hpp"

extern char** environ;

namespace {

double run_ms(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  for (char** e = environ; *e; ++e) envp.push_back(*e);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), envp.data()) != 0) {
    std::perror("spawn");
    std::exit(1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  auto t1 = std::chrono::steady_clock::now();
  posix_spawn_file_actions_destroy(&actions);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "%s failed\n", argv[1].c_str());
    std::exit(1);
  }
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PATH_TO_AUTOPOD\n", argv[0]);
    return 2;
  }
  std::string autopod = argv[1];
  autopod::sandbox::SandboxOptions o;
  o.provisioning_time = o.starting_time = std::chrono::milliseconds(0);
  autopod::sandbox::RunpodSandbox server(o);
  if (!server.start()) return 1;
  char home[] = "/tmp/autopod-bench-XXXXXX";
  if (!mkdtemp(home)) return 1;
  std::vector<std::string> env = {std::string("AUTOPOD_HOME=") + home,
                                  "RUNPOD_API_URL=" + server.url(), "RUNPOD_API_KEY=bench-key"};
  for (int i = 0; i < 5; ++i)
    run_ms({autopod, "connect", "--name", "bench" + std::to_string(i), "--no-wait"}, env);

  constexpr int k_runs = 20;
  constexpr double k_target_ms = 50;
  bool ok = true;
  std::printf("%-22s %10s %10s %10s %10s\n", "command", "median ms", "min ms", "max ms", "target");
  for (const auto& args : std::vector<std::vector<std::string>>{{autopod, "--version"},
                                                                {autopod, "ls", "--json"}}) {
    run_ms(args, env);  // warm-up: page cache, dynamic loader
    std::vector<double> times;
    for (int i = 0; i < k_runs; ++i) times.push_back(run_ms(args, env));
    double m = median(times);
    ok = ok && m < k_target_ms;
    std::string name = "autopod " + args[1] + (args.size() > 2 ? " " + args[2] : "");
    std::printf("%-22s %10.2f %10.2f %10.2f %7s %s (%.2fx of target)\n", name.c_str(), m,
                *std::min_element(times.begin(), times.end()),
                *std::max_element(times.begin(), times.end()), "<50ms", m < k_target_ms ? "ok" : "SLOW",
                m / k_target_ms);
  }
  std::string rm = std::string("rm -rf ") + home;
  if (std::system(rm.c_str()) != 0) return 1;
  return ok ? 0 : 1;
}
