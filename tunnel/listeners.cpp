#include "tunnel/listeners.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/fs.hpp"

namespace autopod::tunnel {

using core::ErrorCode;
using core::fail;

namespace {

// "PID 1234 (python3)" for the process listening on TCP `port`, where /proc tells.
std::string port_owner(int port) {
  std::vector<std::string> inodes;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode;
      fields >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode;
      auto colon = local.rfind(':');
      if (colon == std::string::npos || st != "0A") continue;
      if (std::stoi(local.substr(colon + 1), nullptr, 16) == port) inodes.push_back(inode);
    }
  }
  if (inodes.empty()) return {};
  DIR* proc = ::opendir("/proc");
  if (!proc) return {};
  std::string found;
  while (dirent* e = ::readdir(proc)) {
    if (!std::isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    std::string fd_dir = std::string("/proc/") + e->d_name + "/fd";
    DIR* fds = ::opendir(fd_dir.c_str());
    if (!fds) continue;
    while (dirent* f = ::readdir(fds)) {
      char target[64];
      ssize_t n = ::readlink((fd_dir + "/" + f->d_name).c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      for (const auto& inode : inodes)
        if (std::string(target) == "socket:[" + inode + "]") {
          auto comm = core::read_file(std::string("/proc/") + e->d_name + "/comm");
          std::string name = comm ? comm->substr(0, comm->find('\n')) : "?";
          found = std::string("PID ") + e->d_name + " (" + name + ")";
        }
    }
    ::closedir(fds);
    if (!found.empty()) break;
  }
  ::closedir(proc);
  return found;
}

}  // namespace

core::Result<std::vector<Listener>> listen_on(const std::vector<Forward>& forwards) {
  std::vector<Listener> out;
  auto close_all = [&] {
    for (auto& l : out) ::close(l.fd);
  };
  for (const auto& f : forwards) {
    Listener l;
    l.forward = f;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(f.local_port));
    if (::inet_pton(AF_INET, f.bind.c_str(), &addr.sin_addr) != 1) {
      close_all();
      return fail(ErrorCode::invalid_argument, "cannot bind '" + f.bind + "': not an IPv4 address",
                  "use --bind 127.0.0.1 (the default) or another local IPv4 address");
    }
    l.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1;
    ::setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (::bind(l.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      int err = errno;
      ::close(l.fd);
      close_all();
      std::string where = f.bind + ":" + std::to_string(f.local_port);
      if (err == EADDRINUSE) {
        std::string owner = port_owner(f.local_port);
        return fail(ErrorCode::invalid_argument,
                    "local port " + where + " is in use" + (owner.empty() ? "" : " by " + owner),
                    "stop what holds it, or pick another local port: -L OTHER:" +
                        std::to_string(f.remote_port));
      }
      return fail(ErrorCode::io, "cannot listen on " + where + ": " + std::strerror(err));
    }
    ::listen(l.fd, 128);  // OpenSSH's backlog for forwarded ports
    out.push_back(l);
  }
  return out;
}

}  // namespace autopod::tunnel
