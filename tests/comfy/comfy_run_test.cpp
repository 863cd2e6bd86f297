// `comfy run` against the ComfyUI fake: first the fake itself against the transcript recorded
// from ComfyUI 0.3.64 (tests/data/comfyui-transcript.json, copied from the reference), then the
// runner through every outcome and fault, then workflow files.

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <fstream>
#include <deque>
#include <sstream>
#include <set>

#include "comfy/client.hpp"
#include "comfy/runner.hpp"
#include "comfy/workflow.hpp"
#include "core/fs.hpp"
#include "sandbox/comfy_fake.hpp"
#include "tests/harness/harness.hpp"

namespace autopod {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace fs = std::filesystem;
using core::ErrorCode;
using nlohmann::json;
using tcp = asio::ip::tcp;

const fs::path k_data = AUTOPOD_TEST_DATA_DIR;

const json& transcript() {
  static const json t = json::parse(*core::read_file(k_data / "comfyui-transcript.json"))["scenarios"];
  return t;
}

// A plain WebSocket client, to look at exactly what the fake sends.
class RawSocket {
 public:
  RawSocket(int port, const std::string& client_id) {
    tcp::resolver resolver(m_io);
    beast::get_lowest_layer(m_ws).connect(resolver.resolve("127.0.0.1", std::to_string(port)));
    m_ws.handshake("127.0.0.1:" + std::to_string(port), "/ws" + (client_id.empty() ? "" : "?clientId=" + client_id));
  }

  // The next frame (text as is, binary as "binary:<type>"), or "" after `limit` with none. The
  // read stays pending across calls, so a quiet period does not break the stream.
  std::string next(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    if (!m_reading && !m_closed) read();
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (m_ready.empty() && !m_closed && std::chrono::steady_clock::now() < deadline) {
      m_io.restart();
      m_io.run_one_until(deadline);
    }
    if (m_ready.empty()) return "";
    std::string f = m_ready.front();
    m_ready.pop_front();
    return f;
  }

  // Frame types until `executing {node: null}` for `prompt_id`.
  std::vector<std::string> types_until_done(const std::string& prompt_id, std::vector<json>* frames = nullptr) {
    std::vector<std::string> types;
    for (int i = 0; i < 500; ++i) {
      std::string f = next();
      if (f.empty()) break;
      if (f.rfind("binary:", 0) == 0) {
        types.push_back(f);
        continue;
      }
      json j = json::parse(f);
      types.push_back(j["type"]);
      if (frames) frames->push_back(j);
      if (j["type"] == "executing" && j["data"]["node"].is_null() && j["data"]["prompt_id"] == prompt_id) break;
    }
    return types;
  }

  void send(const std::string& text) { m_ws.write(asio::buffer(text)); }
  void close() {
    bool done = false;
    m_ws.async_close(websocket::close_code::normal, [&](beast::error_code) { done = true; });
    while (!done || m_reading) {
      m_io.restart();
      m_io.run_one();
    }
  }

 private:
  void read() {
    m_reading = true;
    m_ws.async_read(m_buffer, [this](beast::error_code ec, std::size_t) {
      m_reading = false;
      if (ec) {
        m_closed = true;
        return;
      }
      std::string out = beast::buffers_to_string(m_buffer.data());
      m_buffer.consume(m_buffer.size());
      if (m_ws.got_binary()) out = "binary:" + std::to_string(static_cast<unsigned char>(out[3]));
      m_ready.push_back(out);
      read();
    });
  }

  std::deque<std::string> m_ready;
  bool m_reading = false, m_closed = false;
  asio::io_context m_io;
  websocket::stream<beast::tcp_stream> m_ws{m_io};
  beast::flat_buffer m_buffer;
};

std::vector<std::string> ws_types(const json& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) out.push_back(f.contains("binary") ? "binary:" + f["event"].dump() : f["type"].get<std::string>());
  return out;
}

