// autopod models push: this machine's file onto the pod's models root over SFTP, through the
// harness sshd (the "pod" is this machine, its models root a temp dir).

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "models/models.hpp"
#include "models/push.hpp"
#include "tests/agent/cli_fixture.hpp"

namespace autopod::testing {
namespace {

// Every process under `root` in the process tree, deepest first.
std::vector<pid_t> descendants(pid_t root) {
  std::vector<pid_t> out;
  for (pid_t child : children_of(root)) {
    for (pid_t d : descendants(child))
      out.push_back(d);
    out.push_back(child);
  }
  return out;
}

// Waits (inotify, no polling) until `file` in `dir` holds at least `bytes`, at most 60 s.
bool wait_for_size(const std::filesystem::path& dir,
                   const std::filesystem::path& file,
                   std::uintmax_t bytes) {
  int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (::inotify_add_watch(fd, dir.c_str(), IN_MODIFY | IN_CREATE) < 0) {
    ::close(fd);
    return false;  // the directory must exist: nothing would ever wake the wait
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool reached = false;
  while (!reached && std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (std::filesystem::file_size(file, ec) >= bytes && !ec)
      reached = true;
    else {
      pollfd p{fd, POLLIN, 0};
      ::poll(&p, 1, 1000);
      char buf[4096];
      while (::read(fd, buf, sizeof buf) > 0) {
      }
    }
  }
  ::close(fd);
  return reached;
}

struct PushCli : Cli {
  std::filesystem::path root, local;
  std::string data;

  void SetUp() override {
    Cli::SetUp();
    EXPECT_RUN(autopod({"connect", "--name", "comfy", "--timeout", "30"}), 0);
    root = dir / "pod-models";
    std::filesystem::create_directories(root);
    local = dir / "mine.safetensors";
  }
  void write_local(std::size_t n) {
    data = random_bytes(n, 7);
    std::ofstream(local, std::ios::binary) << data;
  }
  core::ProcessOutput push(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"models",   "push",  local.string(),  "comfy",
                                     "--folder", "loras", "--models-root", root.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return autopod(args);
  }
  std::filesystem::path partial() const {
    return root / "loras" /
           models::push_partial_name(local.filename().string(),
                                     static_cast<std::int64_t>(data.size()));
  }
};

TEST_F(PushCli, PlacesTheFileWithItsRecordAndASecondPushSendsNothing) {
  write_local(3 << 20);
  auto r = push();
  EXPECT_RUN(r, 0);
  auto placed = root / "loras" / "mine.safetensors";
  EXPECT_EQ(r.out, std::filesystem::canonical(placed).string() + "\n");
  EXPECT_TRUE(slurp(placed) == data);
  EXPECT_NE(r.err.find("sent 100%"), std::string::npos) << r.err;  // plain progress lines
  auto record = models::read_record(placed);
  ASSERT_TRUE(record) << record.error().describe();
  EXPECT_EQ(record->sha256, models::sha256_file(local).value());
  EXPECT_EQ(record->source, "push:mine.safetensors");
  EXPECT_EQ(record->size, static_cast<std::int64_t>(data.size()));
  auto listing = models::list_root(root);  // the record matches the file as sync reads it
  ASSERT_EQ(listing.placed.size(), 1u);
  EXPECT_EQ(listing.placed[0].mtime_ns, record->mtime_ns);
  EXPECT_FALSE(std::filesystem::exists(partial()));

  // A pushed file has no source to fetch it again: sync --prune leaves it alone.
  auto manifest = dir / "empty.yaml";
  std::ofstream(manifest) << "models: []\n";
  auto prune = autopod({"models", "sync", manifest.string(), "--local", root.string(), "--prune"});
  EXPECT_RUN(prune, 0);
  EXPECT_TRUE(std::filesystem::exists(placed)) << prune.out;

  auto again = push({"--json"});
  EXPECT_RUN(again, 0);
  auto j = json::parse(again.out);
  EXPECT_TRUE(j["already_there"].get<bool>()) << again.out;
  EXPECT_EQ(j["sha256"], record->sha256);
}

// Given a cut connection (every sshd process of the session killed) halfway, the partial file
// stays; the next push keeps what arrived, sends the rest and verifies the whole.
TEST_F(PushCli, ACutConnectionResumesAndVerifies) {
  write_local(256u << 20);
  std::filesystem::create_directories(root / "loras");  // watched before the push starts
  core::ProcessOutput first;
  std::thread pushing([&] { first = push(); });
  bool reached = wait_for_size(root / "loras", partial(), 4u << 20);
  for (pid_t p : descendants(sshd->pid()))
    ::kill(p, SIGKILL);
  pushing.join();
  ASSERT_TRUE(reached) << first.err;
  EXPECT_NE(first.exit_code, 0) << first.err;
  EXPECT_NE(first.err.find("resumes"), std::string::npos) << first.err;
  auto kept = std::filesystem::file_size(partial());
  EXPECT_GT(kept, 0u);
  EXPECT_LT(kept, data.size());
  EXPECT_FALSE(std::filesystem::exists(root / "loras" / "mine.safetensors"));

  auto second = push({"--json"});
  EXPECT_RUN(second, 0);
  auto j = json::parse(second.out);
  EXPECT_GT(j["resumed_from"].get<std::int64_t>(), 0) << second.out;
  EXPECT_FALSE(j["restarted"].get<bool>());
  EXPECT_NE(second.err.find("resuming at"), std::string::npos) << second.err;
  EXPECT_TRUE(slurp(root / "loras" / "mine.safetensors") == data);
  EXPECT_FALSE(std::filesystem::exists(partial()));
}

// The pod hashes while the bytes arrive: once part of the file is there, a pod-side process is
// already reading the partial file (before, python3 ran only after the last byte).
TEST_F(PushCli, ThePodHashesThePartialFileWhileItIsSent) {
  write_local(256u << 20);
  std::filesystem::create_directories(root / "loras");
  core::ProcessOutput pushed;
  std::thread pushing([&] { pushed = push(); });
  bool reached = wait_for_size(root / "loras", partial(), 4u << 20);
  bool following = false;
  for (pid_t p : descendants(sshd->pid())) {
    auto cmdline = core::read_file("/proc/" + std::to_string(p) + "/cmdline");
    following |= cmdline && cmdline->find("python3") != std::string::npos &&
                 cmdline->find(partial().filename().string()) != std::string::npos;
  }
  std::error_code ec;
  auto size_then = std::filesystem::file_size(partial(), ec);
  pushing.join();
  ASSERT_TRUE(reached) << pushed.err;
  EXPECT_RUN(pushed, 0);
  EXPECT_TRUE(following) << "no pod-side hasher while " << size_then << " bytes were there";
  EXPECT_LT(size_then, data.size());
  EXPECT_TRUE(slurp(root / "loras" / "mine.safetensors") == data);
}

TEST_F(PushCli, APartialFileWithTheRightBytesIsResumed) {
  write_local(5 << 20);
  std::filesystem::create_directories(root / "loras");
  std::ofstream(partial(), std::ios::binary) << data.substr(0, 1 << 20);
  auto r = push({"--json"});
  EXPECT_RUN(r, 0);
  EXPECT_EQ(json::parse(r.out)["resumed_from"], 1 << 20) << r.out;
  EXPECT_TRUE(slurp(root / "loras" / "mine.safetensors") == data);
}

TEST_F(PushCli, APartialFileWithWrongBytesIsSentAgain) {
  write_local(5 << 20);
  std::filesystem::create_directories(root / "loras");
  std::string wrong = data.substr(0, 1 << 20);
  wrong[4242] ^= 1;
  std::ofstream(partial(), std::ios::binary) << wrong;
  auto r = push({"--json"});
  EXPECT_RUN(r, 0);
  auto j = json::parse(r.out);
  EXPECT_EQ(j["resumed_from"], 0) << r.out;
  EXPECT_TRUE(j["restarted"].get<bool>());
  EXPECT_NE(r.err.find("other bytes"), std::string::npos) << r.err;
  EXPECT_TRUE(slurp(root / "loras" / "mine.safetensors") == data);
}

TEST_F(PushCli, RefusesPathsThatEscapeTheModelsRoot) {
  write_local(4096);
  EXPECT_RUN(push({"--name", "../../evil.safetensors"}), 2);
  EXPECT_RUN(autopod({"models", "push", local.string(), "comfy", "--folder", "../..",
                      "--models-root", root.string()}),
             2);
  // A folder that is a symlink out of the root on the pod is refused before a byte is sent.
  auto outside = dir / "outside";
  std::filesystem::create_directories(outside);
  std::filesystem::create_directory_symlink(outside, root / "loras");
  auto r = push();
  EXPECT_RUN(r, 2);
  EXPECT_NE(r.err.find("outside the models root"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(outside));
  EXPECT_FALSE(std::filesystem::exists(dir / "evil.safetensors"));
}

// As for sync: a folder may be a symlink to another folder of the same models root.
TEST_F(PushCli, AFolderLinkedInsideTheRootIsFollowed) {
  write_local(4096);
  std::filesystem::create_directories(root / "shared-loras");
  std::filesystem::create_directory_symlink(root / "shared-loras", root / "loras");
  auto r = push();
  EXPECT_RUN(r, 0);
  EXPECT_TRUE(slurp(root / "shared-loras" / "mine.safetensors") == data);
  EXPECT_TRUE(std::filesystem::exists(root / "shared-loras" / "mine.safetensors.autopod.json"));
}

TEST_F(PushCli, ADifferentFileUnderTheNameIsNotReplaced) {
  write_local(4096);
  std::filesystem::create_directories(root / "loras");
  std::ofstream(root / "loras" / "mine.safetensors", std::ios::binary) << random_bytes(4096, 99);
  auto r = push();
  EXPECT_RUN(r, 1);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(root / "loras" / "mine.safetensors"), random_bytes(4096, 99));
}

// The pod path pins host keys as tunnels do: a changed key stops push and sync before a byte.
TEST_F(PushCli, AChangedHostKeyIsRefusedByPushAndSync) {
  write_local(4096);
  auto fake = core::run_capture(
      {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", (dir / "fake_host").string()});
  ASSERT_TRUE(fake && fake->exit_code == 0);
  auto pub = core::read_file(dir / "fake_host.pub");
  ASSERT_TRUE(core::write_file_atomic(
      dir / "home" / "known_hosts",
      "[127.0.0.1]:" + std::to_string(sshd->port()) + " " + pub->substr(0, pub->rfind(' ')) + "\n",
      0600));
  auto r = push();
  EXPECT_RUN(r, 4);
  EXPECT_NE(r.err.find("host key changed"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(root / "loras"));
  auto manifest = dir / "m.yaml";
  std::ofstream(manifest)
      << "models:\n  - source: https://example.org/a.pth\n    folder: upscale_models\n";
  auto sync = autopod(
      {"models", "sync", manifest.string(), "comfy", "--models-root", root.string(), "--dry-run"});
  EXPECT_RUN(sync, 4);
  EXPECT_NE(sync.err.find("host key changed"), std::string::npos) << sync.err;
}

}  // namespace
}  // namespace autopod::testing
