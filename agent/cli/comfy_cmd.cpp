// autopod comfy status|info|queue|history|interrupt|cancel|free|run.

#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "agent/cli/commands.hpp"
#include "agent/maintain/maintain.hpp"
#include "comfy/client.hpp"
#include "comfy/run.hpp"
#include "core/http.hpp"
#include "core/retry.hpp"

namespace autopod::agent {
namespace {

using core::ErrorCode;
using nlohmann::json;

struct Target {
  std::string pod;
  std::string url;
  bool no_tunnel = false;
  int local_port = 8188;
  int remote_port = 0;  // 0: the pod's ComfyUI port (8188, or hosts.<name>.comfy_port)
  int timeout_secs = 60;
};

// The ComfyUI to talk to: --url as given; otherwise the pod's, through a tunnel that is reused,
// replaced or started as needed ("ensure tunnel"), or assumed already there with --no-tunnel.
core::Result<std::unique_ptr<comfy::ComfyClient>> client_for(Context& ctx, const Target& t) {
  std::string url = t.url;
  if (url.empty() && t.no_tunnel) url = "http://127.0.0.1:" + std::to_string(t.local_port);
  if (url.empty()) {
    TRY_ASSIGN(auto provider, ctx.provider());
    TRY_ASSIGN(auto pod, providers::find_pod(*provider, t.pod));
    int remote = t.remote_port != 0 ? t.remote_port : pod.comfy_port;
    TRY_ASSIGN(auto spec, tunnel_spec_for(ctx, pod,
                                          {std::to_string(t.local_port) + ":" + std::to_string(remote)},
                                          "127.0.0.1"));
    TRY_ASSIGN(auto tunnels, ctx.tunnels());
    bool reused = false;
    TRY_ASSIGN(auto info, tunnels->ensure(spec, &reused));
    if (!reused) std::cerr << "started tunnel " << info.id << " to " << pod.name << "\n";
    // autopod using the pod keeps it from being taken for idle by `autopod maintain`.
    TRY_ASSIGN(auto cfg, ctx.config());
    (void)maintain::record_activity(cfg->home, pod.id, maintain::now());
    url = "http://127.0.0.1:" + std::to_string(t.local_port);
  }
  TRY_ASSIGN(auto client, comfy::ComfyClient::connect(url, core::make_curl_transport, core::system_clock()));
  return std::make_unique<comfy::ComfyClient>(std::move(client));
}

std::string gib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / (1ull << 30));
  return buf;
}

json queue_json(const comfy::QueueState& q) {
  auto items = [](const std::vector<comfy::QueueItem>& v) {
    json a = json::array();
    for (const auto& i : v)
      a.push_back({{"prompt_id", i.prompt_id}, {"number", i.number}, {"nodes", i.node_count},
                   {"client_id", i.client_id}});
    return a;
  };
  return {{"running", items(q.running)}, {"pending", items(q.pending)}};
}

core::Status cmd_status(Context& ctx, const Target& t) {
  // --timeout bounds the whole command, the tunnel's start included.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(t.timeout_secs);
  TRY_ASSIGN(auto client, client_for(ctx, t));
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  auto stats = client->wait_ready(std::max(left, std::chrono::milliseconds(1)));
  if (!stats) return core::fail(stats.error());
  if (ctx.json()) {
    print_json({{"ready", true}, {"url", client->base_url()}, {"comfyui_version", stats->comfyui_version}});
    return {};
  }
  std::cout << "comfyui ready at " << client->base_url()
            << (stats->comfyui_version.empty() ? "" : " (version " + stats->comfyui_version + ")") << "\n";
  return {};
}