struct FakeFixture : ::testing::Test {
  sandbox::ComfyFake fake;
  std::unique_ptr<comfy::ComfyClient> http;
  testing::TempDir dir;
  void SetUp() override {
    ASSERT_TRUE(fake.start());
    http = std::make_unique<comfy::ComfyClient>(fake.url(), core::make_curl_transport(), core::system_clock());
  }
  core::Result<comfy::Submitted> submit(const json& prompt, const std::string& cid) {
    return http->submit(prompt, cid);
  }
};

// --- the fake against the transcript ------------------------------------------------------------

using ComfyFakeTranscript = FakeFixture;

TEST_F(ComfyFakeTranscript, ARunACachedRerunAndAFailingRunSendTheRecordedFrames) {
  RawSocket ws(fake.port(), "probe");
  json hello = json::parse(ws.next());
  EXPECT_EQ(hello, json::parse(R"({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "probe"}})"));
  for (const char* scenario : {"run_empty_image", "run_empty_image_cached_rerun", "run_execution_error",
                               "run_get_image_size_progress_text"}) {
    SCOPED_TRACE(scenario);
    const json& s = transcript()[scenario];
    auto r = submit(s["request"]["prompt"], "probe");
    ASSERT_TRUE(r) << r.error().message;
    std::vector<json> frames;
    auto types = ws.types_until_done(r->prompt_id, &frames);
    EXPECT_EQ(types, ws_types(s["ws"]));
    // Same node order, same cached set, same outputs shape.
    std::vector<json> recorded;
    for (const auto& f : s["ws"]) {
      if (!f.contains("binary")) recorded.push_back(f);
    }
    ASSERT_EQ(frames.size(), recorded.size());
    for (std::size_t i = 0; i < frames.size(); ++i) {
      const json& got = frames[i]["data"];
      const json& want = recorded[i]["data"];
      if (recorded[i]["type"] == "executing") {
        EXPECT_EQ(got["node"], want["node"]);
      }
      if (recorded[i]["type"] == "execution_cached") {
        EXPECT_EQ(got["nodes"], want["nodes"]);
      }
      if (recorded[i]["type"] == "progress_state") {
        std::vector<std::string> a, b;
        for (const auto& [k, v] : got["nodes"].items()) a.push_back(k + ":" + v["state"].get<std::string>());
        for (const auto& [k, v] : want["nodes"].items()) b.push_back(k + ":" + v["state"].get<std::string>());
        EXPECT_EQ(a, b) << i;
      }
      if (recorded[i]["type"] == "execution_error") {
        for (const char* key : {"node_id", "node_type", "executed", "exception_type", "exception_message"})
          EXPECT_EQ(got[key], want[key]) << key;
        EXPECT_TRUE(got["traceback"].is_array());
      }
      for (const auto& [key, v] : want.items()) EXPECT_TRUE(got.contains(key)) << recorded[i]["type"] << " lacks " << key;
    }
    auto h = http->history(r->prompt_id);
    ASSERT_TRUE(h);
    const json& want = s["history"]["body"].begin().value();
    const json& got = (*h)[r->prompt_id];
    EXPECT_EQ(got["status"]["status_str"], want["status"]["status_str"]);
    std::vector<std::string> got_msgs, want_msgs;
    for (const auto& m : got["status"]["messages"]) got_msgs.push_back(m[0]);
    for (const auto& m : want["status"]["messages"]) want_msgs.push_back(m[0]);
    EXPECT_EQ(got_msgs, want_msgs);
    EXPECT_EQ(got["prompt"].size(), 5u);
    EXPECT_EQ(got["prompt"][4], want["prompt"][4]);
    EXPECT_EQ(got["outputs"].size(), want["outputs"].size());
  }
}

