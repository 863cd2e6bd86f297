// The three displays of a run: a live line on a terminal (cut to its width), one plain line per
// event otherwise, JSON lines for scripts.

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <memory>

#include "comfy/display.hpp"
#include "comfy/json_fields.hpp"

namespace autopod::comfy {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string format_duration(Clock::duration d) {
  long long s = std::max<long long>(0, std::chrono::duration_cast<std::chrono::seconds>(d).count());
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}

namespace {

// "run 1/3 <prompt id>: success in 0:12", when a run has ended.
std::string summary_line(const RunState& run) {
  return "run " + std::to_string(run.index) + "/" + std::to_string(run.count) + " " + run.prompt_id + ": " +
         to_string(run.outcome) + " in " + format_duration(Clock::now() - run.origin());
}

// A number as the server sent it: steps are integers, so no float formatting for them.
void append_number(std::string& out, double v) {
  char buf[32];
  double whole = 0;
  if (std::modf(v, &whole) == 0.0 && std::fabs(v) < 1e15) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(whole));
    out.append(buf, end);
  } else {
    out.append(buf, static_cast<std::size_t>(std::snprintf(buf, sizeof buf, "%g", v)));
  }
}

// The terminal's width in columns, asked at every draw (it may be resized); 0 when unknown.
int terminal_columns(std::FILE* out) {
  winsize ws{};
  if (::ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 0;
}

// Cuts `line` to columns-1 characters (UTF-8 code points) so it never wraps: "\r\033[K" erases
// only the last row of a wrapped line, and the rows above it would stay behind on every redraw.
void fit_to(std::string& line, int columns) {
  if (columns <= 1) return;
  std::size_t max_chars = static_cast<std::size_t>(columns - 1), chars = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (++chars > max_chars) {
      line.resize(i);
      return;
    }
  }
}

// One line per event. Kept cheap (it runs for every sampler step): the line buffer is reused,
// node labels and the elapsed-time text are cached, numbers avoid printf where they can.
class PlainDisplay : public Display {
 public:
  explicit PlainDisplay(std::FILE* out) : m_out(out) {}

  void event(const RunState& run, const Event& e) override {
    std::string& line = m_line;
    line.clear();
    prefix(run);
    switch (e.type) {
      case EventType::execution_start: line += "started"; break;
      case EventType::execution_cached:
        line += "cached ";
        append_number(line, static_cast<double>(e.data.contains("nodes") ? e.data["nodes"].size() : 0));
        line += " nodes";
        break;
      case EventType::executing:
        if (e.done) return;
        line += "executing ";
        line += label(run, e.node);
        break;
      case EventType::progress:
        line += "step ";
        append_number(line, e.value);
        line += '/';
        append_number(line, e.max);
        line += ' ';
        line += label(run, e.node);
        break;
      case EventType::executed: line += "executed " + label(run, e.node); break;
      case EventType::text: line += "text from " + label(run, e.node) + ": " + e.text; break;
      case EventType::preview: line += "preview image from " + label(run, e.node.empty() ? run.current : e.node); break;
      case EventType::execution_success: line += "success"; break;
      case EventType::execution_error: line += "error: " + describe_failure(run); break;
      case EventType::execution_interrupted: line += "interrupted: " + describe_failure(run); break;
      default: return;  // status, progress_state (the twin of progress), unknown types
    }
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), m_out);
  }

  void message(const std::string& line) override {
    std::fputs(line.c_str(), m_out);
    std::fputc('\n', m_out);
    std::fflush(m_out);
  }

  void saved(const RunState&, const std::string& path) override { message("saved " + path); }

  void finished(const RunState& run) override { message(summary_line(run)); }

 private:
  // "[0:12] run 1/3 4f6c5a1e  57% "
  void prefix(const RunState& run) {
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - run.origin()).count();
    if (secs != m_secs) {
      m_secs = secs;
      m_elapsed = format_duration(std::chrono::seconds(secs));
    }
    m_line += '[';
    m_line += m_elapsed;
    m_line += "] run ";
    append_number(m_line, run.index);
    m_line += '/';
    append_number(m_line, run.count);
    m_line += ' ';
    m_line.append(run.prompt_id, 0, 8);
    long pct = std::lround(run.fraction() * 100);
    m_line.append(pct < 10 ? "   " : pct < 100 ? "  " : " ");
    append_number(m_line, static_cast<double>(pct));
    m_line += "% ";
  }

  const std::string& label(const RunState& run, const std::string& id) {
    auto it = m_labels.find(id);
    if (it == m_labels.end()) it = m_labels.emplace(id, node_label(run, id)).first;
    return it->second;
  }

  std::FILE* m_out;
  std::string m_line;
  std::map<std::string, std::string> m_labels;  // node id -> "#3 KSampler"
  long long m_secs = -1;
  std::string m_elapsed;
};

class LiveDisplay : public Display {
 public:
  explicit LiveDisplay(std::FILE* out) : m_out(out) {}
  ~LiveDisplay() override { clear(); }

