// What a model file is, from its header (model-sources.md §4.2, after ComfyUI's
// comfy/model_detection.py): the key prefix, then marker keys, then shapes. A rule that does not
// match leaves "unknown"; nothing is inferred from a file's name except for headerless formats.

#include <algorithm>
#include <cctype>

#include "models/library.hpp"

namespace autopod::models {
namespace {

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}
bool contains(std::string_view s, std::string_view p) {
  return s.find(p) != std::string_view::npos;
}

bool any_key(const SafetensorsHeader& h, std::string_view part) {
  return std::any_of(h.tensors.begin(), h.tensors.end(),
                     [&](const Tensor& t) { return contains(t.name, part); });
}

std::int64_t dim(const SafetensorsHeader& h, const std::string& name, std::size_t i) {
  const Tensor* t = h.find(name);
  return t && t->shape.size() > i ? t->shape[i] : -1;
}

// The dominant dtype by bytes, as the label people use ("fp16", "bf16", "fp8", "fp32").
std::string precision(const SafetensorsHeader& h) {
  std::map<std::string, std::uint64_t> bytes;
  for (const auto& t : h.tensors)
    bytes[t.dtype] += t.end - t.begin;
  std::string best;
  std::uint64_t most = 0;
  for (const auto& [dtype, n] : bytes)
    if (n > most)
      most = n, best = dtype;
  if (best == "F16")
    return "fp16";
  if (best == "BF16")
    return "bf16";
  if (best == "F32")
    return "fp32";
  if (starts_with(best, "F8"))
    return h.find("scaled_fp8") ? "fp8-scaled" : "fp8";
  std::transform(best.begin(), best.end(), best.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return best;
}

// The key prefix of a full checkpoint (§4.2): more than 5 keys under it.
std::string key_prefix(const SafetensorsHeader& h) {
  for (const char* p : {"model.diffusion_model.", "model.model.", "net."}) {
    auto n = std::count_if(h.tensors.begin(), h.tensors.end(),
                           [&](const Tensor& t) { return starts_with(t.name, p); });
    if (n > 5)
      return p;
  }
  return "";
}

// The UNet family: SD1, SD2, SDXL base and refiner, by context width and channels.
void unet(const SafetensorsHeader& h, const std::string& p, Recognition& r) {
  auto channels = dim(h, p + "input_blocks.0.0.weight", 0);
  auto in = dim(h, p + "input_blocks.0.0.weight", 1);
  auto ctx = dim(h, p + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", 1);
  if (ctx < 0)
    ctx = dim(h, p + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", 1);
  bool label = h.find(p + "label_emb.0.0.weight") != nullptr;
  if (ctx == 2048 && label && channels == 320)
    r.architecture = "sdxl";
  else if (ctx == 1280 && channels == 384)
    r.architecture = "sdxl", r.variant = "refiner";
  else if (ctx == 768 && !label && channels == 320)
    r.architecture = "sd1";
  else if (ctx == 1024 && dim(h, p + "input_blocks.1.1.proj_in.weight", 2) < 0 && channels == 320)
    r.architecture = "sd2";
  if (r.architecture != "unknown" && in == 9)
    r.variant = "inpaint";
  if (r.architecture != "unknown" && in == 8)
    r.variant = "instruct-pix2pix";
}

struct Marker {
  const char* key;
  const char* architecture;
};

// Diffusion transformers by marker key, as the reference table names them.
const Marker k_markers[] = {
    {"joint_blocks.0.context_block.attn.qkv.weight", "sd3"},
    {"head.modulation", "wan"},
    {"txt_norm.weight", "qwen-image"},
    {"txt_in.individual_token_refiner.blocks.0.norm1.weight", "hunyuan-video"},
    {"adaln_single.emb.timestep_embedder.linear_1.bias", "ltxv"},
    {"clf.1.weight", "stable-cascade"},
    {"double_layers.0.attn.w1q.weight", "auraflow"},
    {"mlp_t5.0.weight", "hunyuan-dit"},
    {"t_block.1.weight", "pixart"},
    {"cap_embedder.1.weight", "lumina2"},
    {"caption_projection.0.linear.weight", "hidream"},
    {"t5_yproj.weight", "mochi"},
};

bool diffusion(const SafetensorsHeader& h, const std::string& p, Recognition& r) {
  if (h.find(p + "double_blocks.0.img_attn.norm.key_norm.scale") && h.find(p + "img_in.weight")) {
    r.architecture = "flux";
    if (any_key(h, p + "distilled_guidance_layer."))
      r.architecture = "chroma";
    else
      r.variant = h.find(p + "guidance_in.in_layer.weight") ? "dev" : "schnell";
    if (dim(h, p + "img_in.weight", 1) == 384)
      r.variant += "-fill";
    return true;
  }
  for (const auto& m : k_markers) {
    if (!h.find(p + m.key))
      continue;
    r.architecture = m.architecture;
    if (r.architecture == "sd3") {
      auto depth = dim(h, p + "x_embedder.proj.weight", 0) / 64;
      r.variant = depth == 38 ? "large" : depth == 24 ? "medium" : "";
    }
    return true;
  }
  if (h.find(p + "input_blocks.0.0.weight")) {
    unet(h, p, r);
    return true;
  }
  return false;
}

// A LoRA's base: metadata first (kohya, ModelSpec), then key names, then the to_k input width.
std::string lora_base(const SafetensorsHeader& h) {
  auto meta = [&](const char* k) {
    auto it = h.metadata.find(k);
    return it == h.metadata.end() ? std::string() : it->second;
  };
  std::string v = meta("ss_base_model_version") + " " + meta("modelspec.architecture");
  if (contains(v, "sdxl") || contains(v, "stable-diffusion-xl"))
    return "sdxl";
  if (contains(v, "flux"))
    return "flux";
  if (contains(v, "sd3") || contains(v, "stable-diffusion-3"))
    return "sd3";
  if (contains(v, "sd_v1") || contains(v, "stable-diffusion-v1"))
    return "sd1";
  if (contains(v, "sd_v2") || contains(v, "stable-diffusion-v2"))
    return "sd2";
  if (any_key(h, "double_blocks") || any_key(h, "single_blocks") ||
      any_key(h, "single_transformer_blocks"))
    return "flux";
  if (any_key(h, "joint_blocks"))
    return "sd3";
  if (any_key(h, "lora_te2_") || any_key(h, "lora_te1_") || any_key(h, "input_blocks"))
    return "sdxl";
  for (const auto& t : h.tensors) {
    bool to_k = contains(t.name, "attn2_to_k") || contains(t.name, "attn2.to_k");
    bool down = contains(t.name, "lora_down") || contains(t.name, "lora_A") ||
                contains(t.name, "lora.down");
    if (!to_k || !down || t.shape.size() < 2)
      continue;
    if (t.shape[1] == 768)
      return "sd1";
    if (t.shape[1] == 1024)
      return "sd2";
    if (t.shape[1] == 2048)
      return "sdxl";
  }
  return "unknown";
}

bool lora(const SafetensorsHeader& h, Recognition& r) {
  bool lycoris = any_key(h, "hada_w1_a") || any_key(h, "lokr_w1") || any_key(h, "oft_blocks");
  bool plain = any_key(h, "lora_down") || any_key(h, "lora_up") || any_key(h, ".lora_A.") ||
               any_key(h, ".lora_B.") || any_key(h, "lora.up.") || any_key(h, "lora_linear_layer.");
  if (!lycoris && !plain)
    return false;
  r.kind = any_key(h, "lora_controlnet") ? ModelKind::controlnet : ModelKind::lora;
  r.architecture = r.kind == ModelKind::controlnet ? "control-lora" : lycoris ? "lycoris" : "lora";
  r.base = lora_base(h);
  return true;
}

bool text_encoder(const SafetensorsHeader& h, Recognition& r) {
  for (const auto& t : h.tensors) {
    auto at = t.name.find("text_model.encoder.layers.");
    if (at == std::string::npos)
      continue;
    std::string p = t.name.substr(0, at) + "text_model.";
    auto width = dim(h, p + "final_layer_norm.weight", 0);
    int layers = 0;
    while (h.find(p + "encoder.layers." + std::to_string(layers) + ".layer_norm1.weight"))
      ++layers;
    r.kind = ModelKind::text_encoder;
    r.architecture = width == 768 && layers == 12    ? "clip-l"
                     : width == 1280 && layers == 32 ? "clip-g"
                                                     : "clip";
    return true;
  }
  if (h.find("shared.weight") && any_key(h, "encoder.block.")) {
    r.kind = ModelKind::text_encoder;
    r.architecture =
        dim(h, "shared.weight", 1) == 4096 && h.find("encoder.block.23.layer.0.layer_norm.weight")
            ? "t5-xxl"
            : "t5";
    return true;
  }
  return false;
}

bool vae(const SafetensorsHeader& h, Recognition& r) {
  for (const char* p : {"", "first_stage_model.", "vae."}) {
    std::string s = p;
    if (!h.find(s + "encoder.conv_in.weight") || !h.find(s + "decoder.conv_out.weight"))
      continue;
    auto latent = dim(h, s + "decoder.conv_in.weight", 1);
    r.kind = ModelKind::vae;
    r.architecture = latent == 4 ? "sd/sdxl" : latent == 16 ? "sd3/flux" : "unknown";
    r.variant = latent > 0 ? std::to_string(latent) + "ch" : "";
    return true;
  }
  return false;
}

bool controlnet(const SafetensorsHeader& h, Recognition& r) {
  std::string p;
  if (h.find("control_model.input_hint_block.0.weight"))
    p = "control_model.";
  else if (!h.find("input_hint_block.0.weight") &&
           !h.find("controlnet_cond_embedding.conv_in.weight") && !any_key(h, "controlnet_blocks."))
    return false;
  r.kind = ModelKind::controlnet;
  r.architecture = "controlnet";
  auto ctx = dim(h, p + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", 1);
  if (ctx < 0)
    ctx = dim(h, "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", 1);
  r.base = ctx == 768    ? "sd1"
           : ctx == 1024 ? "sd2"
           : ctx == 2048 ? "sdxl"
           : any_key(h, "double_blocks") || any_key(h, "transformer_blocks.0.attn.add_k_proj")
               ? "flux"
               : "unknown";
  return true;
}

bool embedding(const SafetensorsHeader& h, Recognition& r) {
  bool sdxl = h.find("clip_l") && h.find("clip_g");
  if (!h.find("emb_params") && !sdxl)
    return false;
  if (h.tensors.size() > 4)
    return false;
  r.kind = ModelKind::embedding;
  r.architecture = "textual-inversion";
  r.base = sdxl                              ? "sdxl"
           : dim(h, "emb_params", 1) == 768  ? "sd1"
           : dim(h, "emb_params", 1) == 1024 ? "sd2"
                                             : "unknown";
  return true;
}

std::string lower_extension(const std::string& name) {
  auto dot = name.rfind('.');
  std::string ext = dot == std::string::npos ? "" : name.substr(dot);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

}  // namespace

const char* to_string(ModelKind kind) {
  switch (kind) {
    case ModelKind::checkpoint:
      return "checkpoint";
    case ModelKind::diffusion_model:
      return "diffusion model";
    case ModelKind::lora:
      return "lora";
    case ModelKind::vae:
      return "vae";
    case ModelKind::text_encoder:
      return "text encoder";
    case ModelKind::controlnet:
      return "controlnet";
    case ModelKind::upscaler:
      return "upscaler";
    case ModelKind::embedding:
      return "embedding";
    case ModelKind::unknown:
      break;
  }
  return "unknown";
}

Recognition recognise(const SafetensorsHeader& h) {
  Recognition r;
  r.precision = precision(h);
  if (lora(h, r) || embedding(h, r) || controlnet(h, r))
    return r;
  std::string p = key_prefix(h);
  if (p == "model.diffusion_model." || p.empty()) {
    Recognition d = r;
    if (diffusion(h, p, d)) {
      bool full = !p.empty() && any_key(h, "first_stage_model.");
      d.kind = full ? ModelKind::checkpoint : ModelKind::diffusion_model;
      return d;
    }
  }
  if (vae(h, r) || text_encoder(h, r))
    return r;
  if (!p.empty())
    r.kind = ModelKind::diffusion_model;  // audio (model.model.) or Cosmos (net.)
  return r;
}

Recognition recognise(const GgufHeader& h) {
  Recognition r;
  r.precision = h.quantization;
  const std::string& a = h.architecture;
  auto has = [&](const std::string& name) {
    return std::find(h.tensor_names.begin(), h.tensor_names.end(), name) != h.tensor_names.end();
  };
  if (a == "t5" || a == "t5encoder") {
    r.kind = ModelKind::text_encoder;
    r.architecture = "t5-xxl";
    return r;
  }
  static const std::map<std::string, std::string> diffusion = {{"flux", "flux"},
                                                               {"sd1", "sd1"},
                                                               {"sd3", "sd3"},
                                                               {"sdxl", "sdxl"},
                                                               {"aura", "auraflow"},
                                                               {"ltxv", "ltxv"},
                                                               {"hyvid", "hunyuan-video"},
                                                               {"wan", "wan"},
                                                               {"lumina2", "lumina2"},
                                                               {"qwen_image", "qwen-image"},
                                                               {"hidream", "hidream"},
                                                               {"chroma", "chroma"}};
  if (auto it = diffusion.find(a); it != diffusion.end()) {
    r.kind = ModelKind::diffusion_model;
    r.architecture = it->second;
    if (a == "flux" && h.complete)
      r.variant = has("guidance_in.in_layer.weight") ? "dev" : "schnell";
  } else if (!a.empty()) {
    r.architecture = a;  // an LLM (llama, qwen2, ...), used as a text encoder by some workflows
    r.kind = ModelKind::text_encoder;
  }
  return r;
}

Recognition recognise_by_name(const std::string& file_name, const std::string& folder) {
  Recognition r;
  std::string ext = lower_extension(file_name);
  r.pickle = ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".bin" || ext == ".pkl" ||
             ext == ".pt2";
  static const std::map<std::string, ModelKind> by_folder = {
      {"checkpoints", ModelKind::checkpoint},
      {"diffusion_models", ModelKind::diffusion_model},
      {"unet", ModelKind::diffusion_model},
      {"loras", ModelKind::lora},
      {"vae", ModelKind::vae},
      {"text_encoders", ModelKind::text_encoder},
      {"clip", ModelKind::text_encoder},
      {"controlnet", ModelKind::controlnet},
      {"upscale_models", ModelKind::upscaler},
      {"embeddings", ModelKind::embedding}};
  if (auto it = by_folder.find(folder); it != by_folder.end())
    r.kind = it->second;
  return r;
}

}  // namespace autopod::models
