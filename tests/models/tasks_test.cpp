// Tasks: persisted in AUTOPOD_HOME and controlled from another process's TaskStore.

#include <gtest/gtest.h>

#include <thread>

#include "tests/models/models_testing.hpp"

namespace autopod::testing {
namespace {

using core::ErrorCode;

struct TaskRig {
  Hubs hubs{sandbox::StorageOptions{1 << 20, {}, false}};  // 1 MiB/s per connection
  TempDir home;
  TempDir root;
  std::string bytes = test_bytes(6 << 20, 21);
  TaskRig() { hubs.storage.put("task.bin", bytes); }
  models::ManifestEntry entry() const {
    return testing::entry(hubs.storage.plain_url("task.bin"), "checkpoints", "task.bin");
  }
};

// Polls the store (as `autopod models tasks` would) until the task reaches `state`.
bool wait_state(models::TaskStore& store, const std::string& id, models::TaskState state) {
  for (int i = 0; i < 600; ++i) {
    auto t = store.get(id);
    if (t && t->state == state) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(Tasks, PauseAndResumeFromAnotherStoreContinueFromThePartialFile) {
  TaskRig rig;
  models::TaskStore store{core::Home(rig.home.path())};
  auto task = store.add(rig.entry(), rig.root / "checkpoints/task.bin");
  ASSERT_TRUE(task) << task.error().describe();
  auto resolver = rig.hubs.resolver();
  core::Result<models::TransferResult> run = core::fail(ErrorCode::internal, "not run");
  std::thread worker([&] { run = models::run_task(store, task->id, resolver, fast_options(2)); });
  models::TaskStore other{core::Home(rig.home.path())};  // another terminal's view
  ASSERT_TRUE(wait_state(other, task->id, models::TaskState::running));
  // Pause once the first two 1 MiB ranges are on disk (finished ranges are what a resume keeps).
  for (int i = 0; i < 1000; ++i) {
    auto t = other.get(task->id);
    if (t && t->bytes >= (2 << 20)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(other.request(task->id, models::TaskControl::pause));
  worker.join();
  ASSERT_FALSE(run);
  auto paused = other.get(task->id);
  ASSERT_TRUE(paused);
  EXPECT_EQ(paused->state, models::TaskState::paused);
  EXPECT_GT(paused->bytes, 0);
  EXPECT_LT(paused->bytes, paused->total);
  EXPECT_FALSE(std::filesystem::exists(rig.root / "checkpoints/task.bin"));
  EXPECT_EQ(other.request(task->id, models::TaskControl::retry).error().code, ErrorCode::conflict);
  ASSERT_TRUE(other.request(task->id, models::TaskControl::resume));
  rig.hubs.storage.set_rate(0);
  auto resumed = models::run_task(store, task->id, resolver, fast_options(2));
  ASSERT_TRUE(resumed) << resumed.error().describe();
  EXPECT_TRUE(resumed->resumed);
  EXPECT_LT(resumed->bytes_fetched, static_cast<std::int64_t>(rig.bytes.size()));
  EXPECT_EQ(read_all(rig.root / "checkpoints/task.bin"), rig.bytes);
  auto done = other.get(task->id);
  EXPECT_EQ(done->state, models::TaskState::done);
  EXPECT_EQ(done->bytes, static_cast<std::int64_t>(rig.bytes.size()));
}

TEST(Tasks, CancelFromAnotherStoreRemovesThePartialFile) {
  TaskRig rig;
  models::TaskStore store{core::Home(rig.home.path())};
  auto task = store.add(rig.entry(), rig.root / "checkpoints/task.bin");
  ASSERT_TRUE(task);
  auto resolver = rig.hubs.resolver();
  std::thread worker([&] { (void)models::run_task(store, task->id, resolver, fast_options(2)); });
  models::TaskStore other{core::Home(rig.home.path())};
  ASSERT_TRUE(wait_state(other, task->id, models::TaskState::running));
  ASSERT_TRUE(other.request(task->id, models::TaskControl::cancel));
  worker.join();
  EXPECT_EQ(other.get(task->id)->state, models::TaskState::cancelled);
  EXPECT_TRUE(std::filesystem::is_empty(rig.root / "checkpoints"));
  ASSERT_TRUE(other.request(task->id, models::TaskControl::retry));
  EXPECT_EQ(other.get(task->id)->state, models::TaskState::queued);
}

TEST(Tasks, FailureIsRecordedWithItsMessageAndUnknownIdsAreListed) {
  TaskRig rig;
  models::TaskStore store{core::Home(rig.home.path())};
  auto task = store.add(testing::entry(rig.hubs.storage.plain_url("missing.bin"), "loras", "m.bin"),
                        rig.root / "loras/m.bin");
  ASSERT_TRUE(task);
  auto resolver = rig.hubs.resolver();
  ASSERT_FALSE(models::run_task(store, task->id, resolver, fast_options(2)));
  auto failed = store.get(task->id);
  EXPECT_EQ(failed->state, models::TaskState::failed);
  EXPECT_NE(failed->error.find("http 404"), std::string::npos) << failed->error;
  auto unknown = store.get("nope");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().hint.find(task->id), std::string::npos);
  auto text = core::read_file(rig.home / "tasks/tasks.json");
  ASSERT_TRUE(text);
  EXPECT_EQ(text->find("Bearer"), std::string::npos);
}

}  // namespace
}  // namespace autopod::testing
