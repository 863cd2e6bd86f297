#include "core/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>
#include <vector>

namespace autopod::core {
namespace {

struct LogState {
  std::mutex mutex;
  std::vector<spdlog::sink_ptr> sinks;
  spdlog::level::level_enum level = spdlog::level::warn;
};

LogState& state() {
  static LogState s;
  return s;
}

}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  if (auto existing = spdlog::get(name)) return existing;
  if (s.sinks.empty()) {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    sink->set_pattern("%^%l%$ [%n] %v");
    s.sinks.push_back(sink);
  }
  auto log = std::make_shared<spdlog::logger>(name, s.sinks.begin(), s.sinks.end());
  log->set_level(s.level);
  spdlog::register_logger(log);
  return log;
}

Status setup_logging(const std::string& level, const std::filesystem::path& file) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    return fail(ErrorCode::invalid_argument, "unknown log level '" + level + "'",
                "use one of trace, debug, info, warn, error, off");
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.level = lvl;
  s.sinks.clear();
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_pattern("%^%l%$ [%n] %v");
  s.sinks.push_back(console);
  if (!file.empty()) {
    try {
      auto f = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string());
      f->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l [%n] %v");
      s.sinks.push_back(f);
    } catch (const spdlog::spdlog_ex& e) {
      return fail(ErrorCode::io, "cannot open log file " + file.string() + ": " + e.what());
    }
  }
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    l->sinks() = s.sinks;
    l->set_level(lvl);
  });
  return {};
}

}  // namespace autopod::core
