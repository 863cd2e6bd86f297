// The plugin loader with good and bad plugins built by this project's CMake.

#include <gtest/gtest.h>

#include "core/fs.hpp"
#include "providers/pod_ops.hpp"
#include "providers/provider.hpp"
#include "tests/harness/harness.hpp"

namespace autopod {
namespace {

using core::ErrorCode;

std::string plugin(const std::string& name) { return testing::plugin_dir() + "/lib" + name + ".so"; }

TEST(PluginLoader, GoodPluginRegistersAWorkingProvider) {
  auto name = providers::load_plugin(plugin("autopod_static"));
  ASSERT_TRUE(name) << name.error().message;
  EXPECT_EQ(*name, "static");
  auto provider = providers::make_provider("static", {});
  ASSERT_TRUE(provider) << provider.error().message;
  auto created = (*provider)->create_pod({.name = "one"});
  ASSERT_TRUE(created) << created.error().message;
  EXPECT_EQ(created->provider, "static");
  // A plugin that sends none of comfy_port, models_root, ssh.key still gives usable pods.
  EXPECT_EQ(created->comfy_port, 8188);
  EXPECT_EQ(created->models_root, "/workspace/ComfyUI/models");
  EXPECT_TRUE((*provider)->capabilities().create);
  EXPECT_EQ(providers::find_pod(**provider, "one")->id, created->id);
  auto unsupported = (*provider)->create_volume({"v", 10, "dc", ""});
  ASSERT_FALSE(unsupported);
  EXPECT_EQ(unsupported.error().code, ErrorCode::unsupported);
  EXPECT_EQ((*provider)->get_pod("zz").error().code, ErrorCode::not_found);
}

TEST(PluginLoader, WrongAbiVersionIsRefusedWithBothVersions) {
  auto r = providers::load_plugin(plugin("autopod_wrong_abi"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("plugin ABI 99"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().hint.find("rebuild"), std::string::npos);
}

TEST(PluginLoader, MissingEntryPointIsRefused) {
  auto r = providers::load_plugin(plugin("autopod_no_entry"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("no autopod_provider_plugin symbol"), std::string::npos);
}

TEST(PluginLoader, ThrowingPluginGivesAnErrorNotACrash) {
  auto name = providers::load_plugin(plugin("autopod_throws"));
  ASSERT_TRUE(name) << name.error().message;
  auto provider = providers::make_provider(*name, {});
  ASSERT_TRUE(provider);
  auto pods = (*provider)->list_pods();
  ASSERT_FALSE(pods);
  EXPECT_EQ(pods.error().code, ErrorCode::internal);
  EXPECT_NE(pods.error().message.find("threw: plugin bug"), std::string::npos);
}

TEST(PluginLoader, PluginThrowingFromItsEntryIsRefused) {
  auto r = providers::load_plugin(plugin("autopod_throws_at_entry"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("threw from its entry point"), std::string::npos);
}

TEST(PluginLoader, FileThatIsNotALibraryIsRefused) {
  testing::TempDir dir;
  ASSERT_TRUE(core::write_file_atomic(dir / "libfake.so", "not an ELF file"));
  auto r = providers::load_plugin((dir / "libfake.so").string());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cannot load plugin"), std::string::npos);
}

TEST(PluginLoader, DirectoryScanKeepsGoodPluginsAndReportsBadOnes) {
  testing::TempDir dir;
  for (const char* n : {"autopod_static", "autopod_wrong_abi", "autopod_no_entry"})
    std::filesystem::copy_file(plugin(n), dir / ("lib" + std::string(n) + ".so"));
  std::vector<core::Error> problems;
  providers::load_plugins({dir.path().string(), "/nonexistent/dir"}, problems);
  EXPECT_EQ(problems.size(), 2u);
  auto names = providers::provider_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "static"), names.end());
}

TEST(ProviderRegistry, UnknownProviderListsTheKnownOnes) {
  providers::register_builtin_providers();
  auto r = providers::make_provider("vast", {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
  EXPECT_NE(r.error().hint.find("runpod"), std::string::npos);
  EXPECT_NE(r.error().hint.find("ssh"), std::string::npos);
}

}  // namespace
}  // namespace autopod
