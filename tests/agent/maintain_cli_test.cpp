// autopod maintain's decisions on sandbox pods, with the clock moved by
// AUTOPOD_TEST_NOW_OFFSET_S: idle, busy, browser activity, fresh pods, dry runs, overlap.

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/http.hpp"
#include "tests/agent/maintain_fixture.hpp"

namespace autopod {
namespace {

using testing::json;
using testing::MaintainCli;

const std::filesystem::path k_workflows = AUTOPOD_TEST_DATA_DIR "/workflows";
constexpr const char* k_idle_30 = "maintain:\n  idle_minutes: 30\n  grace_minutes: 15\n";

TEST_F(MaintainCli, IdlePodIsTakenDownAndItsVolumeKept) {
  config(k_idle_30);
  auto id = pod_with_comfyui("idle");
  auto first = maintain(0);
  EXPECT_RUN(first, 0);
  EXPECT_EQ(line_of(first, "idle")["decision"], "none");
  EXPECT_EQ(line_of(first, "idle")["comfyui"], "up");
  auto later = maintain(31);
  EXPECT_RUN(later, 0);
  auto line = line_of(later, "idle");
  EXPECT_EQ(line["decision"], "down") << later.out;
  EXPECT_GE(line["idle_minutes"].get<double>(), 30.0);
  EXPECT_EQ(status_of("idle"), "");  // terminated
  auto ls = json::parse(autopod({"ls", "--json"}).out);
  ASSERT_EQ(ls["down"].size(), 1u);
  EXPECT_EQ(ls["down"][0]["name"], "idle");
  EXPECT_EQ(json::parse(autopod({"volume", "ls", "--json"}).out)["volumes"].size(), 1u);
  EXPECT_NE(log_text().find("pod idle (" + id + "): take down"), std::string::npos) << log_text();
  EXPECT_EQ(json::parse(autopod({"tunnel", "list", "--json"}).out)["tunnels"].size(), 0u);
}

TEST_F(MaintainCli, PodWithAQueuedPromptIsKept) {
  config(k_idle_30);
  pod_with_comfyui("busy");
  fake.add_pending("queued-1", 1, json::object());
  EXPECT_RUN(maintain(0), 0);
  auto later = maintain(45);
  EXPECT_RUN(later, 0);
  auto line = line_of(later, "busy");
  EXPECT_EQ(line["decision"], "none") << later.out;
  EXPECT_EQ(line["queue_pending"], 1);
  EXPECT_EQ(line["idle_minutes"], 0.0);
  EXPECT_EQ(status_of("busy"), "running");
}

TEST_F(MaintainCli, HistoryThatGrewFromTheBrowserKeepsThePod) {
  config(k_idle_30);
  pod_with_comfyui("browser");
  EXPECT_RUN(maintain(0), 0);
  // At minute 20 someone queues a prompt in the browser, straight to ComfyUI (not through
  // autopod): it is either still queued or already in the history when maintain looks.
  auto prompt = json::parse(*core::read_file(k_workflows / "txt2img_api.json"));
  auto http = core::make_curl_transport();
  core::HttpRequest post;
  post.method = "POST";
  post.url = "http://127.0.0.1:" + std::to_string(local_port) + "/prompt";
  post.headers = {{"Content-Type", "application/json"}};
  post.body = json{{"prompt", prompt}, {"client_id", "browser"}}.dump();
  auto answer = http->send(post);
  ASSERT_TRUE(answer) << answer.error().describe();
  ASSERT_EQ(answer->status, 200) << answer->body;
  EXPECT_RUN(maintain(20), 0);
  auto later = maintain(45);
  EXPECT_RUN(later, 0);
  auto line = line_of(later, "browser");
  EXPECT_EQ(line["decision"], "none") << later.out;
  EXPECT_NEAR(line["idle_minutes"].get<double>(), 25.0, 1.0);
  EXPECT_EQ(status_of("browser"), "running");
}

TEST_F(MaintainCli, ComfyRunInProgressKeepsThePod) {
  config(k_idle_30);
  pod_with_comfyui("running");
  EXPECT_RUN(maintain(0), 0);
  fake.hold_queue(true);  // the run stays in the queue, as a long one would
  auto e = env;
  e.push_back("AUTOPOD_TEST_NOW_OFFSET_S=" + std::to_string(20 * 60));
  auto run = testing::run_autopod(
      {"comfy", "run", (k_workflows / "txt2img_api.json").string(), "running", "--no-wait",
       "--local-port", std::to_string(local_port), "--remote-port", std::to_string(fake.port())},
      e);
  EXPECT_RUN(run, 0);
  // The comfy command recorded its use of the pod for maintain.
  auto activity = json::parse(*core::read_file(dir / "home" / "activity.json"));
  EXPECT_EQ(activity["pods"].size(), 1u);
  auto later = maintain(51);
  EXPECT_RUN(later, 0);
  auto line = line_of(later, "running");
  EXPECT_EQ(line["decision"], "none") << later.out;
  EXPECT_EQ(line["queue_running"].get<int>() + line["queue_pending"].get<int>(), 1);
  EXPECT_EQ(status_of("running"), "running");
}

TEST_F(MaintainCli, FreshPodIsNeverIdle) {
  config("maintain:\n  idle_minutes: 30\n  grace_minutes: 60\n");
  pod_with_comfyui("fresh");
  EXPECT_RUN(maintain(0), 0);
  auto later = maintain(40);
  EXPECT_RUN(later, 0);
  auto line = line_of(later, "fresh");
  EXPECT_EQ(line["decision"], "none") << later.out;
  EXPECT_GE(line["idle_minutes"].get<double>(), 30.0);
  EXPECT_NE(line["reason"].get<std::string>().find("grace 60 min"), std::string::npos) << line;
  EXPECT_EQ(status_of("fresh"), "running");
}

TEST_F(MaintainCli, DryRunDecidesButChangesNothing) {
  config(k_idle_30);
  pod_with_comfyui("dry");
  EXPECT_RUN(maintain(0), 0);
  auto state_before = *core::read_file(dir / "home" / "maintain.json");
  auto log_before = log_text();
  auto dry = maintain(31, {"--dry-run"});
  EXPECT_RUN(dry, 0);
  auto line = line_of(dry, "dry");
  EXPECT_EQ(line["decision"], "down") << dry.out;
  EXPECT_EQ(line["did"][0], "would take down (terminate, keep volume)");
  EXPECT_EQ(status_of("dry"), "running");
  EXPECT_EQ(*core::read_file(dir / "home" / "maintain.json"), state_before);
  EXPECT_EQ(log_text(), log_before);
  // Without --dry-run the same decision is carried out.
  EXPECT_EQ(line_of(maintain(31), "dry")["decision"], "down");
  EXPECT_EQ(status_of("dry"), "");
}

TEST_F(MaintainCli, AnOverlappingRunSkipsAndExitsZero) {
  config(k_idle_30);
  std::filesystem::create_directories(dir / "home");
  // Another maintain run holds the lock, as a slow one would while the timer fires again.
  int fd = ::open((dir / "home" / "maintain.lock").c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  auto skipped = maintain(0);
  EXPECT_RUN(skipped, 0);
  EXPECT_EQ(json::parse(skipped.out)["skipped"], true);
  EXPECT_NE(skipped.err.find("another autopod maintain is running"), std::string::npos);
  EXPECT_EQ(requests(), 0u);  // it did not even ask the provider
  ::close(fd);
  auto ran = maintain(0);
  EXPECT_RUN(ran, 0);
  EXPECT_EQ(json::parse(ran.out)["skipped"], false);
}

}  // namespace
}  // namespace autopod
