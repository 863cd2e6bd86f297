#pragma once
// The `ssh` provider: machines the user already has (config `hosts:`), each one a pod that is
// always running. It cannot create, stop or terminate them, nor manage volumes.

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "core/config.hpp"
#include "providers/provider.hpp"

namespace autopod::providers::ssh_host {

// `default_key` is for hosts whose entry names no key (autopod's own).
std::unique_ptr<Provider> make_ssh_host_provider(std::map<std::string, core::HostConfig> hosts,
                                                 std::filesystem::path default_key = {});

}  // namespace autopod::providers::ssh_host
