// Pod jobs through the harness's sshd: pause, resume and cancel from another connection, two
// jobs on one file, priorities within the pod-wide limit, slots shared with local processes, and
// extra_model_paths.yaml folders.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <set>

#include "models/slots.hpp"
#include "tests/models/pod_testing.hpp"

namespace autopod::testing {
namespace {

using nlohmann::json;

struct PodJobs : ::testing::Test {
  SshPod pod;
  Hubs hubs{sandbox::StorageOptions{0, {}, false}};

  void SetUp() override { ASSERT_TRUE(pod.sshd); }

  // A manifest of plain URLs to `n` objects of `size` (+ i * `step`) bytes, named f0.pth, ...
  models::Manifest objects(int n,
                           std::size_t size,
                           const std::string& prefix = "f",
                           std::size_t step = 0) {
    std::string yaml = "models:\n";
    for (int i = 0; i < n; ++i) {
      std::string name = prefix + std::to_string(i) + ".pth";
      hubs.storage.put(name, test_bytes(size + static_cast<std::size_t>(i) * step,
                                        50 + static_cast<unsigned>(i)));
      yaml += "  - source: " + hubs.storage.plain_url(name) + "\n    folder: upscale_models\n";
    }
    return *models::parse_manifest(yaml, "m.yaml");
  }
  std::string start(const models::Manifest& m, const models::PodJobOptions& o = pod_options()) {
    auto resolver = hubs.resolver();
    auto plan = pod.plan(m, resolver);
    EXPECT_TRUE(plan) << plan.error().describe();
    if (!plan)
      return {};
    auto job = models::pod_start(pod.exec, pod.root_str(), *plan, o);
    EXPECT_TRUE(job) << job.error().describe();
    return job ? *job : std::string();
  }
  std::filesystem::path folder() const { return pod.root / "upscale_models"; }
  bool has_partial() const {
    for (const auto& n : names_in(folder()))
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".part") == 0)
        return true;
    return false;
  }
};

TEST_F(PodJobs, PauseKeepsThePartialResumeFetchesOnlyWhatIsMissingCancelRemovesIt) {
  auto m = objects(1, 20 << 20);
  hubs.storage.set_rate(2 << 20);
  auto job = start(m);
  ASSERT_TRUE(eventually([&] { return hubs.storage.bytes_sent() > (8 << 20); }));
  ASSERT_TRUE(models::pod_control(pod.exec, pod.root_str(), job, models::TaskControl::pause));
  ASSERT_EQ(pod.wait(job).value("state", ""), "paused");
  EXPECT_TRUE(has_partial());
  EXPECT_FALSE(std::filesystem::exists(folder() / "f0.pth"));
  auto before = hubs.storage.bytes_sent();
  hubs.storage.set_rate(0);
  ASSERT_TRUE(models::pod_control(pod.exec, pod.root_str(), job, models::TaskControl::resume));
  ASSERT_EQ(pod.wait(job).value("state", ""), "done");
  EXPECT_TRUE(read_all(folder() / "f0.pth") == test_bytes(20 << 20, 50));
  EXPECT_LT(hubs.storage.bytes_sent() - before, (20 << 20) - (6 << 20))
      << "the resume fetched again what had arrived";

  // Cancel: of a paused job (the worker is gone) and of a running one; nothing stays behind.
  auto second = objects(2, 20 << 20, "g");
  second.entries.erase(second.entries.begin());
  hubs.storage.set_rate(2 << 20);
  auto paused = start(second);
  ASSERT_TRUE(eventually([&] { return has_partial(); }));
  ASSERT_TRUE(models::pod_control(pod.exec, pod.root_str(), paused, models::TaskControl::pause));
  ASSERT_EQ(pod.wait(paused).value("state", ""), "paused");
  ASSERT_TRUE(has_partial());
  ASSERT_TRUE(models::pod_control(pod.exec, pod.root_str(), paused, models::TaskControl::cancel));
  EXPECT_FALSE(has_partial());
  EXPECT_EQ(pod.wait(paused).value("state", ""), "cancelled");
  auto running = start(second);
  ASSERT_TRUE(eventually([&] { return has_partial(); }));
  ASSERT_TRUE(models::pod_control(pod.exec, pod.root_str(), running, models::TaskControl::cancel));
  EXPECT_EQ(pod.wait(running).value("state", ""), "cancelled");
  EXPECT_EQ(names_in(folder()), (std::vector<std::string>{"f0.pth", "f0.pth.autopod.json"}));
}

