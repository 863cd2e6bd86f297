// The model files a workflow names: loader inputs and the editor's embedded `models` lists
// (see model_references in workflow.hpp).

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "comfy/workflow.hpp"

namespace autopod::comfy {
namespace {

using nlohmann::json;

struct Loader {
  const char* type;
  // The class's widgets in order (as editor workflows store their values); "" for a widget
  // that names no model.
  std::vector<const char*> widgets;
  std::vector<std::pair<const char*, const char*>> folders;  // input -> folder key
};

// The loader classes of ComfyUI's own nodes, as GET /object_info declares them (0.3.64).
const std::vector<Loader>& loaders() {
  static const std::vector<Loader> table = {
      {"CheckpointLoaderSimple", {"ckpt_name"}, {{"ckpt_name", "checkpoints"}}},
      {"CheckpointLoader", {"", "ckpt_name"}, {{"ckpt_name", "checkpoints"}}},
      {"unCLIPCheckpointLoader", {"ckpt_name"}, {{"ckpt_name", "checkpoints"}}},
      {"ImageOnlyCheckpointLoader", {"ckpt_name"}, {{"ckpt_name", "checkpoints"}}},
      {"VAELoader", {"vae_name"}, {{"vae_name", "vae"}}},
      {"LoraLoader", {"lora_name"}, {{"lora_name", "loras"}}},
      {"LoraLoaderModelOnly", {"lora_name"}, {{"lora_name", "loras"}}},
      {"CLIPLoader", {"clip_name"}, {{"clip_name", "text_encoders"}}},
      {"DualCLIPLoader",
       {"clip_name1", "clip_name2"},
       {{"clip_name1", "text_encoders"}, {"clip_name2", "text_encoders"}}},
      {"TripleCLIPLoader",
       {"clip_name1", "clip_name2", "clip_name3"},
       {{"clip_name1", "text_encoders"},
        {"clip_name2", "text_encoders"},
        {"clip_name3", "text_encoders"}}},
      {"QuadrupleCLIPLoader",
       {"clip_name1", "clip_name2", "clip_name3", "clip_name4"},
       {{"clip_name1", "text_encoders"},
        {"clip_name2", "text_encoders"},
        {"clip_name3", "text_encoders"},
        {"clip_name4", "text_encoders"}}},
      {"UNETLoader", {"unet_name"}, {{"unet_name", "diffusion_models"}}},
      {"CLIPVisionLoader", {"clip_name"}, {{"clip_name", "clip_vision"}}},
      {"ControlNetLoader", {"control_net_name"}, {{"control_net_name", "controlnet"}}},
      {"DiffControlNetLoader", {"control_net_name"}, {{"control_net_name", "controlnet"}}},
      {"StyleModelLoader", {"style_model_name"}, {{"style_model_name", "style_models"}}},
      {"GLIGENLoader", {"gligen_name"}, {{"gligen_name", "gligen"}}},
      {"HypernetworkLoader", {"hypernetwork_name"}, {{"hypernetwork_name", "hypernetworks"}}},
      {"UpscaleModelLoader", {"model_name"}, {{"model_name", "upscale_models"}}},
      {"PhotoMakerLoader", {"photomaker_model_name"}, {{"photomaker_model_name", "photomaker"}}},
      {"ModelPatchLoader", {"name"}, {{"name", "model_patches"}}},
      {"AudioEncoderLoader", {"audio_encoder_name"}, {{"audio_encoder_name", "audio_encoders"}}},
  };
  return table;
}

// Inputs of other classes (custom loaders) whose name says the folder.
const char* folder_by_input(const std::string& input) {
  static const std::map<std::string, const char*> table = {
      {"ckpt_name", "checkpoints"},
      {"lora_name", "loras"},
      {"vae_name", "vae"},
      {"unet_name", "diffusion_models"},
      {"clip_name", "text_encoders"},
      {"clip_name1", "text_encoders"},
      {"clip_name2", "text_encoders"},
      {"clip_name3", "text_encoders"},
      {"clip_name4", "text_encoders"},
      {"control_net_name", "controlnet"},
      {"style_model_name", "style_models"},
      {"gligen_name", "gligen"},
      {"hypernetwork_name", "hypernetworks"},
      {"photomaker_model_name", "photomaker"},
      {"audio_encoder_name", "audio_encoders"}};
  auto it = table.find(input);
  return it == table.end() ? nullptr : it->second;
}

// ComfyUI's legacy folder aliases (comfyui-api.md §5): `clip` is text_encoders, `unet`
// diffusion_models.
std::string canonical_folder(const std::string& folder) {
  if (folder == "clip")
    return "text_encoders";
  if (folder == "unet")
    return "diffusion_models";
  return folder;
}

const Loader* loader_of(const std::string& type) {
  for (const auto& l : loaders())
    if (type == l.type)
      return &l;
  return nullptr;
}

const char* folder_of(const std::string& type, const std::string& input) {
  if (const auto* l = loader_of(type)) {
    for (const auto& [in, folder] : l->folders)
      if (input == in)
        return folder;
    return nullptr;
  }
  return folder_by_input(input);
}

// ComfyUI's supported_pt_extensions (comfyui-api.md §5) plus GGUF, which loader packs read.
bool is_model_file(const std::string& value) {
  auto dot = value.rfind('.');
  if (dot == std::string::npos || dot + 1 >= value.size())
    return false;
  std::string ext = value.substr(dot + 1);
  for (auto& c : ext)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::set<std::string> k_ext = {"ckpt",        "pt",  "pt2", "bin", "pth",
                                              "safetensors", "pkl", "sft", "gguf"};
  return k_ext.count(ext) > 0;
}

class Collector {
 public:
  void add(ModelReference ref) {
    for (auto& r : m_refs)
      if (r.folder == ref.folder && r.name == ref.name) {
        if (r.url.empty())
          r.url = ref.url;
        if (r.sha256.empty())
          r.sha256 = ref.sha256;
        return;
      }
    m_refs.push_back(std::move(ref));
  }
  void input(const std::string& node,
             const std::string& type,
             const std::string& input,
             const json& value) {
    if (!value.is_string())
      return;  // a link, or not a file
    const char* folder = folder_of(type, input);
    std::string name = value.get<std::string>();
    if (!folder || !is_model_file(name))
      return;
    add({folder, name, "", "", "node " + node + " " + type + "." + input});
  }
  // A `models` list: [{name, url, hash?, hash_type?, directory}].
  void embedded(const json& list, const std::string& where) {
    if (!list.is_array())
      return;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const json& m = list[i];
      if (!m.is_object() || !m.contains("name") || !m["name"].is_string() ||
          !m.contains("directory") || !m["directory"].is_string())
        continue;
      ModelReference ref{canonical_folder(m["directory"].get<std::string>()),
                         m["name"].get<std::string>(),
                         m.value("url", json("")).is_string() ? m.value("url", "") : "", "",
                         where + "models[" + std::to_string(i) + "]"};
      std::string type = m.contains("hash_type") && m["hash_type"].is_string()
                             ? m["hash_type"].get<std::string>()
                             : "sha256";
      for (auto& c : type)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (type == "sha256" && m.contains("hash") && m["hash"].is_string()) {
        ref.sha256 = m["hash"].get<std::string>();
        for (auto& c : ref.sha256)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      add(std::move(ref));
    }
  }
  void editor_nodes(const json& nodes) {
    if (!nodes.is_array())
      return;
    for (const auto& n : nodes) {
      if (!n.is_object())
        continue;
      std::string id = n.contains("id")
                           ? (n["id"].is_string() ? n["id"].get<std::string>() : n["id"].dump())
                           : "?";
      if (n.contains("properties") && n["properties"].is_object())
        embedded(n["properties"].value("models", json()), "node " + id + " ");
      int mode = n.value("mode", json(0)).is_number_integer() ? n["mode"].get<int>() : 0;
      if (mode == 2 || mode == 4 || !n.contains("type") || !n["type"].is_string())
        continue;  // muted, bypassed
      std::string type = n["type"].get<std::string>();
      const json values = n.value("widgets_values", json());
      if (values.is_object()) {  // some nodes save their widgets by name
        for (const auto& [k, v] : values.items())
          input(id, type, k, v);
      } else if (const auto* l = loader_of(type); l && values.is_array()) {
        for (std::size_t i = 0; i < l->widgets.size() && i < values.size(); ++i)
          if (*l->widgets[i])
            input(id, type, l->widgets[i], values[i]);
      }
    }
  }
  std::vector<ModelReference> take() { return std::move(m_refs); }

 private:
  std::vector<ModelReference> m_refs;
};

}  // namespace

std::vector<ModelReference> model_references(const json& workflow, WorkflowFormat format) {
  Collector c;
  if (!workflow.is_object())
    return {};
  if (format == WorkflowFormat::api) {
    for (const auto& [id, node] : workflow.items()) {
      if (!node.is_object() || !node.contains("class_type") || !node["class_type"].is_string())
        continue;
      const json inputs = node.value("inputs", json::object());
      if (!inputs.is_object())
        continue;
      for (const auto& [k, v] : inputs.items())
        c.input(id, node["class_type"].get<std::string>(), k, v);
    }
    return c.take();
  }
  c.editor_nodes(workflow.value("nodes", json()));
  if (workflow.contains("definitions") && workflow["definitions"].is_object())
    for (const auto& sub : workflow["definitions"].value("subgraphs", json::array()))
      if (sub.is_object())
        c.editor_nodes(sub.value("nodes", json()));
  c.embedded(workflow.value("models", json()), "");
  return c.take();
}

}  // namespace autopod::comfy
