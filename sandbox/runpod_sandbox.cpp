#include "sandbox/runpod_sandbox.hpp"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <vector>

#include "core/text.hpp"
#include "sandbox/http_server.hpp"

namespace autopod::sandbox {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const char* k_capacity_detail =
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again.";

struct GpuInfo {
  const char* id;
  const char* name;
  const char* pool;
  int memory;
  double secure;
  double community;
};

const GpuInfo k_gpus[] = {
    {"NVIDIA GeForce RTX 4090", "RTX 4090", "ADA_24", 24, 0.69, 0.34},
    {"NVIDIA RTX A5000", "RTX A5000", "AMPERE_24", 24, 0.27, 0.16},
    {"NVIDIA RTX A6000", "RTX A6000", "AMPERE_48", 48, 0.49, 0.33},
    {"NVIDIA L40S", "L40S", "ADA_48_PRO", 48, 0.86, 0.79},
    {"NVIDIA A40", "A40", "AMPERE_48", 48, 0.40, 0.35},
    {"NVIDIA H100 80GB HBM3", "H100 SXM", "HOPPER_141", 80, 2.69, 2.39},
};

struct DcInfo {
  const char* id;
  const char* name;
  const char* region;
};

const DcInfo k_dcs[] = {{"EU-RO-1", "Europe Romania 1", "EUROPE"},
                        {"US-KS-2", "US Kansas 2", "NORTH_AMERICA"},
                        {"CA-MTL-1", "Canada Montreal 1", "NORTH_AMERICA"}};

HttpReply problem(int status, const std::string& title, const std::string& detail,
                  std::vector<std::string> errors = {}) {
  json body = {{"title", title}, {"status", status}, {"detail", detail}};
  if (!errors.empty()) body["errors"] = errors;
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "application/problem+json";
  r.body = body.dump();
  return r;
}

HttpReply ok(int status, const json& body) {
  HttpReply r;
  r.status = status;
  r.headers["Content-Type"] = "application/json";
  r.body = body.dump();
  return r;
}

HttpReply no_content() {
  HttpReply r;
  r.status = 204;
  return r;
}

struct SandboxPod {
  json spec;  // the v2 fields that came from the create body
  std::string id;
  std::string status;
  Clock::time_point phase_since;
  std::string started_at;
  int ssh_port = 0;
};

}  // namespace

struct RunpodSandbox::Impl {
  SandboxOptions options;
  mutable std::mutex mutex;
  std::map<std::string, SandboxPod> pods;
  std::map<std::string, json> volumes;
  struct ActiveFault {
    Fault fault;
    int seen = 0;  // matching requests so far (every_other)
  };
  std::vector<ActiveFault> faults;
  std::set<std::pair<std::string, std::string>> no_capacity;
  bool host_gpus_free = true;
  double balance = 100.0;
  json requests = json::array();
  std::mt19937 rng{12345};
  HttpServer server{[this](const HttpExchange& ex) { return handle(ex); }};

  std::string new_id(std::size_t len) {
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::uniform_int_distribution<int> d(0, 35);
    std::string id;
    for (std::size_t i = 0; i < len; ++i) id += chars[d(rng)];
    return id;
  }

  bool has_capacity(const std::string& gpu, const std::string& dc) const {
    return !(no_capacity.count({gpu, dc}) || no_capacity.count({"*", dc}) ||
             no_capacity.count({gpu, "*"}) || no_capacity.count({"*", "*"}));
  }

  int fresh_ssh_port() {
    if (options.ssh_port > 0) return options.ssh_port;
    return std::uniform_int_distribution<int>(10000, 60000)(rng);
  }