TEST_F(ComfyFakeTranscript, EventsGoOnlyToTheSubmittersSocketAndAreSprayedWithoutAClientId) {
  const json& s = transcript()["ws_routing"];
  RawSocket mine(fake.port(), "probe"), other(fake.port(), "");
  json other_hello = json::parse(other.next());
  EXPECT_EQ(other_hello["data"]["sid"].get<std::string>().size(), 32u);  // made up: 32 hex digits
  mine.next();
  auto with = submit(s["with_client_id"]["request"]["prompt"], "probe");
  ASSERT_TRUE(with);
  EXPECT_EQ(mine.types_until_done(with->prompt_id), s["with_client_id"]["frames_seen_by_submitter_socket"].get<std::vector<std::string>>());
  std::vector<std::string> seen;
  for (std::string f; !(f = other.next(std::chrono::milliseconds(300))).empty();) seen.push_back(json::parse(f)["type"]);
  EXPECT_EQ(seen, s["with_client_id"]["frames_seen_by_other_socket"].get<std::vector<std::string>>());
  auto without = submit(s["without_client_id"]["request"]["prompt"], "");
  ASSERT_TRUE(without);
  for (RawSocket* ws : {&mine, &other}) {
    seen.clear();
    for (std::string f; !(f = ws->next(std::chrono::milliseconds(300))).empty();) seen.push_back(json::parse(f)["type"]);
    EXPECT_EQ(seen, s["without_client_id"]["frames_seen_by_other_socket"].get<std::vector<std::string>>());
  }
}

TEST_F(ComfyFakeTranscript, FeatureFlagsAreAnsweredOnlyForTheFirstJsonObject) {
  const json& s = transcript()["ws_feature_flags"];
  RawSocket ws(fake.port(), "probe-ff");
  ws.next();
  ws.send("not json");  // skipped: does not use up the slot
  ws.send(s["sent"].dump());
  EXPECT_EQ(json::parse(ws.next()), s["received"][1]);
  ws.send(s["sent"].dump());  // a second one gets no reply
  EXPECT_EQ(ws.next(std::chrono::milliseconds(300)), "");
}

TEST_F(ComfyFakeTranscript, PreviewFramesFollowTheNegotiatedFlag) {
  fake.set_previews(true);
  json prompt = json::parse(*core::read_file(k_data / "workflows/txt2img_api.json"));
  prompt["3"]["inputs"]["steps"] = 2;
  RawSocket plain(fake.port(), "plain"), flagged(fake.port(), "flagged");
  plain.next();
  flagged.next();
  flagged.send(R"({"type": "feature_flags", "data": {"supports_preview_metadata": true}})");
  flagged.next();
  auto a = submit(prompt, "plain");
  ASSERT_TRUE(a);
  auto types = plain.types_until_done(a->prompt_id);
  EXPECT_EQ(std::count(types.begin(), types.end(), "binary:1"), 2);
  auto at = std::find(types.begin(), types.end(), "progress");
  ASSERT_NE(at, types.end());
  EXPECT_EQ(*(at + 1), "binary:1");  // type 1 comes after its progress frame
  prompt["3"]["inputs"]["seed"] = 7;
  auto b = submit(prompt, "flagged");
  ASSERT_TRUE(b);
  types = flagged.types_until_done(b->prompt_id);
  EXPECT_EQ(std::count(types.begin(), types.end(), "binary:4"), 2);
  at = std::find(types.begin(), types.end(), "binary:4");
  EXPECT_EQ(*(at + 1), "progress");  // type 4 comes before it
}

