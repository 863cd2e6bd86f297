// The RunPod sandbox: authentication, the REST routes, volumes and the /_sandbox control API.

#include "sandbox/runpod_sandbox_impl.hpp"

namespace autopod::sandbox {

using namespace runpod_detail;  // NOLINT: the sandbox's own helpers

std::optional<HttpReply> RunpodSandbox::Impl::check_auth(const HttpExchange& ex) {
  auto it = ex.headers.find("authorization");
  if (it == ex.headers.end() || it->second.rfind("Bearer ", 0) != 0 || it->second.size() <= 7)
    return problem(401, "Unauthorized", "missing bearer token");
  std::string token = it->second.substr(7);
  if (!options.api_key.empty() && token != options.api_key)
    return problem(401, "Unauthorized", "invalid bearer token");
  return std::nullopt;
}

HttpReply RunpodSandbox::Impl::create_volume(const json& b) {
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
  if (!errors.empty())
    return problem(422, "Unprocessable Entity", "Request validation failed.", errors);
  std::string dc = b["dataCenter"];
  if (std::none_of(std::begin(k_dcs), std::end(k_dcs), [&](const DcInfo& d) { return dc == d.id; }))
    return problem(400, "Bad Request", "data center '" + dc + "' does not exist");
  json v = {{"id", new_id(8)},
            {"name", b["name"]},
            {"size", b["size"]},
            {"dataCenter", dc},
            {"type", b.value("type", "STANDARD")}};
  volumes[v["id"]] = v;
  return ok(201, v);
}

HttpReply RunpodSandbox::Impl::route(const HttpExchange& ex, const json& body) {
  const auto& p = ex.path;
  const auto& m = ex.method;
  auto segments = [&] {
    std::vector<std::string> out;
    std::size_t i = 1;
    while (i <= p.size()) {
      auto j = p.find('/', i);
      if (j == std::string::npos)
        j = p.size();
      out.push_back(p.substr(i, j - i));
      i = j + 1;
    }
    return out;
  }();
  if (segments.size() < 2 || segments[0] != "v2")
    return problem(404, "Not Found", "no route " + p);
  const std::string& res = segments[1];
  if (res == "pods") {
    if (segments.size() == 2) {
      if (m == "GET") {
        json list = json::array();
        for (auto& [id, pod] : pods)
          list.push_back(pod_json(pod));
        return ok(200, {{"pods", list}});
      }
      if (m == "POST")
        return create_pod(body);
      return problem(405, "Method Not Allowed", m + " " + p);
    }
    auto it = pods.find(segments[2]);
    if (it == pods.end())
      return problem(404, "Not Found", "pod " + segments[2] + " not found");
    if (segments.size() == 4 && segments[3] == "action" && m == "POST")
      return pod_action(it->second, body);
    if (segments.size() == 3 && m == "GET")
      return ok(200, pod_json(it->second));
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
        for (const auto& [id, v] : volumes)
          list.push_back(v);
        return ok(200, {{"networkVolumes", list}});
      }
      if (m == "POST")
        return create_volume(body);
      return problem(405, "Method Not Allowed", m + " " + p);
    }
    auto it = volumes.find(segments[2]);
    if (it == volumes.end())
      return problem(404, "Not Found", "network volume " + segments[2] + " not found");
    if (m == "GET")
      return ok(200, it->second);
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
        list.push_back({{"id", g.id},
                        {"name", g.name},
                        {"pool", g.pool},
                        {"manufacturer", "NVIDIA"},
                        {"memory", g.memory},
                        {"secure", true},
                        {"community", true},
                        {"price", {{"secure", g.secure}, {"community", g.community}}},
                        {"maxCount", {{"secure", 8}, {"community", 4}}},
                        {"availability", any ? "HIGH" : "NONE"}});
      }
      return ok(200, {{"gpus", list}});
    }
    if (segments[2] == "datacenters") {
      json list = json::array();
      for (const auto& d : k_dcs)
        list.push_back({{"id", d.id},
                        {"name", d.name},
                        {"region", d.region},
                        {"globalNetwork", false},
                        {"networkVolumeTypes", {"STANDARD"}},
                        {"compliance", json::array()}});
      return ok(200, {{"dataCenters", list}});
    }
  }
  return problem(404, "Not Found", "no route " + p);
}

HttpReply RunpodSandbox::Impl::control(const HttpExchange& ex, const json& body) {
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
    if (body.value("available", true))
      no_capacity.erase(key);
    else
      no_capacity.insert(key);
    return ok(200, {{"ok", true}});
  }
  if (ex.path == "/_sandbox/state" && ex.method == "GET")
    return ok(200, snapshot_locked());
  return problem(404, "Not Found", "no control route " + ex.path);
}

}  // namespace autopod::sandbox
