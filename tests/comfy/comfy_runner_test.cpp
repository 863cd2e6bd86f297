// run_workflow against the ComfyUI fake through every outcome and fault.

#include <gtest/gtest.h>

#include <set>

#include "comfy/run.hpp"
#include "comfy/workflow.hpp"
#include "tests/comfy/comfy_testing.hpp"

namespace autopod {
namespace {

namespace fs = std::filesystem;
using core::ErrorCode;
using nlohmann::json;
using testing::FakeFixture;
using testing::transcript;
const fs::path k_data = testing::k_comfy_data;

using testing::RawSocket;
using testing::Recorder;
using testing::RunFixture;

using ComfyRun = RunFixture;

TEST_F(ComfyRun, SucceedsAndSavesTheOutputsByteForByte) {
  auto r = run();
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 1u);
  const auto& result = (*r)[0];
  EXPECT_EQ(result.state.outcome, comfy::Outcome::success);
  EXPECT_TRUE(result.state.ended);
  ASSERT_EQ(result.files.size(), 1u);
  EXPECT_EQ(result.files[0], dir.path() / "out/autopod/txt2img_00001_.png");  // the subfolder is kept
  EXPECT_EQ(*core::read_file(result.files[0]), *core::read_file(fake.base_dir() / "output/autopod/txt2img_00001_.png"));
  EXPECT_EQ(std::count(display.events.begin(), display.events.end(), "progress"), 20);
  EXPECT_EQ(display.events.back(), "executing");  // the end: executing {node: null}
  EXPECT_FALSE(fake.saw_origin_header());
  EXPECT_EQ(fake.websocket_connections(), 1);
  // The socket was open before the prompt went in, with the id the prompt names.
  auto sub = fake.submitted();
  ASSERT_EQ(sub.size(), 1u);
  EXPECT_EQ(sub[0]["client_id"].get<std::string>().rfind("autopod-", 0), 0u);
  EXPECT_FALSE(fs::exists(dir.path() / "out/autopod/txt2img_00001_.png.part"));
}

TEST_F(ComfyRun, ACachedRerunStillEndsWithItsOutputs) {
  ASSERT_TRUE(run());
  req.options.out_dir = dir.path() / "again";
  auto r = run();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].state.outcome, comfy::Outcome::success);
  EXPECT_EQ(std::count(display.events.begin(), display.events.end(), "progress"), 20);  // none the second time
  ASSERT_EQ((*r)[0].files.size(), 1u);
  EXPECT_EQ((*r)[0].files[0].filename(), "txt2img_00001_.png");  // the old file, replayed
}

TEST_F(ComfyRun, CountQueuesRunsWithVariedSeedsAndFollowsThemAll) {
  req.options.count = 3;
  auto r = run();
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  std::set<fs::path> files;
  for (const auto& x : *r) {
    EXPECT_EQ(x.state.outcome, comfy::Outcome::success);
    ASSERT_EQ(x.files.size(), 1u);
    files.insert(x.files[0]);
  }
  EXPECT_EQ(files.size(), 3u);
  auto sub = fake.submitted();
  ASSERT_EQ(sub.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(sub[static_cast<std::size_t>(i)]["prompt"]["3"]["inputs"]["seed"], 156680208700286ull + static_cast<unsigned>(i));
  }
  EXPECT_EQ(sub[0]["client_id"], sub[2]["client_id"]);  // one socket for all
  auto list = http->history_list(2);  // the newest two, in completion order
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].first, (*r)[1].state.prompt_id);
  EXPECT_EQ((*list)[1].first, (*r)[2].state.prompt_id);
  EXPECT_EQ(fake.websocket_connections(), 1);
  req.options.count = 2;
  req.options.random_seed = true;
  ASSERT_TRUE(run());
  sub = fake.submitted();
  EXPECT_NE(sub[3]["prompt"]["3"]["inputs"]["seed"], 156680208700286ull);
  EXPECT_NE(sub[3]["prompt"]["3"]["inputs"]["seed"], sub[4]["prompt"]["3"]["inputs"]["seed"]);
}

TEST_F(ComfyRun, ANodeThatRaisesEndsTheRunWithItsError) {
  req.prompt = transcript()["run_execution_error"]["request"]["prompt"];
  auto r = run();
  ASSERT_TRUE(r);
  const auto& s = (*r)[0].state;
  EXPECT_EQ(s.outcome, comfy::Outcome::error);
  EXPECT_TRUE(s.ended);
  EXPECT_TRUE((*r)[0].files.empty());
  std::string why = comfy::describe_failure(s);
  EXPECT_NE(why.find("#31 Canny"), std::string::npos) << why;
  EXPECT_NE(why.find("_comfystub.StubUnavailable: kornia.filters.canny is a stub"), std::string::npos) << why;
  EXPECT_NE(why.find("at: raise StubUnavailable"), std::string::npos) << why;  // the traceback's last line
}

