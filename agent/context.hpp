#pragma once
// What every CLI command needs: settings, the provider (made on first use), output helpers.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/result.hpp"
#include "providers/pod_records.hpp"
#include "providers/provider.hpp"
#include "tunnel/tunnel.hpp"

namespace autopod::agent {

// Documented in the README; scripts rely on them.
enum ExitCode : int {
  k_exit_ok = 0,
  k_exit_failure = 1,
  k_exit_usage = 2,        // bad flags, bad input, bad config
  k_exit_not_found = 3,    // no such pod, volume, host or provider
  k_exit_auth = 4,         // api key missing or refused
  k_exit_timeout = 5,      // not ready / no answer within --timeout
  k_exit_no_capacity = 6,  // the cloud has no GPU for the request now; try later or elsewhere
  k_exit_run_failed = 7,   // comfy run: a node raised while the workflow ran
  k_exit_interrupted = 8,  // comfy run: the run was interrupted (or removed from the queue)
  k_exit_partial = 9,      // comfy run: succeeded, but outputs that failed validation were dropped
  k_exit_over_budget = 10, // maintain: today's spend passed maintain.daily_budget; pods taken down
  k_exit_unclear = 11,     // maintain: a pod could not be seen clearly (API error, 429, timeout)
};

int exit_code_for(const core::Error& error);

struct GlobalOptions {
  core::ConfigOverrides overrides;
  bool json = false;
  bool verbose = false;
};

class Context {
 public:
  explicit Context(GlobalOptions options) : m_options(std::move(options)) {}

  // Loads config once; prints its warnings to stderr.
  core::Result<const core::Config*> config();
  // The configured provider, made once (plugins loaded when it is not built in).
  core::Result<providers::Provider*> provider();
  core::Result<providers::PodRecords*> records();
  core::Result<tunnel::TunnelManager*> tunnels();
  // Makes sure the key `pod.ssh` names exists: autopod's own key is made on first use when the
  // provider hands it to the pods it creates; another key must exist (not_found with a hint).
  // Nothing to do for a pod without an endpoint or a key (ssh-agent).
  core::Status ensure_key(const providers::Pod& pod);

  bool json() const { return m_options.json; }
  const GlobalOptions& options() const { return m_options; }

  // A progress line on stderr; on a terminal, rewritten in place until finish_progress().
  void progress(const std::string& line);
  void finish_progress();

 private:
  GlobalOptions m_options;
  std::optional<core::Config> m_config;
  std::unique_ptr<providers::Provider> m_provider;
  std::unique_ptr<providers::PodRecords> m_records;
  std::unique_ptr<tunnel::TunnelManager> m_tunnels;
  bool m_progress_open = false;
};

// Asks "<question>? [y/N]" on the terminal unless `yes`. Without a terminal it refuses
// (invalid_argument, hint: pass --yes); a "no" is cancelled.
core::Status confirm(const std::string& question, bool yes);

// Prints `j` as indented JSON on stdout.
void print_json(const nlohmann::json& j);
// Prints rows as aligned columns on stdout; the first row is the header.
void print_table(const std::vector<std::vector<std::string>>& rows);
// "error: ..." / "hint: ..." on stderr; returns the exit code for it.
int report(const core::Error& error);
std::string format_price(double usd_per_hr);
std::string format_bytes(std::uint64_t bytes);

}  // namespace autopod::agent