TEST_F(ComfyFakeTranscript, InvalidPromptsGetTheRecordedErrorsAndNoFrames) {
  RawSocket ws(fake.port(), "probe");
  ws.next();
  for (const auto& [name, s] : transcript()["invalid_prompts"].items()) {
    SCOPED_TRACE(name);
    core::HttpRequest req;
    req.method = "POST";
    req.url = fake.url() + "/prompt";
    req.body = name == "body_not_json" ? "{not json" : name == "body_not_a_prompt" ? R"({"client_id": "probe"})"
                                                                                      : json{{"prompt", s["prompt"]}, {"client_id", "probe"}}.dump();
    auto r = core::make_curl_transport()->send(req);
    ASSERT_TRUE(r);
    const json& want = s["response"];
    EXPECT_EQ(r->status, want["status"]);
    if (want["body"].is_string()) {
      EXPECT_EQ(r->body, want["body"]);
      continue;
    }
    json got = json::parse(r->body);
    EXPECT_EQ(got["error"]["type"], want["body"]["error"]["type"]);
    EXPECT_EQ(got["error"]["message"], want["body"]["error"]["message"]);
    EXPECT_EQ(got["error"]["details"], want["body"]["error"]["details"]);
    ASSERT_EQ(got["node_errors"].size(), want["body"]["node_errors"].size());
    for (const auto& [node, e] : want["body"]["node_errors"].items()) {
      EXPECT_EQ(got["node_errors"][node]["class_type"], e["class_type"]);
      EXPECT_EQ(got["node_errors"][node]["dependent_outputs"], e["dependent_outputs"]);
      EXPECT_EQ(got["node_errors"][node]["errors"][0]["type"], e["errors"][0]["type"]);
      EXPECT_EQ(got["node_errors"][node]["errors"][0]["extra_info"].value("input_name", ""),
                e["errors"][0]["extra_info"].value("input_name", ""));
    }
  }
  EXPECT_EQ(ws.next(std::chrono::milliseconds(300)), "");  // a rejected prompt produces no frames
  // The counter took a number for every body that parsed, rejected or not.
  auto ok = submit(transcript()["run_empty_image"]["request"]["prompt"], "probe");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->number, 7);
}

TEST_F(ComfyFakeTranscript, ViewAndUploadFollowTheServersRules) {
  RawSocket ws(fake.port(), "x");
  ws.next();
  auto r = submit(transcript()["run_empty_image"]["request"]["prompt"], "x");
  ASSERT_TRUE(r);
  ws.types_until_done(r->prompt_id);
  auto get = [&](const std::string& query) {
    core::HttpRequest req;
    req.url = fake.url() + "/api/view?" + query;
    return *core::make_curl_transport()->send(req);
  };
  auto ok = get("filename=acc_00001_.png&subfolder=&type=output");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.header("content-type"), "image/png");
  EXPECT_EQ(ok.body.substr(1, 3), "PNG");
  EXPECT_EQ(get("filename=acc_00001_.png%20%5Boutput%5D&type=input").status, 200);  // annotation wins
  EXPECT_EQ(get("filename=a..b.png").status, 400);
  EXPECT_EQ(get("filename=%2Fetc%2Fpasswd").status, 400);
  EXPECT_EQ(get("filename=x.png&type=bogus").status, 400);
  EXPECT_EQ(get("filename=passwd&subfolder=..%2F..%2F..%2Fetc").status, 403);
  EXPECT_EQ(get("filename=missing.png").status, 404);
  EXPECT_EQ(get("").status, 404);

  testing::TempDir tmp;
  ASSERT_TRUE(core::write_file_atomic(tmp.path() / "in.png", "first"));
  auto a = http->upload(tmp.path() / "in.png");
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, "in.png");
  EXPECT_EQ(*http->upload(tmp.path() / "in.png"), "in.png");  // same content: reused
  ASSERT_TRUE(core::write_file_atomic(tmp.path() / "in.png", "second"));
  EXPECT_EQ(*http->upload(tmp.path() / "in.png"), "in (1).png");  // different: numbered
  EXPECT_EQ(*http->upload(tmp.path() / "in.png"), "in (1).png");
  core::HttpRequest bad;
  bad.method = "POST";
  bad.url = fake.url() + "/upload/image";
  bad.body = "image=x";
  bad.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  EXPECT_EQ(core::make_curl_transport()->send(bad)->status, 400);
}

// --- the runner ----------------------------------------------------------------------------------

