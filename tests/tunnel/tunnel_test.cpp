// Tunnel daemons against a real OpenSSH sshd on 127.0.0.1 with real TCP services behind it.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <future>
#include <set>
#include <thread>

#include "core/daemon.hpp"
#include "core/fs.hpp"
#include "core/process.hpp"
#include "core/ssh_key.hpp"
#include "core/state_file.hpp"
#include "sandbox/sshd_harness.hpp"
#include "sandbox/tcp_target.hpp"
#include "tests/harness/harness.hpp"
#include "tests/tunnel/tunnel_fixture.hpp"
#include "tunnel/tunnel.hpp"

namespace autopod {
namespace {

using core::ErrorCode;
using nlohmann::json;
using tunnel::TunnelManager;

using Tunnel = TunnelFixture;

TEST_F(Tunnel, StartsOnlyOnceAuthenticatedAndListening) {
  auto t = manager->start(spec());
  ASSERT_TRUE(t) << t.error().describe();
  EXPECT_GT(t->pid, 0);
  // Ready means ready: the very first connection goes through.
  auto reply = sandbox::half_close_exchange(t->spec.forwards[0].local_port, "ping");
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(*reply, "4");
  auto list = manager->list();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].status, "active");
  EXPECT_EQ((*list)[0].pid, t->pid);
  ASSERT_TRUE((*list)[0].stats);
  EXPECT_EQ((*list)[0].stats->bytes_to_pod, 5u);  // "H" + "ping"
  EXPECT_EQ((*list)[0].stats->bytes_from_pod, 1u);
  EXPECT_EQ(core::file_mode(home / "tunnels.json"), 0600);
}

TEST_F(Tunnel, QuarterGibEachWayArrivesByteExact) {
  auto t = manager->start(spec());
  ASSERT_TRUE(t) << t.error().describe();
  int port = t->spec.forwards[0].local_port;
  constexpr std::uint64_t k_bytes = 256ull << 20;
  auto push = sandbox::push_pattern(port, k_bytes, 7);
  EXPECT_TRUE(push) << push.error().message;
  auto pull = sandbox::pull_pattern(port, k_bytes, 9);
  EXPECT_TRUE(pull) << pull.error().message;
  auto list = manager->list();
  EXPECT_GE((*list)[0].stats->bytes_to_pod, k_bytes);
  EXPECT_GE((*list)[0].stats->bytes_from_pod, k_bytes);
}

TEST_F(Tunnel, HalfClosingClientStillGetsTheWholeReply) {
  auto t = manager->start(spec());
  ASSERT_TRUE(t);
  std::string big(3 << 20, 'x');  // more than one channel window of requests in flight
  auto reply = sandbox::half_close_exchange(t->spec.forwards[0].local_port, big);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(*reply, std::to_string(big.size()));
}

TEST_F(Tunnel, SixtyFourConcurrentConnectionsAllComplete) {
  auto t = manager->start(spec());
  ASSERT_TRUE(t);
  int port = t->spec.forwards[0].local_port;
  std::vector<std::future<core::Status>> runs;
  for (int i = 0; i < 64; ++i)
    runs.push_back(std::async(std::launch::async, [port, i]() -> core::Status {
      TRY(sandbox::push_pattern(port, 1 << 20, 100 + i));
      return sandbox::pull_pattern(port, 1 << 20, 200 + i);
    }));
  for (auto& r : runs) {
    auto st = r.get();
    EXPECT_TRUE(st) << st.error().message;
  }
}