  // Moves pods along PROVISIONING -> STARTING -> RUNNING as time passes.
  void advance(SandboxPod& pod) {
    auto now = Clock::now();
    if (pod.status == "PROVISIONING" && now - pod.phase_since >= options.provisioning_time) {
      pod.status = "STARTING";
      pod.phase_since += options.provisioning_time;
    }
    if (pod.status == "STARTING" && now - pod.phase_since >= options.starting_time) {
      pod.status = "RUNNING";
      pod.phase_since += options.starting_time;
      pod.started_at = core::iso_time();
    }
  }

  json pod_json(SandboxPod& pod) {
    advance(pod);
    const json& s = pod.spec;
    json actions = json::array();
    if (pod.status == "RUNNING") actions = {"stop", "restart", "terminate"};
    else if (pod.status == "EXITED" || pod.status == "ERROR") actions = {"start", "terminate"};
    else actions = {"stop", "terminate"};
    bool running = pod.status == "RUNNING";
    auto ports = s.value("ports", json::array());
    bool tcp22 = std::find(ports.begin(), ports.end(), "22/tcp") != ports.end();
    json direct = nullptr;
    if (running && tcp22)
      direct = {{"host", options.ssh_host},
                {"port", pod.ssh_port},
                {"username", options.ssh_user},
                {"command", "ssh " + options.ssh_user + "@" + options.ssh_host + " -p " +
                                std::to_string(pod.ssh_port) + " -i ~/.ssh/id_ed25519"}};
    std::string gpu_id = s.contains("gpu") ? s["gpu"].value("id", "") : "";
    double price = 0;
    for (const auto& g : k_gpus)
      if (gpu_id == g.id) price = s.value("cloud", "SECURE") == "COMMUNITY" ? g.community : g.secure;
    json runtime = nullptr;
    if (running) {
      json rports = json::array();
      if (tcp22)
        rports.push_back({{"private", 22}, {"public", pod.ssh_port}, {"type", "tcp"},
                          {"ip", options.ssh_host}});
      runtime = {{"uptime", std::chrono::duration_cast<std::chrono::seconds>(
                                Clock::now() - pod.phase_since).count()},
                 {"gpus", json::array({{{"util", 0}, {"memoryUtil", 0}}})},
                 {"cpu", {{"util", 1}}},
                 {"memory", {{"util", 3}}},
                 {"ports", rports}};
    }
    return {{"id", pod.id},
            {"name", s["name"]},
            {"status", pod.status},
            {"actions", actions},
            {"image", s.value("image", "")},
            {"args", s.value("args", "")},
            {"disk", s.value("disk", 50)},
            {"mounts", s.value("mounts", json::object())},
            {"ports", ports},
            {"env", s.value("env", json::object())},
            {"registry", nullptr},
            {"gpu", {{"id", gpu_id}, {"count", s.contains("gpu") ? s["gpu"].value("count", 1) : 1}}},
            {"cloud", s.value("cloud", "SECURE")},
            {"dataCenterId", s.value("dataCenterId", "")},
            {"cudaVersion", "12.8"},
            {"ssh",
             {{"proxy", {{"host", "ssh.runpod.io"}, {"port", 22},
                         {"username", pod.id + "-64411eb2"},
                         {"command", "ssh " + pod.id + "-64411eb2@ssh.runpod.io"}}},
              {"direct", direct}}},
            {"template", nullptr},
            {"cost", pod.status == "EXITED" || pod.status == "TERMINATED" ? 0.0 : price},
            {"locked", false},
            {"globalNetworking", {{"enabled", false}}},
            {"runtime", runtime},
            {"createdAt", s.value("createdAt", "")},
            {"startedAt", pod.started_at.empty() ? json(nullptr) : json(pod.started_at)}};
  }

  std::optional<HttpReply> check_auth(const HttpExchange& ex) {
    auto it = ex.headers.find("authorization");
    if (it == ex.headers.end() || it->second.rfind("Bearer ", 0) != 0 || it->second.size() <= 7)
      return problem(401, "Unauthorized", "missing bearer token");
    std::string token = it->second.substr(7);
    if (!options.api_key.empty() && token != options.api_key)
      return problem(401, "Unauthorized", "invalid bearer token");
    return std::nullopt;
  }