// Records what the runner shows, and lets a test act on an event.
struct Recorder : comfy::Display {
  std::vector<std::string> events, messages, saved_paths;
  std::vector<comfy::Outcome> finished_outcomes;
  std::function<void(const comfy::Event&)> on_event;
  std::function<void(const std::string&)> on_message;
  void event(const comfy::RunState&, const comfy::Event& e) override {
    events.push_back(comfy::to_string(e.type));
    if (on_event) on_event(e);
  }
  void message(const std::string& line) override {
    messages.push_back(line);
    if (on_message) on_message(line);
  }
  void saved(const comfy::RunState&, const std::string& path) override { saved_paths.push_back(path); }
  void finished(const comfy::RunState& run) override { finished_outcomes.push_back(run.outcome); }
  bool said(const std::string& text) const {
    return std::any_of(messages.begin(), messages.end(), [&](const std::string& m) { return m.find(text) != std::string::npos; });
  }
};

struct RunFixture : FakeFixture {
  Recorder display;
  comfy::RunRequest req;
  void SetUp() override {
    FakeFixture::SetUp();
    req.prompt = json::parse(*core::read_file(k_data / "workflows/txt2img_api.json"));
    req.out_dir = dir.path() / "out";
    req.watchdog = std::chrono::milliseconds(200);
    req.timeout = std::chrono::seconds(60);
  }
  core::Result<std::vector<comfy::RunResult>> run() { return comfy::run_workflow(fake.url(), req, display); }
};

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
  req.out_dir = dir.path() / "again";
  auto r = run();
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].state.outcome, comfy::Outcome::success);
  EXPECT_EQ(std::count(display.events.begin(), display.events.end(), "progress"), 20);  // none the second time
  ASSERT_EQ((*r)[0].files.size(), 1u);
  EXPECT_EQ((*r)[0].files[0].filename(), "txt2img_00001_.png");  // the old file, replayed
}

TEST_F(ComfyRun, CountQueuesRunsWithVariedSeedsAndFollowsThemAll) {
  req.count = 3;
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
  req.count = 2;
  req.random_seed = true;
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
  req.count = 2;
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
  req.timeout = std::chrono::milliseconds(500);
  auto r = run();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::timeout);
  EXPECT_NE(r.error().message.find("still unfinished"), std::string::npos);
}

TEST_F(ComfyRun, NothingListeningIsAClearErrorAndNothingIsSubmitted) {
  req.timeout = std::chrono::seconds(10);
  auto r = comfy::run_workflow("http://127.0.0.1:" + std::to_string(testing::free_port()), req, display);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::network);
  EXPECT_NE(r.error().message.find("WebSocket"), std::string::npos);
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

// --- workflow files --------------------------------------------------------------------------------

using ComfyWorkflow = FakeFixture;

TEST_F(ComfyWorkflow, TheEditorsFormatIsDetectedAndConvertedWithObjectInfo) {
  json ui = *comfy::load_json_file(k_data / "workflows/txt2img_editor.json");
  EXPECT_EQ(*comfy::detect_format(ui, "w"), comfy::WorkflowFormat::ui);
  auto info = http->object_info();
  ASSERT_TRUE(info);
  auto api = comfy::ui_to_api(ui, *info);
  ASSERT_TRUE(api) << api.error().message;
  json want = *comfy::load_json_file(k_data / "workflows/txt2img_api.json");
  want["3"]["inputs"]["steps"] = 25;                        // from the PrimitiveNode
  want["9"]["inputs"]["filename_prefix"] = "autopod/editor";
  std::vector<std::string> ids;
  for (const auto& [id, node] : api->items()) ids.push_back(id);
  EXPECT_EQ(ids, (std::vector<std::string>{"3", "4", "5", "6", "7", "8", "9"}));  // no reroute, note, muted, bypassed
  for (const auto& [id, node] : want.items()) {
    EXPECT_EQ((*api)[id]["class_type"], node["class_type"]) << id;
    EXPECT_EQ((*api)[id]["inputs"], node["inputs"]) << id;
  }
  EXPECT_EQ((*api)["6"]["_meta"]["title"], "Positive");
  EXPECT_EQ((*api)["8"]["inputs"]["vae"], json::array({"4", 2}));     // through the reroute
  EXPECT_EQ((*api)["9"]["inputs"]["images"], json::array({"8", 0}));  // around the bypassed invert
  // And the server takes it.
  auto submitted = http->submit(*api, "x");
  EXPECT_TRUE(submitted) << submitted.error().message;
}

