// The ComfyUI fake against the transcript recorded from ComfyUI 0.3.64: frames, routing,
// feature flags, previews, invalid prompts, /view and /upload rules.

#include <gtest/gtest.h>

#include <set>

#include "comfy/client.hpp"
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
using testing::ws_types;

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

}  // namespace
}  // namespace autopod