  static std::vector<std::string> unknown_keys(const json& obj, std::set<std::string> allowed,
                                               const std::string& prefix) {
    std::vector<std::string> errors;
    for (const auto& [k, v] : obj.items())
      if (!allowed.count(k)) errors.push_back(prefix + k + ": unknown property (not allowed)");
    return errors;
  }

  // The v2 CreatePodRequest schema, strictly (unevaluatedProperties: false).
  static std::vector<std::string> validate_create(const json& b) {
    std::vector<std::string> errors = unknown_keys(
        b, {"name", "image", "gpu", "cpu", "cloud", "dataCenterIds", "mounts", "disk", "ports",
            "env", "args", "registry", "startSsh", "startJupyter", "globalNetworking",
            "templateId"}, "");
    if (!b.contains("name") || !b["name"].is_string() || b["name"].get<std::string>().empty())
      errors.push_back("name: required, a string of at least 1 character");
    if (!b.contains("templateId") && (!b.contains("image") || !b["image"].is_string()))
      errors.push_back("image: required unless templateId is set");
    if (b.contains("gpu") == b.contains("cpu")) errors.push_back("set exactly one of gpu or cpu");
    if (b.contains("gpu")) {
      const auto& g = b["gpu"];
      if (!g.is_object() || !g.contains("id") || !g["id"].is_string()) {
        errors.push_back("gpu.id: required string");
      } else {
        auto e = unknown_keys(g, {"id", "count", "allowedCudaVersions", "minCudaVersion"}, "gpu.");
        errors.insert(errors.end(), e.begin(), e.end());
        if (g.contains("count") && (!g["count"].is_number_integer() || g["count"].get<int>() < 1))
          errors.push_back("gpu.count: must be an integer >= 1");
      }
    }
    if (b.contains("cloud") && b["cloud"] != "SECURE" && b["cloud"] != "COMMUNITY")
      errors.push_back("cloud: must be one of SECURE, COMMUNITY");
    if (b.contains("disk") && (!b["disk"].is_number_integer() || b["disk"].get<int>() < 1))
      errors.push_back("disk: must be an integer >= 1");
    for (const char* list : {"ports", "dataCenterIds"})
      if (b.contains(list) && (!b[list].is_array() ||
                               !std::all_of(b[list].begin(), b[list].end(),
                                            [](const json& x) { return x.is_string(); })))
        errors.push_back(std::string(list) + ": must be an array of strings");
    if (b.contains("env") && (!b["env"].is_object() ||
                              !std::all_of(b["env"].begin(), b["env"].end(),
                                           [](const json& x) { return x.is_string(); })))
      errors.push_back("env: must map strings to strings");
    if (b.contains("mounts")) {
      const auto& m = b["mounts"];
      if (!m.is_object()) {
        errors.push_back("mounts: must be an object");
      } else {
        auto e = unknown_keys(m, {"network", "persistent"}, "mounts.");
        errors.insert(errors.end(), e.begin(), e.end());
        if (m.contains("network")) {
          const auto& n = m["network"];
          if (!n.is_array() || n.size() > 1) {
            errors.push_back("mounts.network: an array of at most 1 item");
          } else {
            for (const auto& item : n) {
              if (!item.is_object() || !item.contains("volumeId") || !item.contains("path"))
                errors.push_back("mounts.network[0]: volumeId and path are required");
              else {
                auto e2 = unknown_keys(item, {"volumeId", "path"}, "mounts.network[0].");
                errors.insert(errors.end(), e2.begin(), e2.end());
              }
            }
          }
        }
      }
    }
    return errors;
  }