TEST_F(ComfyRun, ARejectedPromptNamesEveryNodeError) {
  req.prompt["4"]["inputs"]["ckpt_name"] = "missing.safetensors";
  req.prompt["5"]["inputs"]["width"] = 0;
  auto r = run();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message.find("Prompt outputs failed validation"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("node 4 (CheckpointLoaderSimple) input ckpt_name: Value not in list"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("node 5 (EmptyLatentImage) input width: Value 0 smaller than min of 16"), std::string::npos)
      << r.error().message;
}

TEST_F(ComfyRun, AnInterruptedRunEndsAsInterrupted) {
  fake.set_step_delay(std::chrono::milliseconds(20));
  req.prompt["3"]["inputs"]["steps"] = 500;
  display.on_event = [&](const comfy::Event& e) {
    if (e.type == comfy::EventType::progress && e.value == 2) {
      ASSERT_TRUE(http->interrupt());
    }
  };
  auto r = run();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].state.outcome, comfy::Outcome::interrupted);
  EXPECT_NE(comfy::describe_failure((*r)[0].state).find("#3 KSampler was interrupted"), std::string::npos);
  EXPECT_EQ(fake.interrupts(), 1);
}

TEST_F(ComfyRun, ASocketDroppedBeforeTheEndDoesNotLoseTheEnd) {
  fake.drop_socket_before("execution_success");  // the outcome and the end are never replayed
  auto r = run();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)[0].state.outcome, comfy::Outcome::success);
  ASSERT_EQ((*r)[0].files.size(), 1u);
  EXPECT_TRUE(display.said("dropped")) << ::testing::PrintToString(display.messages);
}

TEST_F(ComfyRun, ASocketDroppedMidRunIsReconnectedAndFollowedToTheEnd) {
  fake.set_step_delay(std::chrono::milliseconds(40));  // 20 steps: the run outlasts the reconnect
  fake.drop_socket_before("execution_cached");
  auto r = run();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)[0].state.outcome, comfy::Outcome::success);
  ASSERT_EQ((*r)[0].files.size(), 1u);
  EXPECT_EQ(fake.websocket_connections(), 2);
  EXPECT_TRUE(display.said("reconnected")) << ::testing::PrintToString(display.messages);
  // Events flowed again on the new socket, up to the end.
  EXPECT_GT(std::count(display.events.begin(), display.events.end(), "progress"), 0);
  EXPECT_EQ(display.events.back(), "executing");
}

TEST_F(ComfyRun, ASocketSilencedByAnOlderSocketClosingIsNoticed) {
  // §4.1: a second socket with the same client id takes over the sid; when it closes, the server
  // removes the sid and the runner's socket hears nothing more, while staying open.
  fake.hold_queue(true);
  fake.set_step_delay(std::chrono::milliseconds(30));
  req.prompt["3"]["inputs"]["steps"] = 60;
  req.options.count = 2;
  display.on_message = [&](const std::string& line) {
    if (line.find("queued run 2/2") == std::string::npos) return;
    std::string cid = fake.submitted().at(0)["client_id"];
    {
      RawSocket other(fake.port(), cid);
      other.next();
      other.close();
    }
    fake.hold_queue(false);
  };
  auto r = run();
  ASSERT_TRUE(r) << r.error().message;
  for (const auto& x : *r) {
    EXPECT_EQ(x.state.outcome, comfy::Outcome::success);
    EXPECT_EQ(x.files.size(), 1u);
  }
  // Run 1 ended unheard (found through /history); the missing status frames gave the silencing
  // away, and after a fresh connection run 2's progress was seen again.
  EXPECT_EQ(fake.websocket_connections(), 3);  // ours, the intruder's, ours again
  EXPECT_GT(std::count(display.events.begin(), display.events.end(), "progress"), 0);
  EXPECT_EQ(display.events.back(), "executing");
}

TEST_F(ComfyRun, SuccessBeforeTheHistoryIsWrittenStillFindsTheOutputs) {
  fake.success_before_history(true);
  auto r = run();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].state.outcome, comfy::Outcome::success);
  EXPECT_EQ((*r)[0].files.size(), 1u);
}

TEST_F(ComfyRun, AServerRestartMidRunEndsTheRunAsLostInsteadOfHanging) {
  fake.set_step_delay(std::chrono::milliseconds(20));
  req.prompt["3"]["inputs"]["steps"] = 500;
  bool restarted = false;
  display.on_event = [&](const comfy::Event& e) {
    if (e.type == comfy::EventType::progress && !restarted) {
      restarted = true;
      ASSERT_TRUE(fake.restart());
    }
  };
  auto r = run();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)[0].state.outcome, comfy::Outcome::lost);
  EXPECT_TRUE(display.said("ComfyUI restarted"));
}