TEST_F(Tunnel, WebSocketWorksThroughTheTunnel) {
  namespace beast = boost::beast;
  namespace ws = beast::websocket;
  using tcp = boost::asio::ip::tcp;
  boost::asio::io_context io;
  tcp::acceptor acceptor(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  int ws_port = acceptor.local_endpoint().port();
  std::thread server([&] {
    tcp::socket sock(io);
    acceptor.accept(sock);
    ws::stream<tcp::socket> s(std::move(sock));
    s.accept();
    beast::flat_buffer buf;
    for (int i = 0; i < 3; ++i) {
      s.read(buf);
      s.text(s.got_text());
      s.write(buf.data());
      buf.consume(buf.size());
    }
    s.close(ws::close_code::normal);
  });
  auto sp = spec();
  sp.forwards[0].remote_port = ws_port;
  auto t = manager->start(sp);
  ASSERT_TRUE(t) << t.error().describe();
  boost::asio::io_context cio;
  ws::stream<tcp::socket> client(cio);
  client.next_layer().connect({boost::asio::ip::make_address("127.0.0.1"),
                               static_cast<unsigned short>(t->spec.forwards[0].local_port)});
  client.handshake("127.0.0.1", "/ws?clientId=test");
  for (const char* msg : {"hello", "{\"type\":\"status\"}", "bye"}) {
    client.write(boost::asio::buffer(std::string(msg)));
    beast::flat_buffer buf;
    client.read(buf);
    EXPECT_EQ(beast::buffers_to_string(buf.data()), msg);
  }
  beast::flat_buffer rest;
  beast::error_code ec;
  client.read(rest, ec);
  EXPECT_EQ(ec, ws::error::closed);
  server.join();
}

// Given a live tunnel, when sshd's per-connection process is killed mid-transfer, then the cut
// client gets a clean close, list says reconnecting while sshd cannot answer, then active, and
// new connections work.
TEST_F(Tunnel, ReconnectsAfterTheSshConnectionIsKilled) {
  auto t = manager->start(spec());
  ASSERT_TRUE(t) << t.error().describe();
  int port = t->spec.forwards[0].local_port;
  ASSERT_TRUE(sandbox::push_pattern(port, 1 << 20, 1));
  auto transfer = std::async(std::launch::async, [port] {
    return sandbox::pull_pattern(port, 8ull << 30, 2);  // far longer than the test
  });
  ASSERT_TRUE(testing::wait_for_change(home, [&] {
    auto l = manager->list();
    return l && !l->empty() && (*l)[0].stats && (*l)[0].stats->bytes_from_pod > (4u << 20);
  }, std::chrono::seconds(30)));
  // Hold sshd so the reconnect cannot finish yet, then cut the live connection.
  ASSERT_EQ(::kill(sshd->pid(), SIGSTOP), 0);
  for (pid_t child : testing::children_of(sshd->pid())) ::kill(child, SIGKILL);
  auto cut = transfer.get();
  ASSERT_FALSE(cut);  // ended early, and did end: a clean close, not a hang
  EXPECT_EQ(cut.error().code, ErrorCode::network) << cut.error().message;
  EXPECT_TRUE(testing::wait_for_change(home, [&] { return status_of(t->id) == "reconnecting"; },
                                       std::chrono::seconds(20)));
  ASSERT_EQ(::kill(sshd->pid(), SIGCONT), 0);
  EXPECT_TRUE(testing::wait_for_change(home, [&] { return status_of(t->id) == "active"; },
                                       std::chrono::seconds(30)));
  auto after = sandbox::pull_pattern(port, 4 << 20, 3);
  EXPECT_TRUE(after) << after.error().message;
  auto list = manager->list();
  ASSERT_TRUE((*list)[0].stats);
  EXPECT_GE((*list)[0].stats->reconnects, 1);
}

TEST_F(Tunnel, KilledDaemonIsDeadAndCleanupRemovesIt) {
  auto t = manager->start(spec());
  ASSERT_TRUE(t);
  ASSERT_TRUE(core::process_alive(t->pid, t->start_time));
  ::kill(t->pid, SIGKILL);
  EXPECT_TRUE(testing::wait_for_change(home, [&] { return status_of(t->id) == "dead"; },
                                       std::chrono::seconds(10)));
  auto removed = manager->cleanup();
  ASSERT_TRUE(removed);
  ASSERT_EQ(removed->size(), 1u);
  EXPECT_EQ(entries(), 0u);
}

TEST_F(Tunnel, ReusedPidIsNotTakenForOurDaemon) {
  // An entry whose PID now belongs to another process (this test), started at another time.
  auto mine = core::process_start_time(::getpid());
  ASSERT_TRUE(mine);
  json entry = tunnel::to_json(tunnel::TunnelInfo{.id = "t-reused", .spec = spec(),
                                                  .pid = ::getpid(), .start_time = *mine + 1,
                                                  .status = "active"});
  ASSERT_TRUE(core::StateFile(home / "tunnels.json").update([&](json& d) -> core::Status {
    d["tunnels"]["t-reused"] = entry;
    return {};
  }));
  EXPECT_EQ(status_of("t-reused"), "dead");
  auto removed = manager->cleanup();
  EXPECT_EQ(removed->size(), 1u);
  EXPECT_EQ(::kill(::getpid(), 0), 0);  // and nobody was signalled
}

TEST_F(Tunnel, SigtermClosesGracefullyAndRemovesTheEntry) {
  auto t = manager->start(spec());
  ASSERT_TRUE(t);
  ASSERT_TRUE(core::terminate_process(t->pid, std::chrono::seconds(5)));
  EXPECT_EQ(entries(), 0u);  // the daemon removed its own entry before exiting
  EXPECT_FALSE(std::filesystem::exists(home / "tunnels" / (t->id + ".sock")));
}

TEST_F(Tunnel, LocalPortInUseNamesTheHolder) {
  int port = testing::free_port();
  int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  auto t = manager->start(spec(port));
  ::close(holder);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(t.error().message.find("in use by PID " + std::to_string(::getpid())), std::string::npos)
      << t.error().message;
  EXPECT_EQ(entries(), 0u);
}

TEST_F(Tunnel, WrongKeyIsRefused) {
  auto other = core::ensure_ssh_key(dir / "other_key", true);
  ASSERT_TRUE(other);
  auto s = spec();
  s.ssh.key = dir / "other_key";
  auto t = manager->start(s);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::auth);
  EXPECT_NE(t.error().message.find("authentication refused"), std::string::npos) << t.error().message;
  EXPECT_EQ(entries(), 0u);
}