  void event(const RunState& run, const Event& e) override {
    if (e.type == EventType::execution_error || e.type == EventType::execution_interrupted) {
      message((e.type == EventType::execution_error ? "error: " : "interrupted: ") + describe_failure(run));
      return;
    }
    if (e.type == EventType::text) {
      message(node_label(run, e.node) + ": " + e.text);
      return;
    }
    m_run = &run;
    auto now = Clock::now();
    bool node_changed = run.current != m_last_node;
    if (!node_changed && now - m_last_draw < std::chrono::milliseconds(100)) return;
    draw(now);
  }

  void message(const std::string& line) override {
    clear();
    std::fputs(line.c_str(), m_out);
    std::fputc('\n', m_out);
    if (m_run) draw(Clock::now());
    std::fflush(m_out);
  }

  void saved(const RunState&, const std::string& path) override { message("saved " + path); }

  void finished(const RunState& run) override {
    if (m_run == &run) m_run = nullptr;
    message(summary_line(run));
  }

  void tick() override {
    if (m_run) draw(Clock::now());
  }

 private:
  void clear() {
    if (!m_drawn) return;
    std::fputs("\r\033[K", m_out);
    m_drawn = false;
  }

  void draw(Clock::time_point now) {
    const RunState& run = *m_run;
    m_last_draw = now;
    m_last_node = run.current;
    double f = run.fraction();
    auto elapsed = now - run.origin();
    std::string line = "run " + std::to_string(run.index) + "/" + std::to_string(run.count) + " ";
    if (run.outcome == Outcome::pending) {
      line += "queued";
    } else {
      if (run.outcome == Outcome::success) line += "saving outputs";
      else line += run.current.empty() ? std::string("starting") : node_label(run, run.current);
      if (run.max > 1) {
        constexpr int width = 20;
        int filled = static_cast<int>(std::lround(width * std::clamp(run.value / run.max, 0.0, 1.0)));
        char steps[48];
        std::snprintf(steps, sizeof steps, " %g/%g", run.value, run.max);
        line += " [" + std::string(static_cast<std::size_t>(filled), '#') +
                std::string(static_cast<std::size_t>(width - filled), '-') + "]" + steps;
      }
      char pct[16];
      std::snprintf(pct, sizeof pct, "  %3.0f%%  ", f * 100);
      line += pct + format_duration(elapsed);
      if (f > 0.02 && f < 1.0)
        line += " eta " + format_duration(std::chrono::duration_cast<Clock::duration>(elapsed * ((1.0 - f) / f)));
    }
    fit_to(line, terminal_columns(m_out));
    std::fputs("\r\033[K", m_out);
    std::fputs(line.c_str(), m_out);
    std::fflush(m_out);
    m_drawn = true;
  }

  std::FILE* m_out;
  const RunState* m_run = nullptr;
  std::string m_last_node;
  Clock::time_point m_last_draw{};
  bool m_drawn = false;
};

class JsonDisplay : public Display {
 public:
  explicit JsonDisplay(std::FILE* out) : m_out(out) {}

  void event(const RunState& run, const Event& e) override {
    if (e.type == EventType::other || e.type == EventType::progress_state) return;
    json j = {{"event", to_string(e.type)}, {"prompt_id", run.prompt_id}, {"run", run.index},
              {"percent", std::lround(run.fraction() * 1000) / 10.0}};
    if (!e.node.empty()) {
      j["node"] = e.node;
      if (const NodeInfo* n = run.node(e.node)) {
        j["class_type"] = n->class_type;
        j["title"] = n->title;
      }
    }
    if (e.type == EventType::progress) {
      j["value"] = e.value;
      j["max"] = e.max;
    } else if (e.type == EventType::text) {
      j["text"] = e.text;
    } else if (e.type == EventType::status) {
      j["queue_remaining"] = e.queue_remaining;
    } else if (e.type == EventType::execution_error || e.type == EventType::execution_interrupted ||
               e.type == EventType::execution_cached || e.type == EventType::executed) {
      j["data"] = e.data;
    }
    write(j);
  }

  void message(const std::string& line) override { write({{"event", "message"}, {"message", line}}); }

  void saved(const RunState& run, const std::string& path) override {
    write({{"event", "saved"}, {"prompt_id", run.prompt_id}, {"run", run.index}, {"path", path}});
  }

  void finished(const RunState& run) override {
    json j = {{"event", "finished"}, {"prompt_id", run.prompt_id}, {"run", run.index},
              {"outcome", to_string(run.outcome)}};
    if (!run.error.is_null()) j["error"] = run.error;
    write(j);
  }

 private:
  void write(const json& j) {
    std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), m_out);
    std::fflush(m_out);
  }

  std::FILE* m_out;
};

}  // namespace

std::unique_ptr<Display> make_display(DisplayKind kind, std::FILE* out) {
  switch (kind) {
    case DisplayKind::live: return std::make_unique<LiveDisplay>(out);
    case DisplayKind::plain: return std::make_unique<PlainDisplay>(out);
    case DisplayKind::json: return std::make_unique<JsonDisplay>(out);
  }
  return std::make_unique<PlainDisplay>(out);
}

}  // namespace autopod::comfy
