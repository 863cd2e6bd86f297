#pragma once
// SSH to a pod's direct endpoint through libssh2 (core::SshSession) for commands that run on the
// pod: the pod's key, its host key pinned in AUTOPOD_HOME/known_hosts as tunnels pin it.

#include <memory>

#include "core/config.hpp"
#include "core/ssh_session.hpp"
#include "models/pod.hpp"
#include "providers/provider.hpp"

namespace autopod::agent {

// A session to `pod`, which must have an endpoint; SshSession::connect's errors.
core::Result<std::unique_ptr<core::SshSession>> connect_pod(const core::Config& cfg,
                                                            const providers::Pod& pod);

// A PodExec that runs each command over exec on one session, connected on the first call and
// reused by the next ones (a failed call drops it; the next one connects again). Commands get
// their input on stdin, so tokens never reach a command line. Each call is bounded by 10 minutes.
// Copies share the session: call them from one thread at a time.
models::PodExec pod_exec(const core::Config& cfg, const providers::Pod& pod);

}  // namespace autopod::agent