TEST_F(Tunnel, RsaKeyIsRefusedBeforeConnectingWithAWhy) {
  auto made = core::run_capture({"ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f",
                                 (dir / "rsa_key").string()});
  ASSERT_TRUE(made && made->exit_code == 0);
  auto s = spec();
  s.ssh.key = dir / "rsa_key";
  auto t = manager->start(s);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::invalid_argument);
  EXPECT_NE(t.error().message.find("SHA-1"), std::string::npos);
  EXPECT_NE(t.error().hint.find("ed25519"), std::string::npos);
}

TEST_F(Tunnel, ChangedHostKeyIsRefusedWithHowToReset) {
  auto fake = core::run_capture({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                                 (dir / "fake_host").string()});
  ASSERT_TRUE(fake && fake->exit_code == 0);
  auto pub = core::read_file(dir / "fake_host.pub");
  std::string line = "[127.0.0.1]:" + std::to_string(sshd->port()) + " " +
                     pub->substr(0, pub->rfind(' ')) + "\n";
  ASSERT_TRUE(core::ensure_dir(home));
  ASSERT_TRUE(core::write_file_atomic(home / "known_hosts", line, 0600));
  auto t = manager->start(spec());
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::auth);
  EXPECT_NE(t.error().message.find("host key changed"), std::string::npos) << t.error().message;
  EXPECT_NE(t.error().hint.find("ssh-keygen -R"), std::string::npos);
  EXPECT_EQ(entries(), 0u);
}

TEST_F(Tunnel, HostKeyIsPinnedOnFirstUse) {
  auto t = manager->start(spec());
  ASSERT_TRUE(t);
  auto known = core::read_file(home / "known_hosts");
  ASSERT_TRUE(known);
  auto host_pub = core::read_file(sshd->host_public_key());
  std::string key_b64 = host_pub->substr(host_pub->find(' ') + 1);
  key_b64 = key_b64.substr(0, key_b64.find(' '));
  EXPECT_NE(known->find("[127.0.0.1]:" + std::to_string(sshd->port()) + " ssh-ed25519 " + key_b64),
            std::string::npos)
      << *known;
}

TEST_F(Tunnel, UnreachableHostIsAClearError) {
  auto s = spec();
  s.ssh.port = testing::free_port();  // nothing listens there
  auto t = manager->start(s);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, ErrorCode::network);
  EXPECT_NE(t.error().message.find("pod not reachable"), std::string::npos) << t.error().message;
  EXPECT_EQ(entries(), 0u);
}

TEST_F(Tunnel, StartingTheSameTunnelAgainReusesIt) {
  auto s = spec();
  auto first = manager->start(s);
  ASSERT_TRUE(first);
  bool reused = false;
  auto second = manager->ensure(s, &reused);
  ASSERT_TRUE(second);
  EXPECT_TRUE(reused);
  EXPECT_EQ(second->id, first->id);
  // Another tunnel asking for the same local port is told who holds it.
  auto clash = spec(s.forwards[0].local_port);
  clash.forwards[0].remote_port = 9999;
  auto t = manager->start(clash);
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("is used by tunnel " + first->id), std::string::npos);
}

