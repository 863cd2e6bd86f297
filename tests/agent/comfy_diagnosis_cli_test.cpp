// autopod comfy ... field reports end to end: exit codes and messages of partial runs, refused
// handshakes, an IPv6 --url, a pending prompt's interrupt, and --timeout bounding `comfy status`.

#include <gtest/gtest.h>

#include <chrono>
#include <sstream>

#include "sandbox/comfy_fake.hpp"
#include "tests/agent/cli_fixture.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::Cli;
namespace fs = std::filesystem;

const fs::path k_workflows = AUTOPOD_TEST_DATA_DIR "/workflows";

// One valid output branch and one whose EmptyImage has width 0, which ComfyUI drops.
fs::path write_half_valid(const fs::path& dir) {
  auto wf = dir / "half.json";
  json p = json::parse(*core::read_file(k_workflows / "empty_image_api.json"));
  p["3"] = {{"class_type", "EmptyImage"}, {"inputs", {{"width", 0}, {"height", 64}, {"batch_size", 1}, {"color", 0}}}};
  p["4"] = {{"class_type", "SaveImage"}, {"inputs", {{"images", json::array({"3", 0})}, {"filename_prefix", "x"}}}};
  EXPECT_TRUE(core::write_file_atomic(wf, p.dump()));
  return wf;
}

TEST_F(Cli, ComfyRunThatDroppedOutputsExitsNineSavesTheRestAndSaysPartialInJson) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  auto wf = write_half_valid(dir.path());
  auto r = autopod({"comfy", "run", wf.string(), "--url", fake.url(), "--out", (dir.path() / "a").string()});
  EXPECT_RUN(r, 9);
  EXPECT_NE(r.err.find("node 3 (EmptyImage) input width"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--allow-partial"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find(".png"), std::string::npos) << r.out;  // the valid branch's image is saved
  EXPECT_RUN(autopod({"comfy", "run", wf.string(), "--url", fake.url(), "--out", (dir.path() / "b").string(),
                      "--allow-partial"}),
             0);
  auto js = autopod({"comfy", "run", wf.string(), "--url", fake.url(), "--out", (dir.path() / "c").string(), "--json"});
  EXPECT_RUN(js, 9);
  std::istringstream lines(js.out);
  std::string outcome;
  for (std::string line; std::getline(lines, line);) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == "finished") outcome = j.value("outcome", "");
  }
  EXPECT_EQ(outcome, "partial") << js.out;
}

TEST_F(Cli, ComfyRunAgainstARefusedHandshakeSaysWhyLikeStatusDoes) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  fake.refuse_websocket(403);
  auto r = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url", fake.url()});
  EXPECT_RUN(r, 1);
  EXPECT_NE(r.err.find("with http 403"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("origin check"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("is ComfyUI running on the pod"), std::string::npos) << r.err;
  EXPECT_TRUE(fake.submitted().empty());
}

TEST_F(Cli, ComfyRunReachesAnIpv6LiteralUrl) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start(0, "::1"));
  auto r = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url", fake.url(), "--out",
                    (dir.path() / "v6").string()});
  EXPECT_RUN(r, 0);
  EXPECT_NE(r.out.find(".png"), std::string::npos) << r.out;
}

TEST_F(Cli, ComfyInterruptOfAPendingPromptSaysNothingWasInterrupted) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  fake.set_running("run-1", {{"1", {{"class_type", "EmptyImage"}}}});
  fake.add_pending("p-2", 2, json::object());
  auto pending = autopod({"comfy", "interrupt", "--url", fake.url(), "--prompt", "p-2"});
  EXPECT_RUN(pending, 2);
  EXPECT_NE(pending.err.find("p-2 is pending, not running: nothing was interrupted"), std::string::npos) << pending.err;
  EXPECT_NE(pending.err.find("autopod comfy cancel --prompt p-2"), std::string::npos) << pending.err;
  EXPECT_RUN(autopod({"comfy", "interrupt", "--url", fake.url(), "--prompt", "nope"}), 3);
  EXPECT_EQ(fake.interrupts(), 0);
  auto running = autopod({"comfy", "interrupt", "--url", fake.url(), "--prompt", "run-1"});
  EXPECT_RUN(running, 0);
  EXPECT_NE(running.err.find("interrupt sent for run-1"), std::string::npos) << running.err;
}

TEST_F(Cli, ComfyStatusTimeoutBoundsTheCommandAgainstAServerThatNeverAnswers) {
  // Accepted by the kernel, never answered: one request alone has a 30 s limit.
  testing::SilentListener silent;
  auto started = std::chrono::steady_clock::now();
  auto r = autopod({"comfy", "status", "--url", silent.url(),
                    "--timeout", "2"});
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_RUN(r, 5);
  EXPECT_LT(took, std::chrono::milliseconds(3000));
  EXPECT_NE(r.err.find("not ready after 2."), std::string::npos) << r.err;
}

}  // namespace
}  // namespace autopod
