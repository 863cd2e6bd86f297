// The header parsers (hardened against hostile bytes) and recognition per architecture, on
// synthetic headers with real tensor names and shapes.

#include "models/library.hpp"

#include <gtest/gtest.h>

#include "sandbox/synthetic_models.hpp"

namespace autopod::testing {
namespace {

using namespace sandbox;  // the synthetic model files

using models::ModelKind;

std::string with_length(std::uint64_t n, const std::string& text) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text;
}
std::string raw(const std::string& text) {
  return with_length(text.size(), text);
}

void expect_malformed(const std::string& bytes, const std::string& what) {
  auto h = models::parse_safetensors_header(bytes);
  ASSERT_FALSE(h) << "accepted: " << what;
  EXPECT_EQ(h.error().code, core::ErrorCode::protocol) << h.error().message;
  EXPECT_NE(h.error().message.find("malformed safetensors header"), std::string::npos)
      << h.error().message;
  EXPECT_NE(h.error().message.find(what), std::string::npos) << h.error().message;
}

models::Recognition recognise(const std::vector<SynthTensor>& t,
                              const std::map<std::string, std::string>& meta = {}) {
  auto h = models::parse_safetensors_header(safetensors_header(t, meta));
  EXPECT_TRUE(h) << (h ? "" : h.error().message);
  return h ? models::recognise(*h) : models::Recognition{};
}

TEST(SafetensorsHeader, ParsesTensorsMetadataAndTheCompleteSize) {
  auto t = sdxl_checkpoint();
  std::string bytes = safetensors_header(t, {{"modelspec.title", "x"}});
  auto h = models::parse_safetensors_header(bytes + "trailing data is ignored");
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->tensors.size(), t.size());
  EXPECT_EQ(h->metadata.at("modelspec.title"), "x");
  EXPECT_EQ(h->expected_size(), safetensors_size(t, bytes));
  EXPECT_EQ(h->header_length + 8, bytes.size());
}

TEST(SafetensorsHeader, AShortReadSaysHowManyBytesTheHeaderNeeds) {
  std::string bytes = safetensors_header(flux_diffusion(true));
  auto h = models::parse_safetensors_header(bytes.substr(0, 100));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().code, core::ErrorCode::invalid_argument);
  EXPECT_NE(h.error().hint.find(std::to_string(bytes.size())), std::string::npos) << h.error().hint;
}

TEST(SafetensorsHeader, HostileHeadersAreMalformedNeverACrash) {
  expect_malformed("abc", "shorter than 8 bytes");
  expect_malformed(with_length(1ull << 62, "{}"), "outside 2..100000000");
  expect_malformed(with_length(100'000'001, "{}"), "outside 2..100000000");
  expect_malformed(raw("[1,2,3]"), "not a JSON object");
  expect_malformed(raw("\"text\""), "not a JSON object");
  expect_malformed(raw("{\"a\":"), "not valid JSON");
  expect_malformed(raw(std::string(100000, '[') + std::string(100000, ']')), "not a JSON object");
  expect_malformed(raw("{\"a\":" + std::string(50000, '[') + std::string(50000, ']') + "}"),
                   "deeper than 3");
  expect_malformed(
      raw(R"({"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"a":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}})"),
      "appears twice");
  expect_malformed(
      raw(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[2],"data_offsets":[2,6]}})"),
      "overlaps");
  expect_malformed(
      raw(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[2],"data_offsets":[8,12]}})"),
      "gap");
  expect_malformed(raw(R"({"a":{"dtype":"F16","shape":[3],"data_offsets":[0,4]}})"), "need 6");
  expect_malformed(
      raw(R"({"a":{"dtype":"F16","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}})"),
      "more than 2^64");
  expect_malformed(raw(R"({"a":{"dtype":"F16","shape":[-1],"data_offsets":[0,2]}})"),
                   "non-negative");
  expect_malformed(raw(R"({"a":{"dtype":"F16","shape":[1],"data_offsets":[4,2]}})"), "ends before");
  expect_malformed(raw(R"({"a":{"dtype":"F16","shape":[1]}})"), "needs dtype");
  expect_malformed(raw(R"({"a":{"dtype":"F16","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,2]}})"),
                   "9 dimensions");
  expect_malformed(raw(R"({"__metadata__":{"k":{"nested":1}}})"), "not a string");
  std::string huge_list = "{\"a\":{\"dtype\":\"F16\",\"shape\":[";
  for (int i = 0; i < 200000; ++i)
    huge_list += "1,";
  huge_list += "1],\"data_offsets\":[0,2]}}";
  expect_malformed(raw(huge_list), "200001 dimensions");
}

