// The hash cache keyed by size and mtime, the folders extra_model_paths.yaml names, and
// `models scan --hash` as a task (a detached job of the sync machinery): the pod-side program
// through `sh -c` on this machine, on real files in a temp root.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "core/home.hpp"
#include "core/process.hpp"
#include "models/library.hpp"
#include "models/sync.hpp"
#include "tests/models/models_testing.hpp"
#include "sandbox/synthetic_models.hpp"

namespace autopod::testing {
namespace {

using namespace sandbox;  // the synthetic model files

using models::TaskState;
using nlohmann::json;

models::PodExec here() {
  return [](const std::string& command, const std::string& input) {
    return core::run_capture({"sh", "-c", command}, input);
  };
}

// Sets `path`'s mtime to `st`'s (what a copy that keeps times, or a same-second rewrite, does).
void keep_mtime(const std::filesystem::path& path, const struct stat& st) {
  timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

struct HashCache : ::testing::Test {
  TempDir dir;
  std::filesystem::path root = dir / "ComfyUI" / "models";
  models::PodExec exec = here();

  models::HashedFile hash(const std::filesystem::path& path) {
    auto r = models::hash_library(exec, root.string(), {path.string()});
    EXPECT_TRUE(r) << r.error().describe();
    return r && r->size() == 1 ? r->front() : models::HashedFile{};
  }
};

// Given a hashed file, when it grows by a byte and keeps its mtime, then it is read again; when
// nothing changes, nothing is read; STEM.sha256 stays the bare hex digest peer tools read.
TEST_F(HashCache, SameMtimeDifferentSizeIsRehashedUnchangedIsNot) {
  auto path = root / "loras" / "x.safetensors";
  write_safetensors(path, kohya_lora("down_blocks_0", 768, "lora_te_"));
  auto first = hash(path);
  EXPECT_FALSE(first.cached);
  EXPECT_EQ(first.bytes_read, std::filesystem::file_size(path));
  EXPECT_EQ(read_all(root / "loras" / "x.sha256"), first.sha256);  // 64 hex digits, nothing else

  auto again = hash(path);
  EXPECT_TRUE(again.cached);
  EXPECT_EQ(again.bytes_read, 0u);

  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  { std::ofstream(path, std::ios::app | std::ios::binary) << 'Z'; }
  keep_mtime(path, before);
  auto grown = hash(path);
  EXPECT_FALSE(grown.cached) << "same mtime, one byte more: the cache must not answer";
  EXPECT_EQ(grown.bytes_read, std::filesystem::file_size(path));
  EXPECT_EQ(grown.sha256, sha256_of(read_all(path)));
  EXPECT_EQ(read_all(root / "loras" / "x.sha256"), grown.sha256);
}

// Two models that share a stem (x.ckpt, x.pt) cannot share one x.sha256: neither gets one, the
// index keeps both, and a second scan reads neither.
TEST_F(HashCache, ModelsSharingAStemAreKeptInTheIndexAloneAndHashedOnce) {
  auto ckpt = root / "checkpoints" / "x.ckpt", pt = root / "checkpoints" / "x.pt";
  std::filesystem::create_directories(ckpt.parent_path());
  std::ofstream(ckpt, std::ios::binary) << "ckpt bytes";
  std::ofstream(pt, std::ios::binary) << "pt";
  auto first = models::hash_library(exec, root.string(), {ckpt.string(), pt.string()});
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 2u);
  EXPECT_EQ((*first)[0].sha256, sha256_of("ckpt bytes"));
  EXPECT_EQ((*first)[1].sha256, sha256_of("pt"));
  EXPECT_FALSE(std::filesystem::exists(root / "checkpoints" / "x.sha256"));
  auto second = models::hash_library(exec, root.string(), {ckpt.string(), pt.string()});
  ASSERT_TRUE(second);
  for (const auto& f : *second) {
    EXPECT_TRUE(f.cached) << f.path;
    EXPECT_EQ(f.bytes_read, 0u) << f.path;
  }
}

// A model reached through a symlinked folder is reported under the path it was asked by (the
// listing's), so the CLI finds its hash.
TEST_F(HashCache, AFileThroughASymlinkIsReportedByThePathAsked) {
  auto real = root / "loras-store" / "x.safetensors";
  write_safetensors(real, kohya_lora("down_blocks_0", 768, "lora_te_"));
  std::filesystem::create_directory_symlink(root / "loras-store", root / "loras");
  auto asked = root / "loras" / "x.safetensors";
  auto h = hash(asked);
  EXPECT_EQ(h.path, asked.string());
  EXPECT_EQ(h.sha256, sha256_of(read_all(real)));
}

// A STEM.sha256 autopod did not write (pysssss's, or a stale copy) is not trusted: the file is
// hashed once, then the cache holds.
TEST_F(HashCache, ASidecarWithoutAutopodsKeyIsHashedOnceThenTrusted) {
  auto path = root / "loras" / "y.safetensors";
  write_safetensors(path, kohya_lora("down_blocks_0", 768, "lora_te_"));
  std::ofstream(root / "loras" / "y.sha256") << std::string(64, 'a');
  auto first = hash(path);
  EXPECT_FALSE(first.cached);
  EXPECT_EQ(first.sha256, sha256_of(read_all(path)));
  EXPECT_TRUE(hash(path).cached);
}

// extra_model_paths.yaml beside the models root names a directory outside it for loras: ls
// lists its files under that folder key with the directory, info and hash reach them by
// FOLDER/NAME, and a path outside both is still refused.
TEST_F(HashCache, FoldersExtraModelPathsNamesAreListedWithTheirKey) {
  write_safetensors(root / "loras" / "in-root.safetensors",
                    kohya_lora("down_blocks_0", 768, "lora_te_"));
  auto shared = dir / "shared" / "my-loras";
  write_safetensors(shared / "outside.safetensors",
                    kohya_lora("input_blocks_4_1_transformer_blocks_0", 2048, "lora_te1_"));
  std::ofstream(dir / "ComfyUI" / "extra_model_paths.yaml")
      << "team:\n  base_path: " << (dir / "shared").string() << "\n  loras: my-loras\n";
  auto l = models::list_library(exec, root.string(), {});
  ASSERT_TRUE(l) << l.error().describe();
  ASSERT_EQ(l->files.size(), 2u);
  const auto& out = l->files[0].extra_dir.empty() ? l->files[1] : l->files[0];
  EXPECT_EQ(out.folder, "loras");
  EXPECT_EQ(out.relative, "loras/outside.safetensors");
  EXPECT_EQ(std::filesystem::path(out.extra_dir), shared);
  EXPECT_EQ(out.recognition.kind, models::ModelKind::lora);
  EXPECT_EQ(out.completeness, "complete");

  auto only = models::list_library(exec, root.string(), {"loras", {}, false});
  ASSERT_TRUE(only);
  EXPECT_EQ(only->files.size(), 2u);
  auto info = models::list_library(exec, root.string(), {"", {"loras/outside.safetensors"}, true});
  ASSERT_TRUE(info) << info.error().describe();
  EXPECT_EQ(info->files.at(0).folder, "loras");
  auto h = hash(shared / "outside.safetensors");
  EXPECT_EQ(h.sha256, sha256_of(read_all(shared / "outside.safetensors")));
  EXPECT_TRUE(std::filesystem::exists(shared / "outside.sha256"));

  std::ofstream(dir / "elsewhere.safetensors") << "x";
  auto refused = models::hash_library(exec, root.string(), {(dir / "elsewhere.safetensors").string()});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("outside the models root"), std::string::npos);
}

struct ScanTask : HashCache {
  TempDir home;
  models::TaskStore store{core::Home(home.path())};
  std::vector<std::filesystem::path> files;

