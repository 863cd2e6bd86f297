// comfy::model_references: the model files a workflow names, from a committed editor-format
// workflow with embedded `models` lists, an API-format one, and the real frontend pairs (read from
// ../shared/fixtures at run time): an editor file and the prompt queued from it name the same
// files.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "comfy/run.hpp"

namespace autopod::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path k_data = AUTOPOD_TEST_DATA_DIR;
const fs::path k_pairs_dir = AUTOPOD_TEST_FRONTEND_PAIRS;

std::vector<comfy::ModelReference> refs_of(const fs::path& file) {
  auto source = comfy::load_workflow(file);
  EXPECT_TRUE(source) << file.string();
  if (!source)
    return {};
  return comfy::model_references(source->workflow, source->format);
}

std::set<std::string> keys(const std::vector<comfy::ModelReference>& refs) {
  std::set<std::string> out;
  for (const auto& r : refs)
    out.insert(r.folder + "/" + r.name);
  return out;
}

TEST(ModelReferences, EditorWorkflowGivesLoaderWidgetsAndEmbeddedListsOncePerFile) {
  auto refs = refs_of(k_data / "workflows/flux_lora_models_editor.json");
  std::vector<std::string> got;
  for (const auto& r : refs)
    got.push_back(r.folder + "/" + r.name);
  // Node order; the muted LoraLoader and VAELoader's "taesd" (no model file) are left out.
  // The embedded `clip` directory is ComfyUI's alias of text_encoders: one file, with its url.
  EXPECT_EQ(got,
            (std::vector<std::string>{
                "diffusion_models/flux1-schnell.safetensors", "text_encoders/clip_l.safetensors",
                "text_encoders/t5xxl_fp8_e4m3fn.safetensors", "vae/ae.safetensors",
                "loras/style.safetensors", "upscale_models/4x-UltraSharp.pth"}));
  auto find = [&](const std::string& key) {
    return *std::find_if(refs.begin(), refs.end(),
                         [&](const auto& r) { return r.folder + "/" + r.name == key; });
  };
  // A loader input takes the url and hash of the embedded entry naming the same file.
  EXPECT_EQ(find("diffusion_models/flux1-schnell.safetensors").url,
            "https://huggingface.co/black-forest-labs/FLUX.1-schnell/resolve/main/"
            "flux1-schnell.safetensors");
  auto ae = find("vae/ae.safetensors");
  EXPECT_EQ(ae.sha256, "afc8e28272cd15db3919bacdb6918ce9c1ed22e96cb12c4d5ed0fba823529e38");
  EXPECT_EQ(ae.where, "node 3 VAELoader.vae_name");
  EXPECT_TRUE(find("loras/style.safetensors").url.empty());
  EXPECT_NE(find("text_encoders/clip_l.safetensors").url.find("clip_l.safetensors?download=true"),
            std::string::npos);
}

TEST(ModelReferences, ApiWorkflowGivesLoaderInputsByName) {
  auto refs = refs_of(k_data / "workflows/txt2img_api.json");
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].folder, "checkpoints");
  EXPECT_EQ(refs[0].name, "v1-5-pruned-emaonly.safetensors");
  EXPECT_EQ(refs[0].where, "node 4 CheckpointLoaderSimple.ckpt_name");

  // A custom loader counts by input name; links, non-files and CLIPVisionLoader's own folder.
  json prompt = {
      {"1",
       {{"class_type", "MyPack.FancyLoader"},
        {"inputs", {{"lora_name", "x.safetensors"}, {"unet_name", json::array({"2", 0})}}}}},
      {"2", {{"class_type", "CLIPVisionLoader"}, {"inputs", {{"clip_name", "vit-h.safetensors"}}}}},
      {"3", {{"class_type", "VAELoader"}, {"inputs", {{"vae_name", "pixel_space"}}}}},
      {"4", {{"class_type", "KSampler"}, {"inputs", {{"sampler_name", "euler"}}}}}};
  EXPECT_EQ(keys(comfy::model_references(prompt, comfy::WorkflowFormat::api)),
            (std::set<std::string>{"loras/x.safetensors", "clip_vision/vit-h.safetensors"}));
}

TEST(ModelReferences, EditorFilesAndThePromptsTheFrontendQueuedNameTheSameModels) {
  fs::path pairs = k_pairs_dir / "pairs";
  ASSERT_TRUE(fs::is_directory(pairs))
      << "the frontend pairs are missing: " << pairs.string()
      << " (they live beside the repository in ../shared/fixtures and are never copied into it)";
  int compared = 0, with_models = 0;
  for (const auto& entry : fs::directory_iterator(pairs)) {
    std::string file = entry.path().filename().string();
    if (!file.ends_with(".ui.json"))
      continue;
    std::string name = file.substr(0, file.size() - 8);
    auto ui = refs_of(entry.path());
    auto api = keys(refs_of(pairs / (name + ".api.json")));
    // The same files, plus only those an embedded list names (with a url).
    for (const auto& r : ui)
      EXPECT_TRUE(api.count(r.folder + "/" + r.name) || !r.url.empty())
          << name << ": " << r.folder << "/" << r.name;
    auto got = keys(ui);
    for (const auto& k : api)
      EXPECT_TRUE(got.count(k)) << name << ": " << k << " only in the prompt";
    ++compared;
    with_models += !api.empty();
  }
  EXPECT_EQ(compared, 111);
  EXPECT_GT(with_models, 100);
}

TEST(ModelReferences, EmbeddedListsInsideSubgraphDefinitionsCount) {
  fs::path file = k_pairs_dir / "editor-only/comfycli__gallery__02_qwen_Image_edit_subgraphed.json";
  ASSERT_TRUE(fs::exists(file)) << "missing fixture " << file.string();
  auto refs = refs_of(file);
  auto all = keys(refs);
  for (const char* want :
       {"vae/qwen_image_vae.safetensors", "text_encoders/qwen_2.5_vl_7b_fp8_scaled.safetensors",
        "diffusion_models/qwen_image_edit_2509_fp8_e4m3fn.safetensors",
        "loras/Qwen-Image-Edit-2509-Lightning-4steps-V1.0-bf16.safetensors"})
    EXPECT_TRUE(all.count(want)) << want;
  for (const auto& r : refs)
    if (r.name == "qwen_image_vae.safetensors") {
      EXPECT_EQ(r.url,
                "https://huggingface.co/Comfy-Org/Qwen-Image_ComfyUI/resolve/main/split_files/vae/"
                "qwen_image_vae.safetensors");
    }
}

}  // namespace
}  // namespace autopod::testing
