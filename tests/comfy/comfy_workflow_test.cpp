// Workflow files: formats, editor-format conversion, --set, uploads.

#include <gtest/gtest.h>

#include "comfy/workflow.hpp"
#include "tests/comfy/comfy_testing.hpp"

namespace autopod {
namespace {

namespace fs = std::filesystem;
using core::ErrorCode;
using nlohmann::json;
using testing::FakeFixture;
using testing::transcript;
const fs::path k_data = testing::k_comfy_data;

// --- workflow files --------------------------------------------------------------------------------

using ComfyWorkflow = FakeFixture;

TEST_F(ComfyWorkflow, TheEditorsFormatIsDetectedAndConvertedWithObjectInfo) {
  json ui = *comfy::load_json_file(k_data / "workflows/txt2img_editor.json");
  EXPECT_EQ(*comfy::detect_format(ui, "w"), comfy::WorkflowFormat::ui);
  auto info = http->object_info();
  ASSERT_TRUE(info);
  auto api = comfy::ui_to_api(ui, *info);
  ASSERT_TRUE(api) << api.error().message;
  json want = *comfy::load_json_file(k_data / "workflows/txt2img_api.json");
  want["3"]["inputs"]["steps"] = 25;                        // from the PrimitiveNode
  want["9"]["inputs"]["filename_prefix"] = "autopod/editor";
  std::vector<std::string> ids;
  for (const auto& [id, node] : api->items()) ids.push_back(id);
  EXPECT_EQ(ids, (std::vector<std::string>{"3", "4", "5", "6", "7", "8", "9"}));  // no reroute, note, muted, bypassed
  for (const auto& [id, node] : want.items()) {
    EXPECT_EQ((*api)[id]["class_type"], node["class_type"]) << id;
    EXPECT_EQ((*api)[id]["inputs"], node["inputs"]) << id;
  }
  EXPECT_EQ((*api)["6"]["_meta"]["title"], "Positive");
  EXPECT_EQ((*api)["8"]["inputs"]["vae"], json::array({"4", 2}));     // through the reroute
  EXPECT_EQ((*api)["9"]["inputs"]["images"], json::array({"8", 0}));  // around the bypassed invert
  // And the server takes it.
  auto submitted = http->submit(*api, "x");
  EXPECT_TRUE(submitted) << submitted.error().message;
}

TEST_F(ComfyWorkflow, NodesThatCannotBeConvertedAreNamed) {
  json ui = *comfy::load_json_file(k_data / "workflows/txt2img_editor.json");
  ui["nodes"][0]["type"] = "IPAdapterAdvanced";
  auto r = comfy::ui_to_api(ui, *http->object_info());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("node #4 is of type IPAdapterAdvanced"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().hint.find("Export (API)"), std::string::npos);
  ui = *comfy::load_json_file(k_data / "workflows/txt2img_editor.json");
  ui["definitions"] = {{"subgraphs", json::array({{{"id", "KSampler"}}})}};
  r = comfy::ui_to_api(ui, *http->object_info());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("subgraph"), std::string::npos);
}

TEST(ComfyWorkflowFiles, FormatsAreToldApartAndBadFilesSayWhere) {
  testing::TempDir tmp;
  ASSERT_TRUE(core::write_file_atomic(tmp.path() / "bad.json", "{\n  \"1\": {\"class_type\": \"X\",\n  }\n}"));
  auto bad = comfy::load_json_file(tmp.path() / "bad.json");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("bad.json:3:3"), std::string::npos) << bad.error().message;
  json wrapped = {{"prompt", {{"1", {{"class_type", "SaveImage"}, {"inputs", json::object()}}}}}, {"extra_data", json::object()}};
  EXPECT_EQ(*comfy::detect_format(wrapped, "w"), comfy::WorkflowFormat::api);
  EXPECT_TRUE(wrapped.contains("1"));
  json neither = {{"hello", 1}};
  EXPECT_EQ(comfy::detect_format(neither, "w.json").error().code, ErrorCode::invalid_argument);
}

