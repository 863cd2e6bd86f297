// The ComfyUI fake: the origin check and the HTTP routes besides /prompt.

#include "sandbox/comfy_fake_impl.hpp"

namespace autopod::sandbox {

using namespace comfy_fake;  // NOLINT: the fake's own helpers

// The CSRF guard: Host and Origin both present, Host on loopback, host[:port] differ -> 403.
std::optional<HttpReply> ComfyFake::Impl::origin_check(const HttpExchange& ex) {
  auto origin = ex.headers.find("origin");
  if (origin == ex.headers.end())
    return std::nullopt;
  saw_origin = true;
  auto host = ex.headers.count("host") ? ex.headers.at("host") : "";
  std::string o = origin->second;
  auto scheme = o.find("://");
  if (scheme != std::string::npos)
    o = o.substr(scheme + 3);
  if (o != "null" && !host.empty() && is_loopback_host(host) && o != host)
    return empty_reply(403);
  return std::nullopt;
}

HttpReply ComfyFake::Impl::handle(const HttpExchange& ex) {
  std::lock_guard lock(mutex);
  HttpReply r = route(ex);
  if (delay.count() > 0)
    r.delay = delay;
  return r;
}

HttpReply ComfyFake::Impl::view(const std::map<std::string, std::string>& q) {
  auto f = q.find("filename");
  if (f == q.end())
    return text_reply(404, "404: Not Found");
  std::string name = f->second;
  std::string type = q.count("type") ? q.at("type") : "output";
  for (const char* t : {"output", "input", "temp"}) {
    std::string suffix = std::string(" [") + t + "]";
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      name = name.substr(0, name.size() - suffix.size());
      type = t;
    }
  }
  if (name.empty() || name[0] == '/' || name.find("..") != std::string::npos)
    return empty_reply(400);
  if (type != "output" && type != "input" && type != "temp")
    return empty_reply(400);
  fs::path dir = base / type;
  if (auto s = q.find("subfolder"); s != q.end() && !s->second.empty()) {
    fs::path sub = fs::path(s->second).is_absolute() ? fs::path(s->second) : dir / s->second;
    if (!inside(dir, sub))
      return empty_reply(403);
    dir = sub;
  }
  fs::path file = dir / fs::path(name).filename();  // only the basename is used
  if (!fs::is_regular_file(file))
    return text_reply(404, "404: Not Found");
  auto data = core::read_file(file);
  if (!data)
    return server_error();
  HttpReply r;
  r.headers["Content-Type"] = file.extension() == ".png" ? "image/png" : "application/octet-stream";
  r.headers["Content-Disposition"] = "filename=\"" + file.filename().string() + "\"";
  r.body = *data;
  return r;
}

HttpReply ComfyFake::Impl::upload(const HttpExchange& ex) {
  if (ex.body.size() > 104857600)
    return text_reply(413, "Maximum request body size 104857600 exceeded, actual body size " +
                               std::to_string(ex.body.size()));
  auto ct = ex.headers.count("content-type") ? ex.headers.at("content-type") : "";
  auto parts = parse_multipart(ct, ex.body);
  if (!parts)
    return empty_reply(400);
  const Part* image = nullptr;
  std::string type = "input", subfolder;
  bool overwrite = false;
  for (const auto& p : *parts) {
    if (p.name == "image" && p.has_filename)
      image = &p;
    if (p.name == "type")
      type = p.body;
    if (p.name == "subfolder")
      subfolder = p.body;
    if (p.name == "overwrite")
      overwrite = p.body == "true" || p.body == "1";
  }
  if (!image)
    return empty_reply(400);
  if (image->filename.empty())
    return server_error();
  if (type != "input" && type != "temp" && type != "output")
    return server_error();
  fs::path root = base / type;
  fs::path dir = root / subfolder;
  if (fs::path(subfolder).is_absolute() || !inside(root, dir))
    return empty_reply(400);
  fs::create_directories(dir);
  fs::path target = dir / image->filename;
  if (!inside(root, target))
    return empty_reply(400);
  if (!fs::is_directory(target.parent_path()))
    return server_error();
  std::string stem = target.stem().string(), ext = target.extension().string();
  for (int i = 1; !overwrite && fs::exists(target); ++i) {
    auto existing = core::read_file(target);
    if (existing && *existing == image->body)
      break;  // same content: reuse the name
    target = target.parent_path() / (stem + " (" + std::to_string(i) + ")" + ext);
  }
  std::ofstream(target, std::ios::binary | std::ios::trunc) << image->body;
  return json_reply(
      {{"name", target.filename().string()}, {"subfolder", subfolder}, {"type", type}});
}

