#include "tests/agent/service_testing.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/hmac.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <regex>

#include "core/fs.hpp"

namespace autopod::testing {

using nlohmann::json;

namespace {

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{30, 0};  // a hung server fails the test instead of hanging it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may refuse a body half-way (413)
    sent += static_cast<std::size_t>(n);
  }
}

std::string request_text(const std::string& method, const std::string& target, const std::string& token,
                         const std::string& body, const std::vector<std::string>& extra) {
  std::string text = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!token.empty()) text += "Authorization: Bearer " + token + "\r\n";
  if (!body.empty() || method == "POST") text += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& h : extra) text += h + "\r\n";
  return text + "\r\n" + body;
}

std::map<std::string, std::string> parse_head(const std::string& head, int& status) {
  std::map<std::string, std::string> headers;
  std::istringstream in(head);
  std::string line;
  std::getline(in, line);
  status = line.size() > 12 ? std::stoi(line.substr(9, 3)) : 0;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return headers;
}

}  // namespace

RawResponse raw_request(int port, const std::string& method, const std::string& target, const std::string& token,
                        const std::string& body, const std::vector<std::string>& extra) {
  RawResponse r;
  int fd = connect_to(port);
  if (fd < 0) return r;
  send_all(fd, request_text(method, target, token, body, extra));
  std::string all;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) != 0;) {
    if (n < 0 && errno == EINTR) continue;  // as in SseReader::read_line
    if (n < 0) break;
    all.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto end = all.find("\r\n\r\n");
  if (end == std::string::npos) return r;
  r.headers = parse_head(all.substr(0, end), r.status);
  r.body = all.substr(end + 4);
  return r;
}

SseReader::SseReader(int port, const std::string& target, const std::string& token, const std::string& last_event_id) {
  m_fd = connect_to(port);
  if (m_fd < 0) return;
  std::vector<std::string> extra = {"Accept: text/event-stream"};
  if (!last_event_id.empty()) extra.push_back("Last-Event-ID: " + last_event_id);
  send_all(m_fd, request_text("GET", target, token, "", extra));
  std::string head, line;
  while (read_line(line) && !line.empty()) head += line + "\n";
  parse_head(head, m_status);
}

SseReader::~SseReader() { close(); }

void SseReader::close() {
  if (m_fd >= 0) ::close(m_fd);
  m_fd = -1;
}

bool SseReader::read_line(std::string& line) {
  for (;;) {
    auto nl = m_buffer.find('\n');
    if (nl != std::string::npos) {
      line = m_buffer.substr(0, nl);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      m_buffer.erase(0, nl + 1);
      return true;
    }
    char buf[8192];
    ssize_t n = m_fd < 0 ? -1 : ::recv(m_fd, buf, sizeof buf, 0);
    // A socket with SO_RCVTIMEO is never restarted after a signal handler (signal(7)), so a
    // signal to this thread (glibc's own, with the service and pod programs running in-process)
    // is not the end of the stream.
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    m_buffer.append(buf, static_cast<std::size_t>(n));
  }
}

std::optional<SseEvent> SseReader::next() {
  SseEvent e;
  std::string line;
  bool any = false;
  while (read_line(line)) {
    if (line.empty()) {
      if (any) return e;
      continue;
    }
    if (line[0] == ':') {
      e.comments.push_back(line);
      if (!any) return e;  // a comment on its own (heartbeat)
      continue;
    }
    auto colon = line.find(':');
    std::string field = line.substr(0, colon);
    std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (field == "id") e.id = value;
    else if (field == "event") e.event = value;
    else if (field == "data") e.data += value;
    else continue;  // retry:
    any = true;
  }
  return std::nullopt;
}

namespace {

json yaml_to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    json o = json::object();
    for (const auto& kv : n) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
    return o;
  }
  if (n.IsSequence()) {
    json a = json::array();
    for (const auto& v : n) a.push_back(yaml_to_json(v));
    return a;
  }
  if (n.IsNull()) return nullptr;
  // Scalars: every one this spec has is a string, a number or a boolean.
  std::string s = n.as<std::string>();
  if (n.Tag() == "!") return s;  // quoted
  if (s == "true" || s == "false") return s == "true";
  if (std::regex_match(s, std::regex("-?[0-9]+"))) return std::stoll(s);
  return s;
}

bool has_type(const json& v, const std::string& t) {
  if (t == "null") return v.is_null();
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_boolean();
  if (t == "integer") return v.is_number_integer();
  if (t == "number") return v.is_number();
  return false;
}

}  // namespace

OpenApi::OpenApi() {
  m_spec = yaml_to_json(YAML::LoadFile(AUTOPOD_TEST_OPENAPI));
}

