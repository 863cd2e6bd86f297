#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "core/config.hpp"
#include "core/fs.hpp"
#include "tests/harness/harness.hpp"

namespace autopod {
namespace {

// Sets environment variables for one test and restores them after.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const char* name : {"AUTOPOD_HOME", "AUTOPOD_PROVIDER", "RUNPOD_API_KEY", "RUNPOD_API_URL",
                             "AUTOPOD_LOG_LEVEL"}) {
      const char* old = std::getenv(name);
      m_saved.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      ::unsetenv(name);
    }
    for (const auto& [k, v] : vars) ::setenv(k, v, 1);
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : m_saved) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> m_saved;
};

core::Result<core::Config> load_with(const testing::TempDir& home, const std::string& yaml,
                                     core::ConfigOverrides overrides = {}) {
  if (!yaml.empty()) {
    auto st = core::write_file_atomic(home / "config.yaml", yaml, 0600);
    if (!st) return core::fail(st.error());
  }
  overrides.home = home.path().string();
  return core::load_config(overrides);
}

TEST(Config, DefaultsWithoutAFile) {
  ScopedEnv env({});
  testing::TempDir home;
  auto c = load_with(home, "");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->provider, "runpod");
  EXPECT_EQ(c->runpod_api_url, "https://api.runpod.io");
  EXPECT_EQ(c->pod.mount_path, "/workspace");
  EXPECT_EQ(c->pod.ports, (std::vector<std::string>{"22/tcp", "8188/http"}));
  EXPECT_EQ(c->ssh_key, home / "id_ed25519");
}

TEST(Config, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  testing::TempDir home;
  std::string yaml = "provider: ssh\nrunpod:\n  api_url: http://file\n  api_key: from-file\n";
  {
    ScopedEnv env({});
    auto c = load_with(home, yaml);
    EXPECT_EQ(c->provider, "ssh");
    EXPECT_EQ(c->runpod_api_url, "http://file");
    EXPECT_EQ(c->runpod_api_key, "from-file");
  }
  {
    ScopedEnv env({{"AUTOPOD_PROVIDER", "runpod"}, {"RUNPOD_API_URL", "http://env"},
                   {"RUNPOD_API_KEY", "from-env"}});
    auto c = load_with(home, yaml);
    EXPECT_EQ(c->provider, "runpod");
    EXPECT_EQ(c->runpod_api_url, "http://env");
    EXPECT_EQ(c->runpod_api_key, "from-env");
    EXPECT_EQ(c->sources.at("runpod.api_key"), "env RUNPOD_API_KEY");
    core::ConfigOverrides flags;
    flags.provider = "mycloud";
    flags.api_url = "http://flag/";
    auto f = load_with(home, yaml, flags);
    EXPECT_EQ(f->provider, "mycloud");
    EXPECT_EQ(f->runpod_api_url, "http://flag");  // trailing slash dropped
    EXPECT_EQ(f->sources.at("provider"), "flag");
  }
}

TEST(Config, SyntaxErrorNamesFileLineAndColumn) {
  ScopedEnv env({});
  testing::TempDir home;
  auto c = load_with(home, "pod:\n  name: a\n  ports: [22/tcp\n");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, core::ErrorCode::invalid_argument);
  EXPECT_NE(c.error().message.find("config.yaml:4:1"), std::string::npos) << c.error().message;
}

TEST(Config, WrongTypeNamesTheKeyAndItsLine) {
  ScopedEnv env({});
  testing::TempDir home;
  auto c = load_with(home, "pod:\n  name: a\n  gpu_count: lots\n");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("config.yaml:3:14: pod.gpu_count: expected a whole number"),
            std::string::npos)
      << c.error().message;
}

TEST(Config, UnknownKeySuggestsTheRightOne) {
  ScopedEnv env({});
  testing::TempDir home;
  auto c = load_with(home, "pod:\n  gpu_type: [A40]\n");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("config.yaml:2:3: pod.gpu_type: unknown key (did you mean "
                                   "'gpu_types'?)"),
            std::string::npos)
      << c.error().message;
}

