#pragma once
// `autopod models ls|info|scan|meta|rm` (models_library_cmd.cpp), registered under `models` by
// models_cmd.cpp, which knows how to reach a pod's models root.

#include <functional>
#include <string>

#include "agent/cli/commands.hpp"
#include "models/pod.hpp"

namespace autopod::agent {

// A models root and how to run the pod-side program on the machine that holds it.
struct ModelsRoot {
  models::PodExec exec;
  std::string root;
  std::string pod;  // the pod's name; empty: a root on this machine (--local)
};
// The root of pod `pod` (empty: the only pod), `root` overriding the pod's own when not empty.
using ReachModelsRoot =
    std::function<core::Result<ModelsRoot>(const std::string& pod, const std::string& root)>;

void add_models_library_commands(CLI::App& models,
                                 Context& ctx,
                                 int& exit_code,
                                 ReachModelsRoot reach_pod);

}  // namespace autopod::agent
