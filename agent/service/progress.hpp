#pragma once
// Internal to agent/service/: what a generation task shows while it runs. TaskDisplay is the
// comfy::Display of the task's run: each event becomes the task's `progress` (percentage weighted
// as `comfy run` weighs it, the step named after the executing node's type, an ETA), and a
// `progress` event when anything shown changed.

#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/service/store.hpp"
#include "comfy/display.hpp"

namespace autopod::agent::service {

// Node class type -> the step name shown ("KSampler" -> "Sampling image..."); the defaults with
// `overrides` on top. Unknown types show the node's title.
class StepNames {
 public:
  explicit StepNames(const std::map<std::string, std::string>& overrides = {});
  std::string name(const comfy::RunState& run, const std::string& node) const;
  static const std::map<std::string, std::string>& defaults();

 private:
  std::map<std::string, std::string> m_table;
};

class TaskDisplay : public comfy::Display {
 public:
  TaskDisplay(TaskStore& store, std::string task_id, const StepNames& steps);
  void event(const comfy::RunState& run, const comfy::Event& event) override;
  void message(const std::string& line) override;
  void saved(const comfy::RunState& run, const std::string& path) override;
  void finished(const comfy::RunState& run) override;

 private:
  TaskStore& m_store;
  std::string m_id;
  const StepNames& m_steps;
  std::mutex m_mutex;
  std::map<std::string, double> m_fractions;  // per prompt (count > 1)
  std::chrono::steady_clock::time_point m_started{};
};

// One saved output as the API shows it: {url, filename, width, height} (the size read from a
// PNG's header; null for other files). `dir` is the task's output directory.
nlohmann::json image_entry(const std::string& task_id, const std::filesystem::path& dir,
                           const std::filesystem::path& file);

// "a/b c.png" -> "a%2Fb%20c.png": a path below the output directory as one URL segment.
std::string encode_segment(const std::string& text);
// The inverse; false when an escape is malformed.
bool decode_segment(const std::string& text, std::string& out);

}  // namespace autopod::agent::service
