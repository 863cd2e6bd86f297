// autopod comfy ... end to end against the ComfyUI fake, directly and through a tunnel to the
// sandbox pod (agent/cli/comfy_cmd.cpp).

#include <gtest/gtest.h>

#include <sstream>

#include "tests/agent/cli_fixture.hpp"
#include "sandbox/comfy_fake.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::Cli;

TEST_F(Cli, ComfyCommandsWithUrl) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  fake.add_pending("p-1", 3, json::object());
  fake.add_history("done-1", json::parse(R"({"outputs": {"9": {"images": [
      {"filename": "acc_00002_.png", "subfolder": "", "type": "output"}]}},
      "status": {"status_str": "success", "completed": true, "messages": []}})"));
  auto status = autopod({"comfy", "status", "--url", fake.url()});
  EXPECT_RUN(status, 0);
  EXPECT_NE(status.out.find("ready"), std::string::npos);
  EXPECT_NE(status.out.find("0.3.64"), std::string::npos);
  auto info = autopod({"comfy", "info", "--url", fake.url(), "--json"});
  EXPECT_RUN(info, 0);
  auto doc = json::parse(info.out);
  EXPECT_EQ(doc["comfyui_version"], "0.3.64");
  EXPECT_EQ(doc["queue_pending"], 1);
  EXPECT_EQ(doc["node_count"], 13);
  EXPECT_EQ(doc["devices"][0]["type"], "cpu");
  auto queue = autopod({"comfy", "queue", "--url", fake.url()});
  EXPECT_RUN(queue, 0);
  EXPECT_NE(queue.out.find("pending  p-1"), std::string::npos) << queue.out;
  auto history = autopod({"comfy", "history", "--url", fake.url(), "--prompt", "done-1"});
  EXPECT_RUN(history, 0);
  EXPECT_NE(history.out.find("acc_00002_.png"), std::string::npos) << history.out;
  EXPECT_RUN(autopod({"comfy", "history", "--url", fake.url(), "--prompt", "nope"}), 3);
  EXPECT_RUN(autopod({"comfy", "cancel", "--url", fake.url(), "--prompt", "nope"}), 3);
  EXPECT_RUN(autopod({"comfy", "cancel", "--url", fake.url(), "--prompt", "p-1"}), 0);
  EXPECT_EQ(json::parse(autopod({"comfy", "queue", "--url", fake.url(), "--json"}).out)["pending"].size(), 0u);
  EXPECT_RUN(autopod({"comfy", "free", "--url", fake.url(), "--keep-cache"}), 0);
  EXPECT_EQ(fake.last_free(), json({{"unload_models", true}, {"free_memory", false}}));
  EXPECT_RUN(autopod({"comfy", "interrupt", "--url", fake.url()}), 0);
}

TEST_F(Cli, ComfyStatusOfNothingIsNotReady) {
  auto r = autopod({"comfy", "status", "--url", "http://127.0.0.1:" + std::to_string(testing::free_port()),
                    "--timeout", "1"});
  EXPECT_RUN(r, 5);
  EXPECT_NE(r.err.find("comfyui not ready"), std::string::npos) << r.err;
}

const std::filesystem::path k_workflows = AUTOPOD_TEST_DATA_DIR "/workflows";

