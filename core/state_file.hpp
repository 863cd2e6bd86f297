#pragma once
// A JSON document shared by concurrent autopod processes (pods.json, tunnels.json).

#include <filesystem>
#include <functional>

#include <nlohmann/json.hpp>

#include "core/result.hpp"

namespace autopod::core {

// Reads under a shared advisory lock; updates under an exclusive one with an atomic
// write, so concurrent writers lose nothing and readers never see a torn file.
// A missing file reads as {"version": k_state_version}.
class StateFile {
 public:
  static constexpr int k_state_version = 1;

  explicit StateFile(std::filesystem::path path, mode_t mode = 0600);

  // protocol error naming the file and position when it is not valid JSON.
  Result<nlohmann::json> read() const;

  // Reads, lets `mutate` change the document, writes it back if it changed.
  // A failure from `mutate` leaves the file as it was.
  Result<nlohmann::json> update(const std::function<Status(nlohmann::json&)>& mutate);

  const std::filesystem::path& path() const { return m_path; }

 private:
  std::filesystem::path m_path;
  mode_t m_mode;
};

}  // namespace autopod::core