  HttpReply create_pod(const json& b) {
    auto errors = validate_create(b);
    if (!errors.empty()) return problem(422, "Unprocessable Entity", "Request validation failed.", errors);
    if (b.contains("mounts") && b["mounts"].contains("network") && b["mounts"].contains("persistent"))
      return problem(400, "Bad Request", "mounts.network and mounts.persistent are mutually exclusive");
    std::string gpu = b["gpu"]["id"];
    if (std::none_of(std::begin(k_gpus), std::end(k_gpus), [&](const GpuInfo& g) { return gpu == g.id; }))
      return problem(400, "Bad Request", "gpu type '" + gpu + "' does not exist");
    std::vector<std::string> dcs = b.value("dataCenterIds", std::vector<std::string>{});
    std::string volume_dc;
    if (b.contains("mounts") && b["mounts"].contains("network") && !b["mounts"]["network"].empty()) {
      std::string vid = b["mounts"]["network"][0]["volumeId"];
      auto v = volumes.find(vid);
      if (v == volumes.end()) return problem(400, "Bad Request", "network volume " + vid + " not found");
      volume_dc = v->second["dataCenter"];
      if (b.value("cloud", "SECURE") == "COMMUNITY")
        return problem(400, "Bad Request", "network volumes are only available on SECURE cloud");
      if (!dcs.empty() && std::find(dcs.begin(), dcs.end(), volume_dc) == dcs.end())
        return problem(400, "Bad Request", "network volume " + vid + " is in " + volume_dc +
                                               ", which dataCenterIds does not include");
      dcs = {volume_dc};
    }
    if (balance <= 0) return problem(402, "Payment Required", "insufficient balance to deploy this pod");
    if (dcs.empty())
      for (const auto& dc : k_dcs) dcs.push_back(dc.id);
    std::string placed;
    for (const auto& dc : dcs) {
      if (!has_capacity(gpu, dc)) continue;
      placed = dc;
      break;
    }
    if (placed.empty()) return problem(400, "Bad Request", k_capacity_detail);
    SandboxPod pod;
    pod.id = new_id(14);
    pod.spec = b;
    pod.spec["dataCenterId"] = placed;
    pod.spec["createdAt"] = core::iso_time();
    pod.status = "PROVISIONING";
    pod.phase_since = Clock::now();
    pod.ssh_port = fresh_ssh_port();
    // What RunPod's images do at boot: install $PUBLIC_KEY for root.
    if (!options.authorized_keys.empty() && b.contains("env") && b["env"].contains("PUBLIC_KEY")) {
      std::ofstream keys(options.authorized_keys, std::ios::app);
      keys << b["env"]["PUBLIC_KEY"].get<std::string>() << "\n";
    }
    auto& stored = pods[pod.id] = pod;
    return ok(201, pod_json(stored));
  }

  HttpReply pod_action(SandboxPod& pod, const json& b) {
    auto extra = b.is_object() ? unknown_keys(b, {"action"}, "") : std::vector<std::string>{"body must be an object"};
    std::string action = b.is_object() ? b.value("action", "") : "";
    std::set<std::string> valid = {"start", "stop", "restart", "terminate"};
    if (!valid.count(action)) extra.push_back("action: must be one of start, stop, restart, terminate");
    if (!extra.empty()) return problem(422, "Unprocessable Entity", "Request validation failed.", extra);
    advance(pod);
    auto allowed = pod_json(pod)["actions"];
    if (std::find(allowed.begin(), allowed.end(), action) == allowed.end())
      return problem(409, "Conflict", "action " + action + " is not allowed while the pod is " + pod.status);
    auto now = Clock::now();
    if (action == "terminate") {
      pods.erase(pod.id);
      return no_content();
    }
    if (action == "stop") {
      pod.status = "EXITED";
      pod.phase_since = now;
    } else if (action == "start" || action == "restart") {
      if (action == "start" && balance <= 0)
        return problem(402, "Payment Required", "insufficient balance to start this pod");
      if (action == "start" && !host_gpus_free)
        return problem(400, "Bad Request",
                       "There are not enough free GPUs on the host machine to start this pod.");
      pod.status = "STARTING";
      pod.phase_since = now;
      pod.ssh_port = fresh_ssh_port();  // public ports change on every start
    }
    return ok(200, pod_json(pod));
  }

