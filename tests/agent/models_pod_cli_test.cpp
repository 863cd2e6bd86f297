// autopod models on a pod (the harness's sshd; its volume a temp dir), driven as a user does:
// one invocation syncs while another pauses, resumes or cancels; two syncs run at once; the pod
// lacks python3; the token comes from config.yaml; the volume is too small.

#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "sandbox/model_hubs.hpp"
#include "tests/agent/cli_fixture.hpp"

namespace autopod::testing {
namespace {

bool has_partial(const std::filesystem::path& dir) {
  for (const auto& n : names_in(dir))
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".part") == 0)
      return true;
  return false;
}

struct ModelsPodCli : Cli {
  sandbox::StorageServer storage{sandbox::StorageOptions{0, {}, false}};
  sandbox::HfFake hf{storage};
  sandbox::CivitaiFake civitai{storage};
  std::filesystem::path root = dir / "pod" / "models";
  std::filesystem::path manifest = dir / "models.yaml";

  void SetUp() override {
    Cli::SetUp();
    ASSERT_TRUE(storage.start());
    ASSERT_TRUE(hf.start());
    ASSERT_TRUE(civitai.start());
    env.insert(env.end(), {"HF_ENDPOINT=" + hf.url(), "CIVITAI_ENDPOINT=" + civitai.url(),
                           "HF_TOKEN=", "CIVITAI_API_TOKEN="});
    EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  }
  // A manifest of plain URLs to `n` objects of `size` (+ i * `step`) bytes, named PREFIX0.pth, ...
  void objects(int n, std::size_t size, const std::string& prefix = "f", std::size_t step = 0) {
    std::ofstream out(manifest);
    out << "models:\n";
    for (int i = 0; i < n; ++i) {
      std::string name = prefix + std::to_string(i) + ".pth";
      storage.put(
          name, random_bytes(size + static_cast<std::size_t>(i) * step, 70 + static_cast<unsigned>(i)));
      out << "  - source: " << storage.plain_url(name) << "\n    folder: upscale_models\n";
    }
  }
  core::ProcessOutput sync(std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"models", "sync",          manifest.string(),
                                     "comfy",  "--models-root", root.string()};
    args.insert(args.end(), more.begin(), more.end());
    return autopod(args);
  }
  // Runs sync() in the background until the task of file `name` exists and 2 MiB have left
  // storage, pauses it from another invocation (`id`), and waits for that sync (`out`) to see the
  // pause and return.
  void sync_then_pause(const std::string& name, core::ProcessOutput& out, std::string& id) {
    std::jthread syncing([&] { out = sync(); });
    ASSERT_TRUE(eventually([&] {
      return !(id = task(name).value("id", "")).empty() && storage.bytes_sent() > (2 << 20);
    }));
    EXPECT_RUN(autopod({"models", "pause", id}), 0);
  }
  json task(const std::string& name) {
    auto r = autopod({"models", "tasks", "--json"});
    std::istringstream lines(r.out);
    json found = json::object();
    for (std::string line; std::getline(lines, line);) {
      auto j = json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.value("destination", "").ends_with("/" + name))
        found = j;
    }
    return found;
  }
  std::filesystem::path folder() const { return root / "upscale_models"; }
};

// Cancelling a paused pod task ends it at once in `models tasks` (the job on the pod is not
// running, so nothing else would tell the store) and removes its partial file.
TEST_F(ModelsPodCli, CancelOfAPausedPodTaskShowsCancelledAtOnce) {
  objects(1, 24 << 20, "h");
  storage.set_rate(2 << 20);
  core::ProcessOutput first;
  std::string id;
  ASSERT_NO_FATAL_FAILURE(sync_then_pause("h0.pth", first, id));
  EXPECT_EQ(task("h0.pth").value("state", ""), "paused");
  EXPECT_RUN(autopod({"models", "cancel", id}), 0);
  EXPECT_EQ(task("h0.pth").value("state", ""), "cancelled");
  EXPECT_FALSE(has_partial(folder()));
}