core::Status cmd_info(Context& ctx, const Target& t) {
  TRY_ASSIGN(auto client, client_for(ctx, t));
  TRY_ASSIGN(auto stats, client->system_stats());
  TRY_ASSIGN(auto queue, client->queue());
  TRY_ASSIGN(int nodes, client->node_count());
  if (ctx.json()) {
    json devices = json::array();
    for (const auto& d : stats.devices)
      devices.push_back({{"name", d.name}, {"type", d.type}, {"vram_total", d.vram_total},
                         {"vram_free", d.vram_free}});
    print_json({{"url", client->base_url()}, {"comfyui_version", stats.comfyui_version},
                {"python_version", stats.python_version}, {"pytorch_version", stats.pytorch_version},
                {"os", stats.os}, {"ram_total", stats.ram_total}, {"ram_free", stats.ram_free},
                {"devices", devices}, {"queue_running", queue.running.size()},
                {"queue_pending", queue.pending.size()}, {"node_count", nodes}});
    return {};
  }
  std::vector<std::vector<std::string>> rows = {
      {"comfyui:", stats.comfyui_version.empty() ? "(older than 0.3.10)" : stats.comfyui_version},
      {"python:", stats.python_version.substr(0, stats.python_version.find(' '))},
      {"pytorch:", stats.pytorch_version},
      {"ram:", gib(stats.ram_free) + " free of " + gib(stats.ram_total)}};
  for (const auto& d : stats.devices)
    rows.push_back({"device:", d.name + ", vram " + gib(d.vram_free) + " free of " + gib(d.vram_total)});
  rows.push_back({"queue:", std::to_string(queue.running.size()) + " running, " +
                                std::to_string(queue.pending.size()) + " pending"});
  rows.push_back({"nodes:", std::to_string(nodes) + " node types"});
  print_table(rows);
  return {};
}

core::Status cmd_queue(Context& ctx, const Target& t) {
  TRY_ASSIGN(auto client, client_for(ctx, t));
  TRY_ASSIGN(auto queue, client->queue());
  if (ctx.json()) {
    print_json(queue_json(queue));
    return {};
  }
  if (queue.running.empty() && queue.pending.empty()) {
    std::cerr << "the queue is empty\n";
    return {};
  }
  std::vector<std::vector<std::string>> rows = {{"STATE", "PROMPT ID", "NUMBER", "NODES"}};
  auto add = [&](const char* state, const comfy::QueueItem& i) {
    char number[32];
    std::snprintf(number, sizeof number, "%g", i.number);
    rows.push_back({state, i.prompt_id, number, std::to_string(i.node_count)});
  };
  for (const auto& i : queue.running) add("running", i);
  for (const auto& i : queue.pending) add("pending", i);
  print_table(rows);
  return {};
}

std::string outputs_summary(const json& entry) {
  auto files = comfy::output_files(entry).size();
  return std::to_string(files) + " file" + (files == 1 ? "" : "s");
}

std::string status_of(const json& entry) { return comfy::to_string(comfy::history_outcome(entry).outcome); }

core::Status cmd_history(Context& ctx, const Target& t, const std::string& id, int max_items) {
  TRY_ASSIGN(auto client, client_for(ctx, t));
  std::vector<std::pair<std::string, json>> entries;
  if (id.empty()) {
    TRY_ASSIGN(entries, client->history_list(max_items));
  } else {
    TRY_ASSIGN(auto one, client->history(id));
    if (!one.contains(id))
      return core::fail(ErrorCode::not_found, "no history for prompt " + id,
                        "it may still be queued or running (autopod comfy queue), or unknown");
    entries.emplace_back(id, one[id]);
  }
  if (ctx.json()) {
    if (!id.empty()) {
      print_json(entries[0].second);
      return {};
    }
    json list = json::array();
    for (const auto& [pid, entry] : entries)
      list.push_back({{"prompt_id", pid}, {"status", status_of(entry)},
                      {"files", comfy::output_files(entry).size()}, {"entry", entry}});
    print_json({{"history", list}});
    return {};
  }
  // Oldest first, as the server keeps them: the newest run is the last line.
  std::vector<std::vector<std::string>> rows = {{"PROMPT ID", "STATUS", "OUTPUTS"}};
  for (const auto& [pid, entry] : entries) rows.push_back({pid, status_of(entry), outputs_summary(entry)});
  print_table(rows);
  if (!id.empty())
    for (const auto& f : comfy::output_files(entries[0].second)) {
      std::string sub = f.value("subfolder", "");
      std::cout << "  node " << f["node"].get<std::string>() << ": " << sub << (sub.empty() ? "" : "/")
                << f["filename"].get<std::string>() << " (" << f.value("type", "output") << ")\n";
    }
  return {};
}

struct RunArgs {
  std::string workflow;
  std::vector<std::string> inputs;
  int timeout_secs = 0;
  bool no_wait = false;
  comfy::RunOptions options;
};