  HttpReply create_volume(const json& b) {
    std::vector<std::string> errors =
        b.is_object() ? unknown_keys(b, {"name", "size", "dataCenter", "type"}, "")
                      : std::vector<std::string>{"body must be an object"};
    if (b.is_object()) {
      if (!b.contains("name") || !b["name"].is_string() || b["name"].get<std::string>().empty())
        errors.push_back("name: required");
      if (!b.contains("size") || !b["size"].is_number_integer() || b["size"].get<int>() < 10 ||
          b["size"].get<int>() > 4096)
        errors.push_back("size: required, an integer from 10 to 4096");
      if (!b.contains("dataCenter") || !b["dataCenter"].is_string())
        errors.push_back("dataCenter: required");
      if (b.contains("type") && b["type"] != "STANDARD" && b["type"] != "HIGH_PERFORMANCE")
        errors.push_back("type: must be one of STANDARD, HIGH_PERFORMANCE");
    }
    if (!errors.empty()) return problem(422, "Unprocessable Entity", "Request validation failed.", errors);
    std::string dc = b["dataCenter"];
    if (std::none_of(std::begin(k_dcs), std::end(k_dcs), [&](const DcInfo& d) { return dc == d.id; }))
      return problem(400, "Bad Request", "data center '" + dc + "' does not exist");
    json v = {{"id", new_id(8)}, {"name", b["name"]}, {"size", b["size"]}, {"dataCenter", dc},
              {"type", b.value("type", "STANDARD")}};
    volumes[v["id"]] = v;
    return ok(201, v);
  }

  HttpReply route(const HttpExchange& ex, const json& body) {
    const auto& p = ex.path;
    const auto& m = ex.method;
    auto segments = [&] {
      std::vector<std::string> out;
      std::size_t i = 1;
      while (i <= p.size()) {
        auto j = p.find('/', i);
        if (j == std::string::npos) j = p.size();
        out.push_back(p.substr(i, j - i));
        i = j + 1;
      }
      return out;
    }();
    if (segments.size() < 2 || segments[0] != "v2") return problem(404, "Not Found", "no route " + p);
    const std::string& res = segments[1];
    if (res == "pods") {
      if (segments.size() == 2) {
        if (m == "GET") {
          json list = json::array();
          for (auto& [id, pod] : pods) list.push_back(pod_json(pod));
          return ok(200, {{"pods", list}});
        }
        if (m == "POST") return create_pod(body);
        return problem(405, "Method Not Allowed", m + " " + p);
      }
      auto it = pods.find(segments[2]);
      if (it == pods.end()) return problem(404, "Not Found", "pod " + segments[2] + " not found");
      if (segments.size() == 4 && segments[3] == "action" && m == "POST")
        return pod_action(it->second, body);
      if (segments.size() == 3 && m == "GET") return ok(200, pod_json(it->second));
      if (segments.size() == 3 && m == "DELETE") {
        pods.erase(it);
        return no_content();
      }
      return problem(405, "Method Not Allowed", m + " " + p);
    }
    if (res == "network-volumes") {
      if (segments.size() == 2) {
        if (m == "GET") {
          json list = json::array();
          for (const auto& [id, v] : volumes) list.push_back(v);
          return ok(200, {{"networkVolumes", list}});
        }
        if (m == "POST") return create_volume(body);
        return problem(405, "Method Not Allowed", m + " " + p);
      }
      auto it = volumes.find(segments[2]);
      if (it == volumes.end()) return problem(404, "Not Found", "network volume " + segments[2] + " not found");
      if (m == "GET") return ok(200, it->second);
      if (m == "DELETE") {
        for (auto& [id, pod] : pods)
          if (pod.spec.contains("mounts") && pod.spec["mounts"].contains("network") &&
              pod.spec["mounts"]["network"][0]["volumeId"] == it->first)
            return problem(409, "Conflict", "network volume is attached to pod " + id);
        volumes.erase(it);
        return no_content();
      }
      return problem(405, "Method Not Allowed", m + " " + p);
    }
    if (res == "catalog" && segments.size() == 3 && m == "GET") {
      if (segments[2] == "gpus") {
        json list = json::array();
        for (const auto& g : k_gpus) {
          bool any = false;
          for (const auto& dc : k_dcs)
            any = any || has_capacity(g.id, dc.id);
          list.push_back({{"id", g.id}, {"name", g.name}, {"pool", g.pool}, {"manufacturer", "NVIDIA"},
                          {"memory", g.memory}, {"secure", true}, {"community", true},
                          {"price", {{"secure", g.secure}, {"community", g.community}}},
                          {"maxCount", {{"secure", 8}, {"community", 4}}},
                          {"availability", any ? "HIGH" : "NONE"}});
        }
        return ok(200, {{"gpus", list}});
      }
      if (segments[2] == "datacenters") {
        json list = json::array();
        for (const auto& d : k_dcs)
          list.push_back({{"id", d.id}, {"name", d.name}, {"region", d.region},
                          {"globalNetwork", false}, {"networkVolumeTypes", {"STANDARD"}},
                          {"compliance", json::array()}});
        return ok(200, {{"dataCenters", list}});
      }
    }
    return problem(404, "Not Found", "no route " + p);
  }

