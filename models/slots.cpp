// Turns to download under a models root, shared with pod jobs (see slots.hpp).

#include "models/slots.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fs.hpp"
#include "models/transfer_state.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

json entry_json(int priority, double queued_at, bool running) {
  Owner o = current_owner();
  return json{{"owner",
               {{"host", o.host}, {"pid", o.pid}, {"start_ticks", o.start_ticks},
                {"heartbeat", o.heartbeat}}},
              {"priority", priority},
              {"t", queued_at},
              {"running", running}};
}

Owner owner_of(const json& e) {
  json o = e.value("owner", json::object());
  if (!o.is_object()) return {};
  return Owner{o.value("host", ""), o.value("pid", 0), o.value("start_ticks", std::int64_t{0}),
               o.value("heartbeat", std::int64_t{0})};
}

struct Entry {
  std::string name;
  int priority = 0;
  double t = 0;
  bool running = false;
};

// The live entries; a dead owner's is removed (its process ended without releasing it).
std::vector<Entry> live_entries(const std::filesystem::path& dir) {
  std::vector<Entry> out;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = f.path().filename().string();
    if (name.size() < 5 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
    auto text = core::read_file(f.path());
    if (!text) continue;
    json e = json::parse(*text, nullptr, false);
    if (e.is_discarded() || !e.is_object()) continue;
    if (!owner_alive(owner_of(e))) {
      ::unlink(f.path().c_str());
      continue;
    }
    auto number = [&](const char* key) {
      const json& v = e.contains(key) ? e[key] : json();
      return v.is_number() ? v.get<double>() : 0.0;
    };
    out.push_back({name, static_cast<int>(number("priority")), number("t"),
                   e.value("running", false)});
  }
  return out;
}

}  // namespace

core::Result<DownloadSlot> DownloadSlot::enter(const std::filesystem::path& root,
                                               const std::string& key, int priority, int limit,
                                               double queued_at) {
  DownloadSlot s;
  s.m_dir = root / ".autopod" / "slots";
  s.m_name = key + ".json";
  s.m_priority = priority, s.m_limit = std::max(1, limit), s.m_queued_at = queued_at;
  TRY(core::ensure_dir(s.m_dir, 0755));
  TRY(core::write_file_atomic(s.m_dir / s.m_name, entry_json(priority, queued_at, false).dump(), 0644));
  s.m_held = true;
  return s;
}

DownloadSlot::DownloadSlot(DownloadSlot&& other) noexcept
    : m_dir(std::move(other.m_dir)),
      m_name(std::move(other.m_name)),
      m_priority(other.m_priority),
      m_limit(other.m_limit),
      m_queued_at(other.m_queued_at),
      m_held(std::exchange(other.m_held, false)) {}

DownloadSlot::~DownloadSlot() {
  if (m_held) ::unlink((m_dir / m_name).c_str());
}

core::Result<bool> DownloadSlot::try_take() {
  auto entries = live_entries(m_dir);
  auto running = std::count_if(entries.begin(), entries.end(), [](const Entry& e) { return e.running; });
  std::vector<std::tuple<int, double, std::string>> waiting;
  for (const auto& e : entries)
    if (!e.running) waiting.emplace_back(-e.priority, e.t, e.name);
  std::sort(waiting.begin(), waiting.end());
  auto free = m_limit - running;
  for (long i = 0; i < free && i < static_cast<long>(waiting.size()); ++i) {
    if (std::get<2>(waiting[static_cast<std::size_t>(i)]) != m_name) continue;
    TRY(core::write_file_atomic(m_dir / m_name, entry_json(m_priority, m_queued_at, true).dump(), 0644));
    return true;
  }
  return false;
}

core::Result<bool> DownloadSlot::wait(const std::function<bool()>& give_up,
                                      std::chrono::milliseconds poll) {
  auto lock_path = m_dir / ".lock";
  for (;;) {
    int fd = ::open(lock_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      return fail(ErrorCode::io, "cannot open " + lock_path.string() + ": " + std::strerror(errno),
                  "check the permissions of the models root");
    while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
    }
    auto taken = try_take();
    ::close(fd);  // releases the lock
    if (!taken || *taken) return taken;
    if (give_up()) {
      ::unlink((m_dir / m_name).c_str());
      m_held = false;
      return false;
    }
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace autopod::models
