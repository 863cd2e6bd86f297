#pragma once
// Each command group registers itself on the app; a command's exit code lands in `exit_code`.

#include <CLI/CLI.hpp>

#include "agent/context.hpp"
#include "providers/pod_ops.hpp"

namespace autopod::agent {

// A CLI11 callback that runs `cmd` and turns its failure into a message and an exit code.
std::function<void()> run(Context& ctx, int& exit_code, std::function<core::Status()> cmd);

void add_pod_commands(CLI::App& app, Context& ctx, int& exit_code);
void add_volume_commands(CLI::App& app, Context& ctx, int& exit_code);
void add_config_commands(CLI::App& app, Context& ctx, int& exit_code);
void add_tunnel_commands(CLI::App& app, Context& ctx, int& exit_code);
void add_comfy_commands(CLI::App& app, Context& ctx, int& exit_code);
void add_completion_commands(CLI::App& app, Context& ctx, int& exit_code);
void add_agent_commands(CLI::App& app, Context& ctx, int& exit_code);
void add_maintain_command(CLI::App& app, Context& ctx, int& exit_code);
void add_models_commands(CLI::App& app, Context& ctx, int& exit_code);
// `models push`, under the `models` group (agent/cli/models_push_cmd.cpp).
void add_models_push_command(CLI::App& models, Context& ctx, int& exit_code);

// `autopod __complete WORDS...`: prints the completions of the last word, one per line, from the
// CLI definition in `app` and the files under AUTOPOD_HOME (never the network). Returns 0.
int complete_words(CLI::App& app, const std::vector<std::string>& words);
// `comfy convert`, under the `comfy` group: `add_target` adds the pod options, `from_server` gets
// /object_info from the pod's ComfyUI when no --object-info file is given.
using ServerObjectInfo = std::function<core::Result<nlohmann::ordered_json>()>;
void add_comfy_convert_command(CLI::App& comfy, Context& ctx, int& exit_code,
                               const std::function<void(CLI::App*)>& add_target, ServerObjectInfo from_server);

// `ssh` with the options to reach the pod's direct endpoint with its key (empty: ssh-agent) and
// autopod's known_hosts, ending with user@host; the pod must have an endpoint.
std::vector<std::string> ssh_argv(const core::Config& cfg, const providers::Pod& pod);

// The tunnel spec for `pod` (as just listed); fails unless it runs and has a direct SSH endpoint.
core::Result<tunnel::TunnelSpec> tunnel_spec_for(Context& ctx, const providers::Pod& pod,
                                                 const std::vector<std::string>& forwards,
                                                 const std::string& bind);

}  // namespace autopod::agent
