// The library's pod side (models/pod/autopod_library.py through models/library.hpp), with
// `sh -c` on this machine playing the pod, on synthetic sparse model files in a temp root.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "core/process.hpp"
#include "models/library.hpp"
#include "models/pod.hpp"
#include "tests/models/models_testing.hpp"
#include "sandbox/synthetic_models.hpp"

namespace autopod::testing {
namespace {

using namespace sandbox;  // the synthetic model files

using models::ModelKind;

struct Library : ::testing::Test {
  TempDir dir;
  std::filesystem::path root = dir / "models";
  models::PodExec exec = [](const std::string& command, const std::string& input) {
    return core::run_capture({"sh", "-c", command}, input);
  };

  const models::LibraryFile* find(const models::LibraryListing& l, const std::string& name) {
    for (const auto& f : l.files)
      if (std::filesystem::path(f.path).filename() == name)
        return &f;
    ADD_FAILURE() << "no " << name << " listed";
    return nullptr;
  }
};

TEST_F(Library, ListsEachArchitectureWithCompletenessInOneRoundTrip) {
  write_safetensors(root / "checkpoints" / "xl.safetensors", sdxl_checkpoint());
  write_safetensors(root / "checkpoints" / "sd15.safetensors", sd1_checkpoint(), {},
                    1000);  // cut short
  write_safetensors(root / "diffusion_models" / "flux1-dev.safetensors", flux_diffusion(true));
  write_safetensors(root / "loras" / "sub" / "style.safetensors",
                    kohya_lora("input_blocks_4_1_transformer_blocks_0", 2048, "lora_te1_"));
  write_safetensors(root / "vae" / "ae.safetensors", vae(16));
  write_safetensors(root / "text_encoders" / "t5xxl.safetensors", t5_xxl());
  write_safetensors(root / "controlnet" / "canny.safetensors", controlnet_sd1());
  std::filesystem::create_directories(root / "upscale_models");
  { std::ofstream(root / "upscale_models" / "4x.pth") << "PK\x03\x04"; }
  {
    std::ofstream(root / "diffusion_models" / "flux-q4.gguf", std::ios::binary)
        << gguf_bytes("flux", 15, {{"img_in.weight", 12}});
  }
  { std::ofstream(root / "loras" / "sub" / "style.preview.png") << "png"; }
  { std::ofstream(root / "loras" / "sub" / "style.civitai.info") << "{}"; }

  auto l = models::list_library(exec, root.string(), {});
  ASSERT_TRUE(l) << l.error().describe();
  EXPECT_EQ(l->round_trips, 1);
  EXPECT_EQ(l->files.size(), 9u);
  auto* xl = find(*l, "xl.safetensors");
  EXPECT_EQ(xl->recognition.architecture, "sdxl");
  EXPECT_EQ(xl->recognition.kind, ModelKind::checkpoint);
  EXPECT_EQ(xl->completeness, "complete");
  auto* cut = find(*l, "sd15.safetensors");
  EXPECT_EQ(cut->completeness, "incomplete");
  EXPECT_EQ(cut->recognition.architecture, "sd1");
  EXPECT_EQ(find(*l, "flux1-dev.safetensors")->recognition.variant, "dev");
  auto* lora = find(*l, "style.safetensors");
  EXPECT_EQ(lora->folder, "loras");
  EXPECT_EQ(lora->recognition.base, "sdxl");
  EXPECT_EQ(lora->preview, "style.preview.png");
  EXPECT_EQ(lora->sidecars, (std::vector<std::string>{"style.civitai.info", "style.preview.png"}));
  EXPECT_EQ(find(*l, "ae.safetensors")->recognition.variant, "16ch");
  EXPECT_EQ(find(*l, "t5xxl.safetensors")->recognition.architecture, "t5-xxl");
  EXPECT_EQ(find(*l, "canny.safetensors")->recognition.kind, ModelKind::controlnet);
  auto* up = find(*l, "4x.pth");
  EXPECT_EQ(up->recognition.kind, ModelKind::upscaler);
  EXPECT_TRUE(up->recognition.pickle);
  auto* q4 = find(*l, "flux-q4.gguf");
  EXPECT_EQ(q4->recognition.architecture, "flux");
  EXPECT_EQ(q4->recognition.precision, "Q4_K");

  auto loras = models::list_library(exec, root.string(), {.folder = "loras"});
  ASSERT_TRUE(loras);
  EXPECT_EQ(loras->files.size(), 1u);
}

TEST_F(Library, AHeaderAbove64KibIsFetchedInOneMoreRequestForAllSuchFiles) {
  auto big = sdxl_checkpoint();
  for (int i = 0; i < 1500; ++i)  // ~100 KiB of header, as a real SDXL checkpoint's ~200 KiB
    big.push_back(
        {"model.diffusion_model.output_blocks." + std::to_string(i) + ".0.in_layers.0.weight",
         {320}});
  write_safetensors(root / "checkpoints" / "a.safetensors", big);
  write_safetensors(root / "checkpoints" / "b.safetensors", big);
  auto l = models::list_library(exec, root.string(), {});
  ASSERT_TRUE(l) << l.error().describe();
  EXPECT_EQ(l->round_trips, 2);
  for (const auto& f : l->files) {
    EXPECT_EQ(f.completeness, "complete") << f.path << ": " << f.problem;
    EXPECT_EQ(f.recognition.architecture, "sdxl");
    EXPECT_EQ(f.folder, "checkpoints");
  }
  EXPECT_GT(l->header_bytes, 2u * (64u << 10));
}

TEST_F(Library, MalformedHeadersAreReportedNotFatal) {
  std::filesystem::create_directories(root / "loras");
  { std::ofstream(root / "loras" / "html.safetensors") << "<!DOCTYPE html><html>login</html>"; }
  { std::ofstream(root / "loras" / "tiny.safetensors") << "abc"; }
  ASSERT_EQ(::mkfifo((root / "loras" / "pipe.safetensors").c_str(), 0600), 0);  // never opened
  auto l = models::list_library(exec, root.string(), {});
  ASSERT_TRUE(l) << l.error().describe();
  ASSERT_EQ(l->files.size(), 2u);
  for (const auto& f : l->files) {
    EXPECT_EQ(f.completeness, "malformed") << f.path;
    EXPECT_NE(f.problem.find("malformed safetensors header"), std::string::npos) << f.problem;
  }
}

// Given a hashed file, when its bytes change behind the cache's back (same size and mtime),
// then the second scan still reports the cached hash: it read no file body.
TEST_F(Library, TheSecondScanReadsNoFileBodies) {
  auto path = root / "loras" / "x.safetensors";
  write_safetensors(path, kohya_lora("down_blocks_0", 768, "lora_te_"));
  auto first = models::hash_library(exec, root.string(), {});
  ASSERT_TRUE(first) << first.error().describe();
  ASSERT_EQ(first->size(), 1u);
  EXPECT_FALSE(first->at(0).cached);
  EXPECT_EQ(first->at(0).bytes_read, std::filesystem::file_size(path));
  EXPECT_EQ(first->at(0).sha256, sha256_of(read_all(path)));
  EXPECT_EQ(read_all(root / "loras" / "x.sha256"),
            first->at(0).sha256);  // plain hex, as pysssss reads it

  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  {
    std::fstream(path, std::ios::in | std::ios::out | std::ios::binary).seekp(-1, std::ios::end)
        << 'Z';
  }
  timespec times[2] = {before.st_atim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  auto second = models::hash_library(exec, root.string(), {});
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->at(0).cached);
  EXPECT_EQ(second->at(0).bytes_read, 0u);
  EXPECT_EQ(second->at(0).sha256, first->at(0).sha256);

  auto l = models::list_library(exec, root.string(), {});
  ASSERT_TRUE(l);
  EXPECT_EQ(l->files.at(0).sha256, first->at(0).sha256);
  std::filesystem::last_write_time(
      path, std::filesystem::file_time_type::clock::now());  // touched: stale
  auto third = models::hash_library(exec, root.string(), {});
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->at(0).cached);
  EXPECT_NE(third->at(0).sha256, first->at(0).sha256);
}

TEST_F(Library, MetaKeepsUnknownKeysAndWritesThePreview) {
  auto path = root / "loras" / "x.safetensors";
  write_safetensors(path, kohya_lora("down_blocks_0", 768, "lora_te_"));
  {
    std::ofstream(root / "loras" / "x.metadata.json")
        << R"({"favorite": true, "civitai": {"id": 7}, "notes": "old"})";
  }
  { std::ofstream(dir / "shot.PNG") << "\x89PNG fake"; }
  auto w = models::write_meta(exec, root.string(), "loras/x.safetensors",
                              {"notes=new", "trigger_words=red fox, forest", "my_key=1"},
                              (dir / "shot.PNG").string());
  ASSERT_TRUE(w) << w.error().describe();
  EXPECT_EQ(w->size(), 2u);
  auto j = nlohmann::json::parse(read_all(root / "loras" / "x.metadata.json"));
  EXPECT_EQ(j["favorite"], true);
  EXPECT_EQ(j["civitai"]["id"], 7);
  EXPECT_EQ(j["notes"], "new");
  EXPECT_EQ(j["trainedWords"], nlohmann::json::array({"red fox", "forest"}));
  EXPECT_EQ(j["my_key"], "1");
  EXPECT_EQ(read_all(root / "loras" / "x.preview.png"), "\x89PNG fake");
  for (const auto& e : std::filesystem::directory_iterator(root / "loras"))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos)
        << e.path();  // nothing half-written

