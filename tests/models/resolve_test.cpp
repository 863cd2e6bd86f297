// Resolution against the loopback fakes: what each source yields, and every refusal's message.

#include <gtest/gtest.h>

#include "tests/models/models_testing.hpp"

namespace autopod::testing {
namespace {

using core::ErrorCode;

TEST(ResolveHf, LfsFileGivesSizeSha256CommitAndATokenFreeStorageUrl) {
  Hubs hubs;
  std::string bytes = test_bytes(300000);
  hubs.hf.add_lfs_file("org/repo", "unet/model.safetensors", bytes);
  hubs.hf.set_tokens({"hf_good"});
  auto r = hubs.resolver("hf_good").resolve(entry("hf://org/repo/unet/model.safetensors", "diffusion_models"));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->size, 300000);
  EXPECT_EQ(r->sha256, sha256_of(bytes));
  EXPECT_EQ(r->name, "model.safetensors");
  EXPECT_EQ(r->revision, "0d2ed55c441a20c20e09da4dc086097703f26b61");
  EXPECT_TRUE(r->ranges);
  EXPECT_EQ(r->url.rfind(hubs.storage.url(), 0), 0u);
  // The token went to the hub, never to storage.
  EXPECT_EQ(hubs.hf.requests().at(0).authorization, "Bearer hf_good");
  EXPECT_EQ(hubs.storage.authorization_seen(), 0);
}

TEST(ResolveHf, RenamedRepoFollowsTheRelativeRedirect) {
  Hubs hubs;
  hubs.hf.add_lfs_file("new/name", "m.safetensors", test_bytes(1000));
  hubs.hf.rename_repo("old/name", "new/name");
  auto r = hubs.resolver().resolve(entry("hf://old/name/m.safetensors"));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->size, 1000);
}

TEST(ResolveHf, GatedRepoWithoutTokenSaysHowToGetAccess) {
  Hubs hubs;
  hubs.hf.add_lfs_file("org/gated", "m.safetensors", test_bytes(10));
  hubs.hf.set_gated("org/gated", {"hf_granted"});
  hubs.hf.set_tokens({"hf_granted", "hf_other"});
  auto none = hubs.resolver().resolve(entry("hf://org/gated/m.safetensors"));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::auth);
  EXPECT_NE(none.error().message.find("org/gated is gated and no token"), std::string::npos);
  EXPECT_NE(none.error().hint.find(hubs.hf.url() + "/org/gated"), std::string::npos);
  auto pending = hubs.resolver("hf_other").resolve(entry("hf://org/gated/m.safetensors"));
  ASSERT_FALSE(pending);
  EXPECT_NE(pending.error().message.find("not been granted access"), std::string::npos);
  EXPECT_NE(pending.error().hint.find("request access"), std::string::npos);
  EXPECT_TRUE(hubs.resolver("hf_granted").resolve(entry("hf://org/gated/m.safetensors")));
}

TEST(ResolveHf, BadTokenMissingRepoFileAndRevisionEachHaveTheirMessage) {
  Hubs hubs;
  hubs.hf.add_lfs_file("org/repo", "m.safetensors", test_bytes(10));
  hubs.hf.set_tokens({"hf_good"});
  auto bad = hubs.resolver("hf_bad").resolve(entry("hf://org/repo/m.safetensors"));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("refused HF_TOKEN"), std::string::npos) << bad.error().message;
  auto repo = hubs.resolver().resolve(entry("hf://org/nope/m.safetensors"));
  ASSERT_FALSE(repo);
  EXPECT_EQ(repo.error().code, ErrorCode::not_found);
  EXPECT_NE(repo.error().message.find("does not exist or is private"), std::string::npos);
  auto file = hubs.resolver().resolve(entry("hf://org/repo/other.safetensors"));
  ASSERT_FALSE(file);
  EXPECT_NE(file.error().message.find("other.safetensors is not in org/repo"), std::string::npos);
  auto rev = hubs.resolver().resolve(entry("hf://org/repo/m.safetensors@v9"));
  ASSERT_FALSE(rev);
  EXPECT_NE(rev.error().message.find("no revision v9"), std::string::npos);
}