TEST_F(PodJobs, AStatusThatWaitsIsAnsweredWhenTheJobEndsNotWhenTheWaitDoes) {
  // A job of about a second (4 MiB at 4 MiB/s); a look that may wait 30 s there.
  auto m = objects(1, 4 << 20);
  hubs.storage.set_rate(4 << 20);
  auto job = start(m);
  ASSERT_FALSE(job.empty());
  auto t0 = std::chrono::steady_clock::now();
  auto st = models::pod_status(pod.exec, pod.root_str(), job, std::chrono::seconds(30));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(st) << st.error().describe();
  EXPECT_EQ(st->value("state", ""), "done") << st->dump(2);  // one look saw the end
  EXPECT_LT(secs, 15.0) << "the look waited out its wait after the job had ended";
  // Without a wait the answer is at once, as before.
  auto again = models::pod_status(pod.exec, pod.root_str(), job);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->value("state", ""), "done");
}

TEST_F(PodJobs, TwoJobsOfTheSameManifestAtOncePlaceEachFileOnce) {
  auto m = objects(3, 6 << 20);
  hubs.storage.set_rate(4 << 20);
  // A watcher: a final name never holds anything but the whole file.
  std::atomic<int> half_written{0};
  std::jthread watch([&](std::stop_token stop) {
    while (!stop.stop_requested())
      for (int i = 0; i < 3; ++i) {
        std::error_code ec;
        auto size = std::filesystem::file_size(folder() / ("f" + std::to_string(i) + ".pth"), ec);
        if (!ec && size != (6u << 20))
          ++half_written;
      }
  });
  std::string a, b;
  {
    std::jthread first([&] { a = start(m); });
    std::jthread second([&] { b = start(m); });
  }
  auto sa = pod.wait(a), sb = pod.wait(b);
  watch.request_stop();
  watch.join();
  EXPECT_EQ(sa.value("state", ""), "done") << sa.dump(2);
  EXPECT_EQ(sb.value("state", ""), "done") << sb.dump(2);
  EXPECT_EQ(half_written, 0);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(read_all(folder() / ("f" + std::to_string(i) + ".pth")) ==
                test_bytes(6 << 20, 50 + i));
  EXPECT_LT(hubs.storage.bytes_sent(), 3 * (6 << 20) + (4 << 20)) << "a file was fetched twice";
  EXPECT_EQ(names_in(folder()).size(),
            6u);  // three models, three records: no partial, no stale state
}

TEST_F(PodJobs, AHigherPriorityWaitsLessWithinTheLimitOfThreeAtOnce) {
  // Given four files of priority 0 (three run, one waits; 4, 6, 8 and 10 MiB at 1 MiB/s, so
  // that slots free one at a time, the first after 4 s at the earliest)...
  auto low = objects(4, 4 << 20, "low", 2 << 20);
  hubs.storage.set_rate(1 << 20);
  auto first = start(low, pod_options(1));
  auto running_objects = [&] {
    std::set<std::string> seen;
    for (const auto& r : hubs.storage.requests())
      if (r.range != "bytes=0-0")
        seen.insert(r.target);  // not the resolver's probes
    return seen.size();
  };
  ASSERT_TRUE(eventually([&] { return running_objects() >= 3; }));
  // ...when one of priority 5 arrives, it goes before the waiting one.
  auto urgent = objects(1, 2 << 20, "urgent");
  auto o = pod_options(1);
  o.priority = 5;
  auto second = start(urgent, o);
  EXPECT_EQ(pod.wait(second).value("state", ""), "done");
  EXPECT_EQ(pod.wait(first).value("state", ""), "done");
  std::vector<std::string> order;
  for (const auto& r : hubs.storage.requests())
    if (r.method == "GET" && r.range != "bytes=0-0" &&
        std::find(order.begin(), order.end(), r.target) == order.end())
      order.push_back(r.target);
  ASSERT_EQ(order.size(), 5u);
  EXPECT_EQ(order[3], "/o/urgent0.pth");  // before the low file that had waited longer
  EXPECT_EQ(order[4].rfind("/o/low", 0), 0u);
}