TEST(SafetensorsHeader, AnUnknownDtypeKeepsTheTilingCheck) {
  auto h = models::parse_safetensors_header(
      raw(R"({"a":{"dtype":"F3_NEW","shape":[7],"data_offsets":[0,3]}})"));
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->data_bytes, 3u);
}

TEST(GgufHeader, ReadsArchitectureFileTypeAndTheDominantTensorType) {
  auto bytes = gguf_bytes("flux", 15,
                          {{"img_in.weight", 12},
                           {"double_blocks.0.img_attn.qkv.weight", 12},
                           {"guidance_in.in_layer.weight", 0},
                           {"final_layer.linear.weight", 12}});
  auto h = models::parse_gguf_header(bytes);
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->version, 3u);
  EXPECT_EQ(h->architecture, "flux");
  EXPECT_EQ(h->file_type, 15);
  EXPECT_EQ(h->quantization, "Q4_K");
  EXPECT_TRUE(h->complete);
  auto r = models::recognise(*h);
  EXPECT_EQ(r.kind, ModelKind::diffusion_model);
  EXPECT_EQ(r.architecture, "flux");
  EXPECT_EQ(r.variant, "dev");
  EXPECT_EQ(r.precision, "Q4_K");
}

TEST(GgufHeader, HostileOrShortHeadersAreMalformedOrPartial) {
  EXPECT_FALSE(models::parse_gguf_header("GGU"));
  EXPECT_FALSE(models::parse_gguf_header("GGML0000000000000000000000"));
  std::string bad_version = gguf_bytes("flux", 1, {});
  bad_version[4] = 9;
  EXPECT_FALSE(models::parse_gguf_header(bad_version));
  std::string huge_count = gguf_bytes("flux", 1, {});
  huge_count[8 + 7] = 0x7f;  // tensor count 2^62
  auto h = models::parse_gguf_header(huge_count);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message.find("malformed gguf header"), std::string::npos);
  auto full = gguf_bytes("sdxl", 1, {{"a", 1}, {"b", 1}});
  for (std::size_t n = 8; n < full.size(); ++n) {  // every cut: partial or malformed, never a crash
    auto part = models::parse_gguf_header(full.substr(0, n));
    if (part) {
      EXPECT_FALSE(part->complete) << n;
    }
  }
}

TEST(Recognise, CheckpointsOfTheUnetFamily) {
  auto sd1 = recognise(sd1_checkpoint());
  EXPECT_EQ(sd1.kind, ModelKind::checkpoint);
  EXPECT_EQ(sd1.architecture, "sd1");
  EXPECT_EQ(sd1.precision, "fp16");
  EXPECT_EQ(recognise(sd1_checkpoint(9)).variant, "inpaint");
  EXPECT_EQ(recognise(sd2_checkpoint()).architecture, "sd2");
  auto xl = recognise(sdxl_checkpoint());
  EXPECT_EQ(xl.architecture, "sdxl");
  EXPECT_EQ(xl.variant, "");
  auto refiner = recognise(sdxl_refiner_checkpoint());
  EXPECT_EQ(refiner.architecture, "sdxl");
  EXPECT_EQ(refiner.variant, "refiner");
}

TEST(Recognise, DiffusionTransformers) {
  auto large = recognise(sd3_diffusion(38));
  EXPECT_EQ(large.kind, ModelKind::diffusion_model);
  EXPECT_EQ(large.architecture, "sd3");
  EXPECT_EQ(large.variant, "large");
  EXPECT_EQ(recognise(sd3_diffusion(24)).variant, "medium");
  auto dev = recognise(flux_diffusion(true));
  EXPECT_EQ(dev.architecture, "flux");
  EXPECT_EQ(dev.variant, "dev");
  EXPECT_EQ(dev.precision, "bf16");
  EXPECT_EQ(recognise(flux_diffusion(false)).variant, "schnell");
  auto prefixed = flux_diffusion(true, "model.diffusion_model.");
  EXPECT_EQ(recognise(prefixed).kind, ModelKind::diffusion_model);  // no VAE: not a checkpoint
  auto unknown =
      recognise({{"blocks.0.attn.weight", {64, 64}}, {"blocks.1.attn.weight", {64, 64}}});
  EXPECT_EQ(unknown.kind, ModelKind::unknown);
  EXPECT_EQ(unknown.architecture, "unknown");
}

