// What the editor does to text widgets when it queues: %date:FORMAT% and %node.widget% in save
// nodes' filename_prefix, and {a|b} choices with comments removed in dynamic prompts.

#include <set>
#include <string_view>

#include "comfy/ui_graph.hpp"

namespace autopod::comfy::ui {

namespace {

std::string padded(int value, std::size_t width) {
  std::string s = std::to_string(value);
  return s.size() < width ? std::string(width - s.size(), '0') + s : s;
}

// The length of the date token at the start of `s` (0: none), matching the editor's tokens:
// d, dd, M, MM, h, hh, m, mm, s, ss (one or two letters), and yy, yyy, yyyy.
std::size_t token_length(std::string_view s) {
  if (s.empty()) return 0;
  char c = s[0];
  if (c == 'd' || c == 'M' || c == 'h' || c == 'm' || c == 's') return s.size() > 1 && s[1] == c ? 2 : 1;
  if (c == 'y' && s.size() > 1 && s[1] == 'y') {
    std::size_t n = 2;
    while (n < 4 && n < s.size() && s[n] == 'y') ++n;
    return n;
  }
  return 0;
}

// Characters the editor replaces in a referenced widget value, so it cannot leave the folder.
std::string file_name_safe(std::string s) {
  for (char& c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || std::string_view("/?<>\\:*|\"").find(c) != std::string_view::npos) c = '_';
  }
  return s;
}

std::string value_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

std::string strip_comments(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    if (s.compare(i, 2, "/*") == 0) {
      auto end = s.find("*/", i + 2);
      if (end != std::string_view::npos) {
        i = end + 2;
        continue;
      }
    }
    if (s.compare(i, 2, "//") == 0) {
      auto end = s.find('\n', i);
      i = end == std::string_view::npos ? s.size() : end;
      continue;
    }
    out += s[i++];
  }
  return out;
}

class DynamicPrompt {
 public:
  DynamicPrompt(std::string text, const std::function<std::size_t(std::size_t)>& pick)
      : m_text(std::move(text)), m_pick(pick) {}

  // Everything up to the end, choices resolved; escapes kept (removed once at the very end).
  std::string run() {
    std::string out;
    while (m_at < m_text.size()) {
      char c = m_text[m_at++];
      if (c == '\\') out += escape();
      else if (c == '{') out += choice();
      else out += c;
    }
    return out;
  }

 private:
  std::string escape() {
    std::string e = "\\";
    if (m_at < m_text.size()) e += m_text[m_at++];
    return e;
  }

  // After a '{': reads the options to the matching '}' and resolves the one picked.
  std::string choice() {
    std::vector<std::string> options;
    std::string current;
    int depth = 0;
    while (m_at < m_text.size()) {
      char c = m_text[m_at++];
      if (c == '\\') {
        current += escape();
        continue;
      }
      if (c == '}' && depth == 0) break;
      if (c == '|' && depth == 0) {
        options.push_back(std::move(current));
        current.clear();
        continue;
      }
      depth += c == '{' ? 1 : c == '}' ? -1 : 0;
      current += c;
    }
    options.push_back(std::move(current));
    std::size_t i = m_pick(options.size());
    return DynamicPrompt(options[i < options.size() ? i : 0], m_pick).run();
  }

  std::string m_text;
  const std::function<std::size_t(std::size_t)>& m_pick;
  std::size_t m_at = 0;
};

}  // namespace

bool is_save_node(const std::string& type) {
  static const std::set<std::string> k = {"SaveImage", "SaveImageAdvanced", "SaveSVGNode", "SaveVideo",
                                          "SaveAnimatedWEBP", "SaveWEBM", "SaveAudio", "SaveAudioMP3",
                                          "SaveAudioOpus", "SaveAudioAdvanced", "SaveGLB", "SaveAnimatedPNG",
                                          "CLIPSave", "VAESave", "ModelSave", "LoraSave", "SaveLatent"};
  return k.count(type) > 0;
}

std::string format_date(const std::string& format, const std::tm& t) {
  std::string out;
  std::string_view rest = format;
  while (!rest.empty()) {
    std::size_t n = token_length(rest);
    if (n == 0) {
      out += rest[0];
      rest.remove_prefix(1);
      continue;
    }
    switch (rest[0]) {
      case 'd': out += padded(t.tm_mday, n); break;
      case 'M': out += padded(t.tm_mon + 1, n); break;
      case 'h': out += padded(t.tm_hour, n); break;
      case 'm': out += padded(t.tm_min, n); break;
      case 's': out += padded(t.tm_sec, n); break;
      default:  // y
        if (n == 4) out += std::to_string(t.tm_year + 1900);
        else if (n == 2) out += padded((t.tm_year + 1900) % 100, 2);
        else out += std::string(n, 'y');  // yyy is matched but left as written
    }
    rest.remove_prefix(n);
  }
  return out;
}

std::string replace_references(const std::string& value, const std::tm& local_time, const WidgetLookup& lookup) {
  std::string out;
  std::size_t at = 0;
  while (at < value.size()) {
    auto open = value.find('%', at);
    auto close = open == std::string::npos ? open : value.find('%', open + 1);
    if (close == std::string::npos || close == open + 1) {
      // no reference here; an empty %% is copied and its second % may open the next one
      auto stop = close == std::string::npos ? value.size() : close;
      out.append(value, at, stop - at);
      at = stop;
      continue;
    }
    out.append(value, at, open - at);
    std::string ref = value.substr(open + 1, close - open - 1), replaced = value.substr(open, close - open + 1);
    auto dot = ref.find('.');
    bool two_parts = dot != std::string::npos && ref.find('.', dot + 1) == std::string::npos;
    if (!two_parts && ref.rfind("date:", 0) == 0) {
      // As the editor splits at dots first, a format stops at its first dot.
      replaced = format_date(ref.substr(5, dot == std::string::npos ? std::string::npos : dot - 5), local_time);
    } else if (two_parts) {
      if (auto v = lookup(ref.substr(0, dot), ref.substr(dot + 1))) replaced = file_name_safe(value_text(*v));
    }
    out += replaced;
    at = close + 1;
  }
  return out;
}

std::string resolve_dynamic_prompt(const std::string& text, const std::function<std::size_t(std::size_t)>& pick) {
  std::string resolved = DynamicPrompt(strip_comments(text), pick).run();
  std::string out;  // \{ \} \| become the plain character; other escapes stay as written
  for (std::size_t i = 0; i < resolved.size(); ++i) {
    if (resolved[i] == '\\' && i + 1 < resolved.size() &&
        (resolved[i + 1] == '{' || resolved[i + 1] == '}' || resolved[i + 1] == '|'))
      ++i;
    out += resolved[i];
  }
  return out;
}

}  // namespace autopod::comfy::ui
