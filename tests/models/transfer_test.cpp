// The transfer engine against the storage fake: byte-exact, resumable, verified, atomic.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "models/transfer_state.hpp"
#include "tests/models/models_testing.hpp"

namespace autopod::testing {
namespace {

using core::ErrorCode;

// A file on storage with what download() needs to know about it.
struct Stored {
  std::string bytes;
  models::ResolvedFile file;
};

Stored store(Hubs& hubs, const std::string& name, std::size_t size, unsigned seed = 3) {
  Stored s;
  s.bytes = test_bytes(size, seed);
  hubs.storage.put(name, s.bytes);
  s.file.source = "test:" + name;
  s.file.url = hubs.storage.signed_url(name);
  s.file.name = name;
  s.file.folder = "checkpoints";
  s.file.size = static_cast<std::int64_t>(size);
  s.file.sha256 = sha256_of(s.bytes);
  s.file.validator = hubs.storage.etag(name);
  s.file.ranges = true;
  return s;
}

std::size_t count_status(const Hubs& hubs, int status) {
  std::size_t n = 0;
  for (const auto& r : hubs.storage.requests()) n += r.status == status;
  return n;
}

std::vector<std::string> dir_names(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename());
  return out;
}

TEST(Transfer, MultiConnectionDownloadIsByteExactAndLeavesNothingBehind) {
  Hubs hubs;
  TempDir dir;
  auto s = store(hubs, "m.safetensors", 9 * 1024 * 1024 + 123);
  auto dest = dir / "checkpoints" / "m.safetensors";
  auto r = models::download(s.file, dest, fast_options(4));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(read_all(dest), s.bytes);
  EXPECT_EQ(r->sha256, s.file.sha256);
  EXPECT_EQ(r->bytes_fetched, static_cast<std::int64_t>(s.bytes.size()));
  EXPECT_EQ(count_status(hubs, 206), 10u);  // ten 1 MiB ranges
  EXPECT_EQ(hubs.storage.authorization_seen(), 0);
  EXPECT_EQ(dir_names(dir / "checkpoints"), std::vector<std::string>{"m.safetensors"});
}

TEST(Transfer, SmallFilesAndServersWithoutRangesUseOneStream) {
  Hubs hubs;
  TempDir dir;
  auto s = store(hubs, "small.pth", 200000);
  auto r = models::download(s.file, dir / "small.pth", fast_options(4));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(hubs.storage.requests().size(), 1u);
  auto big = store(hubs, "norange.bin", 3 << 20);
  big.file.ranges = false;
  hubs.storage.clear_log();
  auto n = models::download(big.file, dir / "norange.bin", fast_options(4));
  ASSERT_TRUE(n) << n.error().describe();
  ASSERT_EQ(hubs.storage.requests().size(), 1u);
  EXPECT_EQ(hubs.storage.requests()[0].range, "");
  EXPECT_EQ(read_all(dir / "norange.bin"), big.bytes);
}

TEST(Transfer, ACutConnectionIsRetriedAloneAndTheFileVerifies) {
  Hubs hubs;
  TempDir dir;
  auto s = store(hubs, "cut.bin", 6 << 20);
  sandbox::StorageFaults f;
  f.cut_at = 0.5;
  f.cuts = 1;
  hubs.storage.set_faults(f);
  auto r = models::download(s.file, dir / "cut.bin", fast_options(3));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(read_all(dir / "cut.bin"), s.bytes);
  // Only the rest of the cut range was asked again: nothing fetched twice.
  EXPECT_EQ(hubs.storage.bytes_sent(), static_cast<std::int64_t>(s.bytes.size()));
}

TEST(Transfer, AnInterruptedDownloadResumesOnlyTheMissingRangesWithIfRange) {
  Hubs hubs;
  TempDir dir;
  auto s = store(hubs, "resume.bin", 8 << 20);
  auto dest = dir / "resume.bin";
  // Given a first run that gives up when the connection keeps being cut at 50 %...
  sandbox::StorageFaults f;
  f.cut_at = 0.5;
  f.cuts = 1000;
  hubs.storage.set_faults(f);
  auto opt = fast_options(2);
  opt.range_attempts = 2;
  auto first = models::download(s.file, dest, opt);
  ASSERT_FALSE(first);
  EXPECT_FALSE(std::filesystem::exists(dest));
  EXPECT_TRUE(std::filesystem::exists(models::claim_path(dest)));
  std::int64_t sent_before = hubs.storage.bytes_sent();
  // ...when the cuts stop, a second run fetches only what is missing.
  hubs.storage.set_faults({});
  hubs.storage.clear_log();
  auto second = models::download(s.file, dest, opt);
  ASSERT_TRUE(second) << second.error().describe();
  EXPECT_TRUE(second->resumed);
  EXPECT_EQ(read_all(dest), s.bytes);
  EXPECT_LT(second->bytes_fetched, static_cast<std::int64_t>(s.bytes.size()));
  EXPECT_LE(sent_before + hubs.storage.bytes_sent(), static_cast<std::int64_t>(s.bytes.size()) + (1 << 20));
  for (const auto& q : hubs.storage.requests()) EXPECT_EQ(q.if_range, s.file.validator);
  EXPECT_FALSE(std::filesystem::exists(models::claim_path(dest)));
  EXPECT_EQ(dir_names(dir.path()), std::vector<std::string>{"resume.bin"});
}

TEST(Transfer, WrongBytesAreCaughtWithExpectedAndActualHashesAndNothingIsPlaced) {
  Hubs hubs;
  TempDir dir;
  auto s = store(hubs, "wrong.bin", 3 << 20);
  sandbox::StorageFaults f;
  f.wrong_bytes = true;
  hubs.storage.set_faults(f);
  auto r = models::download(s.file, dir / "wrong.bin", fast_options(2));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::protocol);
  std::string flipped = s.bytes;
  flipped[flipped.size() / 2] ^= 0x5a;
  EXPECT_NE(r.error().message.find("expected " + s.file.sha256), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("got " + sha256_of(flipped)), std::string::npos);
  EXPECT_TRUE(dir_names(dir.path()).empty());  // partial and record deleted
}

