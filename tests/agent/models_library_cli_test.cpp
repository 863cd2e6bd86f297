// autopod models ls|info|scan|meta|rm on the harness pod: its sshd is this machine, its models
// root a temp dir holding synthetic sparse model files.

#include <algorithm>
#include <fstream>
#include <thread>

#include "core/text.hpp"
#include "sandbox/model_hubs.hpp"
#include "tests/agent/cli_fixture.hpp"
#include "sandbox/synthetic_models.hpp"

namespace autopod::testing {
namespace {

using namespace sandbox;  // the synthetic model files

struct LibraryCli : Cli {
  std::filesystem::path root;
  void SetUp() override {
    Cli::SetUp();
    root = dir / "pod-models";
    write_safetensors(root / "checkpoints" / "xl.safetensors", sdxl_checkpoint());
    write_safetensors(root / "checkpoints" / "cut.safetensors", sd1_checkpoint(), {}, 4096);
    write_safetensors(root / "diffusion_models" / "schnell.safetensors", flux_diffusion(false));
    write_safetensors(root / "loras" / "style.safetensors",
                      kohya_lora("input_blocks_4_1_transformer_blocks_0", 2048, "lora_te1_"),
                      {{"ss_output_name", "style"}, {"modelspec.trigger_phrase", "red fox"}});
    write_safetensors(root / "vae" / "ae.safetensors", vae(16));
    write_safetensors(root / "text_encoders" / "clip_l.safetensors", clip(768, 12));
    std::filesystem::create_directories(root / "upscale_models");
    std::ofstream(root / "upscale_models" / "4x.pth") << "PK\x03\x04 not really";
    std::ofstream(root / "loras" / "style.webp") << "img";
    std::ofstream(root / "loras" / "style.safetensors.autopod.json")
        << R"({"version":1,"source":"civitai:20","folder":"loras"})";
    ASSERT_EQ(autopod({"connect", "--name", "comfy", "--timeout", "30"}).exit_code, 0);
  }
  core::ProcessOutput models(std::vector<std::string> args) {
    args.insert(args.begin(), "models");
    args.insert(args.end(), {"--models-root", root.string()});
    return autopod(args);
  }
  json by_name(const json& files, const std::string& name) {
    for (const auto& f : files)
      if (f["path"].get<std::string>().ends_with("/" + name))
        return f;
    ADD_FAILURE() << "no " << name << " in " << files.dump();
    return json::object();
  }
};

TEST_F(LibraryCli, LsRecognisesEveryFileOverSshAndGroupsByFolder) {
  auto r = models({"ls", "comfy", "--json"});
  EXPECT_RUN(r, 0);
  auto files = json::parse(r.out)["files"];
  EXPECT_EQ(files.size(), 7u);
  EXPECT_EQ(by_name(files, "xl.safetensors")["architecture"], "sdxl");
  EXPECT_EQ(by_name(files, "xl.safetensors")["completeness"], "complete");
  EXPECT_EQ(by_name(files, "cut.safetensors")["completeness"], "incomplete");
  EXPECT_EQ(by_name(files, "schnell.safetensors")["variant"], "schnell");
  auto lora = by_name(files, "style.safetensors");
  EXPECT_EQ(lora["kind"], "lora");
  EXPECT_EQ(lora["base"], "sdxl");
  EXPECT_EQ(lora["preview"], "style.webp");
  EXPECT_EQ(lora["source"], "civitai:20");
  EXPECT_EQ(by_name(files, "ae.safetensors")["variant"], "16ch");
  EXPECT_EQ(by_name(files, "clip_l.safetensors")["architecture"], "clip-l");
  EXPECT_EQ(by_name(files, "4x.pth")["kind"], "upscaler");
  EXPECT_EQ(by_name(files, "4x.pth")["pickle"], true);

  auto table = models({"ls", "comfy"});
  EXPECT_RUN(table, 0);
  EXPECT_NE(table.out.find("checkpoints/  (2 files,"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("total: 7 files"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("incomplete"), std::string::npos) << table.out;
  auto loras = models({"ls", "comfy", "--folder", "loras", "--json"});
  EXPECT_RUN(loras, 0);
  EXPECT_EQ(json::parse(loras.out)["files"].size(), 1u);
}

TEST_F(LibraryCli, InfoShowsHeaderMetadataTensorsAndSidecars) {
  std::ofstream(root / "loras" / "style.metadata.json") << R"({"notes": "from lora manager"})";
  auto r = models({"info", "loras/style.safetensors", "comfy", "--json"});
  EXPECT_RUN(r, 0);
  auto j = json::parse(r.out);
  EXPECT_EQ(j["metadata"]["modelspec.trigger_phrase"], "red fox");
  EXPECT_EQ(j["tensor_count"], 5);
  EXPECT_EQ(j["sidecar_metadata"]["style.metadata.json"]["notes"], "from lora manager");
  auto missing = models({"info", "loras/nothing.safetensors", "comfy"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no model file"), std::string::npos) << missing.err;
}

TEST_F(LibraryCli, ScanHashesOnceThenReadsTheCache) {
  auto first = models({"scan", "comfy", "--hash", "--json"});
  EXPECT_RUN(first, 0);
  std::size_t lines = 0, read = 0;
  std::istringstream in(first.out);
  for (std::string line; std::getline(in, line); ++lines)
    read += json::parse(line).value("bytes_read", std::size_t{0});
  EXPECT_EQ(lines, 7u);
  EXPECT_GT(read, 100u << 20);  // the sparse files' full sizes were hashed once
  EXPECT_TRUE(std::filesystem::exists(root / "checkpoints" / "xl.sha256"));
  auto second = models({"scan", "comfy", "--hash", "--json"});
  EXPECT_RUN(second, 0);
  std::istringstream again(second.out);
  for (std::string line; std::getline(again, line);) {
    auto j = json::parse(line);
    EXPECT_EQ(j["hash_cached"], true) << line;
    EXPECT_EQ(j["bytes_read"], 0) << line;
  }
  auto ls = models({"ls", "comfy", "--json"});
  EXPECT_EQ(
      by_name(json::parse(ls.out)["files"], "ae.safetensors")["sha256"].get<std::string>().size(),
      64u);
}

// extra_model_paths.yaml beside the pod's models root names a loras directory outside it: ls
// lists its file under loras with that directory, in the table and in --json.
TEST_F(LibraryCli, LsListsTheFoldersExtraModelPathsNames) {
  auto shared = dir / "team" / "loras";
  write_safetensors(shared / "team.safetensors",
                    kohya_lora("input_blocks_4_1_transformer_blocks_0", 2048, "lora_te1_"));
  std::ofstream(dir / "extra_model_paths.yaml")
      << "team:\n  base_path: " << (dir / "team").string() << "\n  loras: loras\n";
  auto r = models({"ls", "comfy", "--folder", "loras", "--json"});
  EXPECT_RUN(r, 0);
  auto files = json::parse(r.out)["files"];
  EXPECT_EQ(files.size(), 2u);
  auto team = by_name(files, "team.safetensors");
  EXPECT_EQ(team["folder"], "loras");
  EXPECT_EQ(team["extra_dir"], shared.string());
  EXPECT_EQ(team["base"], "sdxl");
  auto table = models({"ls", "comfy"});
  EXPECT_RUN(table, 0);
  EXPECT_NE(table.out.find("loras/ = " + shared.string() + " (extra_model_paths.yaml)  (1 files,"),
            std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("total: 8 files"), std::string::npos) << table.out;
}

// scan --hash runs as a task: another invocation lists it, pauses it (the scanning invocation
// returns), resumes it, and `models tasks` follows it to done; a scan after reads nothing.
TEST_F(LibraryCli, ScanHashIsATaskThatAnotherInvocationPausesAndResumes) {
  std::filesystem::create_directories(root / "embeddings");
  for (int i = 0; i < 3; ++i)
    std::ofstream(root / "embeddings" / ("e" + std::to_string(i) + ".pt"), std::ios::binary)
        << random_bytes(4 << 20, 30 + i);  // 6 s at 2 MiB/s: time to pause it under load
  auto scan_task = [&] {
    std::istringstream lines(autopod({"models", "tasks", "--json"}).out);
    json found = json::object();
    for (std::string line; std::getline(lines, line);)
      if (auto j = json::parse(line, nullptr, false); !j.is_discarded() && j["kind"] == "scan")
        found = j;
    return found;
  };
  core::ProcessOutput first;
  std::jthread scanning([&] {
    first = models({"scan", "comfy", "--hash", "--folder", "embeddings", "--max-rate", "2"});
  });
  std::string id;
  ASSERT_TRUE(eventually([&] {
    auto t = scan_task();
    id = t.value("id", "");
    return t.value("bytes", 0) > 0;  // under way
  }));
  EXPECT_EQ(scan_task()["files"], 3);
  EXPECT_RUN(autopod({"models", "pause", id}), 0);
  scanning.join();
  EXPECT_RUN(first, 0);
  EXPECT_NE(first.err.find("scan task " + id + " paused after"), std::string::npos) << first.err;
  EXPECT_EQ(scan_task()["state"], "paused");
  EXPECT_RUN(autopod({"models", "resume", id}), 0);
  ASSERT_TRUE(eventually([&] { return scan_task()["state"] == "done"; })) << scan_task().dump();
  EXPECT_EQ(scan_task()["files_done"], 3);
  auto again = models({"scan", "comfy", "--hash", "--folder", "embeddings", "--json"});
  EXPECT_RUN(again, 0);
  std::istringstream lines(again.out);
  int n = 0;
  for (std::string line; std::getline(lines, line); ++n)
    EXPECT_EQ(json::parse(line)["bytes_read"], 0) << line;
  EXPECT_EQ(n, 3);
}

TEST_F(LibraryCli, MetaThenRmRemovesTheModelWithItsSidecarsAndRefusesOutsideTheRoot) {
  std::ofstream(dir / "p.jpg") << "jpg";
  EXPECT_RUN(models({"meta", "loras/style.safetensors", "comfy", "--set", "trigger_words=fox, red",
                     "--preview", (dir / "p.jpg").string()}),
             0);
  EXPECT_TRUE(std::filesystem::exists(root / "loras" / "style.preview.jpg"));
  EXPECT_TRUE(std::filesystem::exists(root / "loras" / "style.metadata.json"));

  std::ofstream(dir / "outside.safetensors") << "x";
  auto outside = models({"rm", (dir / "outside.safetensors").string(), "--pod", "comfy", "--yes"});
  EXPECT_NE(outside.exit_code, 0);
  EXPECT_NE(outside.err.find("outside the models root"), std::string::npos) << outside.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "outside.safetensors"));
  auto unasked =
      models({"rm", "loras/style.safetensors", "--pod", "comfy"});  // no terminal, no --yes
  EXPECT_RUN(unasked, 2);
  EXPECT_TRUE(std::filesystem::exists(root / "loras" / "style.safetensors"));

  auto rm = models({"rm", "loras/style.safetensors", "--pod", "comfy", "--yes"});
  EXPECT_RUN(rm, 0);
  EXPECT_TRUE(std::filesystem::is_empty(root / "loras")) << rm.out;
  EXPECT_TRUE(std::filesystem::exists(root / "vae" / "ae.safetensors"));
}

// Given a LoRA Civitai knows (and whose first lookup gets a 429) and a checkpoint it does not,
// scan --fetch-info writes STEM.civitai.info and the preview for the first only; a second scan
// asks Civitai nothing for it; a 429 that outlasts the retries fails the scan, saying so.
TEST_F(LibraryCli, ScanFetchInfoLooksHashesUpOnCivitai) {
  sandbox::StorageServer storage{sandbox::StorageOptions{0, {}, false}};
  sandbox::CivitaiFake civitai{storage};
  ASSERT_TRUE(storage.start());
  ASSERT_TRUE(civitai.start());
  auto tensors = kohya_lora("down_blocks_1_attentions_0_transformer_blocks_0", 768, "lora_te_");
  std::string header = safetensors_header(tensors);
  std::string bytes = header + std::string(safetensors_size(tensors, header) - header.size(), '\0');
  std::ofstream(root / "loras" / "known.safetensors", std::ios::binary) << bytes;
  civitai.add_version("7", "77", "LORA",
                      {sandbox::CivitaiFile{"777", "known.safetensors", "Model", true, bytes}});
  civitai.add_image("77", "\x89PNG preview");
  civitai.rate_limit_lookups_next(1);
  env.push_back("CIVITAI_ENDPOINT=" + civitai.url());

  auto r = models({"scan", "comfy", "--fetch-info", "--folder", "loras"});
  EXPECT_RUN(r, 0);
  EXPECT_NE(r.out.find("civitai: Model 7 v1.0 (preview written)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("not on civitai"), std::string::npos) << r.out;
  auto info = json::parse(core::read_file(root / "loras" / "known.civitai.info").value());
  EXPECT_EQ(info["id"], 77);
  EXPECT_EQ(core::read_file(root / "loras" / "known.preview.png").value(), "\x89PNG preview");
  EXPECT_FALSE(std::filesystem::exists(root / "loras" / "style.preview.png"));  // it had style.webp

  auto requests = civitai.requests();
  EXPECT_TRUE(
      std::any_of(requests.begin(), requests.end(), [](const auto& q) { return q.status == 429; }));
  auto asked = requests.size();
  std::string known_sha = core::lowercase(info["files"][0]["hashes"]["SHA256"].get<std::string>());
  EXPECT_TRUE(std::any_of(requests.begin(), requests.end(), [&](const auto& q) {
    return q.target.find(known_sha) != std::string::npos;
  }));
  civitai.rate_limit_lookups_next(100);
  auto again = models({"scan", "comfy", "--fetch-info", "--folder", "loras", "--json"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("rate-limited"), std::string::npos) << again.err;
  for (std::size_t i = asked; i < civitai.requests().size(); ++i)
    EXPECT_EQ(civitai.requests()[i].target.find(known_sha), std::string::npos)
        << "known.safetensors was looked up again";
}

}  // namespace
}  // namespace autopod::testing
