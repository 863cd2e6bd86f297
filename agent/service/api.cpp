// The API's routes (see api.hpp): authentication, JSON bodies and errors, one function per route.

#include "agent/service/api.hpp"

#include "agent/service/secrets.hpp"
#include "core/http.hpp"

namespace autopod::agent::service {

using core::ErrorCode;
using nlohmann::json;

namespace {

int status_for(const core::Error& e) {
  switch (e.code) {
    case ErrorCode::invalid_argument: return 400;
    case ErrorCode::not_found: return 404;
    case ErrorCode::conflict: return 409;
    case ErrorCode::internal: return 500;
    default: return 502;  // the pod, its tunnel or ComfyUI failed us
  }
}

Reply error_of(const core::Error& e) { return error_reply(status_for(e), e.message, e.hint); }

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> out;
  std::size_t start = 1;
  while (start <= path.size()) {
    auto slash = path.find('/', start);
    out.push_back(path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

bool authorized(const Api& api, const Request& req) {
  std::string h = req.header("authorization");
  const std::string prefix = "Bearer ";
  if (h.size() <= prefix.size() || !std::equal(prefix.begin(), prefix.end(), h.begin(), [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
      }))
    return false;
  return constant_time_equal(std::string_view(h).substr(prefix.size()), api.token);
}

// POST of a new task: `Tasks` is Generations or Syncs (create, then start on its own thread).
template <class Tasks>
Routed post_task(Tasks& tasks, const Request& req) {
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::parse_error& e) {
    return error_reply(400, "the body is not valid JSON", e.what());
  }
  return Deferred([&tasks, body = std::move(body)]() -> Reply {
    auto task = tasks.create(body);
    if (!task) return error_of(task.error());
    tasks.start(task->id);
    return json_reply(202, {{"taskId", task->id}});
  });
}

Reply list_tasks(Api& api, const Request& req) {
  auto q = [&](const char* k) {
    auto it = req.query.find(k);
    return it == req.query.end() ? std::string() : it->second;
  };
  std::string status = q("status"), kind = q("kind");
  if (!status.empty() && !parse_status(status))
    return error_reply(400, "unknown status \"" + status + "\"", "queued, in-progress, completed, error or cancelled");
  int limit = 50, offset = 0;
  try {
    if (!q("limit").empty()) limit = std::stoi(q("limit"));
    if (!q("offset").empty()) offset = std::stoi(q("offset"));
  } catch (const std::exception&) {
    return error_reply(400, "limit and offset must be integers");
  }
  if (limit < 1 || limit > 500 || offset < 0) return error_reply(400, "limit must be 1 to 500 and offset at least 0");
  std::vector<json> views;
  for (const auto& t : api.store.list())
    if ((status.empty() || status == to_string(t.status)) && (kind.empty() || kind == t.kind)) views.push_back(api_view(t));
  json page = json::array();
  for (std::size_t i = static_cast<std::size_t>(offset); i < views.size() && page.size() < static_cast<std::size_t>(limit); ++i)
    page.push_back(views[i]);
  std::size_t next = static_cast<std::size_t>(offset) + page.size();
  return json_reply(200, {{"tasks", page}, {"total", views.size()}, {"limit", limit}, {"offset", offset},
                          {"nextOffset", next < views.size() ? json(next) : json()}});
}

Routed pod_comfy(Api& api, const std::string& pod) {
  return Deferred([&api, pod]() -> Reply {
    auto url = api.pods.comfy_url(pod);
    if (!url) return error_of(url.error());
    json out = {{"pod", pod}, {"url", *url}, {"ready", false}, {"comfyuiVersion", nullptr}, {"queue", nullptr},
                {"error", nullptr}};
    auto client = comfy::ComfyClient::connect(*url, core::make_curl_transport, core::system_clock());
    if (!client) return error_of(client.error());
    auto stats = client->system_stats();
    auto queue = stats ? client->queue() : core::Result<comfy::QueueState>(stats.error());
    if (!stats || !queue) {
      out["error"] = (stats ? queue.error() : stats.error()).message;
      return json_reply(200, out);
    }
    out["ready"] = true;
    out["comfyuiVersion"] = stats->comfyui_version;
    out["queue"] = {{"running", queue->running.size()}, {"pending", queue->pending.size()}};
    return json_reply(200, out);
  });
}

std::uint64_t last_event_id(const Request& req) {
  std::string v = req.header("last-event-id");
  if (v.empty() && req.query.count("lastEventId")) v = req.query.at("lastEventId");
  try {
    return v.empty() ? 0 : std::stoull(v);
  } catch (const std::exception&) {
    return 0;
  }
}

Routed task_routes(Api& api, const Request& req, const std::vector<std::string>& s) {
  const std::string& id = s[2];
  if (!api.store.get(id)) return error_reply(404, "no task " + id, "list them with GET /v1/tasks");
  if (s.size() == 3 && req.method == "GET") return json_reply(200, api_view(*api.store.get(id)));
  if (s.size() == 3 && req.method == "DELETE")
    return Deferred([&api, id]() -> Reply {
      auto task = api.store.get(id);  // pruned meanwhile: as unknown
      if (!task) return error_reply(404, "no task " + id, "list them with GET /v1/tasks");
      auto t = task->kind == "model-sync" ? api.syncs.cancel(id) : api.generations.cancel(id);
      return t ? json_reply(200, api_view(*t)) : error_of(t.error());
    });
  if (s.size() == 4 && s[3] == "events" && req.method == "GET") return SseStart{id, last_event_id(req)};
  if (s.size() == 4 && s[3] == "webhooks" && req.method == "GET") {
    auto t = api.store.get(id);
    return json_reply(200, {{"taskId", id}, {"webhook", t->webhook.empty() ? json() : json(t->webhook)},
                            {"attempts", api.store.attempts(id).value_or(json::array())}});
  }
  if (s.size() <= 4) return error_reply(405, "method " + req.method + " not allowed on " + req.path);
  return error_reply(404, "no route " + req.path);
}

Routed route(Api& api, const Request& req) {
  if (req.path == "/health")
    return req.method == "GET" ? json_reply(200, {{"status", "ok"}}) : error_reply(405, "use GET /health");
  if (!authorized(api, req)) {
    Reply r = error_reply(401, "missing or wrong bearer token", "send Authorization: Bearer <token> (autopod agent token)");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  auto s = split(req.path);
  auto is = [&](std::initializer_list<const char*> want) {
    if (s.size() < want.size()) return false;
    std::size_t i = 0;
    for (const char* w : want)
      if (s[i++] != w) return false;
    return true;
  };
  if (req.path == "/v1/generations")
    return req.method == "POST" ? post_task(api.generations, req) : error_reply(405, "use POST /v1/generations");
  if (req.path == "/v1/models/sync")
    return req.method == "POST" ? post_task(api.syncs, req) : error_reply(405, "use POST /v1/models/sync");
  if (req.path == "/v1/tasks")
    return req.method == "GET" ? list_tasks(api, req) : error_reply(405, "use GET /v1/tasks");
  if (is({"v1", "tasks"}) && s.size() >= 3 && !s[2].empty()) return task_routes(api, req, s);
  if (is({"progress"}) && s.size() == 2 && req.method == "GET") {
    if (!api.store.get(s[1])) return error_reply(404, "no task " + s[1]);
    return SseStart{s[1], last_event_id(req)};
  }
  if (is({"v1", "outputs"}) && s.size() == 4 && req.method == "GET")
    return serve_output(api.options.home.outputs(), s[2], s[3], req.header("range"));
  if (req.path == "/v1/pods" && req.method == "GET")
    return Deferred([&api]() -> Reply {
      auto pods = api.pods.pods();
      return pods ? json_reply(200, *pods) : error_of(pods.error());
    });
  if (is({"v1", "pods"}) && s.size() == 4 && s[3] == "comfy" && req.method == "GET") return pod_comfy(api, s[2]);
  return error_reply(404, "no route " + req.method + " " + req.path, "see the README's agent section for the API");
}

}  // namespace

Router make_router(Api& api) {
  return [&api](const Request& req) { return route(api, req); };
}

}  // namespace autopod::agent::service