  void SetUp() override {
    for (int i = 0; i < 4; ++i) {
      files.push_back(root / "checkpoints" / ("m" + std::to_string(i) + ".safetensors"));
      std::filesystem::create_directories(files.back().parent_path());
      std::ofstream(files.back(), std::ios::binary) << test_bytes(2 << 20, 10 + i);
    }
  }
  // 8 MiB at 4 MiB/s: two seconds, long enough to pause between files.
  core::Result<models::SyncRun> start() {
    models::ScanRequest r;
    r.max_bytes_per_sec = 4 << 20;
    return models::SyncRun::scan(store, {"", exec, root}, r);
  }
  // The task as another invocation sees it: its own store, attached to the job, refreshed.
  models::Task look(const std::string& job) {
    models::TaskStore other{core::Home(home.path())};
    auto p = models::SyncRun::attach(other, {"", exec, root}, job).refresh();
    return p && p->tasks.size() == 1 ? p->tasks[0] : models::Task{};
  }
  std::vector<models::HashedFile> results(const std::string& job) {
    auto r = models::scan_results(exec, root.string(), job);
    EXPECT_TRUE(r) << r.error().describe();
    return r ? *r : std::vector<models::HashedFile>{};
  }
};

// Pause after the first file, resume: every file is read whole exactly once over both runs (the
// resumed run takes the first ones from the cache), and another invocation saw the task.
TEST_F(ScanTask, PauseThenResumeHashesEachFileOnce) {
  auto run = start();
  ASSERT_TRUE(run) << run.error().describe();
  std::string job = run->job();
  ASSERT_TRUE(eventually([&] { return look(job).files_done >= 1; }));
  auto listed = models::TaskStore{core::Home(home.path())}.list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->at(0).kind, "scan");
  EXPECT_EQ(listed->at(0).files, 4);
  EXPECT_EQ(listed->at(0).total, 8 << 20);

