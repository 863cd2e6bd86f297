// autopod models: --local in this process, and the pod path through the harness sshd (the "pod"
// is this machine, its models root a temp dir), against the sandbox's storage/HF/Civitai fakes.

#include <dirent.h>

#include <atomic>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "sandbox/model_hubs.hpp"
#include "tests/agent/cli_fixture.hpp"

namespace autopod::testing {
namespace {

const std::string k_hf_token = "hf_secret_token_5c1f00d";

// Every file under `dir` whose bytes contain `needle`.
std::vector<std::string> files_containing(const std::filesystem::path& dir, const std::string& needle) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec) && slurp(it->path()).find(needle) != std::string::npos)
      out.push_back(it->path().string());
  return out;
}

// The pids whose command line contains `needle`.
std::vector<std::string> argv_containing(const std::string& needle) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (slurp(e.path() / "cmdline").find(needle) != std::string::npos) out.push_back(name);
  }
  return out;
}

struct ModelsCli : Cli {
  sandbox::StorageServer storage{sandbox::StorageOptions{0, {}, false}};  // plain URLs unsigned
  sandbox::HfFake hf{storage};
  sandbox::CivitaiFake civitai{storage};
  std::string hf_bytes = random_bytes(20 << 20, 31), civitai_bytes = random_bytes(70000, 32), url_bytes = random_bytes(5000, 33);
  std::filesystem::path manifest;

  void SetUp() override {
    Cli::SetUp();
    ASSERT_TRUE(storage.start());
    ASSERT_TRUE(hf.start());
    ASSERT_TRUE(civitai.start());
    hf.set_tokens({k_hf_token});
    hf.add_lfs_file("org/flux", "flux.safetensors", hf_bytes);
    civitai.add_version("10", "20", "LORA",
                        {sandbox::CivitaiFile{"30", "style.safetensors", "Model", true, civitai_bytes, "SafeTensor"}});
    storage.put("up.pth", url_bytes);
    manifest = dir / "models.yaml";
    std::ofstream(manifest) << "models:\n  - source: hf://org/flux/flux.safetensors\n    folder: diffusion_models\n"
                               "  - source: civitai:20\n  - source: " << storage.plain_url("up.pth")
                            << "\n    folder: upscale_models\n";
    env.insert(env.end(), {"HF_ENDPOINT=" + hf.url(), "CIVITAI_ENDPOINT=" + civitai.url(), "HF_TOKEN=" + k_hf_token});
  }
};

TEST_F(ModelsCli, LocalSyncPlacesEveryFileAndTheSecondRunIsUpToDate) {
  auto root = dir / "local-models";
  auto dry = autopod({"models", "sync", manifest.string(), "--local", root.string(), "--dry-run"});
  EXPECT_RUN(dry, 0);
  EXPECT_NE(dry.out.find("download"), std::string::npos) << dry.out;
  EXPECT_FALSE(std::filesystem::exists(root / "loras"));  // --dry-run changes nothing
  EXPECT_RUN(autopod({"models", "sync", manifest.string(), "--local", root.string()}), 0);
  EXPECT_TRUE(slurp(root / "diffusion_models/flux.safetensors") == hf_bytes) << "diffusion_models/flux.safetensors";
  EXPECT_TRUE(slurp(root / "loras/style.safetensors") == civitai_bytes) << "loras/style.safetensors";
  EXPECT_TRUE(slurp(root / "upscale_models/up.pth") == url_bytes) << "upscale_models/up.pth";
  auto sent = storage.bytes_sent();
  auto again = autopod({"models", "sync", manifest.string(), "--local", root.string()});
  EXPECT_RUN(again, 0);
  EXPECT_NE(again.out.find("up to date"), std::string::npos) << again.out;
  EXPECT_EQ(storage.bytes_sent(), sent);
  auto tasks = autopod({"models", "tasks", "--json"});
  EXPECT_RUN(tasks, 0);
  int done = 0;
  std::istringstream lines(tasks.out);
  for (std::string line; std::getline(lines, line);) done += json::parse(line).value("state", "") == "done";
  EXPECT_EQ(done, 3) << tasks.out;
  EXPECT_EQ(storage.authorization_seen(), 0);
  EXPECT_TRUE(files_containing(dir / "home", k_hf_token).empty());
}

TEST_F(ModelsCli, PullRefusesANameThatEscapesTheModelsRoot) {
  auto r = autopod({"models", "pull", storage.plain_url("up.pth"), "--local", (dir / "m").string(),
                    "--folder", "checkpoints", "--name", "../../evil.pth"});
  EXPECT_RUN(r, 2);
  EXPECT_EQ(storage.bytes_sent(), 0);
}

