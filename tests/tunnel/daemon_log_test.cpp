// core's logging for detached daemons, which the tunnel daemon uses: each line is in the file
// as soon as it is logged, and the file is capped by rotation.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "core/fs.hpp"
#include "core/log.hpp"
#include "tests/harness/harness.hpp"
#include "tests/tunnel/tunnel_fixture.hpp"

namespace autopod {
namespace {

struct DaemonLog : ::testing::Test {
  testing::TempDir dir;
  std::filesystem::path file = dir / "daemon.log";
  void TearDown() override { (void)core::setup_logging("warn"); }  // this process's default
};

TEST_F(DaemonLog, EachLineIsInTheFileOnceLogged) {
  ASSERT_TRUE(core::setup_daemon_logging("info", file));
  core::logger("tunnel")->info("first line");
  core::logger("made-later")->warn("second line");  // loggers made after the setup too
  core::logger("tunnel")->debug("below the level");
  auto text = core::read_file(file);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("info [tunnel] first line"), std::string::npos) << *text;
  EXPECT_NE(text->find("warning [made-later] second line"), std::string::npos) << *text;
  EXPECT_EQ(text->find("below the level"), std::string::npos);
}

TEST_F(DaemonLog, StaysWithinItsCapAcrossRotations) {
  ASSERT_TRUE(core::setup_daemon_logging("info", file));
  std::string line(1000, 'x');
  auto log = core::logger("tunnel");
  std::size_t written = 0;
  while (written < (core::k_daemon_log_files + 2) * core::k_daemon_log_bytes) {
    log->info("{}", line);
    written += line.size();
  }
  std::uintmax_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_LE(e.file_size(), core::k_daemon_log_bytes) << e.path();
    total += e.file_size();
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "daemon.3.log"));
  EXPECT_FALSE(std::filesystem::exists(dir / "daemon.4.log"));
  EXPECT_LE(total, (core::k_daemon_log_files + 1) * core::k_daemon_log_bytes);
}

// Given a running tunnel daemon, when clients hit a target that refuses them, then its log file
// holds those lines while it runs (they used to appear only when it exited).
TEST_F(TunnelFixture, DaemonLogIsWrittenAsItHappens) {
  auto t = manager->start(spec());
  ASSERT_TRUE(t) << t.error().describe();
  target.refuse();
  for (int i = 0; i < 3; ++i) {
    auto c = sandbox::connect_tcp(t->spec.forwards[0].local_port);
    ASSERT_TRUE(c);
    char byte;
    EXPECT_LE(::recv(*c, &byte, 1, 0), 0);  // closed by the tunnel
    ::close(*c);
  }
  auto count = [&] {
    auto text = core::read_file(t->log_file);
    int n = 0;
    for (auto at = text ? text->find("pod refused forward") : std::string::npos;
         at != std::string::npos; at = text->find("pod refused forward", at + 1))
      ++n;
    return n;
  };
  // Polling the file, bounded: the daemon holds it open, so no close or rename signals a line.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (count() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(count(), 3);
  EXPECT_EQ(status_of(t->id), "active");  // still running
}

}  // namespace
}  // namespace autopod
