#include "core/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>
#include <vector>

namespace autopod::core {
namespace {

struct LogState {
  std::mutex mutex;
  std::vector<spdlog::sink_ptr> sinks;
  spdlog::level::level_enum level = spdlog::level::warn;
  spdlog::level::level_enum flush = spdlog::level::off;  // flush at this level and above
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
  log->flush_on(s.flush);
  spdlog::register_logger(log);
  return log;
}

namespace {

Result<spdlog::level::level_enum> parse_level(const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off")
    return fail(ErrorCode::invalid_argument, "unknown log level '" + level + "'",
                "use one of trace, debug, info, warn, error, off");
  return lvl;
}

// Makes `sinks` every logger's, now and for loggers made later.
void install(std::vector<spdlog::sink_ptr> sinks, spdlog::level::level_enum level,
             spdlog::level::level_enum flush) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.level = level;
  s.flush = flush;
  s.sinks = std::move(sinks);
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) {
    l->sinks() = s.sinks;
    l->set_level(level);
    l->flush_on(flush);
  });
}

constexpr const char* k_file_pattern = "%Y-%m-%dT%H:%M:%S.%e %l [%n] %v";

}  // namespace

Status setup_logging(const std::string& level, const std::filesystem::path& file) {
  TRY_ASSIGN(auto lvl, parse_level(level));
  std::vector<spdlog::sink_ptr> sinks;
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_pattern("%^%l%$ [%n] %v");
  sinks.push_back(console);
  if (!file.empty()) {
    try {
      auto f = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file.string());
      f->set_pattern(k_file_pattern);
      sinks.push_back(f);
    } catch (const spdlog::spdlog_ex& e) {
      return fail(ErrorCode::io, "cannot open log file " + file.string() + ": " + e.what());
    }
  }
  install(std::move(sinks), lvl, spdlog::level::off);
  return {};
}

Status setup_daemon_logging(const std::string& level, const std::filesystem::path& file) {
  TRY_ASSIGN(auto lvl, parse_level(level));
  spdlog::sink_ptr sink;
  try {
    sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(file.string(), k_daemon_log_bytes,
                                                                  k_daemon_log_files);
  } catch (const spdlog::spdlog_ex& e) {
    return fail(ErrorCode::io, "cannot open log file " + file.string() + ": " + e.what());
  }
  sink->set_pattern(k_file_pattern);
  // Flushing each line costs a write() per line; daemons log state changes, not traffic.
  install({sink}, lvl, spdlog::level::trace);
  return {};
}

}  // namespace autopod::core
