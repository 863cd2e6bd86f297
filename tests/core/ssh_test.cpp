// core::SshSession's exec and SFTP against the harness's real sshd on 127.0.0.1 (the "pod" is
// this machine, so what SFTP writes is checked on the local disk).

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include "core/fs.hpp"
#include "core/sftp.hpp"
#include "core/ssh_key.hpp"
#include "core/ssh_session.hpp"
#include "sandbox/sshd_harness.hpp"
#include "tests/harness/harness.hpp"

namespace autopod::testing {
namespace {

using namespace std::chrono_literals;

struct Ssh : ::testing::Test {
  TempDir dir;
  std::unique_ptr<sandbox::SshdHarness> sshd;
  std::unique_ptr<core::SshSession> session;

  void SetUp() override {
    auto started = sandbox::SshdHarness::start(dir / "sshd");
    ASSERT_TRUE(started) << started.error().describe();
    sshd = std::move(started).value();
    auto key = core::ensure_ssh_key(dir / "id_ed25519", true);
    ASSERT_TRUE(key) << key.error().describe();
    ASSERT_TRUE(sshd->authorize(key->public_key));
    core::SshTarget target;
    target.endpoint = {"127.0.0.1", sshd->port(), sshd->user(), key->private_key};
    target.known_hosts = dir / "home" / "known_hosts";
    auto s = core::SshSession::connect(target);
    ASSERT_TRUE(s) << s.error().describe();
    session = std::move(s).value();
  }
};

// Given more input than both channel windows hold (2 MiB each way), the command's stdin is fed
// while its stdout is drained, so `cat` neither stalls nor loses a byte.
TEST_F(Ssh, ExecFeedsStdinAndCollectsBothStreamsAndTheExitStatus) {
  std::string input = random_bytes(5 << 20, 1);
  auto r = core::ssh_exec(*session, "cat; echo oops >&2; exit 3", input, 30s);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->exit_status, 3);
  EXPECT_EQ(r->err, "oops\n");
  EXPECT_TRUE(r->out == input) << "got " << r->out.size() << " bytes of " << input.size();
}

TEST_F(Ssh, ExecReusesOneSessionForSeveralCommands) {
  for (int i = 0; i < 5; ++i) {
    auto r = core::ssh_exec(*session, "echo $((" + std::to_string(i) + " * 2))", "", 10s);
    ASSERT_TRUE(r) << r.error().describe();
    EXPECT_EQ(r->out, std::to_string(i * 2) + "\n");
    EXPECT_EQ(r->exit_status, 0);
  }
}

TEST_F(Ssh, ExecGivesUpAtItsTimeout) {
  auto start = std::chrono::steady_clock::now();
  auto r = core::ssh_exec(*session, "sleep 30", "", 300ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::ErrorCode::timeout) << r.error().describe();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

// Given a command started on its own channel, SFTP writes more than a channel window (2 MiB)
// on the same session meanwhile; the command sees its stdin end only at finish() and then
// reports the whole file, so both ran side by side on one session.
TEST_F(Ssh, ACommandRunsWhileSftpWritesOnTheSameSession) {
  auto sftp = core::Sftp::start(*session);
  ASSERT_TRUE(sftp);
  std::string path = (dir / "growing.bin").string();
  auto f = (*sftp)->open(path, core::SftpOpen::truncate);
  ASSERT_TRUE(f);
  auto command = core::SshCommand::start(*session, "cat >/dev/null; wc -c < '" + path + "'", 10s);
  ASSERT_TRUE(command) << command.error().describe();
  std::string data = random_bytes(6 << 20, 3);
  ASSERT_TRUE((*f)->write_at(0, data));
  f->reset();
  auto r = (*command)->finish("", 10s);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->exit_status, 0) << r->err;
  EXPECT_EQ(r->out, std::to_string(data.size()) + "\n");
  auto after = core::ssh_exec(*session, "echo still", "", 10s);  // the session stays usable
  ASSERT_TRUE(after) << after.error().describe();
  EXPECT_EQ(after->out, "still\n");
}

// A command that ends before finish() (its exit already queued) still reports its status.
TEST_F(Ssh, ACommandThatEndedEarlyStillReportsItsExit) {
  auto command = core::SshCommand::start(*session, "echo early; exit 127", 10s);
  ASSERT_TRUE(command) << command.error().describe();
  auto more = core::ssh_exec(*session, "sleep 0.2; echo between", "", 10s);
  ASSERT_TRUE(more) << more.error().describe();
  auto r = (*command)->finish("", 10s);
  ASSERT_TRUE(r) << r.error().describe();
  EXPECT_EQ(r->exit_status, 127);
  EXPECT_EQ(r->out, "early\n");
}

TEST_F(Ssh, SftpWritesAtOffsetsReadsARangeAndSyncs) {
  auto sftp = core::Sftp::start(*session);
  ASSERT_TRUE(sftp) << sftp.error().describe();
  std::string path = (dir / "f.bin").string();
  {
    auto f = (*sftp)->open(path, core::SftpOpen::write);
    ASSERT_TRUE(f) << f.error().describe();
    ASSERT_TRUE((*f)->write_at(6, "world"));
    ASSERT_TRUE((*f)->write_at(0, "hello "));
    auto st = (*f)->stat();
    ASSERT_TRUE(st);
    EXPECT_EQ(st->size, 11);
    auto fs = (*f)->fsync();  // OpenSSH offers fsync@openssh.com
    EXPECT_TRUE(fs) << fs.error().describe();
    auto part = (*f)->read_at(3, 5);
    ASSERT_TRUE(part) << part.error().describe();
    EXPECT_EQ(*part, "lo wo");
  }
  EXPECT_EQ(slurp(path), "hello world");
  {  // `write` keeps what is there; `truncate` empties it
    auto f = (*sftp)->open(path, core::SftpOpen::write);
    ASSERT_TRUE(f && (*f)->write_at(11, "!"));
  }
  EXPECT_EQ(slurp(path), "hello world!");
  auto st = (*sftp)->stat(path);
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->is_regular());
  EXPECT_EQ(st->size, 12);
  ASSERT_TRUE((*sftp)->open(path, core::SftpOpen::truncate));
  EXPECT_EQ(slurp(path), "");
}

