#include "providers/pod_ops.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/log.hpp"

namespace autopod::providers {

using core::ErrorCode;
using core::fail;

namespace {

std::string list_names(const std::vector<Pod>& pods) {
  std::vector<std::string> names;
  for (const auto& p : pods) names.push_back(p.name + " (" + p.id + ")");
  return names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

Result<Pod> find_pod(Provider& provider, const std::string& id_or_name) {
  TRY_ASSIGN(auto pods, provider.list_pods());
  if (id_or_name.empty()) {
    if (pods.size() == 1) return pods.front();
    if (pods.empty())
      return fail(ErrorCode::not_found, "there are no pods on " + provider.name(),
                  "create one with: autopod connect");
    return fail(ErrorCode::invalid_argument,
                "there are " + std::to_string(pods.size()) + " pods; say which one",
                "pods: " + list_names(pods));
  }
  for (const auto& p : pods)
    if (p.id == id_or_name) return p;
  std::vector<Pod> named;
  for (const auto& p : pods)
    if (p.name == id_or_name) named.push_back(p);
  if (named.size() == 1) return named.front();
  if (named.size() > 1)
    return fail(ErrorCode::invalid_argument, "several pods are named '" + id_or_name + "'",
                "use the pod id: " + list_names(named));
  return fail(ErrorCode::not_found, "no pod '" + id_or_name + "' on " + provider.name(),
              "pods: " + list_names(pods));
}

Result<Volume> find_volume(Provider& provider, const std::string& id_or_name) {
  TRY_ASSIGN(auto volumes, provider.list_volumes());
  std::vector<Volume> named;
  for (const auto& v : volumes) {
    if (v.id == id_or_name) return v;
    if (v.name == id_or_name) named.push_back(v);
  }
  if (named.size() == 1) return named.front();
  std::vector<std::string> names;
  for (const auto& v : volumes) names.push_back(v.name + " (" + v.id + ")");
  std::string known = fmt::format("{}", fmt::join(names, ", "));
  if (named.size() > 1)
    return fail(ErrorCode::invalid_argument, "several volumes are named '" + id_or_name + "'",
                "use the volume id: " + known);
  return fail(ErrorCode::not_found, "no network volume '" + id_or_name + "'",
              known.empty() ? "create one with: autopod volume create NAME --size GB --dc DC"
                            : "volumes: " + known);
}

Status place_with_volume(Provider& provider, PodSpec& spec) {
  if (spec.volume_id.empty()) return {};
  TRY_ASSIGN(auto volume, find_volume(provider, spec.volume_id));
  spec.volume_id = volume.id;
  if (!spec.data_centers.empty() &&
      std::find(spec.data_centers.begin(), spec.data_centers.end(), volume.data_center) ==
          spec.data_centers.end()) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("volume {} is in {} but the pod was asked for {}", volume.name,
                            volume.data_center, fmt::join(spec.data_centers, ", ")),
                "a pod can only mount a volume in its own data center: drop --dc or use " +
                    volume.data_center);
  }
  spec.data_centers = {volume.data_center};
  return {};
}

Result<std::string> read_ssh_banner(const std::string& host, int port,
                                    std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::string where = host + ":" + std::to_string(port);
  if (int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0)
    return fail(ErrorCode::network, "cannot resolve " + host + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, ::freeaddrinfo);
  int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail(ErrorCode::io, std::string("socket: ") + std::strerror(errno));
  auto close_fd = [&] { ::close(fd); };
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left_ms = [&] {
    auto d = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<long long>(0, d.count()));
  };
  if (::connect(fd, found->ai_addr, found->ai_addrlen) != 0 && errno != EINPROGRESS) {
    int err = errno;
    close_fd();
    return fail(ErrorCode::network, "cannot connect to " + where + ": " + std::strerror(err));
  }
  std::string banner;
  while (banner.find('\n') == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, left_ms());
    if (n == 0) {
      close_fd();
      return fail(ErrorCode::timeout, "no ssh banner from " + where + " in time");
    }
    char buf[256];
    ssize_t got = n > 0 ? ::recv(fd, buf, sizeof buf, 0) : -1;
    if (got <= 0) {
      int err = got == 0 ? ECONNRESET : errno;
      if (got < 0 && (err == EINTR || err == EAGAIN)) continue;
      close_fd();
      return fail(ErrorCode::network, "ssh on " + where + " closed: " + std::strerror(err));
    }
    banner.append(buf, static_cast<std::size_t>(got));
    if (banner.size() > 1024) break;
  }
  close_fd();
  banner = banner.substr(0, banner.find_first_of("\r\n"));
  if (banner.rfind("SSH-", 0) != 0)
    return fail(ErrorCode::protocol, where + " is not an ssh server (said '" + banner + "')");
  return banner;
}

std::string describe_endpoint(const Pod& pod) {
  if (!pod.ssh) return "-";
  return pod.ssh->user + "@" + pod.ssh->host + ":" + std::to_string(pod.ssh->port);
}

