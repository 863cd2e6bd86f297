// autopod comfy convert: an editor-format workflow as the API prompt `comfy run` would queue.

#include <iostream>

#include "agent/cli/commands.hpp"
#include "comfy/workflow.hpp"

namespace autopod::agent {
namespace {

struct ConvertArgs {
  std::string workflow;
  std::string object_info;  // a saved GET /object_info; empty: ask the pod's ComfyUI
};

core::Status cmd_convert(const ConvertArgs& a, const ServerObjectInfo& from_server) {
  std::filesystem::path path = a.workflow;
  TRY_ASSIGN(auto workflow, comfy::load_json_file(path));
  TRY_ASSIGN(auto format, comfy::detect_format(workflow, path.string()));
  if (format == comfy::WorkflowFormat::api) {
    std::cerr << path.string() << " is already in API format\n";
    print_json(workflow);
    return {};
  }
  nlohmann::ordered_json info;
  if (!a.object_info.empty()) {
    TRY_ASSIGN(info, comfy::load_object_info(a.object_info));
  } else {
    TRY_ASSIGN(info, from_server());
  }
  TRY_ASSIGN(auto prompt, comfy::ui_to_api(workflow, info));
  print_json(prompt);
  return {};
}

}  // namespace

void add_comfy_convert_command(CLI::App& comfy, Context& ctx, int& exit_code,
                               const std::function<void(CLI::App*)>& add_target, ServerObjectInfo from_server) {
  static ConvertArgs a;
  auto* cmd = comfy.add_subcommand("convert", "print the API prompt of an editor-format workflow (nothing is queued)");
  cmd->add_option("WORKFLOW", a.workflow, "workflow .json as the editor saves it")->required()->check(CLI::ExistingFile);
  cmd->add_option("--object-info", a.object_info,
                  "a saved GET /object_info to convert with, instead of asking the pod's ComfyUI")
      ->check(CLI::ExistingFile);
  add_target(cmd);
  cmd->callback(run(ctx, exit_code, [from_server = std::move(from_server)] { return cmd_convert(a, from_server); }));
}

}  // namespace autopod::agent