TEST_F(ComfyRun, SlowAnswersAndPreviewFramesDoNotDisturbARun) {
  fake.delay_answers(std::chrono::milliseconds(150));  // every HTTP answer: submit, history, view
  fake.set_previews(true);
  req.prompt["3"]["inputs"]["steps"] = 3;
  auto r = run();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)[0].state.outcome, comfy::Outcome::success);
  EXPECT_EQ((*r)[0].files.size(), 1u);
  EXPECT_EQ(std::count(display.events.begin(), display.events.end(), "preview"), 3);  // type 1, no prompt id
}

TEST_F(ComfyRun, TimeoutBoundsARunThatNeverStarts) {
  fake.hold_queue(true);
  req.options.timeout = std::chrono::milliseconds(500);
  auto r = run();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::timeout);
  EXPECT_NE(r.error().message.find("still unfinished"), std::string::npos);
}

TEST_F(ComfyRun, NothingListeningIsAClearErrorAndNothingIsSubmitted) {
  req.options.timeout = std::chrono::seconds(10);
  auto nowhere = testing::comfy_client("http://127.0.0.1:" + std::to_string(testing::free_port()));
  auto r = comfy::run_workflow(nowhere, req, display);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::network);
  EXPECT_NE(r.error().message.find("WebSocket"), std::string::npos);
}

TEST_F(ComfyRun, ARefusedHandshakeNamesItsStatusAndTheRightNextStepAndSubmitsNothing) {
  // Given a ComfyUI (or whatever stands in front of it) that declines the WebSocket upgrade:
  // an empty 403 is its origin check (a proxy adding Origin), 401/407 an authenticating proxy,
  // 404 no ComfyUI at that URL. Waiting will not change any of them.
  struct Case {
    int status;
    const char* hint;
  };
  for (auto c : {Case{403, "Origin"}, Case{401, "credentials"}, Case{407, "credentials"},
                 Case{404, "is it ComfyUI"}}) {
    fake.refuse_websocket(c.status);
    auto started = std::chrono::steady_clock::now();
    auto r = run();
    ASSERT_FALSE(r) << c.status;
    EXPECT_NE(r.error().message.find("refused the WebSocket handshake"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("http " + std::to_string(c.status)), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().hint.find(c.hint), std::string::npos) << c.status << ": " << r.error().hint;
    EXPECT_EQ(r.error().http_status, c.status);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));  // no retry loop
  }
  EXPECT_TRUE(fake.submitted().empty());
}

TEST_F(ComfyRun, ServersOnAnIpv6LiteralAreReachedForEventsAndOutputs) {
  sandbox::ComfyFake v6;
  ASSERT_TRUE(v6.start(0, "::1"));
  ASSERT_EQ(v6.url().rfind("http://[::1]:", 0), 0u) << v6.url();
  auto client = testing::comfy_client(v6.url());
  auto r = comfy::run_workflow(client, req, display);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)[0].state.outcome, comfy::Outcome::success);
  EXPECT_EQ((*r)[0].files.size(), 1u);
  EXPECT_EQ(v6.websocket_connections(), 1);
}

TEST_F(ComfyRun, OutputsDroppedByValidationEndThePartialAndTheOthersAreSaved) {
  // One valid output branch and one whose EmptyImage has width 0: ComfyUI answers 200, drops
  // that branch with its node error and runs the other.
  req.prompt = json::parse(*core::read_file(k_data / "workflows/empty_image_api.json"));
  req.prompt["3"] = {{"class_type", "EmptyImage"},
                     {"inputs", {{"width", 0}, {"height", 64}, {"batch_size", 1}, {"color", 0}}}};
  req.prompt["4"] = {{"class_type", "SaveImage"},
                     {"inputs", {{"images", json::array({"3", 0})}, {"filename_prefix", "dropped"}}}};
  auto r = run();
  ASSERT_TRUE(r) << r.error().message;
  const auto& result = (*r)[0];
  EXPECT_EQ(result.state.outcome, comfy::Outcome::partial);
  EXPECT_EQ(result.files.size(), 1u);  // the valid branch's image is saved
  ASSERT_TRUE(result.dropped.contains("3")) << result.dropped.dump();
  EXPECT_EQ(display.finished_outcomes, std::vector<comfy::Outcome>{comfy::Outcome::partial});
  auto summary = comfy::summarize(*r, req.options);
  ASSERT_FALSE(summary.status);
  EXPECT_EQ(summary.status.error().code, ErrorCode::partial);
  EXPECT_NE(summary.status.error().message.find("node 3 (EmptyImage) input width"), std::string::npos)
      << summary.status.error().message;
  EXPECT_EQ(summary.files.size(), 1u);
  comfy::RunOptions allow = req.options;
  allow.allow_partial = true;
  EXPECT_TRUE(comfy::summarize(*r, allow).status);
}