  models::TaskStore other{core::Home(home.path())};
  ASSERT_TRUE(models::SyncRun::attach(other, {"", exec, root}, job).control(models::TaskControl::pause));
  auto paused = run->follow();
  ASSERT_TRUE(paused) << paused.error().describe();
  EXPECT_EQ(paused->tasks.at(0).state, TaskState::paused);
  auto before = results(job);
  ASSERT_GE(before.size(), 1u);
  ASSERT_LT(before.size(), 4u) << "the pause came after the scan had ended";
  std::map<std::string, int> hashed;
  for (const auto& h : before)
    if (!h.cached && h.error.empty())
      ++hashed[h.path];

  ASSERT_TRUE(models::SyncRun::attach(other, {"", exec, root}, job).control(models::TaskControl::resume));
  // The resumed worker rewrites the job's state once it runs: until then it still reads paused.
  ASSERT_TRUE(eventually([&] { return look(job).state == TaskState::done; }));
  EXPECT_EQ(look(job).files_done, 4);
  auto after = results(job);
  ASSERT_EQ(after.size(), 4u);
  for (const auto& h : after) {
    hashed[h.path] += !h.cached;
    EXPECT_EQ(h.bytes_read, h.cached ? 0u : 2u << 20) << h.path;
    EXPECT_EQ(h.sha256, sha256_of(read_all(h.path)));
  }
  ASSERT_EQ(hashed.size(), 4u);
  for (const auto& [path, times] : hashed)
    EXPECT_EQ(times, 1) << path << " was hashed " << times << " times";
}

// Cancel stops the job: the task ends cancelled with files left unhashed and uncached.
TEST_F(ScanTask, CancelStops) {
  auto run = start();
  ASSERT_TRUE(run) << run.error().describe();
  ASSERT_TRUE(eventually([&] { return look(run->job()).files_done >= 1; }));
  ASSERT_TRUE(run->control(models::TaskControl::cancel));
  auto end = run->follow();
  ASSERT_TRUE(end) << end.error().describe();
  EXPECT_EQ(end->tasks.at(0).state, TaskState::cancelled);
  EXPECT_LT(end->tasks.at(0).files_done, 4);
  EXPECT_FALSE(std::filesystem::exists(root / "checkpoints" / "m3.sha256"));
  auto status = models::pod_status(exec, root.string(), run->job());
  ASSERT_TRUE(status);
  EXPECT_EQ(status->value("state", ""), "cancelled");
}

// A second scan of a root already hashed reads no byte and finishes at once.
TEST_F(ScanTask, AScanOfAHashedRootReadsNothing) {
  auto first = start();
  ASSERT_TRUE(first && first->follow());
  auto second = start();
  ASSERT_TRUE(second);
  ASSERT_TRUE(second->follow());
  auto r = results(second->job());
  ASSERT_EQ(r.size(), 4u);
  for (const auto& h : r)
    EXPECT_TRUE(h.cached && h.bytes_read == 0) << h.path;
}

}  // namespace
}  // namespace autopod::testing
