// Partial-download records and claims (see transfer_state.hpp).

#include "models/transfer_state.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdlib>

#include "core/fs.hpp"
#include "core/random.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using core::fail;
using nlohmann::json;

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t start_ticks(int pid) {
  auto text = core::read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return -1;
  const std::string& stat = *text;
  auto paren = stat.rfind(')');
  if (paren == std::string::npos) return -1;
  // Fields after the command: state is field 3, starttime field 22.
  std::size_t pos = paren + 2;
  for (int field = 3; field < 22; ++field) {
    pos = stat.find(' ', pos);
    if (pos == std::string::npos) return -1;
    ++pos;
  }
  return std::atoll(stat.c_str() + pos);
}

std::string hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

core::Result<PartState> read_state(const std::filesystem::path& path) {
  TRY_ASSIGN(auto text, core::read_file(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return fail(ErrorCode::protocol, path.string() + " is not a partial-download record");
  return part_state_from_json(j);
}

}  // namespace

Owner current_owner() {
  return Owner{hostname(), static_cast<int>(::getpid()), start_ticks(::getpid()), unix_now()};
}

bool owner_alive(const Owner& o) {
  if (o.host != hostname()) return unix_now() - o.heartbeat < k_remote_owner_stale_secs;
  if (o.pid <= 0 || (::kill(o.pid, 0) != 0 && errno == ESRCH)) return false;
  return start_ticks(o.pid) == o.start_ticks;
}

bool PartState::same_download(const PartState& o) const {
  return source == o.source && size == o.size && sha256 == o.sha256 &&
         validator == o.validator && chunk_bytes == o.chunk_bytes && done.size() == o.done.size();
}

std::int64_t PartState::done_bytes() const {
  std::int64_t n = 0;
  for (std::size_t i = 0; i < done.size(); ++i)
    if (done[i]) n += std::min(chunk_bytes, size - static_cast<std::int64_t>(i) * chunk_bytes);
  return n;
}

json to_json(const PartState& s) {
  std::string done;
  for (bool d : s.done) done += d ? '1' : '0';
  return json{{"version", 1},
              {"source", s.source},
              {"partial", s.partial},
              {"size", s.size},
              {"sha256", s.sha256},
              {"validator", s.validator},
              {"chunk_bytes", s.chunk_bytes},
              {"done", done},
              {"owner",
               {{"host", s.owner.host},
                {"pid", s.owner.pid},
                {"start_ticks", s.owner.start_ticks},
                {"heartbeat", s.owner.heartbeat}}}};
}

PartState part_state_from_json(const json& j) {
  PartState s;
  s.source = j.value("source", "");
  s.partial = j.value("partial", "");
  s.size = j.value("size", std::int64_t{-1});
  s.sha256 = j.value("sha256", "");
  s.validator = j.value("validator", "");
  s.chunk_bytes = j.value("chunk_bytes", std::int64_t{0});
  for (char c : j.value("done", std::string())) s.done.push_back(c == '1');
  json o = j.value("owner", json::object());
  s.owner = Owner{o.value("host", ""), o.value("pid", 0), o.value("start_ticks", std::int64_t{0}),
                  o.value("heartbeat", std::int64_t{0})};
  return s;
}

std::filesystem::path claim_path(const std::filesystem::path& dest) {
  return dest.parent_path() / (dest.filename().string() + ".autopod-part.json");
}

core::Result<Claim> Claim::acquire(const std::filesystem::path& dest, PartState fresh,
                                   PartState* previous) {
  auto path = claim_path(dest);
  fresh.owner = current_owner();
  for (int attempt = 0; attempt < 3; ++attempt) {
    // Write our record under a unique name, then link it to the claim name: link fails with
    // EEXIST when someone holds the claim, atomically, on local and network filesystems.
    auto mine = path.string() + "." + core::random_hex(8) + ".new";
    TRY(core::write_file_atomic(mine, to_json(fresh).dump(2) + "\n", 0644));
    int rc = ::link(mine.c_str(), path.c_str());
    int err = errno;
    ::unlink(mine.c_str());
    if (rc == 0) {
      Claim c(path);
      c.m_held = true;
      return c;
    }
    if (err != EEXIST)
      return fail(ErrorCode::io, "cannot create " + path.string() + ": " + std::strerror(err));
    auto held = read_state(path);
    if (held && owner_alive(held->owner))
      return fail(ErrorCode::conflict,
                  dest.filename().string() + " is being downloaded by pid " +
                      std::to_string(held->owner.pid) + " on " + held->owner.host,
                  "wait for that sync to finish; autopod resumes its partial file if it dies");
    // A dead owner's claim: move it aside (rename is atomic, so one taker wins), then retry.
    auto aside = path.string() + "." + core::random_hex(8) + ".stale";
    if (::rename(path.c_str(), aside.c_str()) == 0) {
      if (held && previous) *previous = *held;
      ::unlink(aside.c_str());
    }
  }
  return fail(ErrorCode::conflict, "another process keeps claiming " + dest.string(),
              "run one sync at a time for this folder");
}

Claim::Claim(Claim&& other) noexcept
    : m_path(std::move(other.m_path)), m_held(std::exchange(other.m_held, false)) {}

Claim::~Claim() = default;  // a record left behind is what lets the next run resume

core::Status Claim::save(PartState state) {
  state.owner = current_owner();
  return core::write_file_atomic(m_path, to_json(state).dump() + "\n", 0644);
}

core::Status Claim::park(PartState state) {
  state.owner = Owner{};
  m_held = false;
  return core::write_file_atomic(m_path, to_json(state).dump() + "\n", 0644);
}

void Claim::release() {
  if (m_held) ::unlink(m_path.c_str());
  m_held = false;
}

}  // namespace autopod::models