TEST(Transfer, A200ToARangeRestartsFromZeroInsteadOfAppending) {
  Hubs hubs;
  TempDir dir;
  auto s = store(hubs, "ignored.bin", 4 << 20);
  sandbox::StorageFaults f;
  f.ignore_range = 1;
  hubs.storage.set_faults(f);
  auto r = models::download(s.file, dir / "ignored.bin", fast_options(3));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(read_all(dir / "ignored.bin"), s.bytes);
  EXPECT_EQ(std::filesystem::file_size(dir / "ignored.bin"), s.bytes.size());
  EXPECT_GE(count_status(hubs, 200), 2u);  // the ignored range, then the plain restart
}

TEST(Transfer, AnExpiredSignatureMidDownloadIsReResolved) {
  Hubs hubs;
  hubs.storage.set_rate(4 << 20);  // slow enough to expire the URL in the middle
  TempDir dir;
  auto s = store(hubs, "expire.bin", 6 << 20);
  std::atomic<int> resolves{0};
  auto opt = fast_options(2);
  opt.reresolve = [&]() -> core::Result<models::ResolvedFile> {
    ++resolves;
    auto fresh = s.file;
    fresh.url = hubs.storage.signed_url("expire.bin");
    return fresh;
  };
  opt.on_progress = [&](const models::Progress& p) {
    if (p.bytes > (2 << 20) && resolves == 0) hubs.storage.expire_signatures();
  };
  auto r = models::download(s.file, dir / "expire.bin", opt);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(read_all(dir / "expire.bin"), s.bytes);
  EXPECT_EQ(resolves.load(), 1);  // once, however many connections saw the 403
  EXPECT_GE(count_status(hubs, 403), 1u);
}

TEST(Transfer, StallsStatusBurstsAndLyingLengthsAreRetried) {
  Hubs hubs;
  TempDir dir;
  auto s = store(hubs, "faults.bin", 5 << 20);
  sandbox::StorageFaults f;
  f.status_burst = 3;
  f.burst_status = 503;
  f.stalls = 1;
  f.stall = std::chrono::milliseconds(2500);
  f.lying_length = 1;
  hubs.storage.set_faults(f);
  auto r = models::download(s.file, dir / "faults.bin", fast_options(2));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(read_all(dir / "faults.bin"), s.bytes);
  EXPECT_EQ(count_status(hubs, 503), 3u);
}

TEST(Transfer, NothingHalfWrittenEverAppearsUnderTheFinalName) {
  Hubs hubs;
  hubs.storage.set_rate(40 << 20);
  TempDir dir;
  auto s = store(hubs, "watched.bin", 6 << 20);
  auto dest = dir / "watched.bin";
  std::atomic<bool> done{false};
  std::atomic<int> bad{0}, seen{0};
  std::thread watcher([&] {
    while (!done) {
      std::error_code ec;
      auto size = std::filesystem::file_size(dest, ec);
      if (!ec) {
        ++seen;
        if (size != s.bytes.size()) ++bad;
      }
      std::this_thread::yield();
    }
  });
  auto r = models::download(s.file, dest, fast_options(3));
  done = true;
  watcher.join();
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(read_all(dest), s.bytes);
}