HttpReply ComfyFake::Impl::route(const HttpExchange& ex) {
  if (refuse > 0) {
    --refuse;
    HttpReply r;
    r.drop = true;
    return r;
  }
  if (auto refused = origin_check(ex))
    return *refused;
  // Every route is also served under /api.
  std::string path = ex.path.rfind("/api/", 0) == 0 ? ex.path.substr(4) : ex.path;
  auto query = parse_query(ex.target);
  const std::string& m = ex.method;
  if (path == "/system_stats" && m == "GET")
    return json_reply(k_system_stats);
  if (path == "/prompt" && m == "GET")
    return json_reply({{"exec_info", {{"queue_remaining", queue_remaining()}}}});
  if (path == "/prompt" && m == "POST")
    return submit(ex.body);
  if (path == "/queue" && m == "GET") {
    json p = json::array();
    for (auto it = pending.rbegin(); it != pending.rend(); ++it)
      p.push_back(*it);
    return json_reply({{"queue_running", running}, {"queue_pending", p}});
  }
  if (path == "/object_info" && m == "GET")
    return json_reply(catalog());
  if (path.rfind("/object_info/", 0) == 0 && m == "GET") {
    json cat = catalog();
    std::string cls = core::url_decode(path.substr(13));
    return json_reply(cat.contains(cls) ? json{{cls, cat[cls]}} : json::object());
  }
  if (path == "/view" && m == "GET")
    return view(query);
  if (path == "/upload/image" && m == "POST")
    return upload(ex);
  if (path.rfind("/history", 0) == 0 && m == "GET") {
    if (path.size() > 9) {
      std::string id = path.substr(9);
      if (!history.contains(id))
        return json_reply(json::object());  // no 404, ever
      return json_reply({{id, history[id]}});
    }
    std::size_t max_items = history_order.size();
    if (query.count("max_items")) {
      try {
        max_items = static_cast<std::size_t>(std::stoul(query["max_items"]));
      } catch (...) {
        return server_error();  // a non-integer max_items is a 500 on the real server
      }
    }
    // Oldest first, as the server keeps them; max_items takes the newest.
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    std::size_t skip = history_order.size() > max_items ? history_order.size() - max_items : 0;
    for (std::size_t i = skip; i < history_order.size(); ++i)
      out[history_order[i]] = nlohmann::ordered_json::parse(history[history_order[i]].dump());
    HttpReply r;
    r.headers["Content-Type"] = "application/json; charset=utf-8";
    r.body = out.dump();
    return r;
  }
  if (m == "POST" &&
      (path == "/queue" || path == "/free" || path == "/interrupt" || path == "/history")) {
    json body = json::parse(ex.body, nullptr, false);
    if (body.is_discarded()) {
      if (path != "/interrupt")
        return server_error();  // /interrupt tolerates a bad body
      body = json::object();
    }
    if (!body.is_object())
      return server_error();
    if (path == "/queue") {
      std::size_t before = pending.size();
      if (body.value("clear", false))
        pending.clear();
      if (body.contains("delete"))
        for (const auto& id : body["delete"])
          pending.erase(std::remove_if(pending.begin(), pending.end(),
                                       [&](const json& item) { return item[1] == id; }),
                        pending.end());
      if (body.value("clear", false) || pending.size() != before)
        broadcast_status();
    } else if (path == "/free") {
      last_free = body;
      if (body.value("free_memory", false)) {
        cache_keys.clear();
        ui_cache.clear();
      }
    } else if (path == "/interrupt") {
      std::string target = body.contains("prompt_id") && body["prompt_id"].is_string()
                               ? body["prompt_id"].get<std::string>()
                               : "";
      if (!running.empty() && (target.empty() || running[0][1] == target)) {
        ++interrupts;
        interrupt_flag = true;
        cv.notify_all();
        if (manual_running) {  // nothing executes it: it ends here
          std::string id = running[0][1];
          json data = {{"prompt_id", id},
                       {"node_id", nullptr},
                       {"node_type", nullptr},
                       {"executed", json::array()},
                       {"timestamp", now_ms()}};
          store_history(id, {{"prompt", running[0]},
                             {"outputs", json::object()},
                             {"status",
                              {{"status_str", "error"},
                               {"completed", false},
                               {"messages", {{"execution_interrupted", data}}}}},
                             {"meta", json::object()}});
          running = json::array();
          manual_running = false;
        }
      }
    } else if (path == "/history") {
      if (body.value("clear", false)) {
        history = json::object();
        history_order.clear();
      }
      if (body.contains("delete"))
        for (const auto& id : body["delete"]) {
          history.erase(id.get<std::string>());
          history_order.erase(
              std::remove(history_order.begin(), history_order.end(), id.get<std::string>()),
              history_order.end());
        }
    }
    return empty_reply();
  }
  static const std::vector<std::string> known = {"/system_stats", "/prompt",       "/queue",
                                                 "/free",         "/history",      "/object_info",
                                                 "/interrupt",    "/upload/image", "/view"};
  if (std::find(known.begin(), known.end(), path) != known.end() &&
      (m == "PUT" || m == "DELETE" || m == "PATCH"))
    return text_reply(405, "405: Method Not Allowed");
  return text_reply(404, "404: Not Found");
}

}  // namespace autopod::sandbox
