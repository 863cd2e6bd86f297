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

#include "core/log.hpp"

namespace autopod::providers {

using core::ErrorCode;
using core::fail;

namespace {

std::string list_names(const std::vector<Pod>& pods) {
  std::string out;
  for (const auto& p : pods) out += (out.empty() ? "" : ", ") + p.name + " (" + p.id + ")";
  return out.empty() ? "none" : out;
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
  std::string known;
  for (const auto& v : volumes) known += (known.empty() ? "" : ", ") + v.name + " (" + v.id + ")";
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
    std::string asked;
    for (const auto& dc : spec.data_centers) asked += (asked.empty() ? "" : ", ") + dc;
    return fail(ErrorCode::invalid_argument,
                "volume " + volume.name + " is in " + volume.data_center +
                    " but the pod was asked for " + asked,
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

Result<Pod> wait_until_ready(Provider& provider, const std::string& pod_id,
                             const WaitOptions& options, core::Clock& clock,
                             const Progress& progress) {
  auto start = clock.now();
  auto deadline = start + options.timeout;
  std::string last_line = "no answer yet";
  auto say = [&](const std::string& line) {
    if (line == last_line) return;
    last_line = line;
    if (!progress) return;
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(clock.now() - start).count();
    progress("[" + std::to_string(secs) + "s] " + line);
  };
  for (;;) {
    auto pod = provider.get_pod(pod_id);
    if (!pod && !pod.error().retryable()) return pod;
    if (pod) {
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
            say("pod " + pod->name + " running; waiting for its public ssh port");
            break;
          } else {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                              clock.now());
            auto banner = read_ssh_banner(pod->ssh->host, pod->ssh->port,
                                          std::clamp(left, std::chrono::milliseconds(100),
                                                     std::chrono::milliseconds(5000)));
            if (banner) {
              say("pod " + pod->name + " ready: ssh " + describe_endpoint(*pod));
              return pod;
            }
            say("pod " + pod->name + " running; ssh on " + describe_endpoint(*pod) +
                " not answering yet");
          }
          break;
        default:
          say("pod " + pod->name + " " + to_string(pod->status));
      }
    } else {
      say("waiting: " + pod.error().message);
    }
    if (clock.now() + options.poll_interval > deadline)
      return fail(ErrorCode::timeout,
                  "pod " + pod_id + " was not ready after " +
                      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                         options.timeout)
                                         .count()) +
                      "s (" + last_line + ")",
                  "raise --timeout, or check the pod with: autopod info " + pod_id);
    clock.sleep_for(options.poll_interval);
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
  std::string gpus;
  for (const auto& g : spec.gpu_types) gpus += (gpus.empty() ? "" : ", ") + g;
  say("creating pod " + spec.name + " (" + std::to_string(spec.gpu_count) + "x " + gpus +
      (spec.volume_id.empty() ? "" : ", volume " + spec.volume_id + " at " + spec.mount_path) +
      (spec.data_centers.empty() ? "" : ", in " + spec.data_centers.front()) + ")");
  TRY_ASSIGN(auto pod, provider.create_pod(spec));
  return Connected{pod, ConnectOutcome::created, spec};
}

}  // namespace autopod::providers
