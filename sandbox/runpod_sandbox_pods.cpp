// The RunPod sandbox: pods, as RunPod v2 creates, advances and describes them.

#include "sandbox/runpod_sandbox_impl.hpp"

namespace autopod::sandbox {

using namespace runpod_detail;  // NOLINT: the sandbox's own helpers

std::string RunpodSandbox::Impl::new_id(std::size_t len) {
  static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::uniform_int_distribution<int> d(0, 35);
  std::string id;
  for (std::size_t i = 0; i < len; ++i)
    id += chars[d(rng)];
  return id;
}

int RunpodSandbox::Impl::fresh_ssh_port() {
  if (options.ssh_port > 0)
    return options.ssh_port;
  return std::uniform_int_distribution<int>(10000, 60000)(rng);
}

// Moves pods along PROVISIONING -> STARTING -> RUNNING as time passes.
void RunpodSandbox::Impl::advance(SandboxPod& pod) {
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

json RunpodSandbox::Impl::pod_json(SandboxPod& pod) {
  advance(pod);
  const json& s = pod.spec;
  json actions = json::array();
  if (pod.status == "RUNNING")
    actions = {"stop", "restart", "terminate"};
  else if (pod.status == "EXITED" || pod.status == "ERROR")
    actions = {"start", "terminate"};
  else
    actions = {"stop", "terminate"};
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
    if (gpu_id == g.id)
      price = s.value("cloud", "SECURE") == "COMMUNITY" ? g.community : g.secure;
  json runtime = nullptr;
  if (running) {
    json rports = json::array();
    if (tcp22)
      rports.push_back(
          {{"private", 22}, {"public", pod.ssh_port}, {"type", "tcp"}, {"ip", options.ssh_host}});
    runtime = {
        {"uptime",
         std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - pod.phase_since).count()},
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
           {{"proxy",
             {{"host", "ssh.runpod.io"},
              {"port", 22},
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

// The v2 CreatePodRequest schema, strictly (unevaluatedProperties: false).
std::vector<std::string> RunpodSandbox::Impl::validate_create(const json& b) {
  std::vector<std::string> errors = unknown_keys(
      b,
      {"name", "image", "gpu", "cpu", "cloud", "dataCenterIds", "mounts", "disk", "ports", "env",
       "args", "registry", "startSsh", "startJupyter", "globalNetworking", "templateId"},
      "");
  if (!b.contains("name") || !b["name"].is_string() || b["name"].get<std::string>().empty())
    errors.push_back("name: required, a string of at least 1 character");
  if (!b.contains("templateId") && (!b.contains("image") || !b["image"].is_string()))
    errors.push_back("image: required unless templateId is set");
  if (b.contains("gpu") == b.contains("cpu"))
    errors.push_back("set exactly one of gpu or cpu");
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
    if (b.contains(list) &&
        (!b[list].is_array() ||
         !std::all_of(b[list].begin(), b[list].end(), [](const json& x) { return x.is_string(); })))
      errors.push_back(std::string(list) + ": must be an array of strings");
  if (b.contains("env") &&
      (!b["env"].is_object() ||
       !std::all_of(b["env"].begin(), b["env"].end(), [](const json& x) { return x.is_string(); })))
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

HttpReply RunpodSandbox::Impl::create_pod(const json& b) {
  auto errors = validate_create(b);
  if (!errors.empty())
    return problem(422, "Unprocessable Entity", "Request validation failed.", errors);
  if (b.contains("mounts") && b["mounts"].contains("network") && b["mounts"].contains("persistent"))
    return problem(400, "Bad Request",
                   "mounts.network and mounts.persistent are mutually exclusive");
  std::string gpu = b["gpu"]["id"];
  if (std::none_of(std::begin(k_gpus), std::end(k_gpus),
                   [&](const GpuInfo& g) { return gpu == g.id; }))
    return problem(400, "Bad Request", "gpu type '" + gpu + "' does not exist");
  std::vector<std::string> dcs = b.value("dataCenterIds", std::vector<std::string>{});
  std::string volume_dc;
  if (b.contains("mounts") && b["mounts"].contains("network") && !b["mounts"]["network"].empty()) {
    std::string vid = b["mounts"]["network"][0]["volumeId"];
    auto v = volumes.find(vid);
    if (v == volumes.end())
      return problem(400, "Bad Request", "network volume " + vid + " not found");
    volume_dc = v->second["dataCenter"];
    if (b.value("cloud", "SECURE") == "COMMUNITY")
      return problem(400, "Bad Request", "network volumes are only available on SECURE cloud");
    if (!dcs.empty() && std::find(dcs.begin(), dcs.end(), volume_dc) == dcs.end())
      return problem(400, "Bad Request",
                     "network volume " + vid + " is in " + volume_dc +
                         ", which dataCenterIds does not include");
    dcs = {volume_dc};
  }
  if (balance <= 0)
    return problem(402, "Payment Required", "insufficient balance to deploy this pod");
  if (dcs.empty())
    for (const auto& dc : k_dcs)
      dcs.push_back(dc.id);
  std::string placed;
  for (const auto& dc : dcs) {
    if (!has_capacity(gpu, dc))
      continue;
    placed = dc;
    break;
  }
  if (placed.empty())
    return problem(400, "Bad Request", k_capacity_detail);
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

HttpReply RunpodSandbox::Impl::pod_action(SandboxPod& pod, const json& b) {
  auto extra = b.is_object() ? unknown_keys(b, {"action"}, "")
                             : std::vector<std::string>{"body must be an object"};
  std::string action = b.is_object() ? b.value("action", "") : "";
  std::set<std::string> valid = {"start", "stop", "restart", "terminate"};
  if (!valid.count(action))
    extra.push_back("action: must be one of start, stop, restart, terminate");
  if (!extra.empty())
    return problem(422, "Unprocessable Entity", "Request validation failed.", extra);
  advance(pod);
  auto allowed = pod_json(pod)["actions"];
  if (std::find(allowed.begin(), allowed.end(), action) == allowed.end())
    return problem(409, "Conflict",
                   "action " + action + " is not allowed while the pod is " + pod.status);
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

}  // namespace autopod::sandbox