TEST_F(ModelsPodCli, PauseResumeAndCancelFromAnotherProcessWhileAPodJobRuns) {
  objects(1, 24 << 20);
  storage.set_rate(2 << 20);
  std::atomic<int> half_written{0};
  std::jthread watch([&](std::stop_token stop) {  // a final name only ever holds the whole file
    while (!stop.stop_requested()) {
      std::error_code ec;
      auto size = std::filesystem::file_size(folder() / "f0.pth", ec);
      if (!ec && size != (24u << 20))
        ++half_written;
    }
  });
  core::ProcessOutput first;
  std::string id;
  ASSERT_NO_FATAL_FAILURE(sync_then_pause("f0.pth", first, id));
  EXPECT_RUN(first, 0);
  EXPECT_EQ(task("f0.pth").value("state", ""), "paused");
  EXPECT_TRUE(has_partial(folder()));
  EXPECT_FALSE(std::filesystem::exists(folder() / "f0.pth"));

  storage.set_rate(0);
  EXPECT_RUN(autopod({"models", "resume", id}), 0);
  ASSERT_TRUE(eventually([&] { return task("f0.pth").value("state", "") == "done"; }))
      << task("f0.pth").dump();
  EXPECT_TRUE(slurp(folder() / "f0.pth") == random_bytes(24 << 20, 70));

  objects(2, 24 << 20, "g");
  storage.set_rate(2 << 20);
  core::ProcessOutput second;
  std::jthread again([&] { second = sync(); });
  std::string g;  // the task is recorded once its job has started on the pod
  ASSERT_TRUE(eventually(
      [&] { return !(g = task("g1.pth").value("id", "")).empty() && has_partial(folder()); }));
  EXPECT_RUN(autopod({"models", "cancel", g}), 0);
  ASSERT_TRUE(eventually([&] { return !has_partial(folder()); })) << "cancel left the partial file";
  EXPECT_RUN(autopod({"models", "cancel", task("g0.pth").value("id", "")}), 0);
  again.join();
  watch.request_stop();
  watch.join();
  EXPECT_EQ(task("g1.pth").value("state", ""), "cancelled");
  EXPECT_FALSE(std::filesystem::exists(folder() / "g1.pth"));
  EXPECT_EQ(half_written, 0);
  EXPECT_FALSE(has_partial(folder()));
}

TEST_F(ModelsPodCli, TwoSyncsOfTheSameManifestAtOncePlaceEachFileOnce) {
  objects(3, 6 << 20);
  storage.set_rate(4 << 20);
  core::ProcessOutput a, b;
  {
    std::jthread one([&] { a = sync(); });
    std::jthread two([&] { b = sync(); });
  }
  EXPECT_RUN(a, 0);
  EXPECT_RUN(b, 0);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(slurp(folder() / ("f" + std::to_string(i) + ".pth")) == random_bytes(6 << 20, 70 + i))
        << i;
  EXPECT_LT(storage.bytes_sent(), 3 * (6 << 20) + (4 << 20)) << "a file was fetched twice";
  EXPECT_EQ(names_in(folder()).size(), 6u);  // three models and their records, nothing else
}

TEST_F(ModelsPodCli, PriorityPutsAPullAheadOfFilesWaitingForOneOfTheThreeSlots) {
  objects(4, 4 << 20, "low", 2 << 20);  // three download, one waits; slots free one at a time
  storage.set_rate(1 << 20);
  core::ProcessOutput low;
  std::jthread syncing([&] { low = sync({"--connections", "1"}); });
  auto fetched = [&] {  // objects in the order their first download request came
    std::vector<std::string> order;
    for (const auto& r : storage.requests())
      if (r.method == "GET" && r.range != "bytes=0-0" &&
          std::find(order.begin(), order.end(), r.target) == order.end())
        order.push_back(r.target);
    return order;
  };
  ASSERT_TRUE(eventually([&] { return fetched().size() >= 3; }));
  storage.put("urgent.pth", random_bytes(2 << 20, 90));
  auto pull = autopod({"models", "pull", storage.plain_url("urgent.pth"), "comfy", "--folder",
                       "upscale_models", "--models-root", root.string(), "--connections", "1",
                       "--priority", "5"});
  syncing.join();
  EXPECT_RUN(pull, 0);
  EXPECT_RUN(low, 0);
  auto order = fetched();
  ASSERT_EQ(order.size(), 5u);
  EXPECT_EQ(order[3], "/o/urgent.pth");  // before the low file that had waited longer
  EXPECT_EQ(order[4].rfind("/o/low", 0), 0u);
}

