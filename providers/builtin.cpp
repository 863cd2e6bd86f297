#include "providers/provider.hpp"
#include "providers/runpod/runpod_provider.hpp"
#include "providers/ssh_host/ssh_host_provider.hpp"

namespace autopod::providers {

void register_builtin_providers() {
  register_provider("runpod", [](const ProviderContext& ctx) -> Result<std::unique_ptr<Provider>> {
    runpod::RunpodOptions options;
    options.api_url = ctx.config->runpod_api_url;
    options.api_key = ctx.config->runpod_api_key;
    options.ssh_key = ctx.config->ssh_key;
    options.models_root = ctx.config->pod.models_root;
    options.mount_path = ctx.config->pod.mount_path;
    return runpod::make_runpod_provider(options, ctx.make_transport(), *ctx.clock, ctx.progress);
  });
  register_provider("ssh", [](const ProviderContext& ctx) -> Result<std::unique_ptr<Provider>> {
    return ssh_host::make_ssh_host_provider(ctx.config->hosts, ctx.config->ssh_key);
  });
}

}  // namespace autopod::providers