TEST_F(Tunnel, EnsureReplacesATunnelToAnOldAddress) {
  auto s = spec();
  auto first = manager->start(s);
  ASSERT_TRUE(first);
  ::kill(first->pid, SIGKILL);
  ASSERT_TRUE(testing::wait_for_change(home, [&] { return status_of(first->id) == "dead"; },
                                       std::chrono::seconds(10)));
  bool reused = true;
  auto second = manager->ensure(s, &reused);
  ASSERT_TRUE(second) << second.error().describe();
  EXPECT_FALSE(reused);
  EXPECT_NE(second->id, first->id);
  EXPECT_EQ(entries(), 1u);
}

TEST_F(Tunnel, FiftyConcurrentStartsAndStopsKeepTheStateFileWhole) {
  // Fifty distinct local ports, picked before the starts: picked concurrently, the kernel can
  // hand two threads the same free port, and one start then fails on a port the other holds.
  std::set<int> ports;
  while (ports.size() < 50) ports.insert(testing::free_port());
  std::vector<std::future<core::Result<tunnel::TunnelInfo>>> starts;
  for (int port : ports)
    starts.push_back(std::async(std::launch::async, [this, port] { return manager->start(spec(port)); }));
  std::vector<std::string> ids;
  for (auto& f : starts) {
    auto t = f.get();
    ASSERT_TRUE(t) << t.error().describe();
    ids.push_back(t->id);
  }
  EXPECT_EQ(entries(), 50u);
  auto list = manager->list();
  ASSERT_TRUE(list);
  EXPECT_EQ(std::count_if(list->begin(), list->end(),
                          [](const auto& t) { return t.status == "active"; }), 50);
  std::vector<std::future<core::Result<std::vector<tunnel::TunnelInfo>>>> stops;
  for (const auto& id : ids)
    stops.push_back(std::async(std::launch::async, [this, id] { return manager->stop(id); }));
  for (auto& f : stops) EXPECT_TRUE(f.get());
  EXPECT_EQ(entries(), 0u);
}

// Given no key file and an ssh-agent holding the authorized key, the daemon authenticates with
// the agent.
TEST_F(Tunnel, AuthenticatesWithSshAgentWhenThereIsNoKeyFile) {
  auto sock = dir / "agent.sock";
  auto agent = testing::Child::start({"ssh-agent", "-D", "-a", sock.string()}, "SSH_AUTH_SOCK");
  ASSERT_TRUE(agent) << agent.error().message;
  auto added = core::run_capture({"ssh-add", (home / "id_ed25519").string()}, {},
                                 {"SSH_AUTH_SOCK=" + sock.string()});
  ASSERT_TRUE(added && added->exit_code == 0) << (added ? added->err : added.error().message);
  const char* old = std::getenv("SSH_AUTH_SOCK");
  std::string saved = old ? old : "";
  ::setenv("SSH_AUTH_SOCK", sock.c_str(), 1);  // the daemon inherits our environment
  auto s = spec();
  s.ssh.key.clear();
  auto t = manager->start(s);
  if (saved.empty()) ::unsetenv("SSH_AUTH_SOCK");
  else ::setenv("SSH_AUTH_SOCK", saved.c_str(), 1);
  ASSERT_TRUE(t) << t.error().describe();
  auto reply = sandbox::half_close_exchange(t->spec.forwards[0].local_port, "agent");
  ASSERT_TRUE(reply);
  EXPECT_EQ(*reply, "5");
}

TEST(ParseForward, AcceptsTheSshForms) {
  auto a = tunnel::parse_forward("8188", "127.0.0.1");
  EXPECT_EQ(a->local_port, 8188);
  EXPECT_EQ(a->remote_port, 8188);
  auto b = tunnel::parse_forward("9000:8888", "127.0.0.1");
  EXPECT_EQ(b->local_port, 9000);
  EXPECT_EQ(b->remote_port, 8888);
  auto c = tunnel::parse_forward("9000:localhost:8888", "0.0.0.0");
  EXPECT_EQ(c->bind, "0.0.0.0");
  EXPECT_EQ(c->remote_host, "localhost");
  auto d = tunnel::parse_forward("127.0.0.2:9000:db:5432", "127.0.0.1");
  EXPECT_EQ(d->bind, "127.0.0.2");
  EXPECT_EQ(d->remote_port, 5432);
  for (const char* bad : {"", "x", "0", "70000", "1:2:3:4:5", "8188:"})
    EXPECT_FALSE(tunnel::parse_forward(bad, "127.0.0.1")) << bad;
}

}  // namespace
}  // namespace autopod