TEST_F(ComfyWorkflow, NodesThatCannotBeConvertedAreNamed) {
  json ui = *comfy::load_json_file(k_data / "workflows/txt2img_editor.json");
  ui["nodes"][0]["type"] = "IPAdapterAdvanced";
  auto r = comfy::ui_to_api(ui, *http->object_info());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("node #4 is of type IPAdapterAdvanced"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().hint.find("Export (API)"), std::string::npos);
  ui = *comfy::load_json_file(k_data / "workflows/txt2img_editor.json");
  ui["definitions"] = {{"subgraphs", json::array({{{"id", "KSampler"}}})}};
  r = comfy::ui_to_api(ui, *http->object_info());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("subgraph"), std::string::npos);
}

TEST(ComfyWorkflowFiles, FormatsAreToldApartAndBadFilesSayWhere) {
  testing::TempDir tmp;
  ASSERT_TRUE(core::write_file_atomic(tmp.path() / "bad.json", "{\n  \"1\": {\"class_type\": \"X\",\n  }\n}"));
  auto bad = comfy::load_json_file(tmp.path() / "bad.json");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("bad.json:3:3"), std::string::npos) << bad.error().message;
  json wrapped = {{"prompt", {{"1", {{"class_type", "SaveImage"}, {"inputs", json::object()}}}}}, {"extra_data", json::object()}};
  EXPECT_EQ(*comfy::detect_format(wrapped, "w"), comfy::WorkflowFormat::api);
  EXPECT_TRUE(wrapped.contains("1"));
  json neither = {{"hello", 1}};
  EXPECT_EQ(comfy::detect_format(neither, "w.json").error().code, ErrorCode::invalid_argument);
}

TEST(ComfyWorkflowFiles, SetTypesValuesAndFindsNodesByIdOrTitle) {
  json p = *comfy::load_json_file(k_data / "workflows/txt2img_api.json");
  ASSERT_TRUE(comfy::apply_set(p, "3.steps=30"));
  ASSERT_TRUE(comfy::apply_set(p, "KSampler.cfg=6.5"));
  ASSERT_TRUE(comfy::apply_set(p, "Positive.text=a cat, 4k"));
  ASSERT_TRUE(comfy::apply_set(p, "3.denoise=1e-1"));
  ASSERT_TRUE(comfy::apply_set(p, "3.seed=18446744073709551615"));
  EXPECT_EQ(p["3"]["inputs"]["steps"], 30);
  EXPECT_TRUE(p["3"]["inputs"]["steps"].is_number_integer());
  EXPECT_EQ(p["3"]["inputs"]["cfg"], 6.5);
  EXPECT_EQ(p["6"]["inputs"]["text"], "a cat, 4k");
  EXPECT_EQ(p["3"]["inputs"]["denoise"], 0.1);
  EXPECT_EQ(p["3"]["inputs"]["seed"], 18446744073709551615ull);
  for (auto [text, want] : std::vector<std::pair<std::string, json>>{
           {"-3", -3}, {"1.", 1.0}, {".5", 0.5}, {"2E3", 2000.0}, {"1.2.3", "1.2.3"}, {"1e", "1e"},
           {"-", "-"}, {".", "."}, {"true", true}, {"[1, 2]", json::array({1, 2})}, {"nan", "nan"}}) {
    ASSERT_TRUE(comfy::apply_set(p, "9.filename_prefix=" + text));
    EXPECT_EQ(p["9"]["inputs"]["filename_prefix"], want) << text;
  }
  ASSERT_TRUE(comfy::apply_set(p, "9.filename_prefix=\"007\""));  // quoted: stays a string
  EXPECT_EQ(p["9"]["inputs"]["filename_prefix"], "007");
  auto missing = comfy::apply_set(p, "3.sed=1");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().hint.find("seed"), std::string::npos);
  EXPECT_FALSE(comfy::apply_set(p, "Nobody.x=1"));
  EXPECT_FALSE(comfy::apply_set(p, "no-dot=1"));
  p["7"]["_meta"]["title"] = "Positive";
  auto twice = comfy::apply_set(p, "Positive.text=x");
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message.find("several nodes (6, 7)"), std::string::npos) << twice.error().message;
}