TEST(Recognise, LorasAndTheirBase) {
  auto sd1 =
      recognise(kohya_lora("down_blocks_1_attentions_0_transformer_blocks_0", 768, "lora_te_"));
  EXPECT_EQ(sd1.kind, ModelKind::lora);
  EXPECT_EQ(sd1.base, "sd1");
  EXPECT_EQ(
      recognise(kohya_lora("down_blocks_1_attentions_0_transformer_blocks_0", 1024, "lora_te_"))
          .base,
      "sd2");
  EXPECT_EQ(recognise(kohya_lora("input_blocks_4_1_transformer_blocks_0", 2048, "lora_te1_")).base,
            "sdxl");
  EXPECT_EQ(recognise({{"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", {16, 3072}},
                       {"lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight", {9216, 16}}})
                .base,
            "flux");
  EXPECT_EQ(
      recognise({{"transformer.single_transformer_blocks.0.attn.to_k.lora_A.weight", {16, 3072}},
                 {"transformer.single_transformer_blocks.0.attn.to_k.lora_B.weight", {3072, 16}}})
          .base,
      "flux");
  // Metadata wins over key names that cannot tell.
  EXPECT_EQ(recognise({{"lora_unet_mid_block_attentions_0_proj_in.lora_down.weight", {16, 1280}}},
                      {{"ss_base_model_version", "sdxl_base_v1-0"}})
                .base,
            "sdxl");
  auto loha = recognise({{"lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_a", {320, 8}},
                         {"lora_unet_down_blocks_0_attentions_0_proj_in.hada_w1_b", {8, 320}}});
  EXPECT_EQ(loha.kind, ModelKind::lora);
  EXPECT_EQ(loha.architecture, "lycoris");
  EXPECT_EQ(loha.base,
            "unknown");  // down_blocks naming fits SD1 and SD2; no to_k to tell them apart
}

TEST(Recognise, VaesTextEncodersControlnetsAndEmbeddings) {
  auto sd_vae = recognise(vae(4));
  EXPECT_EQ(sd_vae.kind, ModelKind::vae);
  EXPECT_EQ(sd_vae.variant, "4ch");
  auto flux_vae = recognise(vae(16));
  EXPECT_EQ(flux_vae.architecture, "sd3/flux");
  EXPECT_EQ(flux_vae.variant, "16ch");
  EXPECT_EQ(recognise(clip(768, 12)).architecture, "clip-l");
  EXPECT_EQ(recognise(clip(1280, 32)).architecture, "clip-g");
  auto t5 = recognise(t5_xxl());
  EXPECT_EQ(t5.kind, ModelKind::text_encoder);
  EXPECT_EQ(t5.architecture, "t5-xxl");
  auto cn = recognise(controlnet_sd1());
  EXPECT_EQ(cn.kind, ModelKind::controlnet);
  EXPECT_EQ(cn.base, "sd1");
  auto ti = recognise({{"emb_params", {4, 768}}});
  EXPECT_EQ(ti.kind, ModelKind::embedding);
  EXPECT_EQ(ti.base, "sd1");
}

TEST(Recognise, HeaderlessFilesByExtensionAndFolder) {
  auto up = models::recognise_by_name("4x-UltraSharp.pth", "upscale_models");
  EXPECT_EQ(up.kind, ModelKind::upscaler);
  EXPECT_TRUE(up.pickle);
  EXPECT_EQ(up.architecture, "unknown");
  auto ckpt = models::recognise_by_name("old.CKPT", "checkpoints");
  EXPECT_TRUE(ckpt.pickle);
  EXPECT_EQ(ckpt.kind, ModelKind::checkpoint);
  EXPECT_FALSE(models::recognise_by_name("x.onnx", "other").pickle);
  EXPECT_EQ(models::recognise_by_name("x.onnx", "other").kind, ModelKind::unknown);
}

}  // namespace
}  // namespace autopod::testing