TEST_F(ComfyRun, OutputNamesThatEscapeStayInsideTheOutputDirectory) {
  fake.escaping_output_names(true);
  auto r = run();
  ASSERT_TRUE(r);
  // The server itself refuses such names on /view (400); nothing lands outside --out.
  EXPECT_TRUE((*r)[0].files.empty());
  EXPECT_EQ((*r)[0].download_errors.size(), 1u);
  for (const auto& e : fs::recursive_directory_iterator(dir.path()))
    EXPECT_EQ(e.path().string().rfind((dir.path() / "out").string(), 0), 0u) << e.path();
  EXPECT_FALSE(fs::exists(dir.path() / "escape.png"));
}

TEST(ComfyOutputs, LocalPathsNeverEscape) {
  fs::path d = "/out";
  auto p = [&](const char* name, const char* sub) {
    return comfy::local_output_path(d, {{"filename", name}, {"subfolder", sub}, {"type", "output"}}).string();
  };
  EXPECT_EQ(p("a.png", ""), "/out/a.png");
  EXPECT_EQ(p("a.png", "x/y"), "/out/x/y/a.png");
  EXPECT_EQ(p("../../etc/passwd", "../.."), "/out/passwd");
  EXPECT_EQ(p("/etc/passwd", "/abs"), "/out/abs/passwd");
  EXPECT_EQ(p("..", ".."), "/out/output");
  EXPECT_EQ(p("..\\..\\win.png", "a\\..\\b"), "/out/a/b/win.png");
  EXPECT_EQ(p(".bashrc", ""), "/out/bashrc");
  EXPECT_EQ(p("a\nb.png", "c:d"), "/out/c_d/a_b.png");
}

}  // namespace
}  // namespace autopod

namespace autopod {
namespace {

using nlohmann::json;

comfy::RunResult result_with(comfy::Outcome outcome, int index) {
  comfy::RunResult r;
  r.state.outcome = outcome;
  r.state.index = index;
  r.state.prompt_id = "p" + std::to_string(index);
  return r;
}

TEST(ComfySummary, TheWorstOutcomeDecidesTheErrorAndItsExitCode) {
  using comfy::Outcome;
  comfy::RunOptions options;
  EXPECT_TRUE(comfy::summarize({result_with(Outcome::success, 1)}, options).status);
  auto s = comfy::summarize({result_with(Outcome::success, 1), result_with(Outcome::interrupted, 2),
                             result_with(Outcome::error, 3)},
                            options);
  ASSERT_FALSE(s.status);
  EXPECT_EQ(s.status.error().code, core::ErrorCode::execution_failed);
  EXPECT_NE(s.status.error().message.find("run 3 (prompt p3) error"), std::string::npos) << s.status.error().message;
  EXPECT_EQ(s.succeeded, 1);
  EXPECT_EQ(comfy::summarize({result_with(Outcome::lost, 1)}, options).status.error().code,
            core::ErrorCode::remote);
  auto saved_badly = result_with(Outcome::success, 1);
  saved_badly.download_errors.push_back("disk full");
  EXPECT_EQ(comfy::summarize({saved_badly}, options).status.error().code, core::ErrorCode::io);
}

TEST(ComfySummary, HistoryOutcomesComeFromStatusAndItsMessages) {
  using comfy::Outcome;
  EXPECT_EQ(comfy::history_outcome(json::parse(R"({"status": {"status_str": "success", "messages": []}})")).outcome,
            Outcome::success);
  auto err = comfy::history_outcome(json::parse(
      R"({"status": {"status_str": "error", "messages": [["execution_error", {"node_id": "3"}]]}})"));
  EXPECT_EQ(err.outcome, Outcome::error);
  EXPECT_EQ(err.error["node_id"], "3");
  EXPECT_EQ(comfy::history_outcome(json::parse(
                R"({"status": {"status_str": "error", "messages": [["execution_interrupted", {}]]}})"))
                .outcome,
            Outcome::interrupted);
  // Odd shapes from older servers or custom nodes are read, not thrown on.
  EXPECT_EQ(comfy::history_outcome(json::parse(R"({"status": 3})")).outcome, Outcome::success);
  EXPECT_EQ(comfy::history_outcome(json::parse(R"([1, 2])")).outcome, Outcome::success);
}

}  // namespace
}  // namespace autopod