core::Status cmd_run(Context& ctx, const Target& t, RunArgs& a) {
  // Everything about the file is checked before anything is sent.
  TRY_ASSIGN(auto source, comfy::load_workflow(a.workflow));
  if (a.options.count < 1) return core::fail(ErrorCode::invalid_argument, "--count must be at least 1");
  a.options.inputs.assign(a.inputs.begin(), a.inputs.end());
  a.options.timeout = std::chrono::seconds(a.timeout_secs);
  a.options.wait = !a.no_wait;
  TRY_ASSIGN(auto client, client_for(ctx, t));
  auto display = comfy::make_display(ctx.json() ? comfy::DisplayKind::json
                                     : ::isatty(STDERR_FILENO) ? comfy::DisplayKind::live
                                                               : comfy::DisplayKind::plain,
                                     ctx.json() ? stdout : stderr);
  TRY_ASSIGN(auto request, comfy::prepare_run(*client, source, a.options,
                                              [&](const std::string& line) { display->message(line); }));
  TRY_ASSIGN(auto results, comfy::run_workflow(*client, request, *display));
  display.reset();  // ends the live line
  if (!a.options.wait) {
    for (const auto& r : results)
      if (ctx.json()) print_json({{"prompt_id", r.state.prompt_id}, {"run", r.state.index}});
      else std::cout << r.state.prompt_id << "\n";
    return {};
  }
  auto summary = comfy::summarize(results, a.options);
  if (!ctx.json())
    for (const auto& f : summary.files) std::cout << f.string() << "\n";
  return summary.status;
}

bool has(const std::vector<comfy::QueueItem>& items, const std::string& prompt_id) {
  return std::any_of(items.begin(), items.end(), [&](const auto& i) { return i.prompt_id == prompt_id; });
}

// ComfyUI accepts an interrupt for any id and ignores it unless that prompt is running: a
// prompt named by id that is pending or unknown is an error that says so, instead of
// "interrupt sent" when nothing will stop.
core::Status check_interruptible(const comfy::QueueState& queue, const std::string& id) {
  if (id.empty() || has(queue.running, id)) return {};
  if (has(queue.pending, id))
    return core::fail(ErrorCode::invalid_argument,
                      "prompt " + id + " is pending, not running: nothing was interrupted",
                      "remove it from the queue with: autopod comfy cancel --prompt " + id);
  return core::fail(ErrorCode::not_found, "prompt " + id + " is not in the queue: nothing was interrupted",
                    "see autopod comfy queue, or autopod comfy history --prompt " + id);
}

void add_target(CLI::App* cmd, Target& t) {
  cmd->add_option("POD", t.pod, "pod id or name (optional when there is one pod)");
  cmd->add_option("--url", t.url, "talk to this ComfyUI directly, e.g. http://127.0.0.1:8188");
  cmd->add_flag("--no-tunnel", t.no_tunnel, "do not start a tunnel; use 127.0.0.1:--local-port");
  cmd->add_option("--local-port", t.local_port, "local end of the tunnel (default 8188)");
  cmd->add_option("--remote-port", t.remote_port, "ComfyUI's port on the pod (default 8188)");
}

}  // namespace

