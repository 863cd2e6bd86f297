// The pod side (models/pod/*.py) driven through models/pod.hpp, with `sh -c` on this machine
// playing the pod: the same program the CLI sends over SSH, against the loopback hub fakes.

#include <gtest/gtest.h>

#include <thread>

#include "core/process.hpp"
#include "models/pod.hpp"
#include "tests/models/models_testing.hpp"

namespace autopod::testing {
namespace {

using nlohmann::json;

models::PodExec local_exec() {
  return [](const std::string& command, const std::string& input) {
    return core::run_capture({"sh", "-c", command}, input);
  };
}

struct PodLibrary {
  Hubs hubs{sandbox::StorageOptions{0, {}, false}};
  TempDir root;
  std::string hf_bytes = test_bytes(20 << 20, 21);  // two 16 MiB ranges on the pod side
  std::string civitai_bytes = test_bytes(70000, 22);
  std::string url_bytes = test_bytes(5000, 23);
  models::Manifest manifest;
  models::PodExec exec = local_exec();

  PodLibrary() {
    hubs.hf.add_lfs_file("org/flux", "flux.safetensors", hf_bytes);
    hubs.civitai.add_version("10", "20", "LORA",
                             {sandbox::CivitaiFile{"30", "style.safetensors", "Model", true, civitai_bytes, "SafeTensor"}});
    hubs.storage.put("up.pth", url_bytes);
    manifest = *models::parse_manifest("models:\n"
                                       "  - source: hf://org/flux/flux.safetensors\n"
                                       "    folder: diffusion_models\n"
                                       "  - source: civitai:20\n"
                                       "  - source: " + hubs.storage.plain_url("up.pth") + "\n"
                                       "    folder: upscale_models\n", "m.yaml");
  }
  core::Result<models::SyncPlan> plan(models::Prune prune = models::Prune::no) {
    auto resolver = hubs.resolver();
    TRY_ASSIGN(auto listing, models::pod_listing(exec, root.path().string()));
    return models::plan_sync(manifest, listing, root.path(), resolver, prune);
  }
  json wait(const std::string& job) {
    for (int i = 0; i < 600; ++i) {
      auto st = models::pod_status(exec, root.path().string(), job);
      if (st && st->value("state", "") != "running") return *st;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return json{{"state", "timed out"}};
  }
};

TEST(PodSync, ManifestOfHfCivitaiAndUrlSyncsAndTheSecondRunIsUpToDate) {
  PodLibrary lib;
  auto plan = lib.plan();
  ASSERT_TRUE(plan) << plan.error().describe();
  EXPECT_EQ(plan->download_bytes, (20 << 20) + 70000 + 5000);
  auto job = models::pod_start(lib.exec, lib.root.path().string(), *plan, {4});
  ASSERT_TRUE(job) << job.error().describe();
  auto state = lib.wait(*job);
  ASSERT_EQ(state.value("state", ""), "done") << state.dump(2);
  EXPECT_EQ(read_all(lib.root / "diffusion_models/flux.safetensors"), lib.hf_bytes);
  EXPECT_EQ(read_all(lib.root / "loras/style.safetensors"), lib.civitai_bytes);
  EXPECT_EQ(read_all(lib.root / "upscale_models/up.pth"), lib.url_bytes);
  // The pod's records are the C++ engine's: its plan reads them as present, without hashing.
  auto rec = models::read_record(lib.root / "upscale_models/up.pth");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->sha256, sha256_of(lib.url_bytes));
  auto resolver = lib.hubs.resolver();
  auto local = models::plan_sync(lib.manifest, lib.root.path(), resolver, models::Prune::no);
  ASSERT_TRUE(local);
  EXPECT_TRUE(local->up_to_date());
  auto sent = lib.hubs.storage.bytes_sent();
  auto again = lib.plan();
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->up_to_date());
  EXPECT_EQ(lib.hubs.storage.bytes_sent(), sent);
  EXPECT_EQ(lib.hubs.storage.authorization_seen(), 0);
  EXPECT_FALSE(std::filesystem::exists(lib.root / "diffusion_models/flux.safetensors.autopod-part.json"));
}

TEST(PodSync, ANameThatEscapesTheRootIsRefusedBeforeAnyByte) {
  PodLibrary lib;
  models::SyncPlan plan;
  models::PlanItem item;
  item.action = models::Action::download;
  item.resolved = models::ResolvedFile{"x", lib.hubs.storage.plain_url("up.pth"), "../../evil.pth",
                                       "checkpoints", 5000, "", "", "", false, "", ""};
  plan.items.push_back(item);
  auto job = models::pod_start(lib.exec, lib.root.path().string(), plan, {4});
  ASSERT_FALSE(job);
  EXPECT_NE(job.error().message.find("escapes the models root"), std::string::npos) << job.error().message;
  EXPECT_EQ(lib.hubs.storage.bytes_sent(), 0);
}

TEST(PodSync, PruneRemovesOnlyWhatAutopodPlaced) {
  PodLibrary lib;
  auto plan = lib.plan();
  ASSERT_TRUE(plan);
  auto job = models::pod_start(lib.exec, lib.root.path().string(), *plan, {4});
  ASSERT_TRUE(job);
  ASSERT_EQ(lib.wait(*job).value("state", ""), "done");
  std::filesystem::create_directories(lib.root / "checkpoints");
  ASSERT_TRUE(core::write_file_atomic(lib.root / "checkpoints/mine.safetensors", "user's own", 0644));
  lib.manifest.entries.resize(1);  // the Civitai and URL entries are gone from the manifest
  auto pruning = lib.plan(models::Prune::yes);
  ASSERT_TRUE(pruning);
  EXPECT_EQ(pruning->prune_bytes, 70000 + 5000);
  auto none = models::pod_start(lib.exec, lib.root.path().string(), *pruning, {4});
  ASSERT_TRUE(none) << none.error().describe();
  EXPECT_TRUE(none->empty());  // nothing to download: no job
  EXPECT_FALSE(std::filesystem::exists(lib.root / "loras/style.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(lib.root / "upscale_models/up.pth.autopod.json"));
  EXPECT_TRUE(std::filesystem::exists(lib.root / "checkpoints/mine.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(lib.root / "diffusion_models/flux.safetensors"));
}

}  // namespace
}  // namespace autopod::testing
