// Faults on the pod path: the pod-side program (through the harness's sshd) against a storage
// fake that cuts, stalls, lies, flips bytes, ignores ranges and lets signatures expire.

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "core/fs.hpp"
#include "models/transfer_state.hpp"
#include "tests/models/pod_testing.hpp"

namespace autopod::testing {
namespace {

using nlohmann::json;

struct PodFaults : ::testing::Test {
  SshPod pod;
  Hubs hubs{sandbox::StorageOptions{0, {}, false}};
  std::string bytes = test_bytes((21 << 20) + (1 << 19), 41);  // its half lies inside a 1 MiB range
  models::Manifest manifest;

  void SetUp() override {
    ASSERT_TRUE(pod.sshd);
    hubs.hf.add_lfs_file("org/flux", "flux.safetensors", bytes);
    manifest = *models::parse_manifest(
        "models:\n  - source: hf://org/flux/flux.safetensors\n    folder: diffusion_models\n",
        "m.yaml");
  }
  std::filesystem::path dest() const { return pod.root / "diffusion_models" / "flux.safetensors"; }

  // Plans (the resolver's probes see no fault), then injects `faults` and runs the job.
  json sync(const sandbox::StorageFaults& faults,
            const models::PodJobOptions& options = pod_options()) {
    auto resolver = hubs.resolver();
    auto plan = pod.plan(manifest, resolver);
    EXPECT_TRUE(plan) << plan.error().describe();
    if (!plan)
      return json{};
    hubs.storage.set_faults(faults);
    auto job = models::pod_start(pod.exec, pod.root_str(), *plan, options);
    EXPECT_TRUE(job) << job.error().describe();
    return job ? pod.wait(*job) : json{};
  }
  // A plan of one file to download, as the resolver would hand it over (no probe made).
  static models::SyncPlan download_plan(models::ResolvedFile file) {
    models::SyncPlan plan;
    models::PlanItem item;
    item.action = models::Action::download;
    item.resolved = std::move(file);
    plan.items.push_back(item);
    return plan;
  }
  // Starts the download at 2 MiB/s and pauses it once 6 MiB have left storage: a partial file
  // with its first ranges done and recorded, the rest missing.
  void pause_after_6_mib() {
    hubs.storage.set_rate(2 << 20);
    auto resolver = hubs.resolver();
    auto plan = pod.plan(manifest, resolver);
    ASSERT_TRUE(plan);
    auto job = models::pod_start(pod.exec, pod.root_str(), *plan, pod_options());
    ASSERT_TRUE(job);
    ASSERT_TRUE(eventually([&] { return hubs.storage.bytes_sent() > (6 << 20); }));
    ASSERT_TRUE(models::pod_control(pod.exec, pod.root_str(), *job, models::TaskControl::pause));
    ASSERT_EQ(pod.wait(*job).value("state", ""), "paused");
  }
  // Every GET for the file's object, as "bytes=A-B" (empty: no Range).
  std::vector<std::string> ranges_asked() const {
    std::vector<std::string> out;
    for (const auto& r : hubs.storage.requests())
      if (r.method == "GET" && r.target.find("/o/hf-") == 0)
        out.push_back(r.range);
    return out;
  }
};

TEST_F(PodFaults, ACutAtHalfwayIsResumedFromTheCutAndVerifies) {
  sandbox::StorageFaults f;
  f.cut_at = 0.5;
  f.cuts = 1;
  auto state = sync(f);
  ASSERT_EQ(state.value("state", ""), "done") << state.dump(2);
  EXPECT_TRUE(read_all(dest()) == bytes);
  // The range that was cut continues from the byte where it stopped, not from its start.
  bool mid_range = false;
  for (const auto& r : ranges_asked()) {
    long long a = -1;
    if (std::sscanf(r.c_str(), "bytes=%lld-", &a) == 1 && a % (1 << 20) != 0)
      mid_range = true;
  }
  EXPECT_TRUE(mid_range) << "no Range request resumed inside a range";
  EXPECT_EQ(names_in(dest().parent_path()),
            (std::vector<std::string>{"flux.safetensors", "flux.safetensors.autopod.json"}));
}

TEST_F(PodFaults, A200ToARangeOfAPartialFileRestartsItNeverAppends) {
  // Given a paused download with a partial file, when the next run's Range gets a 200...
  ASSERT_NO_FATAL_FAILURE(pause_after_6_mib());
  hubs.storage.set_rate(0);
  sandbox::StorageFaults f;
  f.ignore_range = 1;
  // ...then the file is fetched again from zero and is exact (a 200 appended would be longer).
  auto state = sync(f);
  ASSERT_EQ(state.value("state", ""), "done") << state.dump(2);
  EXPECT_EQ(std::filesystem::file_size(dest()), bytes.size());
  EXPECT_TRUE(read_all(dest()) == bytes);
  EXPECT_EQ(names_in(dest().parent_path()).size(), 2u);  // the model and its record
}

TEST_F(PodFaults, WrongBytesAreCaughtWithBothHashesNamedAndThePartialRemoved) {
  sandbox::StorageFaults f;
  f.wrong_bytes = true;
  auto state = sync(f);
  ASSERT_EQ(state.value("state", ""), "failed") << state.dump(2);
  std::string error = state["tasks"][0].value("error", "");
  EXPECT_NE(error.find("expected " + sha256_of(bytes)), std::string::npos) << error;
  EXPECT_NE(error.find("actual "), std::string::npos) << error;
  EXPECT_TRUE(names_in(dest().parent_path()).empty());  // no model, no partial, no state record
}

TEST_F(PodFaults, RangesFoundAtAResumeAreHashedFromDiskSoBytesChangedThereAreCaught) {
  // Given a paused download whose first ranges are done and recorded...
  ASSERT_NO_FATAL_FAILURE(pause_after_6_mib());
  // ...when a byte of its first range changes on the volume before the resume...
  std::filesystem::path partial;
  for (const auto& n : names_in(dest().parent_path()))
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".part") == 0)
      partial = dest().parent_path() / n;
  ASSERT_FALSE(partial.empty());
  std::string on_disk = read_all(partial);
  ASSERT_EQ(on_disk.substr(0, 1 << 20), bytes.substr(0, 1 << 20));
  on_disk[1000] ^= 0x5a;
  ASSERT_TRUE(core::write_file_atomic(partial, on_disk, 0644));
  hubs.storage.set_rate(0);
  hubs.storage.clear_log();
  auto state = sync({});
  // ...the resume fetches only what is missing, yet the sha256 made while it lands reads the
  // first range back from disk: the change is caught, both hashes named, nothing left behind.
  for (const auto& r : ranges_asked())  // bytes=0-0 is the plan's probe
    EXPECT_TRUE(r.rfind("bytes=0-", 0) != 0 || r == "bytes=0-0") << "the first range was fetched again: " << r;
  ASSERT_EQ(state.value("state", ""), "failed") << state.dump(2);
  std::string error = state["tasks"][0].value("error", "");
  EXPECT_NE(error.find("sha256 mismatch: expected " + sha256_of(bytes) + ", actual "), std::string::npos)
      << error;
  EXPECT_EQ(error.find("actual " + sha256_of(bytes)), std::string::npos) << error;
  EXPECT_TRUE(names_in(dest().parent_path()).empty());
}

