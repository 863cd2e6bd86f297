// comfy run's two benchmark figures, against the issue's targets:
// 1. The event path: 10,000 `progress` frames as ComfyUI sends them, each parsed, applied to the
//    run's state and shown by the plain (non-terminal) display into /dev/null. CPU time per event
//    (target <= 5 us) and resident memory after 1,000 and after 10,000 events (target: no growth).
//    The same for the pair real servers send per step (progress_state, then progress), for scale.
// 2. 100 runs queued at once and followed on one WebSocket against the ComfyUI fake: the time
//    from the fake sending each run's execution_success to that run's outputs being on disk
//    (target: median < 50 ms).

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "comfy/events.hpp"
#include "comfy/run.hpp"
#include "sandbox/comfy_fake.hpp"

namespace {

using autopod::comfy::Event;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double cpu_us() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

long status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::string(field).size()));
  return -1;
}

struct PathFigures {
  double us_per_event;
  long rss_after_1k, rss_after_all, hwm;
  long heap_after_1k, heap_after_all;  // bytes malloc has handed out and not had back
};

PathFigures event_path(const std::vector<std::string>& frames) {
  autopod::comfy::RunState run;
  run.prompt_id = "4f6c5a1e-3b2d-4c8e-9a7f-0d1e2f3a4b5c";
  for (const char* id : {"3", "4", "5", "6", "7", "8", "9"}) run.nodes[id] = {"KSampler", "KSampler"};
  run.outcome = autopod::comfy::Outcome::running;
  run.current = "3";
  std::FILE* devnull = std::fopen("/dev/null", "w");
  auto display = autopod::comfy::make_display(autopod::comfy::DisplayKind::plain, devnull);
  auto feed = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; ++i) {
      auto e = autopod::comfy::parse_text_frame(frames[i]);
      if (!e) std::abort();
      autopod::comfy::apply(run, *e, Clock::now());
      display->event(run, *e);
    }
  };
  feed(0, 1000);  // warm-up, and the first memory reading
  long rss_1k = status_kib("VmRSS:");
  long heap_1k = static_cast<long>(mallinfo2().uordblks);
  double t0 = cpu_us();
  feed(1000, frames.size());
  double t1 = cpu_us();
  long rss_all = status_kib("VmRSS:");
  long heap_all = static_cast<long>(mallinfo2().uordblks);
  std::fclose(devnull);
  return {(t1 - t0) / static_cast<double>(frames.size() - 1000), rss_1k, rss_all, status_kib("VmHWM:"),
          heap_1k, heap_all};
}

}  // namespace

int main() {
  const std::string id = "4f6c5a1e-3b2d-4c8e-9a7f-0d1e2f3a4b5c";
  constexpr int k_events = 10000;
  std::vector<std::string> progress, pairs;
  for (int i = 0; i < k_events; ++i) {
    int value = i % 20 + 1;
    json p = {{"type", "progress"}, {"data", {{"value", value}, {"max", 20}, {"prompt_id", id}, {"node", "3"}}}};
    progress.push_back(p.dump());
    if (i % 2 == 0) {
      json ps = {{"type", "progress_state"},
                 {"data", {{"prompt_id", id},
                           {"nodes", {{"3", {{"value", value}, {"max", 20}, {"state", "running"}, {"node_id", "3"},
                                             {"prompt_id", id}, {"display_node_id", "3"},
                                             {"parent_node_id", nullptr}, {"real_node_id", "3"}}}}}}}};
      pairs.push_back(ps.dump());
    } else {
      pairs.push_back(p.dump());
    }
  }
  auto a = event_path(progress);
  auto b = event_path(pairs);
  std::printf("event path, %d progress frames (parse, state update, plain display):\n", k_events);
  std::printf("  cpu per event          %6.2f us   (target <= 5 us: %.2fx of the limit)\n", a.us_per_event,
              a.us_per_event / 5.0);
  std::printf("  rss after 1,000        %6ld KiB\n  rss after 10,000       %6ld KiB   (growth %ld KiB; target 0)\n",
              a.rss_after_1k, a.rss_after_all, a.rss_after_all - a.rss_after_1k);
  std::printf("  heap in use: %ld bytes after 1,000, %ld after 10,000 (growth %ld bytes; target 0)\n",
              a.heap_after_1k, a.heap_after_all, a.heap_after_all - a.heap_after_1k);
  std::printf("  peak rss (process)     %6ld KiB\n", a.hwm);
  std::printf("  as real servers send it (progress_state + progress per step): %.2f us per frame, growth %ld KiB\n",
              b.us_per_event, b.rss_after_all - b.rss_after_1k);

  // 100 queued runs on one WebSocket.
  autopod::sandbox::ComfyFake fake;
  if (!fake.start()) return 1;
  autopod::comfy::RunRequest req;
  // A txt2img graph with one sampler step: its seed differs per run, so no run is a cached rerun.
  req.prompt = json::parse(R"({
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 1, "cfg": 8, "sampler_name": "euler",
          "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["6", 0],
          "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "bench", "images": ["8", 0]}}})");
  req.options.count = 100;
  char dir[] = "/tmp/autopod-bench-XXXXXX";
  req.options.out_dir = ::mkdtemp(dir);
  std::mutex m;
  std::map<std::string, Clock::time_point> saved;
  autopod::comfy::RunHooks hooks;
  hooks.on_outputs_saved = [&](const std::string& pid) {
    std::lock_guard lock(m);
    saved[pid] = Clock::now();
  };
  std::FILE* devnull = std::fopen("/dev/null", "w");
  auto display = autopod::comfy::make_display(autopod::comfy::DisplayKind::plain, devnull);
  auto t0 = Clock::now();
  auto client = autopod::comfy::ComfyClient::connect(fake.url(), autopod::core::make_curl_transport,
                                                     autopod::core::system_clock());
  auto results = autopod::comfy::run_workflow(*client, req, *display, hooks);
  auto total = Clock::now() - t0;
  std::fclose(devnull);
  if (!results) {
    std::fprintf(stderr, "%s\n", results.error().describe().c_str());
    return 1;
  }
  auto success = fake.success_times();
  std::vector<double> ms;
  int ok = 0;
  for (const auto& r : *results) {
    if (r.state.outcome == autopod::comfy::Outcome::success && !r.files.empty()) ++ok;
    auto s = success.find(r.state.prompt_id);
    auto d = saved.find(r.state.prompt_id);
    if (s != success.end() && d != saved.end())
      ms.push_back(std::chrono::duration<double, std::milli>(d->second - s->second).count());
  }
  std::sort(ms.begin(), ms.end());
  if (ms.empty()) return 1;
  auto pct = [&](double p) { return ms[static_cast<std::size_t>(p * static_cast<double>(ms.size() - 1))]; };
  std::printf("\n100 queued runs on one WebSocket: %d succeeded with outputs, %.0f ms in all\n", ok,
              std::chrono::duration<double, std::milli>(total).count());
  std::printf("  execution_success -> outputs on disk: median %.2f ms (target < 50 ms: %.2fx of the limit), "
              "p90 %.2f ms, max %.2f ms\n",
              pct(0.5), pct(0.5) / 50.0, pct(0.9), ms.back());
  std::error_code ec;
  std::filesystem::remove_all(req.options.out_dir, ec);
  // Memory: the heap must not grow; resident pages may move by a page as stdio and the allocator settle.
  bool pass = a.us_per_event <= 5.0 && a.heap_after_all - a.heap_after_1k <= 0 && pct(0.5) < 50.0 && ok == 100;
  std::printf("\n%s\n", pass ? "all targets met" : "TARGET MISSED");
  return pass ? 0 : 1;
}
