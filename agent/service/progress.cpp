#include "agent/service/progress.hpp"

#include <cmath>
#include <fstream>

#include "core/log.hpp"

namespace autopod::agent::service {

namespace fs = std::filesystem;
using nlohmann::json;

const std::map<std::string, std::string>& StepNames::defaults() {
  static const std::map<std::string, std::string> table = [] {
    std::map<std::string, std::string> t;
    for (const char* n : {"CheckpointLoaderSimple", "CheckpointLoader", "UNETLoader", "VAELoader", "CLIPLoader",
                          "DualCLIPLoader", "TripleCLIPLoader", "LoraLoader", "LoraLoaderModelOnly",
                          "ControlNetLoader", "UpscaleModelLoader", "CLIPVisionLoader", "ImageOnlyCheckpointLoader"})
      t[n] = "Loading model...";
    for (const char* n : {"CLIPTextEncode", "CLIPTextEncodeSDXL", "CLIPTextEncodeSDXLRefiner", "CLIPTextEncodeFlux",
                          "CLIPTextEncodeSD3"})
      t[n] = "Encoding prompt...";
    for (const char* n : {"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"})
      t[n] = "Sampling image...";
    for (const char* n : {"VAEDecode", "VAEDecodeTiled"}) t[n] = "Decoding image...";
    for (const char* n : {"SaveImage", "PreviewImage", "SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveWEBM"})
      t[n] = "Saving image...";
    for (const char* n : {"ImageUpscaleWithModel", "ImageScale", "ImageScaleBy", "LatentUpscale", "LatentUpscaleBy"})
      t[n] = "Upscaling image...";
    return t;
  }();
  return table;
}

StepNames::StepNames(const std::map<std::string, std::string>& overrides) : m_table(defaults()) {
  for (const auto& [k, v] : overrides) m_table[k] = v;
}

std::string StepNames::name(const comfy::RunState& run, const std::string& node) const {
  const comfy::NodeInfo* info = run.node(node);
  if (!info) return node.empty() ? "" : "Node " + node;
  auto it = m_table.find(info->class_type);
  return it != m_table.end() ? it->second : info->title;
}

TaskDisplay::TaskDisplay(TaskStore& store, std::string task_id, const StepNames& steps)
    : m_store(store), m_id(std::move(task_id)), m_steps(steps) {}

void TaskDisplay::event(const comfy::RunState& run, const comfy::Event& e) {
  if (e.type == comfy::EventType::status || e.type == comfy::EventType::other) return;
  Progress p;
  {
    std::lock_guard lock(m_mutex);
    if (m_started == std::chrono::steady_clock::time_point{} && run.started != std::chrono::steady_clock::time_point{})
      m_started = run.started;
    m_fractions[run.prompt_id] = run.fraction();
    double sum = 0;
    for (const auto& [id, f] : m_fractions) sum += f;
    double f = sum / std::max(1, run.count);
    p.percentage = static_cast<int>(std::floor(f * 100));
    if (f >= 0.05 && f < 1 && m_started != std::chrono::steady_clock::time_point{}) {
      double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_started).count();
      p.eta_seconds = elapsed * (1 - f) / f;
    }
  }
  if (!run.current.empty()) p.current_step = m_steps.name(run, run.current);
  else if (run.outcome == comfy::Outcome::pending) p.current_step = "Waiting in queue...";
  else if (run.outcome == comfy::Outcome::running && run.done_nodes.empty()) p.current_step = "Starting...";
  p.current_value = run.value;
  p.max_value = run.max;
  m_store.update(m_id, [&](Task& t) -> const char* {
    if (is_final(t.status)) return nullptr;
    bool started = t.status == TaskStatus::queued;
    // The ETA changes with every frame; only what else changed is worth an event.
    auto eta = p.eta_seconds;
    if (p.current_step.empty()) p.current_step = t.progress.current_step;  // between nodes, or ended
    Progress before = t.progress;
    before.eta_seconds = eta;
    if (!started && before == p) return nullptr;
    t.status = TaskStatus::in_progress;
    t.progress = p;
    return "progress";
  });
}

void TaskDisplay::message(const std::string& line) { core::logger("agent")->info("task {}: {}", m_id, line); }
void TaskDisplay::saved(const comfy::RunState&, const std::string& path) {
  core::logger("agent")->debug("task {}: saved {}", m_id, path);
}
void TaskDisplay::finished(const comfy::RunState& run) {
  core::logger("agent")->info("task {}: prompt {} {}", m_id, run.prompt_id, comfy::to_string(run.outcome));
}

namespace {

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

}  // namespace

json image_entry(const std::string& task_id, const fs::path& dir, const fs::path& file) {
  std::string rel = file.lexically_relative(dir).generic_string();
  json entry = {{"url", "/v1/outputs/" + task_id + "/" + encode_segment(rel)},
                {"filename", file.filename().string()}, {"width", nullptr}, {"height", nullptr}};
  unsigned char head[24];
  std::ifstream in(file, std::ios::binary);
  if (in.read(reinterpret_cast<char*>(head), sizeof head) &&
      std::string_view(reinterpret_cast<char*>(head), 8) == "\x89PNG\r\n\x1a\n" &&
      std::string_view(reinterpret_cast<char*>(head) + 12, 4) == "IHDR") {
    entry["width"] = be32(head + 16);
    entry["height"] = be32(head + 20);
  }
  return entry;
}

std::string encode_segment(const std::string& text) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

bool decode_segment(const std::string& text, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size() || !std::isxdigit(static_cast<unsigned char>(text[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(text[i + 2])))
      return false;
    out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
    i += 2;
  }
  return true;
}

}  // namespace autopod::agent::service
