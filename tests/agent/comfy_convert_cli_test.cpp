// `autopod comfy convert` end to end with --object-info: the binary prints the API prompt and
// needs neither a pod nor a tunnel.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/fs.hpp"
#include "sandbox/comfy_fake.hpp"
#include "tests/harness/harness.hpp"

namespace autopod {
namespace {

using nlohmann::json;
using testing::run_autopod;

const char* k_object_info = R"({
  "EmptyLatentImage": {"input": {"required": {"width": ["INT", {"default": 512}], "height": ["INT", {"default": 512}],
                                              "batch_size": ["INT", {"default": 1}]}},
                       "output": ["LATENT"], "display_name": null}
})";

struct ComfyConvertCli : ::testing::Test {
  testing::TempDir dir;
  std::vector<std::string> env;

  void SetUp() override {
    env = {"AUTOPOD_HOME=" + (dir / "home").string(), "AUTOPOD_PROVIDER=", "AUTOPOD_LOG_LEVEL="};
    ASSERT_TRUE(core::write_file_atomic(dir / "object_info.json", k_object_info));
  }

  std::string write(const std::string& name, const std::string& content) {
    EXPECT_TRUE(core::write_file_atomic(dir / name, content));
    return (dir / name).string();
  }
};

TEST_F(ComfyConvertCli, PrintsThePromptWithASavedObjectInfo) {
  auto wf = write("wf.json", R"({"nodes":[{"id":5,"type":"EmptyLatentImage","widgets_values":[512,768,1]}],"links":[]})");
  auto r = run_autopod({"comfy", "convert", wf, "--object-info", (dir / "object_info.json").string()}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json prompt = json::parse(r.out);
  EXPECT_EQ(prompt["5"]["class_type"], "EmptyLatentImage");
  EXPECT_EQ(prompt["5"]["inputs"], json::parse(R"({"width": 512, "height": 768, "batch_size": 1})"));
}

TEST_F(ComfyConvertCli, AnUnknownNodeIsAUsageErrorNamingIt) {
  auto wf = write("wf.json", R"({"nodes":[{"id":9,"type":"IPAdapterAdvanced","widgets_values":[1]}]})");
  auto r = run_autopod({"comfy", "convert", wf, "--object-info", (dir / "object_info.json").string()}, env);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("node #9 is of type IPAdapterAdvanced"), std::string::npos) << r.err;
}

TEST_F(ComfyConvertCli, ABadObjectInfoFileSaysSo) {
  auto wf = write("wf.json", R"({"nodes":[{"id":5,"type":"EmptyLatentImage"}]})");
  auto info = write("bad.json", "[1, 2");
  auto r = run_autopod({"comfy", "convert", wf, "--object-info", info}, env);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("bad.json: not the JSON object GET /object_info returns"), std::string::npos) << r.err;
}

// Without --object-info the schemas come from the pod's ComfyUI, here the fake behind --url.
TEST_F(ComfyConvertCli, AsksTheServerWithoutObjectInfo) {
  sandbox::ComfyFake fake;
  ASSERT_TRUE(fake.start());
  auto r = run_autopod({"comfy", "convert", AUTOPOD_TEST_DATA_DIR "/workflows/txt2img_editor.json", "--url", fake.url()},
                       env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json prompt = json::parse(r.out);
  EXPECT_EQ(prompt["9"]["inputs"]["filename_prefix"], "autopod/editor");
  EXPECT_EQ(prompt["8"]["inputs"]["vae"], json::parse(R"(["4", 2])"));
}

}  // namespace
}  // namespace autopod
