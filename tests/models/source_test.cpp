// Source parsing: every URL form of model-sources.md §1.1 and §2.2.

#include <gtest/gtest.h>

#include "models/internal.hpp"
#include "models/models.hpp"

namespace autopod::models {
namespace {

Source parsed(const std::string& text) {
  auto s = parse_source(text);
  EXPECT_TRUE(s) << text << ": " << (s ? "" : s.error().message);
  return s ? *s : Source{};
}

TEST(SourceParse, HfShorthandWithAndWithoutRevision) {
  auto s = parsed("hf://black-forest-labs/FLUX.1-schnell/vae/diffusion_pytorch_model.safetensors@v1.0");
  EXPECT_EQ(s.kind, SourceKind::hugging_face);
  EXPECT_EQ(s.repo, "black-forest-labs/FLUX.1-schnell");
  EXPECT_EQ(s.path, "vae/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(s.revision, "v1.0");
  auto d = parsed("hf://datasets/org/data/file.bin");
  EXPECT_EQ(d.repo_type, "dataset");
  EXPECT_EQ(d.repo, "org/data");
  EXPECT_EQ(d.revision, "");
}

TEST(SourceParse, HfResolveBlobShortHostAndEncodedRevision) {
  auto r = parsed("https://huggingface.co/org/repo/resolve/main/sub/model%20a.safetensors?download=true");
  EXPECT_EQ(r.repo, "org/repo");
  EXPECT_EQ(r.revision, "main");
  EXPECT_EQ(r.path, "sub/model a.safetensors");
  auto b = parsed("https://huggingface.co/org/repo/blob/0d2ed55c441a20c20e09da4dc086097703f26b61/m.safetensors");
  EXPECT_EQ(b.revision, "0d2ed55c441a20c20e09da4dc086097703f26b61");
  auto pr = parsed("https://hf.co/org/repo/resolve/refs%2Fpr%2F1/m.safetensors");
  EXPECT_EQ(pr.revision, "refs/pr/1");
  auto sp = parsed("https://huggingface.co/spaces/org/app/resolve/main/w.pth");
  EXPECT_EQ(sp.repo_type, "space");
  EXPECT_FALSE(parse_source("https://huggingface.co/org/repo/tree/main/unet"));
  EXPECT_FALSE(parse_source("hf://org/repo"));
}

TEST(SourceParse, CivitaiEveryUrlFormOnBothHosts) {
  auto v = parsed("civitai:128713");
  EXPECT_EQ(v.kind, SourceKind::civitai);
  EXPECT_EQ(v.version_id, "128713");
  auto m = parsed("https://civitai.com/models/4201/realistic-vision?modelVersionId=130072");
  EXPECT_EQ(m.model_id, "4201");
  EXPECT_EQ(m.version_id, "130072");
  auto only_model = parsed("https://civitai.red/models/4201");
  EXPECT_EQ(only_model.model_id, "4201");
  EXPECT_EQ(only_model.version_id, "");
  EXPECT_EQ(parsed("https://civitai.com/models/4201?version=9").version_id, "9");
  auto dl = parsed("https://civitai.red/api/download/models/130072?type=Model&format=SafeTensor&fileId=77");
  EXPECT_EQ(dl.version_id, "130072");
  EXPECT_EQ(dl.file_id, "77");
  EXPECT_EQ(dl.selectors, "type=Model&format=SafeTensor");
  EXPECT_EQ(parsed("https://civitai.com/api/v1/model-versions/5").version_id, "5");
  EXPECT_EQ(parsed("https://www.civitai.com/api/v1/modelVersions/6").version_id, "6");
  EXPECT_EQ(parsed("https://civitai.com/model-versions/7").version_id, "7");
  EXPECT_FALSE(parse_source("https://civitai.com/images/123"));
  EXPECT_FALSE(parse_source("civitai:abc"));
}

TEST(SourceParse, CivitaiAir) {
  auto a = parsed("urn:air:sdxl:lora:civitai:328553@368189+4242.safetensors");
  EXPECT_EQ(a.model_id, "328553");
  EXPECT_EQ(a.version_id, "368189");
  EXPECT_EQ(a.file_id, "4242");
  EXPECT_FALSE(parse_source("urn:air:sdxl:lora:huggingface:x@y"));
}

TEST(SourceParse, PlainUrlsAndNonsense) {
  auto u = parsed("https://example.org/files/4x-UltraSharp.pth");
  EXPECT_EQ(u.kind, SourceKind::url);
  EXPECT_EQ(u.url, "https://example.org/files/4x-UltraSharp.pth");
  auto bad = parse_source("ftp://example.org/x");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().hint.find("hf://"), std::string::npos);
}

TEST(ContentDisposition, Rfc5987WinsAndPathsAreReducedToTheLastComponent) {
  EXPECT_EQ(content_disposition_name("attachment; filename=\"a.safetensors\""), "a.safetensors");
  EXPECT_EQ(content_disposition_name(
                "attachment; filename*=UTF-8''caf%C3%A9.safetensors; filename=\"cafe.safetensors\""),
            "caf\xC3\xA9.safetensors");
  EXPECT_EQ(content_disposition_name("attachment; filename=\"../../etc/evil.pth\""), "evil.pth");
  EXPECT_EQ(content_disposition_name("attachment; filename=\"..\\\\x.pth\""), "x.pth");
  EXPECT_EQ(content_disposition_name("attachment; filename=\"..\""), "");
  EXPECT_EQ(content_disposition_name("inline"), "");
}

}  // namespace
}  // namespace autopod::models
