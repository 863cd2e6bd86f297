// autopod: rent GPU pods, tunnel to them, run ComfyUI on them.

#include <CLI/CLI.hpp>
#include <iostream>

#include "agent/cli/commands.hpp"
#include "agent/context.hpp"

#ifndef AUTOPOD_VERSION
#define AUTOPOD_VERSION "0.0.0"
#endif

int main(int argc, char** argv) {
  using namespace autopod::agent;
  CLI::App app{"autopod: GPU pods, tunnels and ComfyUI from your terminal"};
  app.set_version_flag("--version", "autopod " AUTOPOD_VERSION);
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions options;
  std::string home, provider, api_url, log_level;
  std::vector<std::string> plugin_dirs;
  app.add_option("--home", home, "state and config directory (env AUTOPOD_HOME, default ~/.autopod)");
  app.add_option("--provider", provider, "runpod, ssh, or a plugin (env AUTOPOD_PROVIDER)");
  app.add_option("--api-url", api_url, "RunPod API base URL (env RUNPOD_API_URL)");
  app.add_option("--plugin-dir", plugin_dirs, "more directories with provider plugins");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off");
  app.add_flag("--json", options.json, "machine-readable output (shapes in the README)");
  app.add_flag("-v,--verbose", options.verbose, "debug logging on stderr");

  Context ctx(options);
  int exit_code = k_exit_ok;
  add_pod_commands(app, ctx, exit_code);
  add_volume_commands(app, ctx, exit_code);
  add_config_commands(app, ctx, exit_code);
  add_tunnel_commands(app, ctx, exit_code);
  add_comfy_commands(app, ctx, exit_code);
  add_completion_commands(app, ctx, exit_code);
  add_agent_commands(app, ctx, exit_code);
  add_maintain_command(app, ctx, exit_code);
  add_models_commands(app, ctx, exit_code);
  // The completion scripts ask the CLI definition itself (see cli/completion_cmd.cpp).
  if (argc >= 2 && std::string(argv[1]) == "__complete")
    return complete_words(app, std::vector<std::string>(argv + 2, argv + argc));
  // Options are read after parsing: hand them to the context before any callback runs.
  app.parse_complete_callback([&] {
    GlobalOptions o;
    o.json = options.json;
    o.verbose = options.verbose;
    if (!home.empty()) o.overrides.home = home;
    if (!provider.empty()) o.overrides.provider = provider;
    if (!api_url.empty()) o.overrides.api_url = api_url;
    if (!log_level.empty()) o.overrides.log_level = log_level;
    o.overrides.plugin_dirs = plugin_dirs;
    ctx = Context(o);
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : k_exit_usage;
  }
  return exit_code;
}