TEST_F(ModelsPodCli, APodWithoutPython3SaysWhatIsMissing) {
  // The pod's ssh sessions get a PATH without python3 (a forced command in authorized_keys).
  std::string keys = slurp(sshd->authorized_keys()), changed;
  std::istringstream lines(keys);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty())
      changed += "command=\"PATH=/nonexistent; export PATH; eval \\\"$SSH_ORIGINAL_COMMAND\\\"\" " +
                 line + "\n";
  ASSERT_TRUE(core::write_file_atomic(sshd->authorized_keys(), changed, 0600));
  objects(1, 5000);
  auto r = sync();
  EXPECT_RUN(r, 3);
  EXPECT_NE(r.err.find("python3 is not installed on the pod"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(root));
}

TEST_F(ModelsPodCli, ATokenFromConfigReachesThePodOnStdinOnlyForAPrivateGitFile) {
  const std::string token = "hf_config_token_9d3e51";
  hf.set_tokens({token});
  hf.set_gated("org/private", {token});
  std::string json_bytes = random_bytes(300000, 81);
  hf.add_git_file("org/private", "config.json", json_bytes);
  std::ofstream(manifest)
      << "models:\n  - source: hf://org/private/config.json\n    folder: configs\n";
  ASSERT_TRUE(
      core::write_file_atomic(dir / "home" / "config.yaml", "hf:\n  token: " + token + "\n", 0600));
  std::atomic<bool> running{true};
  std::vector<std::string> leaked;
  std::thread scan([&] {  // every process's argv, on both sides (the pod is this machine)
    while (running) {
      for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        auto pid = e.path().filename().string();
        if (pid.find_first_not_of("0123456789") == std::string::npos &&
            slurp(e.path() / "cmdline").find(token) != std::string::npos)
          leaked.push_back(pid);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  auto r = sync();
  running = false;
  scan.join();
  EXPECT_RUN(r, 0);
  EXPECT_TRUE(leaked.empty()) << "the token is in the argv of pid " << leaked.front();
  EXPECT_TRUE(slurp(root / "configs/config.json") == json_bytes);
  int pod_gets = 0;
  for (const auto& q : hf.requests())
    pod_gets += q.method == "GET" && q.authorization == "Bearer " + token &&
                q.target.find("config.json") != std::string::npos;
  EXPECT_GE(pod_gets, 1);
  EXPECT_EQ(storage.authorization_seen(), 0);
  for (const auto& d : {root, dir / "home"}) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(d, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file(ec) && it->path().filename() != "config.yaml") {
        EXPECT_EQ(slurp(it->path()).find(token), std::string::npos) << it->path();
      }
  }
}

TEST_F(ModelsPodCli, TooLittleSpaceOnTheVolumeIsRefusedBeforeAnyByteNamingTheNumbers) {
  struct statvfs st {};
  ASSERT_EQ(::statvfs(dir.path().c_str(), &st), 0);
  auto free = static_cast<std::int64_t>(st.f_bavail) * static_cast<std::int64_t>(st.f_frsize);
  auto big = dir / "big.bin";  // sparse: more than the volume holds
  { std::ofstream create(big); }
  ASSERT_EQ(::truncate(big.c_str(), free + (std::int64_t{1} << 40)), 0);
  storage.put_file("big.safetensors", big);
  auto r = autopod({"models", "pull", storage.plain_url("big.safetensors"), "comfy", "--folder",
                    "checkpoints", "--models-root", root.string()});
  EXPECT_RUN(r, 1);
  EXPECT_NE(r.err.find("not enough space under " + root.string()), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("to arrive"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("free"), std::string::npos) << r.err;
  EXPECT_LE(storage.bytes_sent(), 1);  // the resolver's one-byte probe, nothing more
  EXPECT_TRUE(names_in(root / "checkpoints").empty());
}

}  // namespace
}  // namespace autopod::testing