TEST(Config, HostsNeedAHostAndAValidPort) {
  ScopedEnv env({});
  testing::TempDir home;
  auto missing = load_with(home, "hosts:\n  box:\n    port: 22\n");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("hosts.box.host: is required"), std::string::npos);
  auto bad_port = load_with(home, "hosts:\n  box:\n    host: h\n    port: 70000\n");
  ASSERT_FALSE(bad_port);
  EXPECT_NE(bad_port.error().message.find("config.yaml:4:11: hosts.box.port"), std::string::npos)
      << bad_port.error().message;
  auto ok = load_with(home, "hosts:\n  box:\n    host: 10.0.0.9\n    user: me\n");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->hosts.at("box").user, "me");
  EXPECT_EQ(ok->hosts.at("box").port, 22);
}

TEST(Config, WarnsWhenAFileThatMayHoldSecretsIsReadableByOthers) {
  ScopedEnv env({});
  testing::TempDir home;
  ASSERT_TRUE(core::write_file_atomic(home / "config.yaml", "provider: runpod\n", 0644));
  auto c = core::load_config({.home = home.path().string()});
  ASSERT_TRUE(c);
  ASSERT_EQ(c->warnings.size(), 1u);
  EXPECT_NE(c->warnings[0].find("chmod 600"), std::string::npos);
  ::chmod((home / "config.yaml").c_str(), 0600);
  EXPECT_TRUE(core::load_config({.home = home.path().string()})->warnings.empty());
}

TEST(Config, RenderMasksTheApiKey) {
  ScopedEnv env({{"RUNPOD_API_KEY", "rpa_SECRETSECRETSECRET1234"}});
  testing::TempDir home;
  auto c = load_with(home, "");
  auto text = core::render_config(*c);
  EXPECT_EQ(text.find("SECRETSECRET"), std::string::npos) << text;
  EXPECT_NE(text.find("****1234"), std::string::npos) << text;
  EXPECT_NE(text.find("env RUNPOD_API_KEY"), std::string::npos) << text;
}

TEST(Config, ExampleConfigParses) {
  ScopedEnv env({});
  testing::TempDir home;
  auto c = load_with(home, core::example_config());
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->pod.gpu_types.size(), 3u);
}

TEST(Config, PluginSectionsAreKeptForThePluginAsJson) {
  ScopedEnv env({});
  testing::TempDir home;
  auto c = load_with(home, "plugins:\n  vast:\n    region: EU\n    max_pods: 3\n    tag: \"7\"\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->plugins.at("vast"), nlohmann::json({{"region", "EU"}, {"max_pods", 3}, {"tag", "7"}}));
  auto bad = load_with(home, "plugins:\n  vast: [1]\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("plugins.vast: expected a mapping"), std::string::npos);
}

TEST(Config, EveryKeyOfTheTableIsInBothViewsAndTheExample) {
  ScopedEnv env({});
  testing::TempDir home;
  auto c = load_with(home, "pod:\n  models_root: /data/models\n");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->pod.models_root, "/data/models");
  auto yaml = core::render_config(*c);
  auto json = core::config_json(*c);
  auto example = core::example_config();
  for (const char* section : {"runpod", "ssh", "pod"})
    EXPECT_TRUE(json.contains(section)) << section;
  for (const char* key : {"models_root", "env", "data_centers", "api_key", "plugin_dirs"}) {
    EXPECT_NE(yaml.find(std::string(key) + ":"), std::string::npos) << key;
    EXPECT_NE(example.find(std::string(key) + ":"), std::string::npos) << key;
  }
  EXPECT_EQ(json["pod"]["models_root"], "/data/models");
  EXPECT_TRUE(json["pod"].contains("env"));
  EXPECT_TRUE(json.contains("plugins"));
}

}  // namespace
}  // namespace autopod
