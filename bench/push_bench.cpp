// `models push` benchmark, measured side by side in one run through one private sshd on
// 127.0.0.1: 1 GiB pushed by autopod (libssh2 1.10 SFTP; its time includes the local sha256
// while sending, sha256sum on the pod and the record) vs `scp` of the same file (OpenSSH 9.2,
// SFTP protocol, no verification) with its default cipher and with libssh2's aes128-ctr +
// hmac-sha2-256. Runs alternate; medians of 3. Target: push >= 0.5 x scp's throughput.

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

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

struct PushTimes {
  double total = -1, send = -1;
};

PushTimes push_once(const autopod::core::SshTarget& target,
                    const fs::path& local,
                    const fs::path& root) {
  fs::remove_all(root / "loras");
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
  return out;
}

double scp_once(const std::vector<std::string>& argv, const fs::path& dest) {
  fs::remove(dest);
  auto t = Clock::now();
  auto r = autopod::core::run_capture(argv);
  double secs = since(t);
  if (!r || r->exit_code != 0 || fs::file_size(dest) != static_cast<std::uintmax_t>(k_size)) {
    std::fprintf(stderr, "scp failed: %s\n", r ? r->err.c_str() : "");
    return -1;
  }
  return secs;
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
  std::vector<double> push_total, push_send, scp_default, scp_ctr;
  for (int rep = 0; rep < 3; ++rep) {
    auto p = push_once(target, local, root);
    push_total.push_back(p.total), push_send.push_back(p.send);
    scp_default.push_back(scp_once(scp_argv({}), dir / "scp.out"));
    scp_ctr.push_back(
        scp_once(scp_argv({"-c", "aes128-ctr", "-o", "MACs=hmac-sha2-256"}), dir / "scp.out"));
  }
  auto mbs = [](double secs) { return secs > 0 ? static_cast<double>(k_size) / secs / 1e6 : 0; };
  double pt = median(push_total), ps = median(push_send), sd = median(scp_default),
         sc = median(scp_ctr);
  std::printf("push 1 GiB through one sshd on 127.0.0.1 (medians of 3, alternating)\n");
  std::printf("  scp, default cipher (chacha20-poly1305)       %6.2f s  %6.0f MB/s\n", sd, mbs(sd));
  std::printf("  scp -c aes128-ctr, hmac-sha2-256 (libssh2's)  %6.2f s  %6.0f MB/s\n", sc, mbs(sc));
  std::printf("  autopod push, sent                            %6.2f s  %6.0f MB/s\n", ps, mbs(ps));
  std::printf("  autopod push, + sha256 on the pod + record    %6.2f s  %6.0f MB/s\n", pt, mbs(pt));
  std::printf("ratio push / scp (default): %.2fx (sending only: %.2fx); target >= 0.50x\n", sd / pt,
              sd / ps);
  std::printf("ratio push / scp (same cipher): %.2fx (sending only: %.2fx)\n", sc / pt, sc / ps);
  fs::remove_all(dir);
  return 0;
}
