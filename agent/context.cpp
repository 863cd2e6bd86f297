#include "agent/context.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "core/http.hpp"
#include "core/log.hpp"
#include "core/retry.hpp"
#include "core/ssh_key.hpp"

namespace autopod::agent {

using core::ErrorCode;

int exit_code_for(const core::Error& error) {
  switch (error.code) {
    case ErrorCode::invalid_argument: return k_exit_usage;
    case ErrorCode::not_found: return k_exit_not_found;
    case ErrorCode::auth: return k_exit_auth;
    case ErrorCode::timeout: return k_exit_timeout;
    case ErrorCode::no_capacity: return k_exit_no_capacity;
    case ErrorCode::execution_failed: return k_exit_run_failed;
    case ErrorCode::interrupted: return k_exit_interrupted;
    case ErrorCode::partial: return k_exit_partial;
    default: return k_exit_failure;
  }
}

core::Result<const core::Config*> Context::config() {
  if (!m_config) {
    TRY_ASSIGN(auto cfg, core::load_config(m_options.overrides));
    for (const auto& w : cfg.warnings) std::cerr << "warning: " << w << "\n";
    std::string level = m_options.verbose ? "debug" : cfg.log_level;
    TRY(core::setup_logging(level));
    m_config = std::move(cfg);
  }
  return &*m_config;
}

core::Result<providers::Provider*> Context::provider() {
  if (m_provider) return m_provider.get();
  TRY_ASSIGN(auto cfg, config());
  providers::register_builtin_providers();
  auto names = providers::provider_names();
  if (std::find(names.begin(), names.end(), cfg->provider) == names.end()) {
    std::vector<std::string> dirs;
    for (const auto& d : cfg->plugin_dirs) dirs.push_back(d.string());
    std::vector<core::Error> problems;
    providers::load_plugins(dirs, problems);
    for (const auto& p : problems) std::cerr << "warning: " << p.message << "\n";
  }
  providers::ProviderContext pc;
  pc.config = cfg;
  pc.clock = &core::system_clock();
  pc.make_transport = [] { return core::make_curl_transport(); };
  pc.progress = [this](const std::string& line) { progress(line); };
  TRY_ASSIGN(m_provider, providers::make_provider(cfg->provider, pc));
  return m_provider.get();
}

core::Result<providers::PodRecords*> Context::records() {
  if (!m_records) {
    TRY_ASSIGN(auto cfg, config());
    m_records = std::make_unique<providers::PodRecords>(cfg->home.pods_json());
  }
  return m_records.get();
}

core::Result<tunnel::TunnelManager*> Context::tunnels() {
  if (!m_tunnels) {
    TRY_ASSIGN(auto cfg, config());
    // The daemon is autopod-tunneld, installed beside this binary.
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return core::fail(ErrorCode::io, "cannot find the autopod binary: " + ec.message());
    auto daemon = self.parent_path() / "autopod-tunneld";
    if (!std::filesystem::exists(daemon, ec))
      return core::fail(ErrorCode::not_found, daemon.string() + " is missing",
                        "install autopod-tunneld beside autopod (scripts/build puts both in build/bin)");
    m_tunnels = std::make_unique<tunnel::TunnelManager>(
        cfg->home, std::vector<std::string>{daemon.string()});
  }
  return m_tunnels.get();
}

core::Status Context::ensure_key(const providers::Pod& pod) {
  if (!pod.ssh || pod.ssh->key.empty()) return {};
  TRY_ASSIGN(auto cfg, config());
  TRY_ASSIGN(auto p, provider());
  bool ours = p->capabilities().managed_key && cfg->ssh_key_is_default &&
              pod.ssh->key == cfg->ssh_key;
  TRY(core::ensure_ssh_key(pod.ssh->key, ours));
  return {};
}

void Context::progress(const std::string& line) {
  static const bool tty = ::isatty(STDERR_FILENO);
  if (tty) {
    std::cerr << "\r\033[K" << line << std::flush;
    m_progress_open = true;
  } else {
    std::cerr << line << "\n";
  }
}

void Context::finish_progress() {
  if (m_progress_open) std::cerr << "\n";
  m_progress_open = false;
}

core::Status confirm(const std::string& question, bool yes) {
  if (yes) return {};
  if (!::isatty(STDIN_FILENO))
    return core::fail(ErrorCode::invalid_argument, "refusing to " + question + " without --yes",
                      "there is no terminal to ask; pass --yes to confirm");
  std::cerr << question << "? [y/N] " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  if (answer == "y" || answer == "Y" || answer == "yes") return {};
  return core::fail(ErrorCode::cancelled, "cancelled; nothing was changed");
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

int report(const core::Error& error) {
  std::cerr << error.describe() << "\n";
  return exit_code_for(error);
}

std::string format_price(double usd_per_hr) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "$%.2f", usd_per_hr);
  return buf;
}

std::string format_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace autopod::agent