TEST_F(ComfyWorkflow, LocalFilesNamedByLoadNodesAreUploaded) {
  json p = transcript()["run_load_invert_save"]["request"]["prompt"];
  ASSERT_TRUE(core::write_file_atomic(dir.path() / "cat.png", "png bytes"));
  p["10"]["inputs"]["image"] = "cat.png";  // relative to the workflow's directory
  auto slots = comfy::upload_slots(p, {}, dir.path());
  ASSERT_TRUE(slots);
  ASSERT_EQ(slots->size(), 1u);
  EXPECT_EQ((*slots)[0].node, "10");
  EXPECT_EQ((*slots)[0].file, dir.path() / "cat.png");
  ASSERT_TRUE(core::write_file_atomic(dir.path() / "dog.png", "other bytes"));
  slots = comfy::upload_slots(p, {dir.path() / "dog.png"}, "/nonexistent");
  ASSERT_TRUE(slots);
  EXPECT_EQ((*slots)[0].file, dir.path() / "dog.png");  // --input wins
  EXPECT_FALSE(comfy::upload_slots(p, {dir.path() / "dog.png", dir.path() / "cat.png"}, dir.path()));
  EXPECT_FALSE(comfy::upload_slots(p, {dir.path() / "nope.png"}, dir.path()));
  // Uploaded, the workflow then runs against the uploaded name.
  auto name = http->upload((*slots)[0].file);
  ASSERT_TRUE(name);
  p["10"]["inputs"]["image"] = *name;
  EXPECT_TRUE(http->submit(p, "x"));
}

TEST(ComfyEvents, BinaryFramesParse) {
  auto be = [](std::uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  auto text = comfy::parse_binary_frame(be(3) + be(2) + "21" + "width: 48");
  ASSERT_TRUE(text);
  EXPECT_EQ(text->type, comfy::EventType::text);
  EXPECT_EQ(text->node, "21");
  EXPECT_EQ(text->text, "width: 48");
  std::string meta = R"({"node_id": "3", "prompt_id": "p", "display_node_id": "3", "image_type": "image/png"})";
  auto preview = comfy::parse_binary_frame(be(4) + be(static_cast<std::uint32_t>(meta.size())) + meta + "PNGDATA");
  ASSERT_TRUE(preview);
  EXPECT_EQ(preview->prompt_id, "p");
  EXPECT_EQ(preview->value, 7);
  EXPECT_FALSE(comfy::parse_binary_frame(be(3) + be(99) + "x"));
  EXPECT_FALSE(comfy::parse_binary_frame("ab"));
  EXPECT_EQ(comfy::parse_binary_frame(be(1) + be(2) + "PNG")->type, comfy::EventType::preview);
  EXPECT_FALSE(comfy::parse_text_frame("[1, 2]"));
  auto custom = comfy::parse_text_frame(R"({"type": "crystools.monitor", "data": {"cpu": 3}})");
  ASSERT_TRUE(custom);
  EXPECT_EQ(custom->type, comfy::EventType::other);
}

}  // namespace
}  // namespace autopod

