#pragma once
// Helpers for the agent service's tests: a raw HTTP client and a raw Server-Sent Events reader
// (plain sockets, none of the agent's code), the OpenAPI file's schemas as a small validator, and
// a fixture with a ComfyUI fake and an in-process service.

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/service/service.hpp"
#include "sandbox/comfy_fake.hpp"
#include "tests/harness/harness.hpp"

namespace autopod::testing {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// One request over a fresh connection (Connection: close); the whole answer. `extra` are raw
// header lines without CRLF.
RawResponse raw_request(int port, const std::string& method, const std::string& target, const std::string& token,
                        const std::string& body = {}, const std::vector<std::string>& extra = {});

struct SseEvent {
  std::string id, event, data;
  std::vector<std::string> comments;  // ": heartbeat"; an event with only comments has no name
};

// A Server-Sent Events stream read line by line from a socket.
class SseReader {
 public:
  SseReader(int port, const std::string& target, const std::string& token, const std::string& last_event_id = {});
  ~SseReader();
  int status() const { return m_status; }
  // The next event; nullopt when the server ended the stream (or nothing came for 30 s).
  std::optional<SseEvent> next();
  void close();

 private:
  bool read_line(std::string& line);
  int m_fd = -1;
  int m_status = 0;
  std::string m_buffer;
};

// The schemas of agent/service/openapi.yaml: checks a JSON answer against the documented one.
class OpenApi {
 public:
  OpenApi();
  // Empty when `body` is what `method path` documents for `status`; otherwise what differs.
  std::string check(const std::string& method, const std::string& path_template, int status,
                    const nlohmann::json& body) const;
  std::string check_schema(const nlohmann::json& value, const std::string& component) const;

 private:
  std::string validate(const nlohmann::json& v, const nlohmann::json& schema, const std::string& where) const;
  nlohmann::json m_spec;
};

class FixedPods : public agent::service::PodAccess {
 public:
  explicit FixedPods(std::string url) : m_url(std::move(url)) {}
  core::Result<std::string> comfy_url(const std::string&) override { return m_url; }
  core::Result<nlohmann::json> pods() override { return nlohmann::json{{"pods", nlohmann::json::array()}}; }
  core::Result<models::SyncTarget> models_target(const std::string& pod) override {
    if (!models) return agent::service::PodAccess::models_target(pod);
    return *models;
  }
  std::optional<models::SyncTarget> models;  // the "pod" of model syncs

 private:
  std::string m_url;
};

// The ComfyUI fake and an agent service in this process, with a fresh AUTOPOD_HOME.
struct ServiceTest : ::testing::Test {
  TempDir dir;
  sandbox::ComfyFake fake;
  std::unique_ptr<FixedPods> pods;
  agent::service::ServiceOptions options;
  std::unique_ptr<agent::service::Service> service;
  std::string token;
  OpenApi api;

  void SetUp() override;
  void TearDown() override;
  void start_service();
  int port() const { return service->port(); }
  RawResponse call(const std::string& method, const std::string& target, const std::string& body = {},
                   const std::vector<std::string>& extra = {});
  // POST /v1/generations; the task id (the answer checked against the OpenAPI file).
  std::string submit(const nlohmann::json& body);
  // Reads the task's stream to its end; every event's data checked against the OpenAPI file.
  std::vector<SseEvent> follow(const std::string& id, const std::string& last_event_id = {});
  nlohmann::json task(const std::string& id);
};

nlohmann::json workflow(const std::string& name);  // tests/data/workflows/NAME
std::string hmac_hex(const std::string& key, const std::string& message);  // OpenSSL, independently

}  // namespace autopod::testing
