#include "providers/runpod/runpod_api.hpp"

#include <algorithm>
#include <cctype>

#include "core/text.hpp"

namespace autopod::providers::runpod {

using core::ErrorCode;
using nlohmann::json;

namespace {

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

double number(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_number()) return it->get<double>();
  if (it->is_string()) {
    try {
      return std::stod(it->get<std::string>());  // some examples carry prices as strings
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

}  // namespace

Pod pod_from_v2(const json& j) {
  Pod p;
  p.provider = "runpod";
  p.id = j.at("id").get<std::string>();
  p.name = str(j, "name");
  p.status = parse_pod_status(str(j, "status"));
  p.image = str(j, "image");
  if (auto gpu = j.find("gpu"); gpu != j.end() && gpu->is_object()) {
    p.gpu_type = str(*gpu, "id");
    p.gpu_count = gpu->value("count", 1);
  }
  p.cloud = core::lowercase(str(j, "cloud"));
  p.data_center = str(j, "dataCenterId");
  p.cost_per_hr = number(j, "cost");
  if (auto mounts = j.find("mounts"); mounts != j.end() && mounts->is_object()) {
    if (auto net = mounts->find("network"); net != mounts->end() && net->is_array() &&
                                            !net->empty()) {
      p.volume_id = str(net->front(), "volumeId");
      p.mount_path = str(net->front(), "path");
    } else if (auto per = mounts->find("persistent"); per != mounts->end() && per->is_object()) {
      p.mount_path = str(*per, "path");
    }
  }
  if (auto ports = j.find("ports"); ports != j.end() && ports->is_array())
    for (const auto& port : *ports)
      if (port.is_string()) p.ports.push_back(port.get<std::string>());
  // Only the direct endpoint can forward ports; the proxied one (ssh.runpod.io) cannot.
  if (auto ssh = j.find("ssh"); ssh != j.end() && ssh->is_object()) {
    if (auto direct = ssh->find("direct"); direct != ssh->end() && direct->is_object()) {
      SshEndpoint e;
      e.host = str(*direct, "host");
      e.port = direct->value("port", 0);
      e.user = str(*direct, "username");
      if (e.user.empty()) e.user = "root";
      if (!e.host.empty() && e.port > 0) p.ssh = e;
    }
  }
  p.created_at = str(j, "createdAt");
  return p;
}

Volume volume_from_v2(const json& j) {
  Volume v;
  v.id = j.at("id").get<std::string>();
  v.name = str(j, "name");
  v.size_gb = j.value("size", 0);
  v.data_center = str(j, "dataCenter");
  v.type = str(j, "type");
  return v;
}

GpuType gpu_from_v2(const json& j) {
  GpuType g;
  g.id = j.at("id").get<std::string>();
  g.name = str(j, "name");
  g.memory_gb = j.value("memory", 0);
  if (auto price = j.find("price"); price != j.end() && price->is_object()) {
    g.price_secure = number(*price, "secure");
    g.price_community = number(*price, "community");
  }
  g.availability = str(j, "availability");
  return g;
}

DataCenter data_center_from_v2(const json& j) {
  return DataCenter{j.at("id").get<std::string>(), str(j, "name"), str(j, "region")};
}

json create_pod_body(const PodSpec& spec, const std::string& gpu_type,
                     const std::vector<std::string>& data_centers) {
  std::string cloud = spec.cloud;
  std::transform(cloud.begin(), cloud.end(), cloud.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  json body = {{"name", spec.name},
               {"image", spec.image},
               {"gpu", {{"id", gpu_type}, {"count", spec.gpu_count}}},
               {"cloud", cloud},
               {"disk", spec.container_disk_gb},
               {"ports", spec.ports}};
  json env = json::object();
  for (const auto& [k, v] : spec.env) env[k] = v;
  // RunPod's images append $PUBLIC_KEY to authorized_keys: this is how the pod learns our key.
  if (!spec.public_key.empty()) env["PUBLIC_KEY"] = spec.public_key;
  body["env"] = env;
  if (!data_centers.empty()) body["dataCenterIds"] = data_centers;
  // v2 has no default mount path for a network volume: always send it.
  if (!spec.volume_id.empty())
    body["mounts"] = {{"network", json::array({{{"volumeId", spec.volume_id},
                                                {"path", spec.mount_path}}})}};
  return body;
}

json create_volume_body(const VolumeSpec& spec) {
  json body = {{"name", spec.name}, {"size", spec.size_gb}, {"dataCenter", spec.data_center}};
  if (!spec.type.empty()) body["type"] = spec.type;
  return body;
}

bool is_capacity_detail(const std::string& detail) {
  std::string d = core::lowercase(detail);
  for (const char* needle : {"no longer any instances", "no instances", "capacity",
                             "not enough free gpu", "no available", "not available",
                             "unavailable", "out of stock", "could not be placed"})
    if (d.find(needle) != std::string::npos) return true;
  return false;
}

core::Error error_from_response(const core::HttpResponse& response, const std::string& what) {
  std::string detail, title;
  std::vector<std::string> errors;
  try {
    auto body = json::parse(response.body);
    if (body.is_object()) {
      detail = str(body, "detail");
      title = str(body, "title");
      if (detail.empty()) detail = str(body, "message");  // v1-style bodies
      if (auto e = body.find("errors"); e != body.end() && e->is_array())
        for (const auto& item : *e)
          errors.push_back(item.is_string() ? item.get<std::string>() : item.dump());
    }
  } catch (const json::exception&) {
    detail = response.body.substr(0, 200);
  }
  int status = response.status;
  std::string said = detail.empty() ? title : detail;
  std::string msg = "runpod answered " + what + " with http " + std::to_string(status) +
                    (said.empty() ? "" : ": " + said);
  for (const auto& e : errors) msg += "\n  - " + e;
  core::Error err;
  err.http_status = status;
  err.message = msg;
  switch (status) {
    case 401:
      err.code = ErrorCode::auth;
      err.message = "runpod refused the api key (http 401)" + (said.empty() ? "" : ": " + said);
      err.hint = "set RUNPOD_API_KEY to a valid key (console: Settings > API Keys), "
                 "or runpod.api_key in config.yaml";
      break;
    case 403:
      err.code = ErrorCode::auth;
      err.message = "the runpod api key may not do " + what + " (http 403)";
      err.hint = "give the key read/write access to pods and network volumes in the console";
      break;
    case 402:
      err.code = ErrorCode::payment;
      err.message = "runpod says the balance is too low (http 402)" +
                    (said.empty() ? "" : ": " + said);
      err.hint = "add funds in the runpod console";
      break;
    case 404:
      err.code = ErrorCode::not_found;
      break;
    case 409:
      err.code = ErrorCode::conflict;
      err.hint = "the pod's current status does not allow this; see autopod info";
      break;
    case 422:
      // autopod built the request, not the user: not a usage error (exit 2).
      err.code = ErrorCode::remote;
      err.hint = "runpod's api no longer accepts a request autopod built (see its errors above); "
                 "this needs a fix in autopod: please report it with these errors";
      break;
    case 429: {
      err.code = ErrorCode::rate_limited;
      auto ra = response.header("retry-after");
      try {
        err.retry_after_secs = ra.empty() ? -1 : std::max(0, std::stoi(ra));
      } catch (...) {
        err.retry_after_secs = -1;
      }
      err.hint = "runpod rate-limited this key; wait a minute";
      break;
    }
    case 400:
      err.code = is_capacity_detail(detail) ? ErrorCode::no_capacity : ErrorCode::invalid_argument;
      break;
    default:
      err.code = ErrorCode::remote;
      if (status >= 500) err.hint = "runpod had a server error; try again in a minute";
  }
  return err;
}

}  // namespace autopod::providers::runpod
