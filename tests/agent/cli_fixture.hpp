#pragma once
// The fixture of the autopod binary's end-to-end tests (tests/agent/*_cli_test.cpp).

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fs.hpp"
#include "sandbox/runpod_sandbox.hpp"
#include "sandbox/sshd_harness.hpp"
#include "tests/harness/harness.hpp"

namespace autopod::testing {

using nlohmann::json;

inline const char* const k_key = "rpa_cli_test_key_0123456789";

// A fresh AUTOPOD_HOME, a RunPod sandbox whose pods' SSH is a real sshd on 127.0.0.1, and the
// environment that points the autopod binary at both.
struct Cli : ::testing::Test {
  TempDir dir;
  std::unique_ptr<sandbox::SshdHarness> sshd;
  std::unique_ptr<sandbox::RunpodSandbox> server;
  std::vector<std::string> env;

  void SetUp() override {
    auto started = sandbox::SshdHarness::start(dir / "sshd");
    ASSERT_TRUE(started) << started.error().describe();
    sshd = std::move(started).value();
    sandbox::SandboxOptions o;
    o.api_key = k_key;
    o.ssh_port = sshd->port();
    o.ssh_user = sshd->user();
    o.authorized_keys = sshd->authorized_keys();
    o.provisioning_time = std::chrono::milliseconds(30);
    o.starting_time = std::chrono::milliseconds(30);
    server = std::make_unique<sandbox::RunpodSandbox>(o);
    ASSERT_TRUE(server->start());
    env = {"AUTOPOD_HOME=" + (dir / "home").string(), "RUNPOD_API_URL=" + server->url(),
           std::string("RUNPOD_API_KEY=") + k_key, "AUTOPOD_POLL_MS=20", "AUTOPOD_PROVIDER=",
           "AUTOPOD_LOG_LEVEL="};
  }

  void TearDown() override { run_autopod({"tunnel", "stop-all"}, env); }

  core::ProcessOutput autopod(const std::vector<std::string>& args) {
    return run_autopod(args, env);
  }
  json pods_json() { return json::parse(core::read_file(dir / "home" / "pods.json").value()); }
  std::size_t requests() { return server->snapshot()["requests"].size(); }
};

#define EXPECT_RUN(result, code)                                                    \
  EXPECT_EQ((result).exit_code, code) << "stdout: " << (result).out << "\nstderr: " \
                                      << (result).err

}  // namespace autopod::testing
