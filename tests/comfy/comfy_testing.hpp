#pragma once
// Shared by the comfy tests: a real client for a URL, the ComfyUI fake with a client, the
// transcript recorded from ComfyUI 0.3.64 (tests/data/comfyui-transcript.json, copied from the
// reference), a raw WebSocket client to see exactly what the fake sends, and a Display that
// records what a run shows.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "comfy/client.hpp"
#include "comfy/run.hpp"
#include "core/fs.hpp"
#include "core/http.hpp"
#include "sandbox/comfy_fake.hpp"
#include "tests/harness/harness.hpp"

namespace autopod::testing {

using nlohmann::json;
namespace comfy_asio = boost::asio;
namespace comfy_beast = boost::beast;

inline const std::filesystem::path k_comfy_data = AUTOPOD_TEST_DATA_DIR;

inline comfy::ComfyClient comfy_client(const std::string& url,
                                       core::Clock& clock = core::system_clock()) {
  auto client = comfy::ComfyClient::connect(url, core::make_curl_transport, clock);
  ASSERT(client);
  return std::move(client).value();
}

inline const nlohmann::json& transcript() {
  static const nlohmann::json t =
      nlohmann::json::parse(*core::read_file(k_comfy_data / "comfyui-transcript.json"))["scenarios"];
  return t;
}

// A plain WebSocket client, to look at exactly what the fake sends.
class RawSocket {
 public:
  RawSocket(int port, const std::string& client_id) {
    comfy_asio::ip::tcp::resolver resolver(m_io);
    comfy_beast::get_lowest_layer(m_ws).connect(resolver.resolve("127.0.0.1", std::to_string(port)));
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

  void send(const std::string& text) { m_ws.write(comfy_asio::buffer(text)); }
  void close() {
    bool done = false;
    m_ws.async_close(comfy_beast::websocket::close_code::normal, [&](comfy_beast::error_code) { done = true; });
    while (!done || m_reading) {
      m_io.restart();
      m_io.run_one();
    }
  }

 private:
  void read() {
    m_reading = true;
    m_ws.async_read(m_buffer, [this](comfy_beast::error_code ec, std::size_t) {
      m_reading = false;
      if (ec) {
        m_closed = true;
        return;
      }
      std::string out = comfy_beast::buffers_to_string(m_buffer.data());
      m_buffer.consume(m_buffer.size());
      if (m_ws.got_binary()) out = "binary:" + std::to_string(static_cast<unsigned char>(out[3]));
      m_ready.push_back(out);
      read();
    });
  }

  std::deque<std::string> m_ready;
  bool m_reading = false, m_closed = false;
  comfy_asio::io_context m_io;
  comfy_beast::websocket::stream<comfy_beast::tcp_stream> m_ws{m_io};
  comfy_beast::flat_buffer m_buffer;
};

inline std::vector<std::string> ws_types(const json& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) out.push_back(f.contains("binary") ? "binary:" + f["event"].dump() : f["type"].get<std::string>());
  return out;
}

struct FakeFixture : ::testing::Test {
  sandbox::ComfyFake fake;
  std::unique_ptr<comfy::ComfyClient> http;
  TempDir dir;
  void SetUp() override {
    ASSERT_TRUE(fake.start());
    http = std::make_unique<comfy::ComfyClient>(comfy_client(fake.url()));
  }
  core::Result<comfy::Submitted> submit(const json& prompt, const std::string& cid) {
    return http->submit(prompt, cid);
  }
};

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
    req.prompt = json::parse(*core::read_file(k_comfy_data / "workflows/txt2img_api.json"));
    req.options.out_dir = dir.path() / "out";
    req.watchdog = std::chrono::milliseconds(200);
    req.options.timeout = std::chrono::seconds(60);
  }
  core::Result<std::vector<comfy::RunResult>> run() { return comfy::run_workflow(*http, req, display); }
};

}  // namespace autopod::testing
