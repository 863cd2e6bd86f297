#pragma once
// Detached daemons: starting one with a readiness handshake, and knowing whether a recorded
// PID is still that daemon (PIDs are reused, so the process start time is part of its identity).

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace autopod::core {

// Start time of a process in clock ticks since boot (/proc/PID/stat field 22); not_found when
// there is no such process.
Result<std::uint64_t> process_start_time(pid_t pid);

// Whether `pid` runs and is the process that started at `start_time`.
bool process_alive(pid_t pid, std::uint64_t start_time);

// Sends SIGTERM and waits (on a pidfd, no polling) up to `timeout` for the process to exit;
// then SIGKILL. Ok when it is gone.
Status terminate_process(pid_t pid, std::chrono::milliseconds timeout);

// Starts argv as a daemon: its own session, no controlling terminal, not our child (double
// fork), stdin fed with `input`, stdout/stderr to /dev/null, and fd 3 the write end of a pipe.
// Returns what the daemon wrote to fd 3 before closing it: its readiness report.
Result<std::string> spawn_daemon(const std::vector<std::string>& argv, const std::string& input,
                                 std::chrono::milliseconds timeout);

// Daemon side: writes `report` to fd 3 and closes it (once ready, or when failing to start).
void report_readiness(const std::string& report);

}  // namespace autopod::core
