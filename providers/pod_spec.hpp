#pragma once
// What a pod is created from, and what autopod remembers of it: the precedence of `connect`'s
// settings (flags > the record of a pod that is down > config.yaml > defaults) and the records
// in pods.json that make `down` + `connect --name N` bring a pod back as it was.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "providers/pod_records.hpp"
#include "providers/provider.hpp"

namespace autopod::providers {

// What the user asked for on the command line; empty or 0 means "not given".
struct SpecFlags {
  std::string name, image, cloud, volume, mount;
  std::vector<std::string> gpus, ports, dcs;
  std::vector<std::string> env;  // NAME=VALUE
  int gpu_count = 0, disk_gb = 0;
};

// The spec to create: flags > what `record` remembers of a pod that is down (not its env: records
// hold no secrets) > config.yaml's pod defaults. invalid_argument for a malformed --env, an
// unknown cloud, or a volume on community cloud.
Result<PodSpec> resolve_spec(const core::PodDefaults& defaults, const SpecFlags& flags,
                             const std::optional<PodRecord>& record);

// Records `pod` with `status` ("running", "down", ...) in `records`. Only a fresh create
// (`created`) records the spec it was made from; otherwise the recorded spec is kept, or taken
// from the pod itself when there is none (flags of a reconnect must not erase the volume).
Status remember(PodRecords& records, const Pod& pod, const std::optional<PodSpec>& created,
                const std::string& status);

}  // namespace autopod::providers