// The downloads run on the pod (through sshd), detached; the token stays on this side: never in
// any argv, log or state file, and the storage fake never sees an Authorization header.
TEST_F(ModelsCli, PodSyncRunsOverSshWithoutTheTokenInArgvOrFiles) {
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  auto root = dir / "pod-models";
  storage.set_rate(8 << 20);  // per connection: the download lasts long enough to be watched
  std::atomic<bool> running{true};
  std::vector<std::string> leaked;
  std::thread scan([&] {
    while (running) {
      for (auto& pid : argv_containing(k_hf_token)) leaked.push_back(pid);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  auto r = autopod({"models", "sync", manifest.string(), "comfy", "--models-root", root.string()});
  running = false;
  scan.join();
  EXPECT_RUN(r, 0);
  EXPECT_TRUE(leaked.empty()) << "token in the argv of pid " << leaked.front();
  EXPECT_TRUE(slurp(root / "diffusion_models/flux.safetensors") == hf_bytes) << "diffusion_models/flux.safetensors";
  EXPECT_TRUE(slurp(root / "loras/style.safetensors") == civitai_bytes) << "loras/style.safetensors";
  EXPECT_TRUE(slurp(root / "upscale_models/up.pth") == url_bytes) << "upscale_models/up.pth";
  EXPECT_EQ(storage.authorization_seen(), 0);
  EXPECT_TRUE(files_containing(root, k_hf_token).empty());
  EXPECT_TRUE(files_containing(dir / "home", k_hf_token).empty());
  // The sync used the pod: `autopod maintain` must not take it for idle.
  auto id = json::parse(autopod({"info", "comfy", "--json"}).out)["id"].get<std::string>();
  auto activity = json::parse(*core::read_file(dir / "home" / "activity.json"));
  EXPECT_TRUE(activity["pods"].contains(id)) << activity.dump();
  auto sent = storage.bytes_sent();
  auto again = autopod({"models", "sync", manifest.string(), "comfy", "--models-root", root.string()});
  EXPECT_RUN(again, 0);
  EXPECT_NE(again.out.find("up to date"), std::string::npos) << again.out;
  EXPECT_EQ(storage.bytes_sent(), sent);
  auto tasks = autopod({"models", "tasks"});
  EXPECT_RUN(tasks, 0);
  EXPECT_NE(tasks.out.find("comfy"), std::string::npos) << tasks.out;
  EXPECT_NE(tasks.out.find("done"), std::string::npos) << tasks.out;
}

// --for on a committed editor-format workflow: what the manifest places by the same folder and
// name, plus what the workflow's embedded list gives a url for, and nothing else; the file
// nothing resolves is listed with its folder and makes exit 3, until it is placed by hand.
TEST_F(ModelsCli, SyncForAnEditorWorkflowPlacesWhatItNeedsAndListsWhatNothingResolves) {
  std::string clip_bytes = random_bytes(3000, 34), vae_bytes = random_bytes(4000, 35);
  hf.add_lfs_file("comfyanonymous/flux_text_encoders", "clip_l.safetensors", clip_bytes);
  hf.add_lfs_file("org/vae", "ae.safetensors", vae_bytes);
  auto m = dir / "for.yaml";
  std::ofstream(m) << "models:\n"
                      "  - source: hf://org/flux/flux.safetensors\n    folder: diffusion_models\n    name: flux1-schnell.safetensors\n"
                      "  - source: civitai:20\n"
                      "  - source: " << storage.plain_url("up.pth") << "\n    folder: upscale_models\n    name: 4x-UltraSharp.pth\n"
                      "  - source: hf://org/vae/ae.safetensors\n    folder: vae\n"
                      "  - source: hf://org/flux/flux.safetensors\n    folder: checkpoints\n    name: unrelated.safetensors\n";
  std::string flow = std::string(AUTOPOD_TEST_DATA_DIR) + "/workflows/flux_lora_models_editor.json";
  auto root = dir / "for-models";
  auto r = autopod({"models", "sync", "--for", flow, "--manifest", m.string(), "--local", root.string()});
  EXPECT_RUN(r, 3);
  EXPECT_NE(r.err.find("missing: text_encoders/t5xxl_fp8_e4m3fn.safetensors"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("node 2 DualCLIPLoader.clip_name2"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("muted-lora"), std::string::npos) << r.err;
  EXPECT_TRUE(slurp(root / "diffusion_models/flux1-schnell.safetensors") == hf_bytes);
  EXPECT_TRUE(slurp(root / "loras/style.safetensors") == civitai_bytes);
  EXPECT_TRUE(slurp(root / "upscale_models/4x-UltraSharp.pth") == url_bytes);
  EXPECT_TRUE(slurp(root / "vae/ae.safetensors") == vae_bytes);
  EXPECT_TRUE(slurp(root / "text_encoders/clip_l.safetensors") == clip_bytes);  // the embedded url
  EXPECT_FALSE(std::filesystem::exists(root / "checkpoints"));                  // not needed

  std::ofstream(root / "text_encoders/t5xxl_fp8_e4m3fn.safetensors") << "placed by hand";
  auto sent = storage.bytes_sent();
  auto again = autopod({"models", "sync", "--for", flow, "--manifest", m.string(), "--local", root.string()});
  EXPECT_RUN(again, 0);
  EXPECT_NE(again.out.find("up to date (5 files)"), std::string::npos) << again.out;
  EXPECT_NE(again.err.find("present (placed by hand): text_encoders/t5xxl_fp8_e4m3fn.safetensors"), std::string::npos)
      << again.err;
  EXPECT_EQ(storage.bytes_sent(), sent);
}

// --for on an API-format workflow, onto the pod over ssh: the one positional is the pod.
TEST_F(ModelsCli, SyncForAnApiWorkflowOntoThePod) {
  EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
  auto m = dir / "api.yaml";
  std::ofstream(m) << "models:\n  - source: " << storage.plain_url("up.pth")
                   << "\n    folder: checkpoints\n    name: v1-5-pruned-emaonly.safetensors\n";
  std::string flow = std::string(AUTOPOD_TEST_DATA_DIR) + "/workflows/txt2img_api.json";
  auto root = dir / "pod-models";
  auto r = autopod({"models", "sync", "--for", flow, "comfy", "--manifest", m.string(), "--models-root", root.string()});
  EXPECT_RUN(r, 0);
  EXPECT_TRUE(slurp(root / "checkpoints/v1-5-pruned-emaonly.safetensors") == url_bytes);
  auto bad = autopod({"models", "sync", "--for", flow, "comfy", "--manifest", m.string(), "--prune"});
  EXPECT_RUN(bad, 2);
  EXPECT_NE(bad.err.find("--prune cannot go with --for"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace autopod::testing
