// autopod volume ls|create|rm, and the shared command runner.

#include <unistd.h>

#include <iostream>

#include "agent/cli/commands.hpp"
#include "providers/pod_ops.hpp"

namespace autopod::agent {

std::function<void()> run(Context& ctx, int& exit_code, std::function<core::Status()> cmd) {
  return [&ctx, &exit_code, cmd = std::move(cmd)] {
    auto st = cmd();
    ctx.finish_progress();
    exit_code = st ? k_exit_ok : report(st.error());
  };
}

namespace {

using nlohmann::json;

core::Status cmd_volume_ls(Context& ctx) {
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto volumes, provider->list_volumes());
  if (ctx.json()) {
    print_json({{"volumes", volumes}});
    return {};
  }
  if (volumes.empty()) {
    std::cerr << "no network volumes (create one: autopod volume create NAME --size GB --dc DC)\n";
    return {};
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "SIZE", "DC", "TYPE"}};
  for (const auto& v : volumes)
    rows.push_back({v.name, v.id, std::to_string(v.size_gb) + " GB", v.data_center, v.type});
  print_table(rows);
  return {};
}

core::Status cmd_volume_create(Context& ctx, const providers::VolumeSpec& spec) {
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto volumes, provider->list_volumes());
  for (const auto& v : volumes)
    if (v.name == spec.name) {
      std::cerr << "volume " << v.name << " (" << v.id << ") already exists in " << v.data_center
                << "\n";
      if (ctx.json()) print_json(v);
      return {};
    }
  TRY_ASSIGN(auto volume, provider->create_volume(spec));
  std::cerr << "created volume " << volume.name << " (" << volume.id << "), " << volume.size_gb
            << " GB in " << volume.data_center << "\n";
  if (ctx.json()) print_json(volume);
  return {};
}

core::Status cmd_volume_rm(Context& ctx, const std::string& id, bool yes) {
  TRY_ASSIGN(auto provider, ctx.provider());
  TRY_ASSIGN(auto volume, providers::find_volume(*provider, id));
  TRY(confirm("delete volume " + volume.name + " (" + volume.id + ", " +
                  std::to_string(volume.size_gb) + " GB) and all its data, which cannot be undone",
              yes));
  TRY(provider->delete_volume(volume.id));
  std::cerr << "deleted volume " << volume.name << " (" << volume.id << ")\n";
  if (ctx.json()) print_json({{"id", volume.id}, {"deleted", true}});
  return {};
}

}  // namespace

void add_volume_commands(CLI::App& app, Context& ctx, int& exit_code) {
  auto* volume = app.add_subcommand("volume", "network volumes");
  volume->require_subcommand(1);
  volume->fallthrough();
  auto* ls = volume->add_subcommand("ls", "list network volumes");
  ls->callback(run(ctx, exit_code, [&ctx] { return cmd_volume_ls(ctx); }));

  static providers::VolumeSpec spec;
  auto* create = volume->add_subcommand("create", "create a network volume");
  create->add_option("NAME", spec.name, "volume name")->required();
  create->add_option("--size", spec.size_gb, "size in GB (10-4096)")->required();
  create->add_option("--dc", spec.data_center, "data center, e.g. EU-RO-1")->required();
  create->add_option("--type", spec.type, "STANDARD or HIGH_PERFORMANCE")
      ->check(CLI::IsMember({"STANDARD", "HIGH_PERFORMANCE"}));
  create->callback(run(ctx, exit_code, [&ctx] { return cmd_volume_create(ctx, spec); }));

  static std::string id;
  static bool yes = false;
  auto* rm = volume->add_subcommand("rm", "delete a network volume and its data");
  rm->add_option("VOLUME", id, "volume id or name")->required();
  rm->add_flag("--yes,-y", yes, "do not ask");
  rm->callback(run(ctx, exit_code, [&ctx] { return cmd_volume_rm(ctx, id, yes); }));
}

}  // namespace autopod::agent