TEST(ResolveHf, RateLimitWaitsForTheWindowThenSucceeds) {
  Hubs hubs;
  hubs.hf.add_lfs_file("org/repo", "m.safetensors", test_bytes(10));
  hubs.hf.rate_limit_next(2);
  auto r = hubs.resolver().resolve(entry("hf://org/repo/m.safetensors"));
  ASSERT_TRUE(r) << r.error().describe();
  // RateLimit: r=0;t=1 -> wait t+1 seconds, twice (on the fake clock).
  ASSERT_EQ(hubs.clock.sleeps().size(), 2u);
  EXPECT_EQ(hubs.clock.sleeps()[0], std::chrono::milliseconds(2000));
}

TEST(ResolveHf, FlakyHubIsRetried) {
  Hubs hubs;
  hubs.hf.add_lfs_file("org/repo", "m.safetensors", test_bytes(10));
  hubs.hf.set_flaky(true);
  auto r = hubs.resolver().resolve(entry("hf://org/repo/m.safetensors"));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_GE(hubs.clock.sleeps().size(), 1u);
}

sandbox::CivitaiFile model_file(const std::string& id, std::size_t size, const std::string& type = "Model") {
  return sandbox::CivitaiFile{id, "file-" + id + ".safetensors", type, type == "Model", test_bytes(size, 7), "SafeTensor"};
}

TEST(ResolveCivitai, VersionGivesNameSizeHashFolderAndStorageUrl) {
  Hubs hubs;
  auto f = model_file("11", 5000, "Diffusion Model");
  f.primary = true;
  hubs.civitai.add_version("100", "200", "Checkpoint", {f, model_file("12", 100, "VAE")});
  hubs.civitai.set_tokens({"cv_good"});
  auto r = hubs.resolver({}, "cv_good").resolve(entry("civitai:200", ""));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->name, "file-11.safetensors");
  EXPECT_EQ(r->size, 5000);
  EXPECT_EQ(r->sha256, sha256_of(f.bytes));
  EXPECT_EQ(r->folder, "diffusion_models");  // Checkpoint whose primary file is a Diffusion Model
  EXPECT_EQ(r->revision, "200");
  for (const auto& q : hubs.civitai.requests()) {
    EXPECT_EQ(q.authorization, "Bearer cv_good");
    EXPECT_EQ(q.user_agent.find("Mozilla"), std::string::npos);
  }
  EXPECT_EQ(hubs.storage.authorization_seen(), 0);
  auto vae = hubs.resolver().resolve(entry("civitai:200", "", ""));
  ASSERT_TRUE(vae);
  auto pinned = entry("https://civitai.com/api/download/models/200?fileId=12", "");
  auto p = hubs.resolver().resolve(pinned);
  ASSERT_TRUE(p) << p.error().describe();
  EXPECT_EQ(p->folder, "vae");
  EXPECT_EQ(p->size, 100);
}

TEST(ResolveCivitai, ModelUrlWithoutVersionTakesTheLatest) {
  Hubs hubs;
  hubs.civitai.add_version("100", "201", "LORA", {model_file("21", 64)});
  hubs.civitai.add_version("100", "202", "LORA", {model_file("22", 65)});
  auto r = hubs.resolver().resolve(entry("https://civitai.red/models/100/some-slug", ""));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->revision, "202");
  EXPECT_EQ(r->folder, "loras");
}