TEST(ComfyWorkflowFiles, SetTypesValuesAndFindsNodesByIdOrTitle) {
  json p = *comfy::load_json_file(k_data / "workflows/txt2img_api.json");
  ASSERT_TRUE(comfy::apply_set(p, "3.steps=30"));
  ASSERT_TRUE(comfy::apply_set(p, "KSampler.cfg=6.5"));
  ASSERT_TRUE(comfy::apply_set(p, "Positive.text=a cat, 4k"));
  ASSERT_TRUE(comfy::apply_set(p, "3.denoise=1e-1"));
  ASSERT_TRUE(comfy::apply_set(p, "3.seed=18446744073709551615"));
  EXPECT_EQ(p["3"]["inputs"]["steps"], 30);
  EXPECT_TRUE(p["3"]["inputs"]["steps"].is_number_integer());
  EXPECT_EQ(p["3"]["inputs"]["cfg"], 6.5);
  EXPECT_EQ(p["6"]["inputs"]["text"], "a cat, 4k");
  EXPECT_EQ(p["3"]["inputs"]["denoise"], 0.1);
  EXPECT_EQ(p["3"]["inputs"]["seed"], 18446744073709551615ull);
  for (auto [text, want] : std::vector<std::pair<std::string, json>>{
           {"-3", -3}, {"1.", 1.0}, {".5", 0.5}, {"2E3", 2000.0}, {"1.2.3", "1.2.3"}, {"1e", "1e"},
           {"-", "-"}, {".", "."}, {"true", true}, {"[1, 2]", json::array({1, 2})}, {"nan", "nan"}}) {
    ASSERT_TRUE(comfy::apply_set(p, "9.filename_prefix=" + text));
    EXPECT_EQ(p["9"]["inputs"]["filename_prefix"], want) << text;
  }
  ASSERT_TRUE(comfy::apply_set(p, "9.filename_prefix=\"007\""));  // quoted: stays a string
  EXPECT_EQ(p["9"]["inputs"]["filename_prefix"], "007");
  auto missing = comfy::apply_set(p, "3.sed=1");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().hint.find("seed"), std::string::npos);
  EXPECT_FALSE(comfy::apply_set(p, "Nobody.x=1"));
  EXPECT_FALSE(comfy::apply_set(p, "no-dot=1"));
  p["7"]["_meta"]["title"] = "Positive";
  auto twice = comfy::apply_set(p, "Positive.text=x");
  ASSERT_FALSE(twice);
  EXPECT_NE(twice.error().message.find("several nodes (6, 7)"), std::string::npos) << twice.error().message;
}

TEST_F(ComfyWorkflow, LocalFilesNamedByLoadNodesAreUploaded) {
  json p = transcript()["run_load_invert_save"]["request"]["prompt"];
  ASSERT_TRUE(core::write_file_atomic(dir.path() / "cat.png", "png bytes"));
  p["10"]["inputs"]["image"] = "cat.png";  // relative to the workflow's directory
  auto slots = comfy::upload_slots(p, {}, dir.path());
  ASSERT_TRUE(slots);
  ASSERT_EQ(slots->size(), 1u);
  EXPECT_EQ((*slots)[0].node, "10");
  EXPECT_EQ((*slots)[0].file, dir.path() / "cat.png");
  ASSERT_TRUE(core::write_file_atomic(dir.path() / "dog.png", "other bytes"));
  slots = comfy::upload_slots(p, {dir.path() / "dog.png"}, "/nonexistent");
  ASSERT_TRUE(slots);
  EXPECT_EQ((*slots)[0].file, dir.path() / "dog.png");  // --input wins
  EXPECT_FALSE(comfy::upload_slots(p, {dir.path() / "dog.png", dir.path() / "cat.png"}, dir.path()));
  EXPECT_FALSE(comfy::upload_slots(p, {dir.path() / "nope.png"}, dir.path()));
  // Uploaded, the workflow then runs against the uploaded name.
  auto name = http->upload((*slots)[0].file);
  ASSERT_TRUE(name);
  p["10"]["inputs"]["image"] = *name;
  EXPECT_TRUE(http->submit(p, "x"));
}

}  // namespace
}  // namespace autopod
