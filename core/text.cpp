#include "core/text.hpp"

#include <cstdio>
#include <ctime>

namespace autopod::core {

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_seconds(std::chrono::milliseconds elapsed) {
  char buf[48];
  long long ms = elapsed.count();
  if (ms < 60000)
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  else
    std::snprintf(buf, sizeof buf, "%lld min %02lld s", ms / 60000, (ms / 1000) % 60);
  return buf;
}

}  // namespace autopod::core
