// autopod config show|init.

#include <iostream>

#include "agent/cli/commands.hpp"
#include "core/fs.hpp"

namespace autopod::agent {
namespace {

core::Status cmd_config_show(Context& ctx) {
  TRY_ASSIGN(auto cfg, ctx.config());
  if (ctx.json()) {
    print_json(core::config_json(*cfg));
    return {};
  }
  std::cout << "# " << cfg->home.config_file().string() << " (each value's origin after #)\n"
            << core::render_config(*cfg);
  return {};
}

core::Status cmd_config_init(Context& ctx, bool force, bool print_only) {
  if (print_only) {
    std::cout << core::example_config();
    return {};
  }
  TRY_ASSIGN(auto cfg, ctx.config());
  std::error_code ec;
  if (std::filesystem::exists(cfg->home.config_file(), ec) && !force)
    return core::fail(core::ErrorCode::invalid_argument,
                      cfg->home.config_file().string() + " already exists",
                      "pass --force to replace it, or --print to see the example");
  TRY(core::ensure_dir(cfg->home.root(), 0700));
  TRY(core::write_file_atomic(cfg->home.config_file(), core::example_config(), 0600));
  std::cerr << "wrote " << cfg->home.config_file().string() << " (mode 0600)\n";
  return {};
}

}  // namespace

void add_config_commands(CLI::App& app, Context& ctx, int& exit_code) {
  auto* config = app.add_subcommand("config", "show or create the configuration");
  config->require_subcommand(1);
  config->fallthrough();
  auto* show = config->add_subcommand("show", "the effective configuration, secrets masked");
  show->callback(run(ctx, exit_code, [&ctx] { return cmd_config_show(ctx); }));
  static bool force = false, print_only = false;
  auto* init = config->add_subcommand("init", "write a commented example config.yaml");
  init->add_flag("--force", force, "replace an existing config.yaml");
  init->add_flag("--print", print_only, "print the example instead of writing it");
  init->callback(run(ctx, exit_code, [&ctx] { return cmd_config_init(ctx, force, print_only); }));
}

}  // namespace autopod::agent