TEST_F(PodFaults, AFirstPassWithWrongBytesCutThenAnswered200IsHashedAfreshFromZero) {
  // One stream from a server that takes ranges and then ignores them: the first pass carries a
  // wrong byte and is cut after it (slow enough that the hasher has hashed past it), the resume's
  // Range gets a 200 with true bytes. The file starts over from zero and so must its sha256: a
  // hash that kept the first pass's prefix would not match, though the bytes placed are exact.
  // A file of known size gets there after its first range's 200 (ranges -> one stream), one of
  // unknown size directly.
  std::string small = test_bytes(512 << 10, 43);
  hubs.storage.put("small.pth", small);
  hubs.storage.set_rate(512 << 10);
  struct Case {
    std::int64_t size;
    int bodies;  // served with the fault: the known size's first range is one more
  };
  for (Case c : {Case{static_cast<std::int64_t>(small.size()), 2}, Case{-1, 1}}) {
    std::string name = c.size < 0 ? "unsized.pth" : "sized.pth";
    auto plan = download_plan(
        models::ResolvedFile{"src-" + name, hubs.storage.plain_url("small.pth"), name,
                             "upscale_models", c.size, sha256_of(small), "", "", true, "", ""});
    sandbox::StorageFaults f;
    f.wrong_bodies = c.bodies;  // the byte at 256 KiB
    f.cut_at = 0.75;
    f.cuts = c.bodies;
    f.ignore_range = c.bodies;
    hubs.storage.clear_log();
    hubs.storage.set_faults(f);
    auto job = models::pod_start(pod.exec, pod.root_str(), plan, pod_options(1));
    ASSERT_TRUE(job) << job.error().describe();
    auto state = pod.wait(*job);
    ASSERT_EQ(state.value("state", ""), "done") << name << ": " << state.dump(2);
    EXPECT_TRUE(read_all(pod.root / "upscale_models" / name) == small) << name;
    bool restarted = false;  // a Range past zero answered 200: the restart happened
    for (const auto& r : hubs.storage.requests())
      restarted = restarted || (r.status == 200 && !r.range.empty() && r.range.rfind("bytes=0-", 0) != 0);
    EXPECT_TRUE(restarted) << name << ": no resume was answered 200";
  }
}

