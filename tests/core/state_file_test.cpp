#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fs.hpp"
#include "core/state_file.hpp"
#include "tests/harness/harness.hpp"

namespace autopod {
namespace {

using nlohmann::json;

TEST(StateFile, MissingFileReadsAsEmptyVersionedDocument) {
  testing::TempDir dir;
  core::StateFile file(dir / "pods.json");
  auto doc = file.read();
  ASSERT_TRUE(doc) << doc.error().message;
  EXPECT_EQ((*doc)["version"], core::StateFile::k_state_version);
  EXPECT_FALSE(std::filesystem::exists(dir / "pods.json"));
}

TEST(StateFile, UpdateWritesPrivateFileAndLeavesNoTempBehind) {
  testing::TempDir dir;
  core::StateFile file(dir / "pods.json");
  ASSERT_TRUE(file.update([](json& d) -> core::Status {
    d["pods"]["a"] = 1;
    return {};
  }));
  EXPECT_EQ(core::file_mode(dir / "pods.json"), 0600);
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 2);  // pods.json and pods.json.lock
  EXPECT_EQ(file.read().value()["pods"]["a"], 1);
}

TEST(StateFile, UnchangedUpdateDoesNotRewrite) {
  testing::TempDir dir;
  core::StateFile file(dir / "s.json");
  ASSERT_TRUE(file.update([](json& d) -> core::Status {
    d["x"] = 1;
    return {};
  }));
  struct stat before {};
  ::stat((dir / "s.json").c_str(), &before);
  ASSERT_TRUE(file.update([](json& d) -> core::Status {
    d["x"] = 1;
    return {};
  }));
  struct stat after {};
  ::stat((dir / "s.json").c_str(), &after);
  EXPECT_EQ(before.st_ino, after.st_ino);  // a rewrite would have renamed a new inode in
}

TEST(StateFile, CorruptFileIsReportedAndNeverOverwritten) {
  testing::TempDir dir;
  auto path = dir / "pods.json";
  ASSERT_TRUE(core::write_file_atomic(path, "{\"pods\": [trunc", 0600));
  core::StateFile file(path);
  auto r = file.read();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::ErrorCode::protocol);
  EXPECT_NE(r.error().message.find("pods.json"), std::string::npos);
  auto u = file.update([](json& d) -> core::Status {
    d["pods"] = json::object();
    return {};
  });
  EXPECT_FALSE(u);
  EXPECT_EQ(core::read_file(path).value(), "{\"pods\": [trunc");
}

TEST(StateFile, FailedMutationLeavesFileAsItWas) {
  testing::TempDir dir;
  core::StateFile file(dir / "s.json");
  ASSERT_TRUE(file.update([](json& d) -> core::Status {
    d["keep"] = true;
    return {};
  }));
  auto r = file.update([](json& d) -> core::Status {
    d["keep"] = false;
    return core::fail(core::ErrorCode::invalid_argument, "changed my mind");
  });
  EXPECT_FALSE(r);
  EXPECT_EQ(file.read().value()["keep"], true);
}

// Given 50 processes that each add their own key at once, when all are done, then the file
// parses and holds all 50 keys.
TEST(StateFile, FiftyConcurrentProcessesLoseNothing) {
  testing::TempDir dir;
  auto path = dir / "pods.json";
  constexpr int k_writers = 50;
  std::vector<pid_t> children;
  for (int i = 0; i < k_writers; ++i) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      core::StateFile file(path);
      for (int round = 0; round < 3; ++round) {
        auto r = file.update([&](json& d) -> core::Status {
          d["pods"]["p" + std::to_string(i)] = round;
          return {};
        });
        if (!r) ::_exit(1);
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto doc = core::StateFile(path).read();
  ASSERT_TRUE(doc) << doc.error().message;
  EXPECT_EQ((*doc)["pods"].size(), static_cast<std::size_t>(k_writers));
  for (int i = 0; i < k_writers; ++i) EXPECT_EQ((*doc)["pods"]["p" + std::to_string(i)], 2);
}

TEST(WriteFileAtomic, ReplacesContentWithRequestedMode) {
  testing::TempDir dir;
  auto path = dir / "secret";
  ASSERT_TRUE(core::write_file_atomic(path, "one", 0644));
  ASSERT_TRUE(core::write_file_atomic(path, "two", 0600));
  EXPECT_EQ(core::read_file(path).value(), "two");
  EXPECT_EQ(core::file_mode(path), 0600);
}

TEST(WriteFileAtomic, FailsCleanlyInAMissingDirectory) {
  testing::TempDir dir;
  auto r = core::write_file_atomic(dir / "nope" / "file", "x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::ErrorCode::io);
}

}  // namespace
}  // namespace autopod