  EXPECT_EQ(
      models::write_meta(exec, root.string(), "loras/x.safetensors", {"novalue"}, "").error().code,
      core::ErrorCode::invalid_argument);
  auto outside = models::write_meta(exec, root.string(), "../elsewhere.safetensors", {"a=b"}, "");
  ASSERT_FALSE(outside);
  EXPECT_NE(outside.error().message.find("outside the models root"), std::string::npos);
}

TEST_F(Library, RmRemovesTheModelAndExactlyItsSidecars) {
  auto d = root / "loras";
  write_safetensors(d / "x.safetensors", kohya_lora("down_blocks_0", 768, "lora_te_"));
  write_safetensors(d / "x2.safetensors", kohya_lora("down_blocks_0", 768, "lora_te_"));
  for (const char* s : {"x.preview.png", "x.png", "x.civitai.info", "x.metadata.json", "x.sha256",
                        "x.md", "x.cm-info.json", "x.safetensors.autopod.json", "X.TXT"})
    std::ofstream(d / s) << "s";
  for (const char* keep : {"x2.preview.png", "x.notes.docx", "xy.png"})
    std::ofstream(d / keep) << "k";
  // A refusal anywhere removes nothing.
  auto refused = models::remove_models(exec, root.string(), {"loras/x.safetensors", "/etc/passwd"});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("outside the models root"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(d / "x.safetensors"));
  EXPECT_FALSE(models::remove_models(exec, root.string(), {"loras/x.png"}));  // not a model file

  auto removed = models::remove_models(exec, root.string(), {"loras/x.safetensors"});
  ASSERT_TRUE(removed) << removed.error().describe();
  EXPECT_EQ(removed->size(), 10u);
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(d))
    left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"x.notes.docx", "x2.preview.png", "x2.safetensors",
                                            "xy.png"}));
}

// The bootstrap sends the program's length in bytes and python reads that many characters:
// one non-ASCII character would swallow the request line.
TEST(PodProgram, IsAscii) {
  const auto& text = models::pod_program();
  auto bad = std::find_if(text.begin(), text.end(),
                          [](char c) { return static_cast<unsigned char>(c) > 127; });
  EXPECT_EQ(bad, text.end()) << "non-ASCII at byte " << (bad - text.begin());
}

}  // namespace
}  // namespace autopod::testing
