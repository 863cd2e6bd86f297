#pragma once
// pods.json: what autopod remembers about the pods it made, so `down` + `connect --name N`
// can recreate a pod from its volume. Safe under concurrent autopod processes.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "providers/provider.hpp"

namespace autopod::providers {

struct PodRecord {
  std::string provider;
  std::string name;
  std::string id;      // empty once the pod is down
  std::string status;  // last seen: "running", "exited", "down", ...
  PodSpec spec;        // without env values or keys: state files hold no secrets
  std::string updated_at;
};

class PodRecords {
 public:
  explicit PodRecords(std::filesystem::path file);
  Result<std::vector<PodRecord>> all() const;
  Result<std::optional<PodRecord>> find(const std::string& provider, const std::string& name) const;
  // Inserts or replaces the record of (provider, name).
  Status put(PodRecord record);
  Status remove(const std::string& provider, const std::string& name);

 private:
  std::filesystem::path m_file;
};

}  // namespace autopod::providers
