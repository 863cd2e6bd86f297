// The ComfyUI fake: POST /prompt, validated as ComfyUI 0.3.64 validates, with its error bodies.

#include "sandbox/comfy_fake_impl.hpp"

namespace autopod::sandbox {

using namespace comfy_fake;  // NOLINT: the fake's own helpers

json ComfyFake::Impl::catalog() const {
  json c = k_catalog;
  json files = json::array();
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(base / "input"))
    if (e.is_regular_file())
      names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const auto& n : names)
    files.push_back(n);
  c["LoadImage"]["input"]["required"]["image"][0] = files;
  return c;
}

json ComfyFake::Impl::error(const std::string& type,
                            const std::string& message,
                            const std::string& details,
                            json extra) {
  return {
      {"type", type}, {"message", message}, {"details", details}, {"extra_info", std::move(extra)}};
}

// Validates node `id` and what it links to; own errors land in `errors[id]`.
bool ComfyFake::Impl::validate_node(const json& prompt,
                                    const json& cat,
                                    const std::string& id,
                                    std::map<std::string, bool>& done,
                                    std::map<std::string, json>& errors) {
  if (auto d = done.find(id); d != done.end())
    return d->second;
  done[id] = true;
  const json& node = prompt[id];
  const json& info = cat[node["class_type"].get<std::string>()];
  json inputs = node.value("inputs", json::object());
  json own = json::array();
  bool upstream_ok = true;
  for (const auto& [name, spec] : info["input"]["required"].items()) {
    if (!inputs.contains(name)) {
      own.push_back(error("required_input_missing", "Required input is missing", name,
                          {{"input_name", name}}));
      continue;
    }
    const json& v = inputs[name];
    if (is_link(v)) {
      if (v.size() != 2) {
        own.push_back(error("bad_linked_input",
                            "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                            name,
                            {{"input_name", name}, {"input_config", spec}, {"received_value", v}}));
        continue;
      }
      std::string src = link_source(v);
      if (!prompt.contains(src)) {
        own.push_back(error("exception_during_validation", "Exception when validating node",
                            "'" + src + "'",
                            {{"exception_type", "KeyError"}, {"traceback", json::array()}}));
        continue;
      }
      if (!validate_node(prompt, cat, src, done, errors))
        upstream_ok = false;
      continue;
    }
    const json& type = spec[0];
    json opts = spec.size() > 1 ? spec[1] : json::object();
    if (type.is_array()) {
      if (node["class_type"] == "LoadImage" && name == "image") {
        if (!v.is_string() || !fs::is_regular_file(base / "input" / v.get<std::string>()))
          own.push_back(error(
              "custom_validation_failed", "Custom validation failed for node",
              name + " - Invalid image file: " + (v.is_string() ? v.get<std::string>() : v.dump()),
              {{"input_name", name}}));
      } else if (std::find(type.begin(), type.end(), v) == type.end()) {
        own.push_back(error("value_not_in_list", "Value not in list",
                            name + ": '" + (v.is_string() ? v.get<std::string>() : v.dump()) +
                                "' not in " + type.dump(),
                            {{"input_name", name}, {"input_config", spec}, {"received_value", v}}));
      }
    } else if (type == "INT" || type == "FLOAT") {
      if (!v.is_number()) {
        own.push_back(
            error("invalid_input_type",
                  "Failed to convert an input value to a " + type.get<std::string>() + " value",
                  name + ", " + v.dump(),
                  {{"input_name", name}, {"input_config", spec}, {"received_value", v}}));
      } else if (opts.contains("min") && v.get<double>() < opts["min"].get<double>()) {
        own.push_back(error("value_smaller_than_min",
                            "Value " + v.dump() + " smaller than min of " + opts["min"].dump(),
                            name,
                            {{"input_name", name}, {"input_config", spec}, {"received_value", v}}));
      } else if (opts.contains("max") &&
                 (opts["max"].is_number_unsigned() && v.is_number_unsigned()
                      ? v.get<std::uint64_t>() > opts["max"].get<std::uint64_t>()
                      : v.get<double>() > opts["max"].get<double>())) {
        own.push_back(error("value_bigger_than_max",
                            "Value " + v.dump() + " bigger than max of " + opts["max"].dump(), name,
                            {{"input_name", name}, {"input_config", spec}, {"received_value", v}}));
      }
    }
  }
  if (!own.empty())
    errors[id] = own;
  bool ok = own.empty() && upstream_ok;
  done[id] = ok;
  return ok;
}

// POST /prompt, as execution.py validates it.
HttpReply ComfyFake::Impl::submit(const std::string& text) {
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded())
    return server_error();
  ++counter;  // every body that parses takes a number, rejected or not
  int number = counter - 1;
  auto reject = [](const json& err, json node_errors = json::object()) {
    return json_reply({{"error", err}, {"node_errors", std::move(node_errors)}}, 400);
  };
  if (!body.is_object() || !body.contains("prompt"))
    return reject(error("no_prompt", "No prompt provided", "No prompt provided"));
  json prompt = body["prompt"];
  json cat = catalog();
  if (!prompt.is_object())
    return server_error();
  for (const auto& [id, node] : prompt.items()) {
    if (!node.is_object() || !node.contains("class_type"))
      return reject(error("invalid_prompt",
                          "Cannot execute because a node is missing the class_type property.",
                          "Node ID '#" + id + "'"));
    std::string cls = node["class_type"].is_string() ? node["class_type"].get<std::string>()
                                                     : node["class_type"].dump();
    if (!cat.contains(cls))
      return reject(error("invalid_prompt",
                          "Cannot execute because node " + cls + " does not exist.",
                          "Node ID '#" + id + "'"));
  }
  std::vector<std::string> outputs;
  for (const auto& [id, node] : prompt.items())
    if (cat[node["class_type"].get<std::string>()].value("output_node", false))
      outputs.push_back(id);
  if (outputs.empty())
    return reject(error("prompt_no_outputs", "Prompt has no outputs", ""));
  std::map<std::string, json> errors;
  std::map<std::string, std::vector<std::string>> dependents;
  json good = json::array();
  std::string details;
  for (const auto& out : outputs) {
    std::map<std::string, bool> done;
    std::map<std::string, json> errs;
    bool ok = validate_node(prompt, cat, out, done, errs);
    for (auto& [id, e] : errs) {
      errors[id] = e;
      dependents[id].push_back(out);
    }
    if (ok)
      good.push_back(out);
    else if (errs.count(out))
      for (const auto& e : errs[out]) {
        details += (details.empty() ? "" : "\n") + e["message"].get<std::string>() + ": " +
                   e["details"].get<std::string>();
      }
  }
  json node_errors = json::object();
  for (auto& [id, e] : errors)
    node_errors[id] = {{"errors", e},
                       {"dependent_outputs", dependents[id]},
                       {"class_type", prompt[id]["class_type"]}};
  if (good.empty())
    return reject(
        error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
        node_errors);
  std::string id = body.contains("prompt_id")
                       ? (body["prompt_id"].is_string() ? body["prompt_id"].get<std::string>()
                                                        : body["prompt_id"].dump())
                       : uuid4();
  json extra = body.value("extra_data", json::object());
  if (body.contains("client_id"))
    extra["client_id"] = body["client_id"];
  json n = body.contains("number") ? json(body["number"].get<double>()) : json(number);
  pending.push_back(json::array({n, id, prompt, extra, good}));
  submitted.push_back(body);
  broadcast_status();
  cv.notify_all();
  return json_reply({{"prompt_id", id}, {"number", n}, {"node_errors", node_errors}});
}

}  // namespace autopod::sandbox
