#include "providers/pod_records.hpp"

#include <ctime>

#include "core/state_file.hpp"
#include "core/text.hpp"

namespace autopod::providers {

using nlohmann::json;

namespace {

std::string key(const std::string& provider, const std::string& name) {
  return provider + "/" + name;
}

PodRecord from(const json& j) {
  PodRecord r;
  r.provider = j.value("provider", "");
  r.name = j.value("name", "");
  r.id = j.value("id", "");
  r.status = j.value("status", "");
  if (j.contains("spec")) r.spec = j["spec"].get<PodSpec>();
  r.updated_at = j.value("updated_at", "");
  return r;
}

Result<json> pods_of(const core::StateFile& file) {
  TRY_ASSIGN(auto doc, file.read());
  return doc.value("pods", json::object());
}

}  // namespace

PodRecords::PodRecords(std::filesystem::path file) : m_file(std::move(file)) {}

Result<std::vector<PodRecord>> PodRecords::all() const {
  TRY_ASSIGN(auto pods, pods_of(core::StateFile(m_file)));
  std::vector<PodRecord> out;
  try {
    for (const auto& [k, v] : pods.items()) out.push_back(from(v));
  } catch (const json::exception& e) {
    return core::fail(core::ErrorCode::protocol, m_file.string() + ": bad pod record: " + e.what());
  }
  return out;
}

Result<std::optional<PodRecord>> PodRecords::find(const std::string& provider,
                                                  const std::string& name) const {
  TRY_ASSIGN(auto pods, pods_of(core::StateFile(m_file)));
  auto it = pods.find(key(provider, name));
  if (it == pods.end()) return std::optional<PodRecord>();
  try {
    return std::optional<PodRecord>(from(*it));
  } catch (const json::exception& e) {
    return core::fail(core::ErrorCode::protocol, m_file.string() + ": bad pod record: " + e.what());
  }
}

Status PodRecords::put(PodRecord record) {
  record.spec.env.clear();
  record.spec.public_key.clear();
  record.updated_at = core::iso_time();
  json spec = record.spec;
  TRY(core::StateFile(m_file).update([&](json& doc) -> Status {
    auto& pods = doc["pods"];
    if (!pods.is_object()) pods = json::object();
    json entry = {{"provider", record.provider}, {"name", record.name}, {"id", record.id},
                  {"status", record.status},     {"spec", spec},        {"updated_at", record.updated_at}};
    auto& slot = pods[key(record.provider, record.name)];
    // Only the timestamp differs: skip the write.
    if (slot.is_object()) {
      json old = slot;
      old["updated_at"] = record.updated_at;
      if (old == entry) return {};
    }
    slot = entry;
    return {};
  }));
  return {};
}

Status PodRecords::remove(const std::string& provider, const std::string& name) {
  TRY(core::StateFile(m_file).update([&](json& doc) -> Status {
    if (doc.contains("pods") && doc["pods"].is_object()) doc["pods"].erase(key(provider, name));
    return {};
  }));
  return {};
}

}  // namespace autopod::providers
