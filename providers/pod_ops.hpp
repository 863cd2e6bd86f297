#pragma once
// Pod flows that work with any provider: finding a pod, creating or reusing one,
// and waiting until it is really usable.

#include <chrono>
#include <functional>
#include <string>

#include "providers/provider.hpp"

namespace autopod::providers {

// The pod with this id, else the one with this name; with an empty `id_or_name`, the only
// pod there is. not_found lists the pods there are; invalid_argument when ambiguous.
Result<Pod> find_pod(Provider& provider, const std::string& id_or_name);

// The network volume with this id or name.
Result<Volume> find_volume(Provider& provider, const std::string& id_or_name);

// Checks that a pod mounting `spec.volume_id` can be placed: the volume exists and any data
// centers the user asked for include the volume's. Pins spec.data_centers to it.
Status place_with_volume(Provider& provider, PodSpec& spec);

using Progress = std::function<void(const std::string& line)>;

struct WaitOptions {
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  std::chrono::milliseconds poll_interval{std::chrono::seconds(3)};
};

// Polls until the pod is RUNNING, its direct SSH endpoint is mapped and answers with an SSH
// banner. Reports each change through `progress`. timeout when it does not get there in time;
// remote when the pod ends up in ERROR, EXITED or TERMINATED.
Result<Pod> wait_until_ready(Provider& provider, const std::string& pod_id,
                             const WaitOptions& options, core::Clock& clock,
                             const Progress& progress);

// Connects to the SSH port and reads the server's identification line ("SSH-2.0-...").
Result<std::string> read_ssh_banner(const std::string& host, int port,
                                    std::chrono::milliseconds timeout);

// "user@host:port" of the pod's direct SSH endpoint, or "-" when it has none.
std::string describe_endpoint(const Pod& pod);

}  // namespace autopod::providers

namespace autopod::providers {

enum class ConnectOutcome { reused, started, created };

struct Connected {
  Pod pod;
  ConnectOutcome outcome = ConnectOutcome::created;
  PodSpec spec;  // as sent when created: volume resolved to its id, data center pinned
};

// What it would take to create `pod` again (image, gpu, cloud, volume, ports, data center).
PodSpec spec_from_pod(const Pod& pod);

// Reuses the pod named spec.name (starting it when stopped), or creates it: with a volume,
// checked to exist and placed in its data center before anything is spent.
Result<Connected> connect_pod(Provider& provider, PodSpec spec, const Progress& progress);

}  // namespace autopod::providers