TEST_F(Cli, ComfyRunSavesOutputsAndListsThemOnStdout) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  auto out = dir / "out";
  auto r = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url", fake.url(), "--out",
                    out.string(), "--set", "KSampler.steps=5", "--set", "Positive.text=a red fox"});
  EXPECT_RUN(r, 0);
  EXPECT_EQ(r.out, (out / "autopod/txt2img_00001_.png").string() + "\n");
  EXPECT_TRUE(std::filesystem::exists(out / "autopod/txt2img_00001_.png"));
  // Without a terminal: one plain line per event.
  EXPECT_NE(r.err.find("step 5/5 #3 KSampler"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("executing #6 Positive (CLIPTextEncode)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(": success in "), std::string::npos) << r.err;
  auto sent = fake.submitted().at(0)["prompt"];
  EXPECT_EQ(sent["3"]["inputs"]["steps"], 5);
  EXPECT_EQ(sent["6"]["inputs"]["text"], "a red fox");
}

TEST_F(Cli, ComfyRunJsonLinesAndNoWait) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  auto r = autopod({"comfy", "run", (k_workflows / "empty_image_api.json").string(), "--url", fake.url(), "--out",
                    (dir / "o").string(), "--json", "--count", "2"});
  EXPECT_RUN(r, 0);
  std::vector<json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));  // every line is JSON
  int saved = 0, finished = 0;
  for (const auto& l : lines) {
    saved += l["event"] == "saved";
    if (l["event"] == "finished") {
      ++finished;
      EXPECT_EQ(l["outcome"], "success");
    }
  }
  EXPECT_EQ(saved, 2);
  EXPECT_EQ(finished, 2);
  fake.hold_queue(true);
  auto nowait = autopod({"comfy", "run", (k_workflows / "empty_image_api.json").string(), "--url", fake.url(),
                         "--no-wait"});
  EXPECT_RUN(nowait, 0);
  EXPECT_EQ(nowait.out.size(), 37u);  // a prompt id and a newline
  EXPECT_NE(autopod({"comfy", "queue", "--url", fake.url()}).out.find(nowait.out.substr(0, 36)), std::string::npos);
}

TEST_F(Cli, ComfyRunExitCodesSayHowItEnded) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  // A node raises: 7, with node, type, message and the traceback's last line.
  auto wf = dir / "canny.json";
  ASSERT_TRUE(core::write_file_atomic(wf, R"({"30": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32,
    "batch_size": 1, "color": 140}}, "31": {"class_type": "Canny", "inputs": {"image": ["30", 0],
    "low_threshold": 0.4, "high_threshold": 0.8}}, "32": {"class_type": "SaveImage", "inputs": {"images": ["31", 0],
    "filename_prefix": "acc_err"}}})"));
  auto failed = autopod({"comfy", "run", wf.string(), "--url", fake.url()});
  EXPECT_RUN(failed, 7);
  EXPECT_NE(failed.err.find("node #31 Canny raised _comfystub.StubUnavailable"), std::string::npos) << failed.err;
  EXPECT_NE(failed.err.find("at: raise StubUnavailable"), std::string::npos) << failed.err;
  // Rejected by validation: 2, every node error listed.
  auto rejected = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url", fake.url(),
                           "--set", "4.ckpt_name=nope.safetensors", "--set", "5.width=0"});
  EXPECT_RUN(rejected, 2);
  EXPECT_NE(rejected.err.find("node 4 (CheckpointLoaderSimple) input ckpt_name: Value not in list"), std::string::npos)
      << rejected.err;
  EXPECT_NE(rejected.err.find("node 5 (EmptyLatentImage) input width: Value 0 smaller than min of 16"),
            std::string::npos);
  // Interrupted (by another client here): 8.
  fake.interrupt_at_step(3);
  auto interrupted = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url", fake.url(),
                              "--set", "3.seed=1"});
  EXPECT_RUN(interrupted, 8);
  EXPECT_NE(interrupted.err.find("#3 KSampler was interrupted"), std::string::npos) << interrupted.err;
  // Bad input files: 2, before anything is sent.
  std::size_t before = fake.submitted().size();
  ASSERT_TRUE(core::write_file_atomic(dir / "broken.json", "{\n  \"1\": {\"class_type\": \"SaveImage\"\n"));
  auto broken = autopod({"comfy", "run", (dir / "broken.json").string(), "--url", fake.url()});
  EXPECT_RUN(broken, 2);
  EXPECT_NE(broken.err.find("broken.json:3:"), std::string::npos) << broken.err;
  EXPECT_RUN(autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url", fake.url(), "--set",
                      "Nobody.seed=1"}),
             2);
  EXPECT_RUN(autopod({"comfy", "run", (dir / "missing.json").string(), "--url", fake.url()}), 2);
  EXPECT_EQ(fake.submitted().size(), before);
  // Nothing there: 1, and clearly said.
  auto down = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--url",
                       "http://127.0.0.1:" + std::to_string(testing::free_port())});
  EXPECT_RUN(down, 1);
  EXPECT_NE(down.err.find("cannot open the WebSocket"), std::string::npos) << down.err;
  EXPECT_NE(down.err.find("hint: is ComfyUI running"), std::string::npos) << down.err;
}

