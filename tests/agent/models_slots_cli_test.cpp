// Two `autopod models ... --local` processes on one models root share its 3 download slots and
// their priority order through <root>/.autopod/slots, as pod jobs do.

#include <gtest/gtest.h>

#include <fstream>
#include <future>

#include <nlohmann/json.hpp>

#include "core/fs.hpp"
#include "sandbox/storage_server.hpp"
#include "tests/harness/harness.hpp"

namespace autopod::testing {
namespace {

using nlohmann::json;

struct SlotEntry {
  std::string name;
  int priority = 0;
  bool running = false;
};

struct TwoLocalSyncs : ::testing::Test {
  TempDir dir;
  // 1 MiB/s per connection: a file of N MiB takes about N s on its one stream. a1 ends first
  // (2 s) while a2 and a3 go on (6 s): one slot frees, and who takes it is the priority's doing.
  sandbox::StorageServer storage{sandbox::StorageOptions{1 << 20, {}, false}};
  std::vector<std::string> env;
  std::filesystem::path root, slots, manifest;

  void SetUp() override {
    ASSERT_TRUE(storage.start());
    env = {"AUTOPOD_HOME=" + (dir / "home").string(), "AUTOPOD_PROVIDER=", "AUTOPOD_LOG_LEVEL=",
           "HF_TOKEN=", "CIVITAI_API_TOKEN="};
    root = dir / "models";
    slots = root / ".autopod" / "slots";
    std::filesystem::create_directories(slots);  // to watch it from the start
    std::ofstream m(manifest = dir / "models.yaml");
    m << "models:\n";
    for (int i = 1; i <= 4; ++i) {
      std::string name = "a" + std::to_string(i) + ".bin";
      std::size_t mib = i == 1 ? 2 : i == 4 ? 3 : 6;
      storage.put(name, random_bytes(mib << 20, 60 + static_cast<unsigned>(i)));
      m << "  - source: " << storage.plain_url(name) << "\n    folder: checkpoints\n";
    }
    storage.put("b.bin", random_bytes(3 << 20, 70));
  }

  std::future<core::ProcessOutput> start(std::vector<std::string> args) {
    return std::async(std::launch::async, [this, args] { return run_autopod(args, env); });
  }
  std::future<core::ProcessOutput> start_a() {
    return start({"models", "sync", manifest.string(), "--local", root.string()});
  }
  std::future<core::ProcessOutput> start_b() {
    return start({"models", "pull", storage.plain_url("b.bin"), "--local", root.string(),
                  "--folder", "checkpoints", "--priority", "5"});
  }

  std::vector<SlotEntry> entries() const {
    std::vector<SlotEntry> out;
    for (const auto& name : names_in(slots)) {
      if (name.size() < 5 || name.substr(name.size() - 5) != ".json") continue;
      json e = json::parse(slurp(slots / name), nullptr, false);
      if (e.is_object()) out.push_back({name, e.value("priority", 0), e.value("running", false)});
    }
    return out;
  }
  int running() const {
    int n = 0;
    for (const auto& e : entries()) n += e.running;
    return n;
  }
  bool b_waits() const {
    for (const auto& e : entries())
      if (e.priority == 5 && !e.running) return true;
    return false;
  }
  // The objects in the order their downloads began (the resolvers' 0-0 probes left out).
  std::vector<std::string> download_order() const {
    std::vector<std::string> out;
    for (const auto& r : storage.requests()) {
      if (r.range == "bytes=0-0") continue;
      std::string name = r.target.substr(r.target.rfind('/') + 1);
      if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    }
    return out;
  }
  bool b_requested() const {
    auto order = download_order();
    return std::find(order.begin(), order.end(), "b.bin") != order.end();
  }
  int placed_of_a() const {
    int n = 0;
    for (int i = 1; i <= 4; ++i)
      n += std::filesystem::exists(root / "checkpoints" / ("a" + std::to_string(i) + ".bin"));
    return n;
  }
};

#define EXPECT_EXIT_OK(result) \
  EXPECT_EQ((result).exit_code, 0) << "stdout: " << (result).out << "\nstderr: " << (result).err

// Given a sync of 4 files holding all 3 slots, when a second process pulls a file with
// --priority 5, then it waits for a slot (none of its bytes move while 3 run) and takes the
// next free one before the first sync's fourth file, which was queued earlier.
TEST_F(TwoLocalSyncs, ShareTheThreeSlotsAndTheHigherPriorityFileStartsFirst) {
  auto a = start_a();
  ASSERT_TRUE(wait_for_change(slots, [&] { return running() == 3; }, std::chrono::seconds(20)))
      << "the first sync never held 3 slots";
  auto b = start_b();
  ASSERT_TRUE(wait_for_change(slots, [&] { return b_waits(); }, std::chrono::seconds(20)))
      << "the second process never queued for a slot";
  EXPECT_EQ(running(), 3);
  EXPECT_FALSE(b_requested()) << "the second process downloads beside 3 others";
  ASSERT_TRUE(eventually([&] { return b_requested(); }));
  EXPECT_GE(placed_of_a(), 1) << "b.bin started before any of the first three ended";
  auto ra = a.get();
  auto rb = b.get();
  EXPECT_EXIT_OK(ra);
  EXPECT_EXIT_OK(rb);
  auto order = download_order();
  ASSERT_EQ(order.size(), 5u);
  EXPECT_EQ(order[3], "b.bin") << "the higher priority file did not take the first free slot";
  EXPECT_EQ(placed_of_a(), 4);
  EXPECT_TRUE(std::filesystem::exists(root / "checkpoints/b.bin"));
  EXPECT_TRUE(entries().empty()) << "slot entries left behind";
}

// A file waiting for a slot is paused from another terminal: its process ends without fetching
// a byte of it, and its entry leaves the slots.
TEST_F(TwoLocalSyncs, PauseOfAFileWaitingForASlotEndsItsWait) {
  auto a = start_a();
  ASSERT_TRUE(wait_for_change(slots, [&] { return running() == 3; }, std::chrono::seconds(20)));
  auto b = start_b();
  ASSERT_TRUE(wait_for_change(slots, [&] { return b_waits(); }, std::chrono::seconds(20)));
  auto tasks = json::parse(slurp(dir / "home" / "tasks" / "tasks.json"), nullptr, false);
  std::string id;
  ASSERT_TRUE(tasks.is_object() && tasks.contains("tasks"));
  const json& all = tasks["tasks"];
  for (auto it = all.begin(); it != all.end(); ++it)
    if (it.value().value("destination", "").find("b.bin") != std::string::npos) id = it.key();
  ASSERT_FALSE(id.empty()) << tasks.dump(2);
  auto pause = run_autopod({"models", "pause", id}, env);
  EXPECT_EXIT_OK(pause);
  auto rb = b.get();
  EXPECT_NE(rb.exit_code, 0);
  EXPECT_NE(rb.err.find("paused"), std::string::npos) << rb.err;
  EXPECT_FALSE(b_waits());
  EXPECT_EQ(a.wait_for(std::chrono::seconds(0)), std::future_status::timeout)
      << "the pause was only seen after the first sync ended";
  EXPECT_EXIT_OK(a.get());
  EXPECT_FALSE(b_requested());
  auto after = json::parse(slurp(dir / "home" / "tasks" / "tasks.json"), nullptr, false);
  EXPECT_EQ(after["tasks"][id].value("state", ""), "paused");
}

}  // namespace
}  // namespace autopod::testing