TEST(ResolveCivitai, EachRefusalHasItsOwnMessage) {
  Hubs hubs;
  hubs.civitai.add_version("1", "301", "LORA", {model_file("31", 10)}, sandbox::CivitaiGate::login_required);
  hubs.civitai.add_version("1", "302", "LORA", {model_file("32", 10)}, sandbox::CivitaiGate::early_access);
  hubs.civitai.add_version("1", "303", "LORA", {model_file("33", 10)}, sandbox::CivitaiGate::archived);
  hubs.civitai.add_version("1", "304", "LORA", {model_file("34", 10)}, sandbox::CivitaiGate::downloads_disabled);
  hubs.civitai.add_version("1", "305", "LORA", {model_file("35", 10)}, sandbox::CivitaiGate::no_access);
  auto login = hubs.resolver().resolve(entry("civitai:301", ""));
  ASSERT_FALSE(login);
  EXPECT_EQ(login.error().code, ErrorCode::auth);
  EXPECT_NE(login.error().message.find("requires a login"), std::string::npos);
  EXPECT_NE(login.error().hint.find("CIVITAI_API_TOKEN"), std::string::npos);
  auto early = hubs.resolver().resolve(entry("civitai:302", ""));
  ASSERT_FALSE(early);
  EXPECT_NE(early.error().message.find("early access until 2026-12-24"), std::string::npos);
  auto archived = hubs.resolver().resolve(entry("civitai:303", "loras"));
  ASSERT_FALSE(archived);
  EXPECT_NE(archived.error().message.find("archived"), std::string::npos);
  auto disabled = hubs.resolver().resolve(entry("civitai:304", ""));
  ASSERT_FALSE(disabled);
  EXPECT_NE(disabled.error().message.find("disabled downloads"), std::string::npos);
  auto denied = hubs.resolver().resolve(entry("civitai:305", ""));
  ASSERT_FALSE(denied);
  EXPECT_NE(denied.error().message.find("do not have access"), std::string::npos);
  auto missing = hubs.resolver().resolve(entry("civitai:999", ""));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);
}

TEST(ResolveCivitai, RateLimitWithoutRetryAfterBacksOffThenGivesUpWithItsMessage) {
  Hubs hubs;
  hubs.civitai.add_version("1", "401", "LORA", {model_file("41", 10)});
  hubs.civitai.rate_limit_next(2);
  auto ok = hubs.resolver().resolve(entry("civitai:401", ""));
  ASSERT_TRUE(ok) << ok.error().describe();
  EXPECT_EQ(hubs.clock.sleeps().size(), 2u);  // exponential backoff, no Retry-After to honour
  hubs.civitai.rate_limit_next(100);
  auto limited = hubs.resolver().resolve(entry("civitai:401", ""));
  ASSERT_FALSE(limited);
  EXPECT_EQ(limited.error().code, ErrorCode::rate_limited);
  EXPECT_NE(limited.error().hint.find("wait a few minutes"), std::string::npos);
}

TEST(ResolveCivitai, ABrowserUserAgentWouldGetHtmlWhichIsRefused) {
  Hubs hubs;
  hubs.civitai.add_version("1", "501", "LORA", {model_file("51", 10)}, sandbox::CivitaiGate::login_required);
  auto ep = hubs.endpoints();
  ep.user_agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120";
  models::Resolver browser(*hubs.transport, ep, hubs.clock);
  auto r = browser.resolve(entry("civitai:501", ""));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::protocol);
  EXPECT_NE(r.error().message.find("HTML"), std::string::npos) << r.error().message;
}

TEST(ResolveUrl, ContentDispositionNameIsReducedAndHtmlRefused) {
  Hubs hubs{sandbox::StorageOptions{0, {}, false}};
  hubs.storage.put("blob1", test_bytes(4000), "attachment; filename=\"../../evil/up.pth\"");
  auto r = hubs.resolver().resolve(entry(hubs.storage.plain_url("blob1"), "upscale_models"));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->name, "up.pth");
  EXPECT_EQ(r->size, 4000);
  EXPECT_TRUE(r->ranges);
  EXPECT_FALSE(r->validator.empty());
  hubs.storage.put("page", "<html>login</html>", {}, "text/html; charset=utf-8");
  auto html = hubs.resolver().resolve(entry(hubs.storage.plain_url("page"), "loras", "x.safetensors"));
  ASSERT_FALSE(html);
  EXPECT_NE(html.error().message.find("HTML page where a model file was expected"), std::string::npos);
}

TEST(ResolveUrl, NameFallsBackToTheUrlPath) {
  Hubs hubs{sandbox::StorageOptions{0, {}, false}};
  hubs.storage.put("4x-UltraSharp.pth", test_bytes(100));
  auto r = hubs.resolver().resolve(entry(hubs.storage.plain_url("4x-UltraSharp.pth"), "upscale_models"));
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->name, "4x-UltraSharp.pth");
}

}  // namespace
}  // namespace autopod::testing