namespace autopod {
namespace {

std::string drain(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
  return s;
}

comfy::RunState sample_run() {
  comfy::RunState run;
  run.prompt_id = "4f6c5a1e-3b2d-4c8e-9a7f-0d1e2f3a4b5c";
  run.nodes = comfy::node_infos(*comfy::load_json_file(k_data / "workflows/txt2img_api.json"));
  run.submitted = std::chrono::steady_clock::now();
  return run;
}

TEST(ComfyDisplay, TheLiveLineShowsNodeStepBarPercentAndEta) {
  std::FILE* f = std::tmpfile();
  auto display = comfy::make_display(comfy::DisplayKind::live, f);
  auto run = sample_run();
  auto feed = [&](const std::string& frame) {
    auto e = comfy::parse_text_frame(frame);
    ASSERT_TRUE(e);
    comfy::apply(run, *e, std::chrono::steady_clock::now());
    display->event(run, *e);
  };
  std::string id = run.prompt_id;
  feed(R"({"type": "execution_start", "data": {"prompt_id": ")" + id + R"("}})");
  feed(R"({"type": "execution_cached", "data": {"nodes": ["4", "5", "6"], "prompt_id": ")" + id + R"("}})");
  feed(R"({"type": "executing", "data": {"node": "3", "display_node": "3", "prompt_id": ")" + id + R"("}})");
  feed(R"({"type": "progress", "data": {"value": 10, "max": 20, "node": "3", "prompt_id": ")" + id + R"("}})");
  // 3 of 7 nodes cached, the sampler half done: (3 + 0.5) / 7 = 50%.
  EXPECT_NEAR(run.fraction(), 0.5, 1e-9);
  display->tick();
  std::string out = drain(f);
  EXPECT_NE(out.find("\r\033[K"), std::string::npos);  // redrawn in place
  EXPECT_NE(out.find("run 1/1 #3 KSampler [##########----------] 10/20   50%  0:00 eta 0:00"), std::string::npos) << out;
  display->message("saved outputs/x.png");  // a message clears the line, prints, redraws
  out = drain(f);
  EXPECT_NE(out.find("\r\033[Ksaved outputs/x.png\n"), std::string::npos) << out;
  display.reset();  // clears the live line: before the file goes
  std::fclose(f);
}

TEST(ComfyDisplay, PlainLinesAndJsonLinesOnePerEvent) {
  std::FILE* f = std::tmpfile();
  auto plain = comfy::make_display(comfy::DisplayKind::plain, f);
  auto run = sample_run();
  auto e = *comfy::parse_text_frame(R"({"type": "progress", "data": {"value": 3, "max": 20, "node": "3", "prompt_id": "p"}})");
  comfy::apply(run, e, std::chrono::steady_clock::now());
  plain->event(run, e);
  auto state = *comfy::parse_text_frame(R"({"type": "progress_state", "data": {"prompt_id": "p", "nodes": {}}})");
  plain->event(run, state);  // the twin of progress: no line of its own
  std::string out = drain(f);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
  EXPECT_NE(out.find("run 1/1 4f6c5a1e   2% step 3/20 #3 KSampler"), std::string::npos) << out;
  std::fclose(f);
  f = std::tmpfile();
  auto js = comfy::make_display(comfy::DisplayKind::json, f);
  js->event(run, e);
  js->saved(run, "out/a.png");
  run.outcome = comfy::Outcome::success;
  js->finished(run);
  out = drain(f);
  std::istringstream in(out);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["event"], "progress");
  EXPECT_EQ(lines[0]["class_type"], "KSampler");
  EXPECT_EQ(lines[0]["value"], 3);
  EXPECT_EQ(lines[1]["path"], "out/a.png");
  EXPECT_EQ(lines[2]["outcome"], "success");
  std::fclose(f);
}

}  // namespace
}  // namespace autopod
