// models::resolve_needs: what a workflow needs, against a manifest, the models root and the urls
// the workflow embeds, with the hub fakes on loopback.

#include "models/sync.hpp"
#include "tests/models/models_testing.hpp"

namespace autopod::testing {
namespace {

struct Needs : ::testing::Test {
  Hubs hubs{sandbox::StorageOptions{0, {}, false}};
  TempDir root;

  void SetUp() override {
    hubs.hf.add_lfs_file("org/flux", "flux.safetensors", test_bytes(3000, 1));
    hubs.hf.add_lfs_file("org/clip", "clip_l.safetensors", test_bytes(2000, 2));
    hubs.civitai.add_version("10", "20", "LORA",
                             {sandbox::CivitaiFile{"30", "style.safetensors", "Model", true,
                                                   test_bytes(1000, 3), "SafeTensor"}});
  }
  models::Manifest manifest(const std::string& yaml) {
    auto m = models::parse_manifest(yaml, "m.yaml");
    EXPECT_TRUE(m) << (m ? "" : m.error().describe());
    return m ? *m : models::Manifest{};
  }
};

TEST_F(Needs, ManifestEntriesMatchByFolderAndPlacedNameAndCivitaiIsAskedOnlyWhenANeedIsOpen) {
  auto m = manifest(
      "models:\n"
      "  - source: hf://org/flux/flux.safetensors\n    folder: diffusion_models\n"
      "  - source: civitai:20\n"
      "  - source: hf://org/other/unused.safetensors\n    folder: checkpoints\n");
  auto resolver = hubs.resolver();
  std::vector<models::ModelNeed> needs = {{"diffusion_models", "flux.safetensors", "", "", "n1"}};
  auto r = models::resolve_needs(needs, m, models::list_root(root.path()), root.path(), resolver);
  ASSERT_TRUE(r) << r.error().describe();
  ASSERT_EQ(r->manifest.entries.size(), 1u);
  EXPECT_EQ(r->manifest.entries[0].source.text, "hf://org/flux/flux.safetensors");
  EXPECT_TRUE(r->missing.empty());
  EXPECT_TRUE(hubs.civitai.requests().empty());  // every need matched by name: nothing resolved

  needs.push_back({"loras", "style.safetensors", "", "", "n2"});
  needs.push_back({"diffusion_models", "flux.safetensors", "", "", "n3"});  // the same file twice
  r = models::resolve_needs(needs, m, models::list_root(root.path()), root.path(), resolver);
  ASSERT_TRUE(r) << r.error().describe();
  ASSERT_EQ(r->manifest.entries.size(), 2u);
  EXPECT_EQ(r->manifest.entries[1].source.text, "civitai:20");
  EXPECT_FALSE(hubs.civitai.requests().empty());
}

TEST_F(Needs, HandPlacedFilesArePresentEmbeddedUrlsBecomeEntriesAndTheRestIsMissingWithItsFolder) {
  std::filesystem::create_directories(root / "vae");
  ASSERT_TRUE(core::write_file_atomic(root / "vae/ae.safetensors", "mine", 0644));
  std::string sha(64, 'a');
  std::vector<models::ModelNeed> needs = {
      {"vae", "ae.safetensors", "", "", "node 3"},
      {"text_encoders", "clip_l.safetensors",
       "https://huggingface.co/org/clip/resolve/main/clip_l.safetensors?download=true", sha,
       "node 2"},
      {"text_encoders", "t5.safetensors", "", "", "node 2b"},
      {"loras", "sd15/detail.safetensors", "", "", "node 4"},
      {"wildcards", "x.txt", "", "", "node 5"}};
  auto resolver = hubs.resolver();
  auto r = models::resolve_needs(needs, {}, models::list_root(root.path()), root.path(), resolver);
  ASSERT_TRUE(r) << r.error().describe();
  ASSERT_EQ(r->present.size(), 1u);
  EXPECT_EQ(r->present[0].name, "ae.safetensors");
  ASSERT_EQ(r->manifest.entries.size(), 1u);
  const auto& e = r->manifest.entries[0];
  EXPECT_EQ(e.source.kind, models::SourceKind::hugging_face);
  EXPECT_EQ(e.source.repo, "org/clip");
  EXPECT_EQ(e.folder, "text_encoders");
  EXPECT_EQ(e.name, "clip_l.safetensors");
  EXPECT_EQ(e.sha256, sha);
  ASSERT_EQ(r->missing.size(), 3u);
  EXPECT_EQ(r->missing[0].folder, "text_encoders");
  EXPECT_EQ(r->missing[0].need.name, "t5.safetensors");
  EXPECT_NE(r->missing[1].reason.find("subfolder"), std::string::npos) << r->missing[1].reason;
  EXPECT_NE(r->missing[2].reason.find("not a ComfyUI model folder"), std::string::npos)
      << r->missing[2].reason;
}

}  // namespace
}  // namespace autopod::testing
