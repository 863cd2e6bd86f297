// autopod-sandbox: a RunPod REST v2 look-alike on loopback, optionally with a real sshd as
// every pod's SSH endpoint. For the README's main-job run and for trying autopod offline.

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "core/fs.hpp"
#include "sandbox/comfy_fake.hpp"
#include "sandbox/model_hubs.hpp"
#include "sandbox/runpod_sandbox.hpp"
#include "sandbox/sshd_harness.hpp"
#include "sandbox/synthetic_models.hpp"

namespace {

// A whole safetensors file holding `tensors` (its data zeros).
std::string model_bytes(const std::vector<autopod::sandbox::SynthTensor>& tensors) {
  std::string header = autopod::sandbox::safetensors_header(tensors);
  std::string bytes(autopod::sandbox::safetensors_size(tensors, header), '\0');
  return bytes.replace(0, header.size(), header);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace autopod;
  CLI::App app{"RunPod REST v2 sandbox on 127.0.0.1 (pods, volumes, catalog, fault injection)"};
  int port = 0;
  std::string sshd_dir;
  int provisioning_ms = 300, starting_ms = 300;
  app.add_option("--port", port, "port to listen on (0: any free port)");
  app.add_option("--sshd-dir", sshd_dir,
                 "start a private sshd with its files here and point pods' SSH at it");
  app.add_option("--provisioning-ms", provisioning_ms, "time a pod spends PROVISIONING");
  app.add_option("--starting-ms", starting_ms, "time a pod spends STARTING");
  bool with_comfy = false;
  int comfy_step_ms = 20;
  app.add_flag("--comfy", with_comfy, "also run a ComfyUI fake, as if on the pod (its port is printed)");
  app.add_option("--comfy-step-ms", comfy_step_ms, "time the fake's samplers take per step (default 20)");
  int flaky_status = 0;
  app.add_option("--flaky", flaky_status,
                 "every other API request answers this status and does nothing (503, or 502 "
                 "with an HTML gateway page)");
  bool with_hubs = false;
  app.add_flag("--model-hubs", with_hubs,
               "also run the storage, Hugging Face and Civitai fakes with a few small demo models "
               "(hf://demo/sd-vae/sd-vae.safetensors, civitai:20, STORAGE/o/upscaler.pth; URLs printed)");
  CLI11_PARSE(app, argc, argv);

  // The sandbox accepts any bearer token unless AUTOPOD_SANDBOX_KEY says which (kept out of argv).
  sandbox::SandboxOptions options;
  if (const char* key = std::getenv("AUTOPOD_SANDBOX_KEY")) options.api_key = key;
  options.provisioning_time = std::chrono::milliseconds(provisioning_ms);
  options.starting_time = std::chrono::milliseconds(starting_ms);

  std::unique_ptr<sandbox::SshdHarness> sshd;
  if (!sshd_dir.empty()) {
    auto started = sandbox::SshdHarness::start(sshd_dir);
    if (!started) {
      std::cerr << started.error().describe() << "\n";
      return 1;
    }
    sshd = std::move(started).value();
    options.ssh_port = sshd->port();
    options.ssh_user = sshd->user();
    options.authorized_keys = sshd->authorized_keys();
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // server threads inherit the mask

  sandbox::RunpodSandbox server(options);
  if (auto st = server.start("127.0.0.1", port); !st) {
    std::cerr << st.error().describe() << "\n";
    return 1;
  }
  if (flaky_status > 0) {
    sandbox::Fault flaky;
    flaky.path = "/v2/";
    flaky.kind = "every_other";
    flaky.status = flaky_status;
    flaky.count = 1 << 30;
    server.add_fault(flaky);
  }
  sandbox::ComfyFake comfy;
  if (with_comfy) {
    comfy.set_step_delay(std::chrono::milliseconds(comfy_step_ms));
    if (auto st = comfy.start(); !st) {
      std::cerr << st.error().describe() << "\n";
      return 1;
    }
  }
  sandbox::StorageOptions storage_options;
  storage_options.require_signature = false;  // plain URLs are served as a plain web server would
  sandbox::StorageServer storage(storage_options);
  sandbox::HfFake hf(storage);
  sandbox::CivitaiFake civitai(storage);
  if (with_hubs) {
    for (auto st : {storage.start(), hf.start(), civitai.start()})
      if (!st) {
        std::cerr << st.error().describe() << "\n";
        return 1;
      }
    // Real safetensors (header + zero data) that `models ls` recognises: an SD VAE and a LoRA.
    auto vae = sandbox::vae(4);
    for (int i = 1; i <= 2; ++i)  // 9.4 MB each, so the download shows progress
      vae.push_back(
          {"decoder.mid.block_" + std::to_string(i) + ".conv1.weight", {512, 512, 3, 3}, "F32"});
    hf.add_lfs_file("demo/sd-vae", "sd-vae.safetensors", model_bytes(vae));
    auto lora = sandbox::kohya_lora("down_blocks_1_attentions_0_transformer_blocks_0", 768, "lora_te_");
    civitai.add_version("10", "20", "LORA",
                        {sandbox::CivitaiFile{"30", "demo-style.safetensors", "Model", true,
                                              model_bytes(lora), "SafeTensor"}});
    storage.put("upscaler.pth", std::string(1 << 20, 'u'));
  }
  std::cout << server.url();
  if (sshd) std::cout << " sshd=127.0.0.1:" << sshd->port();
  if (with_comfy) std::cout << " comfy=127.0.0.1:" << comfy.port();
  if (with_hubs) std::cout << " hf=" << hf.url() << " civitai=" << civitai.url() << " storage=" << storage.url();
  std::cout << std::endl;  // the readiness line scripts wait for
  int sig = 0;
  sigwait(&signals, &sig);
  server.stop();
  return 0;
}
