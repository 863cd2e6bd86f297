#include <gtest/gtest.h>

#include "core/http.hpp"
#include "core/ssh_key.hpp"
#include "core/fs.hpp"
#include "sandbox/http_server.hpp"
#include "tests/harness/harness.hpp"

namespace autopod {
namespace {

TEST(CurlTransport, SendsMethodHeadersAndBodyAndReadsTheAnswer) {
  sandbox::HttpExchange seen;
  sandbox::HttpServer server([&](const sandbox::HttpExchange& ex) {
    seen = ex;
    sandbox::HttpReply r;
    r.status = 201;
    r.headers["X-Answer"] = "yes";
    r.body = "{\"ok\":true}";
    return r;
  });
  ASSERT_TRUE(server.start());
  auto t = core::make_curl_transport();
  core::HttpRequest req;
  req.method = "POST";
  req.url = server.url() + "/v2/pods?x=1";
  req.headers = {{"Authorization", "Bearer k"}, {"Content-Type", "application/json"}};
  req.body = "{\"name\":\"a\"}";
  auto r = t->send(req);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->header("x-answer"), "yes");
  EXPECT_EQ(r->body, "{\"ok\":true}");
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.path, "/v2/pods");
  EXPECT_EQ(seen.headers["authorization"], "Bearer k");
  EXPECT_EQ(seen.body, "{\"name\":\"a\"}");
}

TEST(CurlTransport, RefusedConnectionIsANetworkError) {
  auto t = core::make_curl_transport();
  core::HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(testing::free_port()) + "/v2/pods";
  auto r = t->send(req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::ErrorCode::network);
  EXPECT_TRUE(r.error().retryable());
}

TEST(CurlTransport, DroppedConnectionIsANetworkError) {
  sandbox::HttpServer server([](const sandbox::HttpExchange&) {
    sandbox::HttpReply r;
    r.drop = true;
    return r;
  });
  ASSERT_TRUE(server.start());
  auto r = core::make_curl_transport()->send({.url = server.url() + "/x"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::ErrorCode::network);
}

TEST(CurlTransport, SlowAnswerPastTheTimeoutIsATimeout) {
  sandbox::HttpServer server([](const sandbox::HttpExchange&) {
    sandbox::HttpReply r;
    r.delay = std::chrono::milliseconds(2000);
    return r;
  });
  ASSERT_TRUE(server.start());
  core::HttpRequest req;
  req.url = server.url() + "/x";
  req.timeout = std::chrono::milliseconds(200);
  auto r = core::make_curl_transport()->send(req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::ErrorCode::timeout);
}

TEST(RedactUrl, DropsCredentialsAndQuery) {
  EXPECT_EQ(core::redact_url("https://user:pw@api.x.io/v2/pods?api_key=s"),
            "https://***@api.x.io/v2/pods?…");
  EXPECT_EQ(core::redact_url("http://127.0.0.1:8/v2"), "http://127.0.0.1:8/v2");
}

TEST(SshKey, CreatesAPrivateEd25519PairOnceAndReusesIt) {
  testing::TempDir home;
  auto key = core::ensure_ssh_key(home / "id_ed25519", true);
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_EQ(key->public_key.rfind("ssh-ed25519 ", 0), 0u);
  EXPECT_EQ(core::file_mode(home / "id_ed25519"), 0600);
  auto again = core::ensure_ssh_key(home / "id_ed25519", true);
  EXPECT_EQ(again->public_key, key->public_key);
}

TEST(SshKey, MissingConfiguredKeyIsNotCreated) {
  testing::TempDir home;
  auto key = core::ensure_ssh_key(home / "mine", false);
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().code, core::ErrorCode::not_found);
  EXPECT_FALSE(std::filesystem::exists(home / "mine"));
}

}  // namespace
}  // namespace autopod
