#include "providers/pod_spec.hpp"

#include "providers/pod_ops.hpp"

namespace autopod::providers {

using core::ErrorCode;
using core::fail;

namespace {

PodSpec from_defaults(const core::PodDefaults& d) {
  PodSpec s;
  s.name = d.name;
  s.image = d.image;
  s.gpu_types = d.gpu_types;
  s.gpu_count = d.gpu_count;
  s.cloud = d.cloud;
  s.container_disk_gb = d.container_disk_gb;
  s.volume_id = d.volume;
  s.mount_path = d.mount_path;
  s.ports = d.ports;
  s.env = d.env;
  s.data_centers = d.data_centers;
  return s;
}

// Everything a record keeps, over the defaults; env stays the config's (records hold no secrets).
void apply_record(const PodSpec& r, PodSpec& s) {
  s.image = r.image;
  s.gpu_types = r.gpu_types;
  s.gpu_count = r.gpu_count;
  s.cloud = r.cloud;
  s.container_disk_gb = r.container_disk_gb;
  s.volume_id = r.volume_id;
  s.mount_path = r.mount_path;
  s.ports = r.ports;
  s.data_centers = r.data_centers;
}

Status apply_flags(const SpecFlags& f, PodSpec& s) {
  if (!f.image.empty()) s.image = f.image;
  if (!f.gpus.empty()) s.gpu_types = f.gpus;
  if (f.gpu_count > 0) s.gpu_count = f.gpu_count;
  if (!f.cloud.empty()) s.cloud = f.cloud;
  if (f.disk_gb > 0) s.container_disk_gb = f.disk_gb;
  if (!f.volume.empty()) s.volume_id = f.volume;
  if (!f.mount.empty()) s.mount_path = f.mount;
  if (!f.ports.empty()) s.ports = f.ports;
  if (!f.dcs.empty()) s.data_centers = f.dcs;
  for (const auto& kv : f.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return fail(ErrorCode::invalid_argument, "--env " + kv + " is not NAME=VALUE");
    s.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return {};
}

}  // namespace

Result<PodSpec> resolve_spec(const core::PodDefaults& defaults, const SpecFlags& flags,
                             const std::optional<PodRecord>& record) {
  PodSpec s = from_defaults(defaults);
  if (!flags.name.empty()) s.name = flags.name;
  if (record && record->status == "down") apply_record(record->spec, s);
  TRY(apply_flags(flags, s));
  if (s.cloud != "secure" && s.cloud != "community")
    return fail(ErrorCode::invalid_argument, "--cloud must be secure or community");
  if (!s.volume_id.empty() && s.cloud == "community")
    return fail(ErrorCode::invalid_argument, "network volumes work on secure cloud only",
                "drop --cloud community or --volume");
  return s;
}

Status remember(PodRecords& records, const Pod& pod, const std::optional<PodSpec>& created,
                const std::string& status) {
  TRY_ASSIGN(auto existing, records.find(pod.provider, pod.name));
  PodRecord r;
  r.provider = pod.provider;
  r.name = pod.name;
  r.id = pod.id;
  r.status = status;
  if (created) r.spec = *created;
  else if (existing) r.spec = existing->spec;
  else r.spec = spec_from_pod(pod);
  return records.put(r);
}

}  // namespace autopod::providers