std::string OpenApi::validate(const json& v, const json& schema, const std::string& where) const {
  if (schema.contains("$ref")) {
    std::string ref = schema["$ref"].get<std::string>();  // "#/components/schemas/X"
    json target = m_spec;
    std::istringstream parts(ref.substr(2));
    for (std::string p; std::getline(parts, p, '/');) target = target.at(p);
    return validate(v, target, where);
  }
  if (schema.contains("oneOf")) {  // exactly one alternative fits
    int fits = 0;
    std::string why;
    for (const auto& alt : schema["oneOf"])
      if (auto e = validate(v, alt, where); e.empty()) ++fits;
      else why += (why.empty() ? "" : "; ") + e;
    if (fits != 1) return where + ": " + std::to_string(fits) + " of oneOf fit (" + why + ")";
  }
  if (schema.contains("type")) {
    json types = schema["type"].is_array() ? schema["type"] : json::array({schema["type"]});
    bool ok = false;
    for (const auto& t : types) ok = ok || has_type(v, t.get<std::string>());
    if (!ok) return where + ": " + v.dump() + " is not of type " + schema["type"].dump();
  }
  if (schema.contains("const") && v != schema["const"]) return where + ": not " + schema["const"].dump();
  if (schema.contains("enum") && std::find(schema["enum"].begin(), schema["enum"].end(), v) == schema["enum"].end())
    return where + ": " + v.dump() + " not in " + schema["enum"].dump();
  if (schema.contains("pattern") && v.is_string() &&
      !std::regex_search(v.get<std::string>(), std::regex(schema["pattern"].get<std::string>())))
    return where + ": " + v.dump() + " does not match " + schema["pattern"].get<std::string>();
  if (schema.contains("minimum") && v.is_number() && v.get<double>() < schema["minimum"].get<double>())
    return where + ": below the minimum";
  if (schema.contains("maximum") && v.is_number() && v.get<double>() > schema["maximum"].get<double>())
    return where + ": above the maximum";
  if (v.is_object()) {
    for (const auto& r : schema.value("required", json::array()))
      if (!v.contains(r.get<std::string>())) return where + ": missing " + r.get<std::string>();
    json props = schema.value("properties", json::object());
    for (const auto& [k, sub] : v.items()) {
      if (props.contains(k)) {
        if (auto e = validate(sub, props[k], where + "." + k); !e.empty()) return e;
      } else if (schema.value("additionalProperties", true) == false) {
        return where + ": unexpected field " + k;
      }
    }
  }
  if (v.is_array() && schema.contains("items"))
    for (std::size_t i = 0; i < v.size(); ++i)
      if (auto e = validate(v[i], schema["items"], where + "[" + std::to_string(i) + "]"); !e.empty()) return e;
  return {};
}

std::string OpenApi::check(const std::string& method, const std::string& path, int status, const json& body) const {
  std::string m = method;
  for (auto& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const json& responses = m_spec.at("paths").at(path).at(m).at("responses");
  if (!responses.contains(std::to_string(status)))
    return method + " " + path + ": status " + std::to_string(status) + " is not documented";
  json response = responses[std::to_string(status)];
  if (response.contains("$ref")) response = m_spec.at("components").at("responses").at(response["$ref"].get<std::string>().substr(23));
  const json& content = response.at("content");
  if (!content.contains("application/json")) return {};
  return validate(body, content["application/json"]["schema"], method + " " + path + " " + std::to_string(status));
}

std::string OpenApi::check_schema(const json& value, const std::string& component) const {
  return validate(value, m_spec["components"]["schemas"][component], component);
}

void ServiceTest::SetUp() {
  ASSERT_TRUE(fake.start());
  pods = std::make_unique<FixedPods>(fake.url());
  options.home = core::Home(dir / "home");
  options.port = 0;
  options.comfy_watchdog = std::chrono::milliseconds(300);
  options.webhook_retry = {std::chrono::milliseconds(50), std::chrono::milliseconds(200), core::Jitter::none};
  options.webhook_timeout = std::chrono::milliseconds(500);
}

void ServiceTest::TearDown() {
  if (service) service->stop();
}

void ServiceTest::start_service() {
  service = std::make_unique<agent::service::Service>(options, *pods);
  auto st = service->start();
  ASSERT_TRUE(st) << st.error().describe();
  token = *core::read_file(options.home.agent_token());
  token.pop_back();  // the newline
}

RawResponse ServiceTest::call(const std::string& method, const std::string& target, const std::string& body,
                              const std::vector<std::string>& extra) {
  return raw_request(port(), method, target, token, body, extra);
}

std::string ServiceTest::submit(const json& body) {
  auto r = call("POST", "/v1/generations", body.dump());
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(api.check("POST", "/v1/generations", r.status, r.json()), "");
  return r.json().value("taskId", "");
}

std::vector<SseEvent> ServiceTest::follow(const std::string& id, const std::string& last_event_id) {
  SseReader sse(port(), "/v1/tasks/" + id + "/events", token, last_event_id);
  EXPECT_EQ(sse.status(), 200);
  std::vector<SseEvent> events;
  while (auto e = sse.next()) {
    if (e->event.empty()) continue;  // heartbeat
    EXPECT_EQ(api.check_schema(json::parse(e->data), "Task"), "") << e->data;
    events.push_back(*e);
  }
  return events;
}

json ServiceTest::task(const std::string& id) {
  auto r = call("GET", "/v1/tasks/" + id);
  EXPECT_EQ(api.check("GET", "/v1/tasks/{taskId}", r.status, r.json()), "");
  return r.json();
}

json workflow(const std::string& name) {
  return json::parse(*core::read_file(std::string(AUTOPOD_TEST_DATA_DIR "/workflows/") + name));
}

std::string hmac_hex(const std::string& key, const std::string& message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), out, &len);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof b, "%02x", out[i]);
    hex += b;
  }
  return hex;
}

}  // namespace autopod::testing
