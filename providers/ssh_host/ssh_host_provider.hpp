#pragma once
// The `ssh` provider: machines the user already has (config `hosts:`), each one a pod that is
// always running. It cannot create, stop or terminate them, nor manage volumes.

#include <map>
#include <memory>
#include <string>

#include "core/config.hpp"
#include "providers/provider.hpp"

namespace autopod::providers::ssh_host {

std::unique_ptr<Provider> make_ssh_host_provider(std::map<std::string, core::HostConfig> hosts);

}  // namespace autopod::providers::ssh_host