  HttpReply control(const HttpExchange& ex, const json& body) {
    if (ex.path == "/_sandbox/faults" && ex.method == "POST") {
      Fault f;
      f.method = body.value("method", "");
      f.path = body.value("path", "");
      f.kind = body.value("kind", "status");
      f.status = body.value("status", 500);
      f.retry_after_secs = body.value("retry_after", 1);
      f.delay_ms = body.value("delay_ms", 0);
      f.count = body.value("count", 1);
      faults.push_back({f});
      return ok(200, {{"ok", true}});
    }
    if (ex.path == "/_sandbox/capacity" && ex.method == "POST") {
      std::pair<std::string, std::string> key{body.value("gpu", "*"), body.value("dc", "*")};
      if (body.value("available", true)) no_capacity.erase(key);
      else no_capacity.insert(key);
      return ok(200, {{"ok", true}});
    }
    if (ex.path == "/_sandbox/state" && ex.method == "GET") return ok(200, snapshot_locked());
    return problem(404, "Not Found", "no control route " + ex.path);
  }

  json snapshot_locked() {
    json out = {{"pods", json::array()}, {"volumes", json::array()}, {"requests", requests}};
    for (auto& [id, pod] : pods) out["pods"].push_back(pod_json(pod));
    for (const auto& [id, v] : volumes) out["volumes"].push_back(v);
    return out;
  }

  HttpReply with_rate_headers(HttpReply r) {
    r.headers["RateLimit"] = "\"minute\";r=59;t=60, \"hour\";r=2999;t=3600, \"day\";r=49999;t=86400";
    r.headers["RateLimit-Policy"] = "\"minute\";q=60;w=60, \"hour\";q=3000;w=3600, \"day\";q=50000;w=86400";
    return r;
  }

  // The fault that applies to this request, if any; counts it down.
  std::optional<Fault> take_fault(const HttpExchange& ex) {
    for (auto it = faults.begin(); it != faults.end(); ++it) {
      const Fault& f = it->fault;
      if ((!f.method.empty() && f.method != ex.method) || ex.path.rfind(f.path, 0) != 0) continue;
      if (f.kind == "every_other" && it->seen++ % 2 == 1) return std::nullopt;
      Fault applied = f;
      if (--it->fault.count <= 0) faults.erase(it);
      return applied;
    }
    return std::nullopt;
  }