TEST(Transfer, TwoEnginesOnOneDestinationPlaceItOnce) {
  Hubs hubs;
  hubs.storage.set_rate(30 << 20);
  TempDir dir;
  auto s = store(hubs, "twice.bin", 4 << 20);
  auto dest = dir / "twice.bin";
  core::Result<models::TransferResult> a = core::fail(ErrorCode::internal, "not run");
  core::Result<models::TransferResult> b = core::fail(ErrorCode::internal, "not run");
  std::thread ta([&] { a = models::download(s.file, dest, fast_options(2)); });
  std::thread tb([&] { b = models::download(s.file, dest, fast_options(2)); });
  ta.join();
  tb.join();
  ASSERT_NE(a.has_value(), b.has_value()) << (a ? "" : a.error().message) << (b ? "" : b.error().message);
  const auto& loser = a ? b : a;
  EXPECT_EQ(loser.error().code, ErrorCode::conflict);
  EXPECT_NE(loser.error().message.find("is being downloaded by pid"), std::string::npos);
  EXPECT_EQ(read_all(dest), s.bytes);
  EXPECT_LE(hubs.storage.bytes_sent(), static_cast<std::int64_t>(s.bytes.size()));
}

TEST(Transfer, ADeadOwnersPartialIsResumedALiveOnesLeftAlone) {
  Hubs hubs;
  TempDir dir;
  auto s = store(hubs, "owned.bin", 4 << 20);
  auto dest = dir / "owned.bin";
  models::PartState held;
  held.source = s.file.source;
  held.owner = models::current_owner();  // this very process: alive
  ASSERT_TRUE(core::write_file_atomic(models::claim_path(dest), models::to_json(held).dump()));
  auto live = models::download(s.file, dest, fast_options(2));
  ASSERT_FALSE(live);
  EXPECT_EQ(live.error().code, ErrorCode::conflict);
  EXPECT_EQ(hubs.storage.requests().size(), 0u);
  held.owner.pid = 999999999;  // no such process
  ASSERT_TRUE(core::write_file_atomic(models::claim_path(dest), models::to_json(held).dump()));
  auto dead = models::download(s.file, dest, fast_options(2));
  ASSERT_TRUE(dead) << dead.error().describe();
  EXPECT_EQ(read_all(dest), s.bytes);
}

TEST(Transfer, NotEnoughSpaceIsRefusedBeforeAnyByteMoves) {
  Hubs hubs;
  TempDir dir;
  auto s = store(hubs, "huge.bin", 2 << 20);
  auto opt = fast_options(2);
  opt.free_bytes = [](const std::filesystem::path&) -> std::int64_t { return 1 << 20; };
  auto r = models::download(s.file, dir / "huge.bin", opt);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("needs 0.00 GiB (2097152 bytes), 0.00 GiB are free"), std::string::npos)
      << r.error().message;
  EXPECT_EQ(hubs.storage.requests().size(), 0u);
  EXPECT_TRUE(dir_names(dir.path()).empty());
}

TEST(Transfer, PauseKeepsThePartialFileAndCancelRemovesIt) {
  Hubs hubs;
  hubs.storage.set_rate(2 << 20);
  TempDir dir;
  auto s = store(hubs, "pause.bin", 6 << 20);
  auto dest = dir / "pause.bin";
  auto opt = fast_options(2);
  std::atomic<std::int64_t> progress{0};
  opt.on_progress = [&](const models::Progress& p) { progress = p.bytes; };
  opt.should_stop = [&] { return progress > (1 << 20) ? models::StopKind::pause : models::StopKind::none; };
  auto paused = models::download(s.file, dest, opt);
  ASSERT_FALSE(paused);
  EXPECT_EQ(paused.error().code, ErrorCode::cancelled);
  EXPECT_TRUE(std::filesystem::exists(models::claim_path(dest)));
  EXPECT_EQ(dir_names(dir.path()).size(), 2u);  // partial + record
  opt.should_stop = [] { return models::StopKind::cancel; };
  progress = 0;
  auto cancelled = models::download(s.file, dest, opt);
  ASSERT_FALSE(cancelled);
  EXPECT_TRUE(dir_names(dir.path()).empty());
}

}  // namespace
}  // namespace autopod::testing