TEST_F(PodFaults, ASingleStreamThatIsCutOrLiesAboutItsLengthStartsOverAndVerifies) {
  // A server without ranges gets one stream; a cut there cannot resume, so it starts over.
  std::string small = test_bytes(3 << 20, 42);
  hubs.storage.put("plain.pth", small);
  auto plan = download_plan(models::ResolvedFile{
      "src", hubs.storage.plain_url("plain.pth"), "plain.pth", "upscale_models",
      static_cast<std::int64_t>(small.size()), sha256_of(small), "", "", false, "", ""});
  sandbox::StorageFaults f;
  f.cut_at = 0.5;
  f.cuts = 1;
  f.lying_length = 1;
  hubs.storage.set_faults(f);
  auto job = models::pod_start(pod.exec, pod.root_str(), plan, pod_options());
  ASSERT_TRUE(job) << job.error().describe();
  auto state = pod.wait(*job);
  ASSERT_EQ(state.value("state", ""), "done") << state.dump(2);
  EXPECT_TRUE(read_all(pod.root / "upscale_models/plain.pth") == small);
}

TEST_F(PodFaults, AStalledBodyIsBoundedByTheStallTimeout) {
  sandbox::StorageFaults f;
  f.stall = std::chrono::milliseconds(60000);
  f.stalls = 1;
  auto options = pod_options();
  options.stall_secs = 1;
  auto t0 = std::chrono::steady_clock::now();
  auto state = sync(f, options);
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(state.value("state", ""), "done") << state.dump(2);
  EXPECT_TRUE(read_all(dest()) == bytes);
  EXPECT_LT(secs, 20.0) << "a stalled connection held the download";
  auto asked = ranges_asked();
  std::set<std::string> distinct(asked.begin(), asked.end());
  EXPECT_GT(asked.size(), distinct.size()) << "no range stalled and was asked again";
}

TEST_F(PodFaults, AnExpiredSignatureIsReResolvedOnThePodWithTheTokenForTheHubOnly) {
  const std::string token = "hf_gated_token_77a1";
  hubs.hf.set_tokens({token});
  hubs.hf.set_gated("org/flux", {token});
  hubs.storage.set_rate(3 << 20);
  auto resolver = hubs.resolver(token);
  auto plan = pod.plan(manifest, resolver);
  ASSERT_TRUE(plan) << plan.error().describe();
  auto options = pod_options();
  options.hf_token = token;
  auto job = models::pod_start(pod.exec, pod.root_str(), *plan, options);
  ASSERT_TRUE(job) << job.error().describe();
  ASSERT_TRUE(eventually([&] { return hubs.storage.bytes_sent() > (4 << 20); }));
  hubs.storage.expire_signatures();  // every URL signed so far now answers 403
  hubs.storage.set_rate(0);
  auto state = pod.wait(*job);
  ASSERT_EQ(state.value("state", ""), "done") << state.dump(2);
  EXPECT_TRUE(read_all(dest()) == bytes);
  int refused = 0, pod_resolves = 0;
  for (const auto& r : hubs.storage.requests())
    refused += r.status == 403;
  for (const auto& r : hubs.hf.requests())
    if (r.method == "GET" && r.target.find("/resolve/") != std::string::npos)
      pod_resolves += r.authorization == "Bearer " + token;
  EXPECT_GT(refused, 0) << "the signature never expired mid-download";
  EXPECT_GE(pod_resolves, 1) << "the pod did not re-resolve through the hub";
  EXPECT_EQ(hubs.storage.authorization_seen(), 0);
  EXPECT_TRUE(files_containing(pod.root, token).empty());
}

TEST_F(PodFaults, TooLittleSpaceIsRefusedBeforeAnyByteNamingTheNumbers) {
  auto plan = download_plan(models::ResolvedFile{"src", hubs.storage.plain_url("x"),
                                                 "huge.safetensors", "checkpoints",
                                                 std::int64_t{1} << 60, "", "", "", true, "", ""});
  auto job = models::pod_start(pod.exec, pod.root_str(), plan, pod_options());
  ASSERT_FALSE(job);
  EXPECT_NE(job.error().message.find("not enough space"), std::string::npos) << job.error().message;
  EXPECT_NE(job.error().message.find(std::to_string(std::int64_t{1} << 60) + " bytes to arrive"),
            std::string::npos)
      << job.error().message;
  EXPECT_NE(job.error().message.find(" free under " + pod.root_str()), std::string::npos)
      << job.error().message;
  EXPECT_EQ(hubs.storage.bytes_sent(), 0);
  EXPECT_TRUE(names_in(pod.root / "checkpoints").empty());
}

TEST(PodProgram, IsAsciiSoItsLengthInBytesIsItsLengthInCharacters) {
  // The bootstrap reads the program with sys.stdin.read(n), which counts characters.
  for (char c : models::pod_program())
    ASSERT_LT(static_cast<unsigned char>(c), 0x80);
}

TEST(PodProgram, DeclaresAnOwnerOnAnotherHostDeadWhenTheEngineDoes) {
  // Both sides take over each other's partial files and slots: they must agree on when.
  const auto& text = models::pod_program();
  auto at = text.find("REMOTE_OWNER_STALE_SECS = ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(std::atoll(text.c_str() + at + 26), models::k_remote_owner_stale_secs);
}

}  // namespace
}  // namespace autopod::testing
