#pragma once
// Small synthetic model files for the library tests, the benchmark and the demo's model hubs: real
// tensor names and shapes per architecture (model-sources.md §4.2), a real header, and a sparse
// data region, so a "12 GB checkpoint" costs a few KiB of disk.

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace autopod::sandbox {

struct SynthTensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::string dtype = "F16";
};

inline std::uint64_t synth_bytes(const SynthTensor& t) {
  std::uint64_t n = 1;
  for (auto d : t.shape)
    n *= static_cast<std::uint64_t>(d);
  unsigned bits = t.dtype == "F32" || t.dtype == "I32"               ? 32
                  : (t.dtype.rfind("F8", 0) == 0 || t.dtype == "U8") ? 8
                                                                     : 16;
  return n * bits / 8;
}

// The first 8 + N bytes of a safetensors file holding `tensors` (offsets contiguous, in order).
inline std::string safetensors_header(const std::vector<SynthTensor>& tensors,
                                      const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  if (!metadata.empty())
    j["__metadata__"] = metadata;
  std::uint64_t at = 0;
  for (const auto& t : tensors) {
    std::uint64_t n = synth_bytes(t);
    j[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {at, at + n}}};
    at += n;
  }
  std::string text = j.dump();
  while (text.size() % 8)
    text += ' ';  // padded to 8 bytes, as the reference writer does
  std::string out(8, '\0');
  std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text;
}

inline std::uint64_t safetensors_size(const std::vector<SynthTensor>& tensors,
                                      const std::string& header) {
  std::uint64_t n = header.size();
  for (const auto& t : tensors)
    n += synth_bytes(t);
  return n;
}

// Writes a sparse safetensors file; `cut` bytes short of complete when asked (a truncated
// download).
inline void write_safetensors(const std::filesystem::path& path,
                              const std::vector<SynthTensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {},
                              std::uint64_t cut = 0) {
  std::filesystem::create_directories(path.parent_path());
  std::string header = safetensors_header(tensors, metadata);
  { std::ofstream(path, std::ios::binary) << header; }
  std::filesystem::resize_file(path, safetensors_size(tensors, header) - cut);
}

// Named tensor sets per architecture: the keys and shapes recognition looks at, plus filler.
inline std::vector<SynthTensor> unet_tensors(const std::string& p,
                                             std::int64_t channels,
                                             std::int64_t in,
                                             int attn_block,
                                             std::int64_t ctx,
                                             bool linear_proj,
                                             std::int64_t label_rows,
                                             std::int64_t adm) {
  std::vector<SynthTensor> t = {{p + "input_blocks.0.0.weight", {channels, in, 3, 3}},
                                {p + "input_blocks.0.0.bias", {channels}},
                                {p + "time_embed.0.weight", {channels * 4, channels}},
                                {p + "time_embed.2.weight", {channels * 4, channels * 4}},
                                {p + "out.2.weight", {4, channels, 3, 3}},
                                {p + "out.2.bias", {4}}};
  std::string b = p + "input_blocks." + std::to_string(attn_block) + ".1.";
  std::int64_t w = attn_block == 1 ? channels : channels * 2;
  t.push_back({b + "transformer_blocks.0.attn2.to_k.weight", {w, ctx}});
  t.push_back({b + "transformer_blocks.0.attn2.to_v.weight", {w, ctx}});
  t.push_back(linear_proj ? SynthTensor{b + "proj_in.weight", {w, w}}
                          : SynthTensor{b + "proj_in.weight", {w, w, 1, 1}});
  if (label_rows > 0)
    t.push_back({p + "label_emb.0.0.weight", {label_rows, adm}});
  return t;
}

inline std::vector<SynthTensor> with_vae_and_clip(std::vector<SynthTensor> t,
                                                  const std::string& clip_prefix,
                                                  std::int64_t width) {
  t.push_back({"first_stage_model.encoder.conv_in.weight", {128, 3, 3, 3}});
  t.push_back({"first_stage_model.decoder.conv_in.weight", {512, 4, 3, 3}});
  t.push_back({"first_stage_model.decoder.conv_out.weight", {3, 128, 3, 3}});
  t.push_back({clip_prefix + "embeddings.token_embedding.weight", {49408, width}});
  t.push_back({clip_prefix + "final_layer_norm.weight", {width}});
  return t;
}