// The slots are one protocol on both sides: a pod job queues behind files that a local process
// (here this test, through models/slots.hpp as `--local` does) runs under the same root.
TEST_F(PodJobs, APodJobWaitsForTheSlotsALocalProcessHoldsOnTheSameRoot) {
  std::vector<models::DownloadSlot> held;
  for (int i = 0; i < 3; ++i) {
    auto slot = models::DownloadSlot::enter(pod.root, "local.t" + std::to_string(i), 0, 3, 1.0);
    ASSERT_TRUE(slot) << slot.error().describe();
    auto turn = slot->wait([] { return false; });
    ASSERT_TRUE(turn && *turn);
    held.push_back(std::move(*slot));
  }
  auto job = start(objects(1, 1 << 20));
  auto asked = hubs.storage.requests().size();  // the plan's probes
  auto slots = pod.root / ".autopod" / "slots";
  auto job_waits = [&] {
    for (const auto& n : names_in(slots))
      if (n.rfind(job, 0) == 0) return true;
    return false;
  };
  ASSERT_TRUE(wait_for_change(slots, job_waits, std::chrono::seconds(20)));
  auto state = models::pod_status(pod.exec, pod.root_str(), job);
  ASSERT_TRUE(state);
  EXPECT_EQ((*state)["tasks"][0].value("state", ""), "queued") << state->dump(2);
  EXPECT_EQ(hubs.storage.requests().size(), asked) << "the job fetched beside 3 running files";
  held.clear();  // the local files end: the job takes a slot
  EXPECT_EQ(pod.wait(job).value("state", ""), "done");
  EXPECT_TRUE(std::filesystem::exists(folder() / "f0.pth"));
}

TEST_F(PodJobs, ExtraModelPathsYamlThatNamesTheFolderIsWhereTheFileGoes) {
  // ComfyUI reads extra_model_paths.yaml beside main.py: the models root's parent.
  auto shared = pod.dir / "shared";
  std::filesystem::create_directories(pod.root);
  std::ofstream(pod.root.parent_path() / "extra_model_paths.yaml")
      << "# a network volume's models\nvolume:\n    base_path: " << shared.string() << "\n"
      << "    upscale_models: |\n        upscalers\n        more_upscalers\n"
      << "    checkpoints: ckpts  # a comment\n";
  auto m = objects(1, 5000);
  auto job = start(m);
  ASSERT_EQ(pod.wait(job).value("state", ""), "done");
  EXPECT_TRUE(read_all(shared / "upscalers/f0.pth") == test_bytes(5000, 50));
  EXPECT_FALSE(std::filesystem::exists(folder() / "f0.pth"));
  auto resolver = hubs.resolver();
  auto again = pod.plan(m, resolver);
  ASSERT_TRUE(again) << again.error().describe();
  EXPECT_TRUE(again->up_to_date());  // its record is found there
  auto listing = models::pod_listing(pod.exec, pod.root_str());
  ASSERT_TRUE(listing);
  EXPECT_EQ(listing->folder_dirs.at("checkpoints"), shared / "ckpts");
}

}  // namespace
}  // namespace autopod::testing
