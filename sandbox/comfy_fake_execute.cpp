// The ComfyUI fake: the worker that "executes" prompts, with caching and the frames of §4.4.

#include "sandbox/comfy_fake_impl.hpp"

namespace autopod::sandbox {

using namespace comfy_fake;  // NOLINT: the fake's own helpers

void ComfyFake::Impl::work() {
  std::unique_lock lock(mutex);
  for (;;) {
    cv.wait(lock, [&] { return stopping || (!hold && !pending.empty()); });
    if (stopping)
      return;
    auto next = std::min_element(pending.begin(), pending.end(), [](const json& a, const json& b) {
      return a[0].get<double>() < b[0].get<double>();
    });
    json item = *next;
    pending.erase(next);
    running = json::array({item});
    interrupt_flag = false;  // an interrupt sent while idle is cleared when a prompt starts
    broadcast_status();
    execute(item, lock);
    executing_node.clear();
  }
}

// Waits `d` without the lock; false when interrupted or stopping.
bool ComfyFake::Impl::pause(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds d) {
  if (d.count() > 0)
    cv.wait_for(lock, d, [&] { return stopping || interrupt_flag; });
  return !stopping && !interrupt_flag;
}

std::string ComfyFake::Impl::cache_key(const json& prompt,
                                       const std::string& id,
                                       std::map<std::string, std::string>& memo) {
  if (auto it = memo.find(id); it != memo.end())
    return it->second;
  std::string key = prompt[id]["class_type"].get<std::string>() + "(";
  const json inputs = prompt[id].value("inputs", json::object());
  for (const auto& [name, v] : inputs.items()) {
    key += name + "=";
    key +=
        is_link(v) ? "<" + cache_key(prompt, link_source(v), memo) + ">." + v[1].dump() : v.dump();
    key += ",";
  }
  return memo[id] = key + ")";
}

void ComfyFake::Impl::order_from(const json& prompt,
                                 const std::string& id,
                                 std::set<std::string>& seen,
                                 std::vector<std::string>& order) {
  if (!seen.insert(id).second)
    return;
  const json inputs = prompt[id].value("inputs", json::object());
  for (const auto& [name, v] : inputs.items())
    if (is_link(v))
      order_from(prompt, link_source(v), seen, order);
  order.push_back(id);
}

json ComfyFake::Impl::file_ref(const std::string& name,
                               const std::string& subfolder,
                               const std::string& type) const {
  if (escaping_names)
    return {{"filename", "../../../" + name}, {"subfolder", "../../.."}, {"type", type}};
  return {{"filename", name}, {"subfolder", subfolder}, {"type", type}};
}

json ComfyFake::Impl::save_images(const json& node, bool temp) {
  std::string prefix =
      temp ? "ComfyUI_temp_" + random_hex(5) : node["inputs"].value("filename_prefix", "ComfyUI");
  std::string subfolder, name = prefix;
  if (auto slash = prefix.rfind('/'); slash != std::string::npos) {
    subfolder = prefix.substr(0, slash);
    name = prefix.substr(slash + 1);
  }
  fs::path dir = base / (temp ? "temp" : "output") / subfolder;
  fs::create_directories(dir);
  char counter_text[16];
  std::snprintf(counter_text, sizeof counter_text, "%05d", ++file_counter);
  std::string file = name + "_" + counter_text + "_.png";
  std::ofstream(dir / file, std::ios::binary) << k_png;
  return {{"images", json::array({file_ref(file, subfolder, temp ? "temp" : "output")})}};
}

void ComfyFake::Impl::execute(const json& item, std::unique_lock<std::mutex>& lock) {
  const std::string id = item[1];
  const json prompt = item[2];
  const std::string cid = item[3].value("client_id", "");
  json stamp = {{"prompt_id", id}, {"timestamp", now_ms()}};
  json messages = json::array({json::array({"execution_start", stamp})});
  send_event(cid, "execution_start", stamp);

  std::vector<std::string> order;
  std::set<std::string> seen;
  for (const auto& out : item[4])
    order_from(prompt, out.get<std::string>(), seen, order);
  std::map<std::string, std::string> memo;
  std::set<std::string> cached;
  json cached_list = json::array();
  for (const auto& n : order)
    if (auto it = cache_keys.find(n);
        it != cache_keys.end() && it->second == cache_key(prompt, n, memo)) {
      cached.insert(n);
      cached_list.push_back(n);
    }
  json cached_msg = {{"nodes", cached_list}, {"prompt_id", id}, {"timestamp", now_ms()}};
  messages.push_back(json::array({"execution_cached", cached_msg}));
  send_event(cid, "execution_cached", cached_msg);

  json states = json::object(), outputs = json::object(), meta = json::object();
  json executed = json::array();
  auto state = [&](const std::string& n, json value, json max, const char* s) {
    states[n] = {{"value", value},
                 {"max", max},
                 {"state", s},
                 {"node_id", n},
                 {"prompt_id", id},
                 {"display_node_id", n},
                 {"parent_node_id", nullptr},
                 {"real_node_id", n}};
    send_event(cid, "progress_state", {{"prompt_id", id}, {"nodes", states}}, true);
  };
  auto ui_out = [&](const std::string& n, const json& ui) {
    send_event(cid, "executed",
               {{"node", n}, {"display_node", n}, {"output", ui}, {"prompt_id", id}});
    outputs[n] = ui;
    meta[n] = {{"node_id", n}, {"display_node", n}, {"parent_node", nullptr}, {"real_node_id", n}};
  };
  auto interrupted = [&](const std::string& n) {
    json data = {{"prompt_id", id},
                 {"node_id", n},
                 {"node_type", prompt[n]["class_type"]},
                 {"executed", executed},
                 {"timestamp", now_ms()}};
    messages.push_back(json::array({"execution_interrupted", data}));
    finish(item, "error", messages, outputs, meta, "execution_interrupted", data, true, lock);
  };

  for (const auto& n : order) {
    const json& node = prompt[n];
    const std::string cls = node["class_type"];
    bool output_node = k_catalog[cls].value("output_node", false);
    if (cached.count(n)) {
      if (output_node) {  // cached output nodes replay their old outputs
        ui_out(n, ui_cache[n]);
        state(n, 1, 1, "finished");
      }
      continue;
    }
    if (!pause(lock, std::chrono::milliseconds(0)))
      return interrupted(n);
    state(n, 0.0, 1.0, "running");
    executing_node = n;
    send_event(cid, "executing", {{"node", n}, {"display_node", n}, {"prompt_id", id}});
    json ui;
    if (cls == "KSampler") {
      int steps = node["inputs"].value("steps", 20);
      for (int v = 1; v <= steps; ++v) {
        if (interrupt_step == v) {
          interrupt_step = 0;
          ++interrupts;
          interrupt_flag = true;
        }
        if (!pause(lock, step_delay))
          return interrupted(n);
        state(n, v, steps, "running");
        if (previews)
          send_preview(cid, id, n, true);
        send_event(cid, "progress", {{"value", v}, {"max", steps}, {"prompt_id", id}, {"node", n}},
                   true);
        if (previews)
          send_preview(cid, id, n, false);
      }
    } else if (cls == "Canny") {
      json data = {{"prompt_id", id},
                   {"node_id", n},
                   {"node_type", cls},
                   {"executed", executed},
                   {"exception_message",
                    "kornia.filters.canny is a stub: the real package is not installed\n"},
                   {"exception_type", "_comfystub.StubUnavailable"},
                   {"traceback", k_canny_traceback},
                   {"current_inputs",
                    {{"image", json::array({"tensor([[[[0.0000, 0.0000, 0.5490]]]])"})},
                     {"low_threshold", json::array({"0.4"})},
                     {"high_threshold", json::array({"0.8"})}}},
                   {"current_outputs", executed},
                   {"timestamp", now_ms()}};
      messages.push_back(json::array({"execution_error", data}));
      return finish(item, "error", messages, outputs, meta, "execution_error", data, false, lock);
    } else if (cls == "GetImageSize") {
      send_text_frame(n, "width: 8, height: 8\n batch size: 1");
    } else if (cls == "SaveImage" || cls == "PreviewImage") {
      ui = save_images(node, cls == "PreviewImage");
    } else if (cls == "PreviewAny") {
      ui = {{"text", json::array({"8"})}};
    }
    if (!ui.is_null()) {
      ui_out(n, ui);
      ui_cache[n] = ui;
    }
    state(n, 1.0, 1.0, "finished");
    cache_keys[n] = cache_key(prompt, n, memo);
    executed.push_back(n);
  }
  json data = {{"prompt_id", id}, {"timestamp", now_ms()}};
  messages.push_back(json::array({"execution_success", data}));
  finish(item, "success", messages, outputs, meta, "execution_success", data, false, lock);
}

void ComfyFake::Impl::finish(const json& item,
                             const std::string& status,
                             const json& messages,
                             const json& outputs,
                             const json& meta,
                             const std::string& end_type,
                             const json& end_data,
                             bool spray,
                             std::unique_lock<std::mutex>& lock) {
  const std::string id = item[1];
  const std::string cid = item[3].value("client_id", "");
  if (abandon) {
    abandon = false;
    running = json::array();
    return;
  }
  json extra = item[3];
  extra.erase("api_key_comfy_org");
  extra.erase("auth_token_comfy_org");
  json entry = {
      {"prompt", json::array({item[0], id, item[2], extra, item[4]})},
      {"outputs", outputs},
      {"status",
       {{"status_str", status}, {"completed", status == "success"}, {"messages", messages}}},
      {"meta", meta}};
  if (end_type == "execution_success")
    success_times[id] = std::chrono::steady_clock::now();
  if (success_first && end_type == "execution_success") {
    send_event(cid, end_type, end_data, spray);
    cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping; });
    store_history(id, entry);
  } else {
    store_history(id, entry);
    send_event(cid, end_type, end_data, spray);
  }
  running = json::array();
  executing_node.clear();
  broadcast_status();
  send_event(cid, "executing", {{"node", nullptr}, {"prompt_id", id}});
}

}  // namespace autopod::sandbox
