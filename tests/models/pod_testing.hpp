#pragma once
// The pod path as the CLI drives it: the harness's real sshd plays the pod (its volume a temp
// dir, reached with the OpenSSH client), the pod-side python program runs there, and the hub and
// storage fakes answer on loopback.

#include <chrono>
#include <memory>
#include <thread>

#include "core/process.hpp"
#include "core/ssh_key.hpp"
#include "models/pod.hpp"
#include "sandbox/sshd_harness.hpp"
#include "tests/harness/harness.hpp"
#include "tests/models/models_testing.hpp"

namespace autopod::testing {

struct SshPod {
  TempDir dir;
  std::unique_ptr<sandbox::SshdHarness> sshd;
  std::filesystem::path root = dir / "ComfyUI" / "models";
  models::PodExec exec;

  SshPod() {
    auto started = sandbox::SshdHarness::start(dir / "sshd");
    EXPECT_TRUE(started) << started.error().describe();
    if (!started)
      return;
    sshd = std::move(started).value();
    auto key = core::ensure_ssh_key(dir / "id_ed25519", true);
    EXPECT_TRUE(key) << key.error().describe();
    if (!key)
      return;
    EXPECT_TRUE(sshd->authorize(key->public_key));
    auto argv = sshd->ssh_argv(key->private_key);
    exec = [argv](const std::string& command, const std::string& input) {
      auto full = argv;
      full.push_back(command);
      return core::run_capture(full, input);
    };
  }

  std::string root_str() const { return root.string(); }

  core::Result<models::SyncPlan> plan(const models::Manifest& manifest,
                                      models::Resolver& resolver) {
    TRY_ASSIGN(auto listing, models::pod_listing(exec, root_str()));
    return models::plan_sync(manifest, listing, root, resolver, models::Prune::no);
  }

  // The job once it is no longer running (or {"state": "timed out"} after a minute).
  nlohmann::json wait(const std::string& job) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < until) {
      auto st = models::pod_status(exec, root_str(), job);
      if (st && st->value("state", "") != "running")
        return *st;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return nlohmann::json{{"state", "timed out"}};
  }
};

// Every file under `dir` whose bytes contain `needle`.
inline std::vector<std::string> files_containing(const std::filesystem::path& dir,
                                                 const std::string& needle) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec) && read_all(it->path()).find(needle) != std::string::npos)
      out.push_back(it->path().string());
  return out;
}

// Fast pod options: 1 MiB ranges, so multi-range paths run on megabytes.
inline models::PodJobOptions pod_options(int connections = 4) {
  models::PodJobOptions o;
  o.connections = connections;
  o.chunk_bytes = 1 << 20;
  o.stall_secs = 2;
  return o;
}

}  // namespace autopod::testing
