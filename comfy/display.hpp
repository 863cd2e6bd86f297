#pragma once
// What the user sees of a run: a live line on a terminal (redrawn at most every 100 ms and cut to
// the terminal's width), one plain line per event otherwise, JSON lines for scripts.

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "comfy/events.hpp"

namespace autopod::comfy {

class Display {
 public:
  virtual ~Display() = default;
  virtual void event(const RunState& run, const Event& event) = 0;
  virtual void message(const std::string& line) = 0;  // notes: reconnects, saved files
  virtual void saved(const RunState& run, const std::string& path) = 0;
  virtual void finished(const RunState& run) = 0;
  virtual void tick() {}  // redraw the live line (elapsed time) when nothing arrives
};

enum class DisplayKind { live, plain, json };
// Lines go to `out` (stderr, or stdout for --json); the live line reads `out`'s terminal width.
std::unique_ptr<Display> make_display(DisplayKind kind, std::FILE* out);

// "1:05", "12:00:03".
std::string format_duration(std::chrono::steady_clock::duration d);

}  // namespace autopod::comfy
