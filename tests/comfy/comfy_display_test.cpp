// Frames parsed into events, and the three displays of a run.

#include <pty.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <sstream>

#include "comfy/display.hpp"
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

TEST(ComfyDisplay, TheLiveLineIsCutToTheTerminalsWidthSoNoStaleRowsStayBehind) {
  // Given a terminal 40 columns wide and a node whose title is longer than that.
  int master = -1, slave = -1;
  winsize ws{};
  ws.ws_col = 40;
  ws.ws_row = 24;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, &ws), 0);
  std::FILE* tty = ::fdopen(slave, "w");
  auto display = comfy::make_display(comfy::DisplayKind::live, tty);
  auto run = sample_run();
  run.nodes["3"].title = "A very long sampler title that a user gave this node (é, ü)";
  auto e = *comfy::parse_text_frame(R"({"type": "progress", "data": {"value": 4, "max": 20, "node": "3", "prompt_id": "p"}})");
  comfy::apply(run, e, std::chrono::steady_clock::now());
  display->event(run, e);
  display->tick();
  display.reset();
  std::fclose(tty);
  std::string out;
  char buf[4096];
  // The slave side is closed: read() drains what was written, then fails with EIO.
  for (ssize_t n; (n = ::read(master, buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(master);
  // Every drawn line fits in 39 characters (UTF-8 code points), so none wraps.
  std::size_t drawn = 0;
  for (std::size_t at = 0; (at = out.find("\033[K", at)) != std::string::npos; at += 3) {
    std::size_t end = out.find_first_of("\r\n", at + 3);
    std::string line = out.substr(at + 3, end == std::string::npos ? std::string::npos : end - at - 3);
    std::size_t chars = 0;
    for (unsigned char c : line) chars += (c & 0xC0) != 0x80;
    EXPECT_LE(chars, 39u) << line;
    drawn += !line.empty();
  }
  EXPECT_GE(drawn, 1u) << out;
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
