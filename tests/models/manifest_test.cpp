// Manifests: what parses, and that every mistake is named with its place before anything moves.

#include <gtest/gtest.h>

#include "models/models.hpp"

namespace autopod::models {
namespace {

TEST(Manifest, ParsesEverySourceKindWithItsFields) {
  auto m = parse_manifest(R"(models:
  - source: hf://black-forest-labs/FLUX.1-schnell/flux1-schnell.safetensors@main
    folder: diffusion_models
  - source: civitai:128713
  - source: https://example.org/files/4x-UltraSharp.pth
    folder: upscale_models
    name: ultrasharp.pth
    sha256: 0F0E0D0C0B0A09080706050403020100FFEEDDCCBBAA99887766554433221100
)", "models.yaml");
  ASSERT_TRUE(m) << m.error().describe();
  ASSERT_EQ(m->entries.size(), 3u);
  EXPECT_EQ(m->entries[0].source.kind, SourceKind::hugging_face);
  EXPECT_EQ(m->entries[0].folder, "diffusion_models");
  EXPECT_EQ(m->entries[1].source.kind, SourceKind::civitai);
  EXPECT_EQ(m->entries[1].folder, "");  // inferred from civitai's type later
  EXPECT_EQ(m->entries[2].name, "ultrasharp.pth");
  EXPECT_EQ(m->entries[2].sha256, "0f0e0d0c0b0a09080706050403020100ffeeddccbbaa99887766554433221100");
  EXPECT_EQ(m->entries[2].where, "models.yaml:5:13");
}

TEST(Manifest, MalformedYamlNamesFileLineAndColumn) {
  auto m = parse_manifest("models:\n  - source: hf://a/b/c.safetensors\n    folder: [loras\n", "m.yaml");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, core::ErrorCode::invalid_argument);
  EXPECT_NE(m.error().message.find("m.yaml:4:"), std::string::npos) << m.error().message;
}

TEST(Manifest, UnknownFolderListsTheValidOnes) {
  auto m = parse_manifest("models:\n  - source: hf://a/b/c.safetensors\n    folder: lora\n", "m.yaml");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("m.yaml:3:13: unknown folder 'lora'"), std::string::npos)
      << m.error().message;
  EXPECT_NE(m.error().hint.find("loras"), std::string::npos);
  EXPECT_NE(m.error().hint.find("diffusion_models"), std::string::npos);
}

TEST(Manifest, FolderIsRequiredExceptForCivitai) {
  auto m = parse_manifest("models:\n  - source: https://example.org/x.pth\n", "m.yaml");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().message.find("'folder' is required"), std::string::npos);
}

TEST(Manifest, NamesAndFoldersThatEscapeTheRootAreRefused) {
  for (const char* bad : {"../evil.safetensors", "/etc/passwd", "sub/x.safetensors", "..", "a\\b"}) {
    auto m = parse_manifest(std::string("models:\n  - source: hf://a/b/c.safetensors\n    folder: loras\n"
                                        "    name: \"") + bad + "\"\n", "m.yaml");
    ASSERT_FALSE(m) << bad;
    EXPECT_NE(m.error().message.find("would leave"), std::string::npos) << m.error().message;
  }
  auto f = parse_manifest("models:\n  - source: hf://a/b/c.safetensors\n    folder: ../../etc\n", "m.yaml");
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message.find("would leave the models root"), std::string::npos);
}

TEST(Manifest, UnknownKeysAndBadHashesAreNamed) {
  auto k = parse_manifest("models:\n  - source: hf://a/b/c.safetensors\n    folder: loras\n    sha: x\n", "m.yaml");
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().message.find("m.yaml:4:5: unknown key 'sha'"), std::string::npos) << k.error().message;
  auto h = parse_manifest("models:\n  - source: hf://a/b/c.safetensors\n    folder: loras\n    sha256: abc\n", "m.yaml");
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().message.find("64 hex"), std::string::npos);
}

TEST(Manifest, TheCommittedExampleParses) {
  auto m = load_manifest(std::filesystem::path(AUTOPOD_TEST_SOURCE_DIR) / "models/example-manifest.yaml");
  ASSERT_TRUE(m) << m.error().describe();
  EXPECT_GE(m->entries.size(), 3u);
}

}  // namespace
}  // namespace autopod::models