namespace {

std::string seconds_text(std::chrono::steady_clock::duration d) {
  return fmt::format("{:.1f}s", std::chrono::duration<double>(d).count());
}

// One look at the pod: the pod when it is ready, a failure when it never will be, else nothing
// and `line` says what it is waiting for.
Result<std::optional<Pod>> check_ready(Provider& provider, const std::string& pod_id,
                                       std::chrono::milliseconds left, std::string& line) {
  auto pod = provider.get_pod(pod_id);
  if (!pod) {
    if (!pod.error().retryable()) return fail(pod.error());
    line = "waiting: " + pod.error().message;
    return std::optional<Pod>();
  }
  switch (pod->status) {
    case PodStatus::error:
      return fail(ErrorCode::remote, "pod " + pod->name + " is in ERROR",
                  "see the pod's logs in the console; autopod kill " + pod->id);
    case PodStatus::exited:
    case PodStatus::terminated:
      return fail(ErrorCode::remote,
                  "pod " + pod->name + " is " + to_string(pod->status) + ", not starting",
                  "autopod start " + pod->id + " or autopod connect");
    case PodStatus::running:
      if (!pod->ssh) {
        line = "pod " + pod->name + " running; waiting for its public ssh port";
      } else if (read_ssh_banner(pod->ssh->host, pod->ssh->port,
                                 std::clamp(left, std::chrono::milliseconds(100),
                                            std::chrono::milliseconds(5000)))) {
        line = "pod " + pod->name + " ready: ssh " + describe_endpoint(*pod);
        return std::optional<Pod>(*pod);
      } else {
        line = "pod " + pod->name + " running; ssh on " + describe_endpoint(*pod) +
               " not answering yet";
      }
      return std::optional<Pod>();
    default:
      line = "pod " + pod->name + " " + to_string(pod->status);
      return std::optional<Pod>();
  }
}

}  // namespace

Result<Pod> wait_until_ready(Provider& provider, const std::string& pod_id,
                             const WaitOptions& options, core::Clock& clock,
                             const Progress& progress) {
  using std::chrono::milliseconds;
  auto start = clock.now();
  auto deadline = start + options.timeout;
  std::string last_line = "no answer yet";
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - clock.now());
    std::string line = last_line;
    TRY_ASSIGN(auto ready, check_ready(provider, pod_id, left, line));
    if (line != last_line && progress)
      progress("[" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                        clock.now() - start).count()) + "s] " + line);
    last_line = line;
    if (ready) return *ready;
    left = std::chrono::duration_cast<milliseconds>(deadline - clock.now());
    // The last poll happens at the deadline, not at the last poll interval before it.
    if (left <= milliseconds(0))
      return fail(ErrorCode::timeout,
                  "pod " + pod_id + " was not ready after " + seconds_text(clock.now() - start) +
                      " (" + last_line + ")",
                  "raise --timeout, or check the pod with: autopod info " + pod_id);
    clock.sleep_for(std::min(options.poll_interval, left));
  }
}

}  // namespace autopod::providers

namespace autopod::providers {

PodSpec spec_from_pod(const Pod& pod) {
  PodSpec s;
  s.name = pod.name;
  s.image = pod.image;
  if (!pod.gpu_type.empty()) s.gpu_types = {pod.gpu_type};
  s.gpu_count = std::max(1, pod.gpu_count);
  if (!pod.cloud.empty()) s.cloud = pod.cloud;
  s.volume_id = pod.volume_id;
  if (!pod.mount_path.empty()) s.mount_path = pod.mount_path;
  s.ports = pod.ports;
  if (!pod.data_center.empty()) s.data_centers = {pod.data_center};
  return s;
}

Result<Connected> connect_pod(Provider& provider, PodSpec spec, const Progress& progress) {
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };
  TRY_ASSIGN(auto pods, provider.list_pods());
  for (const auto& p : pods) {
    if (p.name != spec.name || p.status == PodStatus::terminated) continue;
    if (p.status == PodStatus::exited) {
      say("pod " + p.name + " (" + p.id + ") is stopped; starting it");
      TRY_ASSIGN(auto started, provider.start_pod(p.id));
      return Connected{started, ConnectOutcome::started, spec_from_pod(started)};
    }
    say("pod " + p.name + " (" + p.id + ") already exists; reusing it");
    return Connected{p, ConnectOutcome::reused, spec_from_pod(p)};
  }
  TRY(place_with_volume(provider, spec));
  say(fmt::format("creating pod {} ({}x {}{}{})", spec.name, spec.gpu_count,
                  fmt::join(spec.gpu_types, ", "),
                  spec.volume_id.empty() ? "" : ", volume " + spec.volume_id + " at " + spec.mount_path,
                  spec.data_centers.empty()
                      ? ""
                      : fmt::format(", in {}", fmt::join(spec.data_centers, " or "))));
  TRY_ASSIGN(auto pod, provider.create_pod(spec));
  return Connected{pod, ConnectOutcome::created, spec};
}

}  // namespace autopod::providers