inline std::vector<SynthTensor> sd1_checkpoint(std::int64_t in = 4) {
  return with_vae_and_clip(unet_tensors("model.diffusion_model.", 320, in, 1, 768, false, 0, 0),
                           "cond_stage_model.transformer.text_model.", 768);
}
inline std::vector<SynthTensor> sd2_checkpoint() {
  return with_vae_and_clip(unet_tensors("model.diffusion_model.", 320, 4, 1, 1024, true, 0, 0),
                           "cond_stage_model.model.", 1024);
}
inline std::vector<SynthTensor> sdxl_checkpoint() {
  return with_vae_and_clip(
      unet_tensors("model.diffusion_model.", 320, 4, 4, 2048, true, 1280, 2816),
      "conditioner.embedders.0.transformer.text_model.", 768);
}
inline std::vector<SynthTensor> sdxl_refiner_checkpoint() {
  return with_vae_and_clip(
      unet_tensors("model.diffusion_model.", 384, 4, 4, 1280, true, 1536, 2560),
      "conditioner.embedders.0.model.", 1280);
}
inline std::vector<SynthTensor> sd3_diffusion(std::int64_t depth) {
  std::int64_t w = depth * 64;
  return {{"joint_blocks.0.context_block.attn.qkv.weight", {3 * w, w}},
          {"joint_blocks.0.x_block.attn.qkv.weight", {3 * w, w}},
          {"x_embedder.proj.weight", {w, 16, 2, 2}},
          {"pos_embed", {1, 36864, w}},
          {"final_layer.linear.weight", {64, w}}};
}
inline std::vector<SynthTensor> flux_diffusion(bool dev, const std::string& p = "") {
  std::vector<SynthTensor> t = {{p + "img_in.weight", {3072, 64}, "BF16"},
                                {p + "txt_in.weight", {3072, 4096}, "BF16"},
                                {p + "time_in.in_layer.weight", {3072, 256}, "BF16"},
                                {p + "double_blocks.0.img_attn.norm.key_norm.scale", {128}, "BF16"},
                                {p + "double_blocks.0.img_attn.qkv.weight", {9216, 3072}, "BF16"},
                                {p + "single_blocks.0.linear1.weight", {21504, 3072}, "BF16"},
                                {p + "final_layer.linear.weight", {64, 3072}, "BF16"}};
  if (dev)
    t.push_back({p + "guidance_in.in_layer.weight", {3072, 256}, "BF16"});
  return t;
}
inline std::vector<SynthTensor> vae(std::int64_t latent) {
  return {{"encoder.conv_in.weight", {128, 3, 3, 3}},
          {"encoder.conv_out.weight", {2 * latent, 512, 3, 3}},
          {"decoder.conv_in.weight", {512, latent, 3, 3}},
          {"decoder.conv_out.weight", {3, 128, 3, 3}}};
}
inline std::vector<SynthTensor> clip(std::int64_t width, int layers) {
  std::vector<SynthTensor> t = {{"text_model.embeddings.token_embedding.weight", {49408, width}},
                                {"text_model.final_layer_norm.weight", {width}}};
  for (int i = 0; i < layers; ++i)
    t.push_back(
        {"text_model.encoder.layers." + std::to_string(i) + ".layer_norm1.weight", {width}});
  return t;
}
inline std::vector<SynthTensor> t5_xxl() {
  std::vector<SynthTensor> t = {{"shared.weight", {32128, 4096}},
                                {"encoder.final_layer_norm.weight", {4096}}};
  for (int i = 0; i < 24; ++i)
    t.push_back({"encoder.block." + std::to_string(i) + ".layer.0.layer_norm.weight", {4096}});
  return t;
}
inline std::vector<SynthTensor> kohya_lora(const std::string& unet_key,
                                           std::int64_t ctx,
                                           const std::string& te) {
  return {{"lora_unet_" + unet_key + "_attn2_to_k.lora_down.weight", {16, ctx}},
          {"lora_unet_" + unet_key + "_attn2_to_k.lora_up.weight", {640, 16}},
          {"lora_unet_" + unet_key + "_attn2_to_k.alpha", {}},
          {te + "text_model_encoder_layers_0_mlp_fc1.lora_down.weight", {16, 768}},
          {te + "text_model_encoder_layers_0_mlp_fc1.lora_up.weight", {3072, 16}}};
}
inline std::vector<SynthTensor> controlnet_sd1() {
  return {{"control_model.input_hint_block.0.weight", {16, 3, 3, 3}},
          {"control_model.input_blocks.0.0.weight", {320, 4, 3, 3}},
          {"control_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight", {640, 768}},
          {"control_model.zero_convs.0.0.weight", {320, 320, 1, 1}}};
}

// A GGUF v3 file's start: KVs general.architecture and general.file_type, then tensor infos.
inline std::string gguf_bytes(const std::string& arch,
                              std::uint32_t file_type,
                              const std::vector<std::pair<std::string, std::uint32_t>>& tensors) {
  std::string out = "GGUF";
  auto u32 = [&](std::uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [&](std::uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); };
  auto str = [&](const std::string& s) {
    u64(s.size());
    out += s;
  };
  u32(3);
  u64(tensors.size());
  u64(2);
  str("general.architecture"), u32(8), str(arch);
  str("general.file_type"), u32(4), u32(file_type);
  std::uint64_t offset = 0;
  for (const auto& [name, type] : tensors) {
    str(name), u32(2), u64(3072), u64(64), u32(type), u64(offset);
    offset += 4096;
  }
  return out;
}

}  // namespace autopod::sandbox