TEST_F(Ssh, SftpRenameRefusesAnExistingTargetAndUnlinkRemoves) {
  auto sftp = core::Sftp::start(*session);
  ASSERT_TRUE(sftp);
  ASSERT_TRUE(core::write_file_atomic(dir / "a", "A", 0644));
  ASSERT_TRUE(core::write_file_atomic(dir / "b", "B", 0644));
  auto onto = (*sftp)->rename((dir / "a").string(), (dir / "b").string());
  ASSERT_FALSE(onto);
  EXPECT_EQ(onto.error().code, core::ErrorCode::io) << onto.error().describe();
  EXPECT_EQ(slurp(dir / "b"), "B");
  ASSERT_TRUE((*sftp)->rename((dir / "a").string(), (dir / "c").string()));
  EXPECT_FALSE(std::filesystem::exists(dir / "a"));
  EXPECT_EQ(slurp(dir / "c"), "A");
  auto gone = (*sftp)->stat((dir / "a").string());
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, core::ErrorCode::not_found);
  ASSERT_TRUE((*sftp)->unlink((dir / "c").string()));
  EXPECT_FALSE(std::filesystem::exists(dir / "c"));
  EXPECT_TRUE((*sftp)->unlink((dir / "c").string()));  // already gone is fine
}

TEST_F(Ssh, SftpRealpathResolvesSymlinksAndLstatSeesThem) {
  auto sftp = core::Sftp::start(*session);
  ASSERT_TRUE(sftp);
  std::filesystem::create_directory(dir / "real");
  std::filesystem::create_directory_symlink(dir / "real", dir / "link");
  auto real = (*sftp)->realpath((dir / "link").string());
  ASSERT_TRUE(real) << real.error().describe();
  EXPECT_EQ(*real, std::filesystem::canonical(dir / "real").string());
  auto l = (*sftp)->lstat((dir / "link").string());
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->is_link());
  ASSERT_TRUE((*sftp)->mkdir((dir / "real" / "sub").string()));
  EXPECT_TRUE((*sftp)->mkdir((dir / "real" / "sub").string()));  // exists: fine
  EXPECT_TRUE(std::filesystem::is_directory(dir / "real" / "sub"));
}

// A local file larger than the 4 MiB in flight, copied from an offset into a remote offset:
// every byte arrives in order, each block is seen once, progress ends at the length.
TEST_F(Ssh, SftpCopyFromSendsAFileRangeWithProgress) {
  auto sftp = core::Sftp::start(*session);
  ASSERT_TRUE(sftp);
  std::string data = random_bytes(13 << 20, 2);
  ASSERT_TRUE(core::write_file_atomic(dir / "local.bin", data, 0644));
  int fd = ::open((dir / "local.bin").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto f = (*sftp)->open((dir / "remote.bin").string(), core::SftpOpen::write);
  ASSERT_TRUE(f);
  ASSERT_TRUE((*f)->write_at(0, data.substr(0, 1000)));
  std::string seen;
  std::int64_t last = 0;
  auto copied = (*f)->copy_from(
      fd, 1000, static_cast<std::int64_t>(data.size()) - 1000, 1000,
      [&](const char* p, std::size_t n) { seen.append(p, n); },
      [&](std::int64_t done) {
        EXPECT_GE(done, last);
        last = done;
        return true;
      });
  ::close(fd);
  ASSERT_TRUE(copied) << copied.error().describe();
  f->reset();
  EXPECT_EQ(last, static_cast<std::int64_t>(data.size()) - 1000);
  EXPECT_TRUE(seen == data.substr(1000));
  EXPECT_TRUE(slurp(dir / "remote.bin") == data);
}

}  // namespace
}  // namespace autopod::testing
