// `models push` benchmark, measured side by side in one run through one private sshd on
// 127.0.0.1: 1 GiB pushed by autopod (libssh2 1.10 SFTP; its time includes the local sha256
// and the pod's, both while sending, and the record) vs `scp` of the same file (OpenSSH 9.2,
// SFTP protocol, no verification) with its default cipher and with libssh2's aes128-ctr +
// hmac-sha2-256. Runs alternate; medians of 5. Also the client's CPU seconds per GiB (this
// process for push, scp and its ssh for scp), which a busy machine disturbs less than times.
// Target: push >= 0.5 x scp's throughput.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/process.hpp"
#include "core/ssh_key.hpp"
#include "core/ssh_session.hpp"
#include "models/push.hpp"
#include "sandbox/sshd_harness.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr std::int64_t k_size = 1LL << 30;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// CPU seconds (user + system) used so far by this process or by its waited-for children.
double cpu_seconds(int who) {
  rusage ru{};
  ::getrusage(who, &ru);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

struct PushTimes {
  double total = -1, send = -1, cpu = -1;
};

PushTimes push_once(const autopod::core::SshTarget& target,
                    const fs::path& local,
                    const fs::path& root) {
  fs::remove_all(root / "loras");
  double cpu = cpu_seconds(RUSAGE_SELF);
  auto t = Clock::now();
  auto session = autopod::core::SshSession::connect(target);
  if (!session) {
    std::fprintf(stderr, "connect failed: %s\n", session.error().message.c_str());
    return {};
  }
  PushTimes out;
  autopod::models::PushRequest req{local, root.string(), "loras", ""};
  auto r = autopod::models::push_file(**session, req, [&](const autopod::models::PushProgress& p) {
    if (p.phase == autopod::models::PushPhase::verifying && out.send < 0)
      out.send = since(t);
  });
  if (!r) {
    std::fprintf(stderr, "push failed: %s\n", r.error().message.c_str());
    return {};
  }
  out.total = since(t);
  out.cpu = cpu_seconds(RUSAGE_SELF) - cpu;
  return out;
}

struct ScpTimes {
  double total = -1, cpu = -1;
};

ScpTimes scp_once(const std::vector<std::string>& argv, const fs::path& dest) {
  fs::remove(dest);
  double cpu = cpu_seconds(RUSAGE_CHILDREN);
  auto t = Clock::now();
  auto r = autopod::core::run_capture(argv);
  double secs = since(t);
  if (!r || r->exit_code != 0 || fs::file_size(dest) != static_cast<std::uintmax_t>(k_size)) {
    std::fprintf(stderr, "scp failed: %s\n", r ? r->err.c_str() : "");
    return {};
  }
  return {secs, cpu_seconds(RUSAGE_CHILDREN) - cpu};
}

}  // namespace

int main() {
  fs::path dir = fs::temp_directory_path() / ("autopod-push-bench-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto sshd = autopod::sandbox::SshdHarness::start(dir / "sshd");
  auto key = autopod::core::ensure_ssh_key(dir / "id_ed25519", true);
  if (!sshd || !key || !(*sshd)->authorize(key->public_key)) {
    std::fprintf(stderr, "cannot start the private sshd (needs openssh-server, ssh-keygen)\n");
    return 1;
  }
  fs::path local = dir / "bench.safetensors", root = dir / "pod-models";
  fs::create_directories(root);
  {  // random bytes (16 MiB repeated), so nothing on the way can compress them
    std::string block(16 << 20, '\0');
    std::mt19937_64 rng(1);
    for (std::size_t i = 0; i + 8 <= block.size(); i += 8) {
      auto v = rng();
      std::memcpy(&block[i], &v, 8);
    }
    std::ofstream out(local, std::ios::binary);
    for (std::int64_t n = 0; n < k_size; n += static_cast<std::int64_t>(block.size()))
      out << block;
  }
  autopod::core::SshTarget target;
  target.endpoint = {"127.0.0.1", (*sshd)->port(), (*sshd)->user(), key->private_key};
  target.known_hosts = dir / "known_hosts";
  auto scp_argv = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {"scp", "-q",
                                     "-i",  key->private_key.string(),
                                     "-P",  std::to_string((*sshd)->port()),
                                     "-o",  "BatchMode=yes",
                                     "-o",  "UserKnownHostsFile=" + target.known_hosts.string(),
                                     "-o",  "StrictHostKeyChecking=accept-new"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    argv.insert(argv.end(),
                {local.string(), (*sshd)->user() + "@127.0.0.1:" + (dir / "scp.out").string()});
    return argv;
  };
  std::vector<double> push_total, push_send, push_cpu, scp_default, scp_cpu, scp_ctr;
  for (int rep = 0; rep < 5; ++rep) {
    auto p = push_once(target, local, root);
    push_total.push_back(p.total), push_send.push_back(p.send), push_cpu.push_back(p.cpu);
    auto d = scp_once(scp_argv({}), dir / "scp.out");
    scp_default.push_back(d.total), scp_cpu.push_back(d.cpu);
    scp_ctr.push_back(
        scp_once(scp_argv({"-c", "aes128-ctr", "-o", "MACs=hmac-sha2-256"}), dir / "scp.out")
            .total);
    std::printf("  run %d: push %.2f s (sent at %.2f s), scp %.2f s, scp aes128-ctr %.2f s\n", rep + 1,
                p.total, p.send, d.total, scp_ctr.back());
  }
  auto mbs = [](double secs) { return secs > 0 ? static_cast<double>(k_size) / secs / 1e6 : 0; };
  double pt = median(push_total), ps = median(push_send), sd = median(scp_default),
         sc = median(scp_ctr);
  std::printf("push 1 GiB through one sshd on 127.0.0.1 (medians of 5, alternating)\n");
  std::printf("  scp, default cipher (chacha20-poly1305)       %6.2f s  %6.0f MB/s  client %.2f CPU-s\n",
              sd, mbs(sd), median(scp_cpu));
  std::printf("  scp -c aes128-ctr, hmac-sha2-256 (libssh2's)  %6.2f s  %6.0f MB/s\n", sc, mbs(sc));
  std::printf("  autopod push, sent                            %6.2f s  %6.0f MB/s\n", ps, mbs(ps));
  std::printf("  autopod push, verified on both ends + record  %6.2f s  %6.0f MB/s  client %.2f CPU-s\n",
              pt, mbs(pt), median(push_cpu));
  std::printf("ratio push / scp (default): %.2fx (sending only: %.2fx); target >= 0.50x\n", sd / pt,
              sd / ps);
  std::printf("ratio push / scp (same cipher): %.2fx (sending only: %.2fx)\n", sc / pt, sc / ps);
  fs::remove_all(dir);
  return 0;
}
