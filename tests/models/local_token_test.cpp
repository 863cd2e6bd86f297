// The in-process engine (--local) and tokens: a private regular file the Hub serves itself gets
// the token on every ranged request to the Hub; storage never sees it, not after a redirect nor
// when an expired signed URL is re-resolved (model-sources.md §0.4, §1.3).

#include <gtest/gtest.h>

#include <atomic>

#include "tests/models/models_testing.hpp"

namespace autopod::testing {
namespace {

const std::string k_token = "hf_private_token_5c2e";

struct PrivateRepo {
  Hubs hubs;
  TempDir home;
  TempDir root;
  models::TaskStore store{core::Home(home.path())};
  PrivateRepo() {
    hubs.hf.set_tokens({k_token});
    hubs.hf.set_private("org/private", {k_token});
  }
  // Runs the file's task as `models pull --local` does, with the token in the resolver.
  core::Result<models::TransferResult> pull(const std::string& path, models::TransferOptions o) {
    auto task = store.add(entry("hf://org/private/" + path), root / "checkpoints" / path);
    if (!task) return core::fail(task.error());
    auto resolver = hubs.resolver(k_token);
    return models::run_task(store, task->id, resolver, o);
  }
};

TEST(LocalToken, APrivateRegularFileIsFetchedInRangesFromTheHubWithTheToken) {
  PrivateRepo rig;
  std::string bytes = test_bytes((3 << 20) + 517, 41);
  rig.hubs.hf.add_git_file("org/private", "config.bin", bytes);
  auto r = rig.pull("config.bin", fast_options(3));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(read_all(rig.root / "checkpoints/config.bin"), bytes);
  int ranged = 0;
  for (const auto& q : rig.hubs.hf.requests()) {
    EXPECT_EQ(q.authorization, "Bearer " + k_token) << q.method << " " << q.target;
    ranged += q.method == "GET" && q.status == 206;
  }
  EXPECT_GE(ranged, 1 + 4) << "the probe, then four 1 MiB ranges";
  EXPECT_EQ(rig.hubs.storage.authorization_seen(), 0);
}

TEST(LocalToken, APrivateLfsFileGoesToStorageWithoutTheTokenAlsoAfterReResolving) {
  PrivateRepo rig;
  std::string bytes = test_bytes(6 << 20, 42);
  rig.hubs.hf.add_lfs_file("org/private", "unet.safetensors", bytes);
  rig.hubs.storage.set_rate(3 << 20);  // slow enough to expire the URL in the middle
  auto o = fast_options(2);
  std::atomic<bool> expired{false};
  o.on_progress = [&](const models::Progress& p) {
    if (p.bytes > (2 << 20) && !expired.exchange(true)) {
      rig.hubs.storage.expire_signatures();
      rig.hubs.storage.set_rate(0);
    }
  };
  auto r = rig.pull("unet.safetensors", o);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(read_all(rig.root / "checkpoints/unet.safetensors"), bytes);
  int refused = 0, heads = 0;
  for (const auto& q : rig.hubs.storage.requests()) refused += q.status == 403;
  for (const auto& q : rig.hubs.hf.requests()) {
    EXPECT_EQ(q.authorization, "Bearer " + k_token) << q.method << " " << q.target;
    heads += q.method == "HEAD";
  }
  EXPECT_GT(refused, 0) << "the signature never expired mid-download";
  EXPECT_GE(heads, 2) << "the expired URL was not re-resolved through the hub";
  EXPECT_EQ(rig.hubs.storage.authorization_seen(), 0);
}

TEST(LocalToken, WithoutATokenAPrivateRepoIsReportedAsMissingOrPrivate) {
  PrivateRepo rig;
  rig.hubs.hf.add_git_file("org/private", "config.bin", test_bytes(100, 43));
  auto task = rig.store.add(entry("hf://org/private/config.bin"), rig.root / "checkpoints/config.bin");
  ASSERT_TRUE(task);
  auto resolver = rig.hubs.resolver();
  auto r = models::run_task(rig.store, task->id, resolver, fast_options(2));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::ErrorCode::not_found);
  EXPECT_NE(r.error().hint.find("HF_TOKEN"), std::string::npos) << r.error().describe();
}

}  // namespace
}  // namespace autopod::testing
