#pragma once
// Internal to agent/service/: the routes of the API (README "Agent service"; openapi.yaml).

#include <string>

#include "agent/service/generations.hpp"
#include "agent/service/server.hpp"
#include "agent/service/syncs.hpp"

namespace autopod::agent::service {

struct Api {
  const ServiceOptions& options;
  TaskStore& store;
  Generations& generations;
  Syncs& syncs;
  PodAccess& pods;
  std::string token;
};

// Every route; all but GET /health need the bearer token.
Router make_router(Api& api);

// GET /v1/outputs/{task}/{file}: `file` is one URL segment (a path below the task's directory
// with its slashes escaped). 404 for anything outside that directory; Range gives 206 or 416.
Reply serve_output(const std::filesystem::path& outputs, const std::string& task_id, const std::string& file,
                   const std::string& range);

}  // namespace autopod::agent::service
