#pragma once
// RunPod REST v2 JSON <-> autopod structs, and HTTP answers -> errors. Internal to runpod/.

#include <string>

#include <nlohmann/json.hpp>

#include "core/http.hpp"
#include "providers/provider.hpp"

namespace autopod::providers::runpod {

Pod pod_from_v2(const nlohmann::json& j);
Volume volume_from_v2(const nlohmann::json& j);
GpuType gpu_from_v2(const nlohmann::json& j);
DataCenter data_center_from_v2(const nlohmann::json& j);

// The CreatePodRequest body for one GPU type and (possibly empty) data center list.
nlohmann::json create_pod_body(const PodSpec& spec, const std::string& gpu_type,
                               const std::vector<std::string>& data_centers);
nlohmann::json create_volume_body(const VolumeSpec& spec);

// Whether a 400's detail says there was no machine for the request (not a rule violation).
bool is_capacity_detail(const std::string& detail);

// The Error for a non-2xx answer to `what` ("GET /v2/pods/abc"), from its problem+json body.
core::Error error_from_response(const core::HttpResponse& response, const std::string& what);

}  // namespace autopod::providers::runpod
