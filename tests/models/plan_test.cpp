// Sync plans: a manifest of HF, Civitai and URL sources syncs; the second run is a no-op that
// neither resolves nor hashes; prune removes only what autopod placed.

#include <gtest/gtest.h>

#include "tests/models/models_testing.hpp"

namespace autopod::testing {
namespace {

struct Library {
  Hubs hubs{sandbox::StorageOptions{0, {}, false}};
  TempDir root;
  std::string hf_bytes = test_bytes(3 << 20, 11);
  std::string civitai_bytes = test_bytes(70000, 12);
  std::string url_bytes = test_bytes(5000, 13);
  models::Manifest manifest;

  Library() {
    hubs.hf.add_lfs_file("org/flux", "flux.safetensors", hf_bytes);
    hubs.civitai.add_version("10", "20", "LORA",
                             {sandbox::CivitaiFile{"30", "style.safetensors", "Model", true, civitai_bytes, "SafeTensor"}});
    hubs.storage.put("up.pth", url_bytes);
    auto m = models::parse_manifest("models:\n"
                                    "  - source: hf://org/flux/flux.safetensors\n"
                                    "    folder: diffusion_models\n"
                                    "  - source: civitai:20\n"
                                    "  - source: " + hubs.storage.plain_url("up.pth") + "\n"
                                    "    folder: upscale_models\n", "m.yaml");
    EXPECT_TRUE(m) << m.error().describe();
    manifest = *m;
  }
  std::size_t hub_requests() const { return hubs.hf.requests().size() + hubs.civitai.requests().size(); }
};

TEST(SyncPlan, FirstRunDownloadsEverythingAndRecordsIt) {
  Library lib;
  auto resolver = lib.hubs.resolver();
  auto plan = models::plan_sync(lib.manifest, lib.root.path(), resolver, models::Prune::no);
  ASSERT_TRUE(plan) << plan.error().describe();
  ASSERT_EQ(plan->items.size(), 3u);
  for (const auto& item : plan->items) EXPECT_EQ(item.action, models::Action::download);
  EXPECT_EQ(plan->download_bytes, (3 << 20) + 70000 + 5000);
  ASSERT_TRUE(models::apply_plan(*plan, lib.root.path(), fast_options(), resolver));
  EXPECT_EQ(read_all(lib.root / "diffusion_models/flux.safetensors"), lib.hf_bytes);
  EXPECT_EQ(read_all(lib.root / "loras/style.safetensors"), lib.civitai_bytes);
  EXPECT_EQ(read_all(lib.root / "upscale_models/up.pth"), lib.url_bytes);
  auto rec = models::read_record(lib.root / "upscale_models/up.pth");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->sha256, sha256_of(lib.url_bytes));  // no hash given: the one computed on arrival
  EXPECT_EQ(rec->size, 5000);
  EXPECT_EQ(lib.hubs.storage.authorization_seen(), 0);
}

TEST(SyncPlan, SecondRunIsUpToDateWithoutResolvingOrHashing) {
  Library lib;
  auto resolver = lib.hubs.resolver();
  auto first = models::plan_sync(lib.manifest, lib.root.path(), resolver, models::Prune::no);
  ASSERT_TRUE(first);
  ASSERT_TRUE(models::apply_plan(*first, lib.root.path(), fast_options(), resolver));
  auto hub_before = lib.hub_requests();
  auto storage_before = lib.hubs.storage.requests().size();
  auto second = models::plan_sync(lib.manifest, lib.root.path(), resolver, models::Prune::no);
  ASSERT_TRUE(second) << second.error().describe();
  EXPECT_TRUE(second->up_to_date());
  EXPECT_EQ(second->download_bytes, 0);
  EXPECT_EQ(lib.hub_requests(), hub_before);
  EXPECT_EQ(lib.hubs.storage.requests().size(), storage_before);
  // Bytes changed behind autopod's back with size and mtime kept go unnoticed: the proof that
  // the no-op plan hashed nothing (a rehash would have caught them).
  auto model = lib.root / "upscale_models/up.pth";
  auto mtime = std::filesystem::last_write_time(model);
  {
    std::string same_size(5000, 'x');
    std::FILE* f = std::fopen(model.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fwrite(same_size.data(), 1, same_size.size(), f);
    std::fclose(f);
  }
  std::filesystem::last_write_time(model, mtime);
  auto third = models::plan_sync(lib.manifest, lib.root.path(), resolver, models::Prune::no);
  ASSERT_TRUE(third);
  EXPECT_TRUE(third->up_to_date());
}

TEST(SyncPlan, AChangedFileIsReplaced) {
  Library lib;
  auto resolver = lib.hubs.resolver();
  auto first = models::plan_sync(lib.manifest, lib.root.path(), resolver, models::Prune::no);
  ASSERT_TRUE(first);
  ASSERT_TRUE(models::apply_plan(*first, lib.root.path(), fast_options(), resolver));
  ASSERT_TRUE(core::write_file_atomic(lib.root / "upscale_models/up.pth", "tampered"));
  auto again = models::plan_sync(lib.manifest, lib.root.path(), resolver, models::Prune::no);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->items[2].action, models::Action::replace);
  ASSERT_TRUE(models::apply_plan(*again, lib.root.path(), fast_options(), resolver));
  EXPECT_EQ(read_all(lib.root / "upscale_models/up.pth"), lib.url_bytes);
}

TEST(SyncPlan, PruneRemovesOnlyWhatAutopodPlaced) {
  Library lib;
  auto resolver = lib.hubs.resolver();
  auto first = models::plan_sync(lib.manifest, lib.root.path(), resolver, models::Prune::no);
  ASSERT_TRUE(first);
  ASSERT_TRUE(models::apply_plan(*first, lib.root.path(), fast_options(), resolver));
  ASSERT_TRUE(core::write_file_atomic(lib.root / "loras/mine.safetensors", "the user's own"));
  models::Manifest smaller = lib.manifest;
  smaller.entries.erase(smaller.entries.begin() + 1);  // drop the civitai lora
  auto plan = models::plan_sync(smaller, lib.root.path(), resolver, models::Prune::yes);
  ASSERT_TRUE(plan);
  ASSERT_EQ(plan->items.size(), 3u);
  EXPECT_EQ(plan->items[2].action, models::Action::prune);
  EXPECT_EQ(plan->items[2].path, lib.root / "loras/style.safetensors");
  EXPECT_EQ(plan->prune_bytes, 70000);
  ASSERT_TRUE(models::apply_plan(*plan, lib.root.path(), fast_options(), resolver));
  EXPECT_FALSE(std::filesystem::exists(lib.root / "loras/style.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(models::record_path(lib.root / "loras/style.safetensors")));
  EXPECT_EQ(read_all(lib.root / "loras/mine.safetensors"), "the user's own");
  EXPECT_TRUE(std::filesystem::exists(lib.root / "diffusion_models/flux.safetensors"));
}

}  // namespace
}  // namespace autopod::testing