TEST_F(Cli, ComfyRunConvertsTheEditorsFormatAndUploadsInputs) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  auto r = autopod({"comfy", "run", (k_workflows / "txt2img_editor.json").string(), "--url", fake.url(), "--out",
                    (dir / "ui").string()});
  EXPECT_RUN(r, 0);
  EXPECT_NE(r.err.find("from the editor's format to API format (7 nodes)"), std::string::npos) << r.err;
  auto sent = fake.submitted().at(0);
  EXPECT_EQ(sent["prompt"]["3"]["inputs"]["steps"], 25);
  EXPECT_TRUE(sent["extra_data"]["extra_pnginfo"]["workflow"].contains("nodes"));  // embedded in saved PNGs
  EXPECT_TRUE(std::filesystem::exists(dir / "ui/autopod/editor_00001_.png"));
  // A LoadImage naming a local file: uploaded, then referenced by its server name.
  ASSERT_TRUE(core::write_file_atomic(dir / "cat.png", "not really a png"));
  ASSERT_TRUE(core::write_file_atomic(dir / "invert.json", R"({"10": {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
    "11": {"class_type": "ImageInvert", "inputs": {"image": ["10", 0]}},
    "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "inv"}}})"));
  auto up = autopod({"comfy", "run", (dir / "invert.json").string(), "--url", fake.url(), "--out", (dir / "inv").string()});
  EXPECT_RUN(up, 0);
  EXPECT_NE(up.err.find("uploaded"), std::string::npos) << up.err;
  EXPECT_EQ(*core::read_file(fake.base_dir() / "input/cat.png"), "not really a png");
  ASSERT_TRUE(core::write_file_atomic(dir / "dog.png", "another"));
  auto input = autopod({"comfy", "run", (dir / "invert.json").string(), "--url", fake.url(), "--input",
                        (dir / "dog.png").string(), "--out", (dir / "inv2").string()});
  EXPECT_RUN(input, 0);
  EXPECT_EQ(fake.submitted().back()["prompt"]["10"]["inputs"]["image"], "dog.png");
}

// The ComfyUI fake stands in for ComfyUI on the pod: reached through a real tunnel (ensured by
// the command itself) over the harness's sshd.
TEST_F(Cli, ComfyThroughTheTunnelToThePod) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  std::string local = std::to_string(testing::free_port());
  auto status = autopod({"comfy", "status", "--local-port", local, "--remote-port",
                         std::to_string(fake.port())});
  EXPECT_RUN(status, 0);
  EXPECT_NE(status.err.find("started tunnel"), std::string::npos) << status.err;
  EXPECT_NE(status.out.find("http://127.0.0.1:" + local), std::string::npos);
  auto info = autopod({"comfy", "info", "--local-port", local, "--remote-port",
                       std::to_string(fake.port()), "--json"});
  EXPECT_RUN(info, 0);
  EXPECT_EQ(json::parse(info.out)["comfyui_version"], "0.3.64");
  EXPECT_EQ(info.err.find("started tunnel"), std::string::npos);  // the tunnel was reused
  EXPECT_EQ(json::parse(autopod({"tunnel", "list", "--json"}).out)["tunnels"].size(), 1u);
  // A whole run through the tunnel: the WebSocket, the submit and the downloads.
  auto run = autopod({"comfy", "run", (k_workflows / "txt2img_api.json").string(), "--local-port", local,
                      "--remote-port", std::to_string(fake.port()), "--out", (dir / "pod-out").string()});
  EXPECT_RUN(run, 0);
  EXPECT_EQ(run.out, (dir / "pod-out/autopod/txt2img_00001_.png").string() + "\n");
  EXPECT_EQ(*core::read_file(dir / "pod-out/autopod/txt2img_00001_.png"),
            *core::read_file(fake.base_dir() / "output/autopod/txt2img_00001_.png"));
  EXPECT_FALSE(fake.saw_origin_header());
}

}  // namespace
}  // namespace autopod