  HttpReply fault_reply(const Fault& fault) {
    if (fault.status == 502 || fault.status == 504) {
      HttpReply r;
      r.status = fault.status;
      r.headers["Content-Type"] = "text/html";
      std::string what = fault.status == 502 ? "502 Bad Gateway" : "504 Gateway Time-out";
      r.body = "<html>\r\n<head><title>" + what + "</title></head>\r\n<body>\r\n<center><h1>" +
               what + "</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n";
      return r;
    }
    auto title = fault.status == 429 ? "Too Many Requests"
                 : fault.status >= 500 ? "Internal Server Error"
                 : fault.status == 422 ? "Unprocessable Entity"
                                       : "Error";
    std::vector<std::string> errors;
    if (fault.status == 422) errors = {"injected: property not accepted (not allowed)"};
    auto r = problem(fault.status, title,
                     fault.status == 429 ? "rate limit exceeded for the minute window"
                                         : "injected failure",
                     errors);
    if (fault.status == 429) r.headers["Retry-After"] = std::to_string(fault.retry_after_secs);
    return with_rate_headers(r);
  }

  HttpReply handle(const HttpExchange& ex) {
    std::lock_guard lock(mutex);
    json body;
    if (!ex.body.empty()) {
      try {
        body = json::parse(ex.body);
      } catch (const json::exception&) {
        return problem(400, "Bad Request", "request body is not valid JSON");
      }
    }
    if (ex.path.rfind("/_sandbox/", 0) == 0) return control(ex, body);
    requests.push_back({{"method", ex.method}, {"path", ex.target}});
    if (auto denied = check_auth(ex)) return *denied;

    std::optional<Fault> fault = take_fault(ex);
    if (fault) {
      if (fault->kind == "drop") {
        HttpReply r;
        r.drop = true;
        return r;
      }
      if (fault->kind == "status" || fault->kind == "every_other") return fault_reply(*fault);
      if (fault->kind == "malformed") {
        HttpReply r;
        r.headers["Content-Type"] = "application/json";
        r.body = "{\"pods\": [{\"id\": \"trunc";
        return r;
      }
    }
    HttpReply reply = with_rate_headers(route(ex, body));
    if (fault && fault->kind == "lost_answer") reply.drop = true;  // done, but nobody hears it
    if (fault && fault->kind == "slow") reply.delay = std::chrono::milliseconds(fault->delay_ms);
    return reply;
  }
};

RunpodSandbox::RunpodSandbox(SandboxOptions options) : m_impl(std::make_unique<Impl>()) {
  m_impl->options = std::move(options);
}
RunpodSandbox::~RunpodSandbox() { stop(); }

core::Status RunpodSandbox::start(const std::string& address, int port) {
  return m_impl->server.start(address, port);
}
void RunpodSandbox::stop() { m_impl->server.stop(); }
std::string RunpodSandbox::url() const { return m_impl->server.url(); }
int RunpodSandbox::port() const { return m_impl->server.port(); }

void RunpodSandbox::add_fault(const Fault& fault) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->faults.push_back({fault});
}

void RunpodSandbox::set_capacity(const std::string& gpu, const std::string& dc, bool available) {
  std::lock_guard lock(m_impl->mutex);
  if (available) m_impl->no_capacity.erase({gpu, dc});
  else m_impl->no_capacity.insert({gpu, dc});
}

void RunpodSandbox::set_host_gpus_free(bool free) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->host_gpus_free = free;
}

void RunpodSandbox::set_balance(double usd) {
  std::lock_guard lock(m_impl->mutex);
  m_impl->balance = usd;
}

json RunpodSandbox::snapshot() const {
  std::lock_guard lock(m_impl->mutex);
  return m_impl->snapshot_locked();
}

}  // namespace autopod::sandbox
