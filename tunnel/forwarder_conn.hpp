#pragma once
// One relayed client connection of a Forwarder (internal to tunnel/; forwarder.cpp moves its
// data, forwarder_opens.cpp opens its channel).

#include <libssh2.h>

#include <cstddef>
#include <memory>
#include <string>

#include "tunnel/forwarder.hpp"

namespace autopod::tunnel {

constexpr std::size_t k_chunk = 32 * 1024;  // one SSH packet; libssh2 writes at most one a call

struct Forwarder::Conn {
  int fd = -1;  // -1 once the client is closed while its open still runs
  ForwardTarget target;
  std::string origin_host;
  int origin_port = 0;
  LIBSSH2_CHANNEL* ch = nullptr;
  std::unique_ptr<char[]> up{new char[k_chunk]};    // client -> pod
  std::size_t up_len = 0, up_off = 0;
  std::unique_ptr<char[]> down{new char[k_chunk]};  // pod -> client
  std::size_t down_len = 0, down_off = 0;
  bool client_eof = false;   // client sent FIN
  bool eof_sent = false;     // we sent channel EOF
  bool channel_eof = false;  // pod side sent EOF
  bool shut_wr = false;      // we sent FIN to the client
  bool dead = false;         // drop now (client reset, open refused, channel error)
  SteadyClock::time_point open_deadline;
  std::size_t poll_index = 0;
  bool polled = false;
};

}  // namespace autopod::tunnel