void add_comfy_commands(CLI::App& app, Context& ctx, int& exit_code) {
  auto* comfy = app.add_subcommand("comfy", "ComfyUI on the pod, through an ssh tunnel");
  comfy->require_subcommand(1);
  comfy->fallthrough();
  static Target t;
  auto* status = comfy->add_subcommand("status", "wait until ComfyUI answers (exit 0 ready, 5 not)");
  add_target(status, t);
  status->add_option("--timeout", t.timeout_secs, "seconds to keep retrying (default 60)");
  status->callback(run(ctx, exit_code, [&ctx] { return cmd_status(ctx, t); }));
  auto* info = comfy->add_subcommand("info", "versions, devices and VRAM, RAM, queue, node count");
  add_target(info, t);
  info->callback(run(ctx, exit_code, [&ctx] { return cmd_info(ctx, t); }));
  auto* queue = comfy->add_subcommand("queue", "running and pending prompts");
  add_target(queue, t);
  queue->callback(run(ctx, exit_code, [&ctx] { return cmd_queue(ctx, t); }));

  static std::string id;
  static int max_items = 20;
  auto* history = comfy->add_subcommand("history", "finished prompts, or one with its outputs");
  add_target(history, t);
  history->add_option("--prompt", id, "one prompt id");
  history->add_option("--max", max_items, "newest entries to show (default 20)");
  history->callback(run(ctx, exit_code, [&ctx] { return cmd_history(ctx, t, id, max_items); }));

  auto* interrupt = comfy->add_subcommand("interrupt", "stop the running prompt");
  add_target(interrupt, t);
  interrupt->add_option("--prompt", id, "only if this prompt is the one running");
  interrupt->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    TRY_ASSIGN(auto client, client_for(ctx, t));
    TRY_ASSIGN(auto queued, client->queue());
    TRY(check_interruptible(queued, id));
    TRY(client->interrupt(id));
    if (queued.running.empty())
      std::cerr << "nothing was running"
                << (queued.pending.empty() ? "" : "; pending prompts are removed with autopod comfy cancel") << "\n";
    else
      std::cerr << "interrupt sent for " << queued.running.front().prompt_id << "\n";
    return {};
  }));
  static std::vector<std::string> ids;
  auto* cancel = comfy->add_subcommand("cancel", "remove pending prompts from the queue");
  add_target(cancel, t);
  cancel->add_option("--prompt", ids, "prompt id (repeatable)")->required();
  cancel->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    TRY_ASSIGN(auto client, client_for(ctx, t));
    TRY_ASSIGN(auto before, client->queue());
    for (const auto& pid : ids) {
      if (has(before.running, pid))
        return core::fail(ErrorCode::invalid_argument, "prompt " + pid + " is running, not pending",
                          "stop it with: autopod comfy interrupt --prompt " + pid);
      if (!has(before.pending, pid))
        return core::fail(ErrorCode::not_found, "prompt " + pid + " is not in the queue",
                          "see autopod comfy queue");
    }
    TRY(client->cancel(ids));
    std::cerr << "removed " << ids.size() << " pending prompt(s)\n";
    return {};
  }));
  static RunArgs ra;
  auto* run_cmd = comfy->add_subcommand("run", "run a workflow, follow it live and save its outputs");
  run_cmd->add_option("WORKFLOW", ra.workflow, "workflow .json (API format, or as the editor saves it)")
      ->required()
      ->check(CLI::ExistingFile);
  add_target(run_cmd, t);
  run_cmd->add_option("--set", ra.options.sets, "NODE.INPUT=VALUE (repeatable; NODE is an id or a title)");
  run_cmd->add_flag("--random-seed", ra.options.random_seed, "a random seed for every seed input");
  run_cmd->add_option("--input", ra.inputs, "file to upload into the next Load* node (repeatable)");
  run_cmd->add_option("--out", ra.options.out_dir, "directory for the outputs (default ./outputs/PROMPT_ID)");
  run_cmd->add_option("--count", ra.options.count, "queue N runs, seeds varied (default 1)");
  run_cmd->add_flag("--allow-partial", ra.options.allow_partial,
                    "exit 0 when outputs whose inputs failed validation were dropped (default: exit 9)");
  run_cmd->add_option("--timeout", ra.timeout_secs, "give up after S seconds (default: no limit)");
  run_cmd->add_flag("--no-wait", ra.no_wait, "print the prompt id(s) and return");
  run_cmd->callback(run(ctx, exit_code, [&ctx] { return cmd_run(ctx, t, ra); }));

  add_comfy_convert_command(*comfy, ctx, exit_code, [](CLI::App* cmd) { add_target(cmd, t); },
                            [&ctx]() -> core::Result<nlohmann::ordered_json> {
                              TRY_ASSIGN(auto client, client_for(ctx, t));
                              return client->object_info();
                            });

  static bool unload = true, free_memory = true;
  auto* free = comfy->add_subcommand("free", "unload models and free memory on the pod");
  add_target(free, t);
  free->add_flag("--unload-models,!--keep-models", unload, "unload models from VRAM (default)");
  free->add_flag("--free-memory,!--keep-cache", free_memory,
                 "also drop cached node outputs (default)");
  free->callback(run(ctx, exit_code, [&ctx]() -> core::Status {
    TRY_ASSIGN(auto client, client_for(ctx, t));
    TRY(client->free(unload, free_memory));
    std::cerr << "asked comfyui to " << (unload ? "unload models" : "keep models")
              << (free_memory ? " and free memory" : "") << "\n";
    return {};
  }));
}

}  // namespace autopod::agent
