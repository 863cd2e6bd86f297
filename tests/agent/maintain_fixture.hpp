#pragma once
// The fixture of `autopod maintain`'s end-to-end tests: the CLI fixture plus a ComfyUI fake
// reached through a real tunnel, a config.yaml, and maintain runs at a chosen time.

#include <ctime>
#include <fstream>
#include <string>
#include <vector>

#include "sandbox/comfy_fake.hpp"
#include "tests/agent/cli_fixture.hpp"

namespace autopod::testing {

// A TZ in which it is about 06:00 now, so that moving the clock a few hours ahead never
// crosses local midnight (which resets today's spend).
inline std::string tz_at_six() {
  std::time_t t = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  return "MNT" + std::to_string(utc.tm_hour - 6);  // POSIX: hours west of UTC
}

struct MaintainCli : Cli {
  sandbox::ComfyFake fake;
  int local_port = 0;

  void SetUp() override {
    Cli::SetUp();
    ASSERT_TRUE(fake.start());
    env.push_back("TZ=" + tz_at_six());
  }

  void config(const std::string& yaml) {
    std::filesystem::create_directories(dir / "home");
    std::ofstream(dir / "home" / "config.yaml") << yaml;
    std::filesystem::permissions(dir / "home" / "config.yaml", std::filesystem::perms(0600));
  }

  // A running pod whose ComfyUI (the fake) is reached through a tunnel that `comfy status`
  // started, as after a user's first comfy command. Returns the pod's id.
  std::string pod_with_comfyui(const std::string& name, bool with_volume = true) {
    std::vector<std::string> args = {"connect", "--name", name, "--timeout", "30"};
    if (with_volume) {
      EXPECT_RUN(autopod({"volume", "create", name + "-models", "--size", "10", "--dc", "EU-RO-1"}),
                 0);
      args.insert(args.end(), {"--volume", name + "-models"});
    }
    auto connected = autopod(args);
    EXPECT_RUN(connected, 0);
    local_port = free_port();
    EXPECT_RUN(autopod({"comfy", "status", name, "--local-port", std::to_string(local_port),
                        "--remote-port", std::to_string(fake.port())}),
               0);
    return json::parse(autopod({"info", name, "--json"}).out)["id"].get<std::string>();
  }

  // `autopod maintain --json` with the clock `minutes` ahead of now.
  core::ProcessOutput maintain(int minutes, std::vector<std::string> extra = {}) {
    auto e = env;
    e.push_back("AUTOPOD_TEST_NOW_OFFSET_S=" + std::to_string(minutes * 60));
    std::vector<std::string> args = {"maintain", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_autopod(args, e);
  }

  // The pod's line of a maintain --json report (null when absent).
  static json line_of(const core::ProcessOutput& out, const std::string& name) {
    auto j = json::parse(out.out, nullptr, false);
    if (j.is_discarded() || !j.contains("pods"))
      return nullptr;
    for (const auto& p : j["pods"])
      if (p["name"] == name)
        return p;
    return nullptr;
  }

  // The pod's status as autopod ls sees it ("" when it is gone).
  std::string status_of(const std::string& name) {
    auto ls = json::parse(autopod({"ls", "--json"}).out);
    for (const auto& p : ls["pods"])
      if (p["name"] == name)
        return p["status"];
    return "";
  }

  std::string log_text() {
    auto text = core::read_file(dir / "home" / "logs" / "maintain.log");
    return text ? *text : std::string();
  }
};

}  // namespace autopod::testing
