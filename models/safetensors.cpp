// The safetensors header parser (model-sources.md §4.1). Its input is untrusted bytes from a
// volume or a download: every length, count and offset is checked before it is used.

#include <algorithm>
#include <set>

#include "models/library.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;
using nlohmann::json;

constexpr std::uint64_t k_max_header = 100'000'000;  // the reference library's MAX_HEADER_SIZE
constexpr std::size_t k_max_rank = 8;
constexpr int k_max_depth = 3;  // {name: {shape: [dims]}}

core::Error malformed(const std::string& what) {
  return core::Error{ErrorCode::protocol, "malformed safetensors header: " + what,
                     "the file is damaged or not safetensors; download it again"};
}

// Bits per element; 0 for a dtype this table does not know (its size check is skipped).
unsigned dtype_bits(const std::string& dtype) {
  static const std::map<std::string, unsigned, std::less<>> bits = {
      {"BOOL", 8},        {"U8", 8},          {"I8", 8},      {"F8_E4M3", 8}, {"F8_E5M2", 8},
      {"F8_E4M3FNUZ", 8}, {"F8_E5M2FNUZ", 8}, {"F8_E8M0", 8}, {"I16", 16},    {"U16", 16},
      {"F16", 16},        {"BF16", 16},       {"I32", 32},    {"U32", 32},    {"F32", 32},
      {"F64", 64},        {"I64", 64},        {"U64", 64},    {"C64", 64},    {"F4", 4},
      {"F6_E2M3", 6},     {"F6_E3M2", 6}};
  auto it = bits.find(dtype);
  return it == bits.end() ? 0 : it->second;
}

// Nesting depth of the JSON text, outside strings; stops counting past the limit. nlohmann's
// parser is iterative, but a deep document still costs memory: refuse it before parsing.
bool too_deep(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > k_max_depth)
        return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

core::Result<std::uint64_t> non_negative(const json& v, const std::string& where) {
  if (v.is_number_unsigned())
    return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
    return v.get<std::uint64_t>();
  return core::fail(malformed(where + " is not a non-negative integer"));
}

core::Result<Tensor> parse_tensor(const std::string& name, const json& v) {
  if (!v.is_object())
    return core::fail(malformed("tensor " + name + " is not an object"));
  Tensor t;
  t.name = name;
  auto dtype = v.find("dtype");
  auto shape = v.find("shape");
  auto offsets = v.find("data_offsets");
  if (dtype == v.end() || !dtype->is_string() || shape == v.end() || !shape->is_array() ||
      offsets == v.end() || !offsets->is_array() || offsets->size() != 2)
    return core::fail(malformed("tensor " + name + " needs dtype, shape and two data_offsets"));
  t.dtype = dtype->get<std::string>();
  if (shape->size() > k_max_rank)
    return core::fail(malformed("tensor " + name + " has " + std::to_string(shape->size()) +
                                " dimensions (at most 8)"));
  // Elements; an overflowing product can match no real byte count.
  std::uint64_t elements = 1;
  bool overflow = false;
  for (const auto& d : *shape) {
    TRY_ASSIGN(auto n, non_negative(d, "a dimension of " + name));
    t.shape.push_back(static_cast<std::int64_t>(std::min<std::uint64_t>(n, INT64_MAX)));
    overflow = __builtin_mul_overflow(elements, n, &elements) || overflow;
  }
  TRY_ASSIGN(t.begin, non_negative((*offsets)[0], "data_offsets of " + name));
  TRY_ASSIGN(t.end, non_negative((*offsets)[1], "data_offsets of " + name));
  if (t.end < t.begin)
    return core::fail(malformed("tensor " + name + " ends before it begins"));
  if (unsigned bits = dtype_bits(t.dtype); bits != 0) {
    std::uint64_t want_bits = 0;
    overflow = __builtin_mul_overflow(elements, std::uint64_t{bits}, &want_bits) || overflow;
    std::uint64_t want = want_bits / 8 + (want_bits % 8 != 0);
    if (overflow || want != t.end - t.begin)
      return core::fail(
          malformed("tensor " + name + " holds " + std::to_string(t.end - t.begin) +
                    " bytes, its dtype and shape need " +
                    (overflow ? std::string("more than 2^64") : std::to_string(want))));
  }
  return t;
}

core::Status parse_metadata(const json& v, SafetensorsHeader& out) {
  if (!v.is_object())
    return core::fail(malformed("__metadata__ is not an object"));
  for (const auto& [k, value] : v.items()) {
    if (!value.is_string())
      return core::fail(malformed("__metadata__." + k + " is not a string"));
    out.metadata[k] = value.get<std::string>();
  }
  return {};
}

// Offsets sorted by begin must tile [0, last end) exactly: no gap, no overlap.
core::Status check_tiling(SafetensorsHeader& h) {
  std::sort(h.tensors.begin(), h.tensors.end(), [](const Tensor& a, const Tensor& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  std::uint64_t at = 0;
  for (const auto& t : h.tensors) {
    if (t.begin != at)
      return core::fail(malformed("tensor " + t.name +
                                  (t.begin < at ? " overlaps" : " leaves a gap after") +
                                  " the previous one (begins at " + std::to_string(t.begin) +
                                  ", expected " + std::to_string(at) + ")"));
    at = t.end;
  }
  h.data_bytes = at;
  return {};
}

}  // namespace

const Tensor* SafetensorsHeader::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

core::Result<std::uint64_t> safetensors_header_length(std::string_view first_bytes) {
  if (first_bytes.size() < 8)
    return core::fail(malformed("the file is shorter than 8 bytes"));
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | static_cast<unsigned char>(first_bytes[static_cast<std::size_t>(i)]);
  if (n < 2 || n > k_max_header)
    return core::fail(malformed("header length " + std::to_string(n) + " is outside 2..100000000"));
  return n;
}

core::Result<SafetensorsHeader> parse_safetensors_header(std::string_view bytes) {
  TRY_ASSIGN(auto n, safetensors_header_length(bytes));
  if (bytes.size() - 8 < n)
    return core::fail(ErrorCode::invalid_argument,
                      "the safetensors header is " + std::to_string(n) + " bytes, " +
                          std::to_string(bytes.size() - 8) + " were read",
                      "read the first " + std::to_string(8 + n) + " bytes");
  std::string_view text = bytes.substr(8, n);
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos ||
      text[text.find_first_not_of(" \t\r\n")] != '{')
    return core::fail(malformed("the header is not a JSON object"));
  if (too_deep(text))
    return core::fail(malformed("the JSON nests deeper than 3 levels"));
  std::set<std::string, std::less<>> names;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && duplicate.empty() &&
        !names.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  json j = json::parse(text.begin(), text.end(), on_event, false);
  if (j.is_discarded())
    return core::fail(malformed("the header is not valid JSON"));
  if (!j.is_object())
    return core::fail(malformed("the header is not a JSON object"));
  if (!duplicate.empty())
    return core::fail(malformed("the name " + duplicate + " appears twice"));
  SafetensorsHeader h;
  h.header_length = n;
  h.tensors.reserve(j.size());
  for (const auto& [name, v] : j.items()) {
    if (name == "__metadata__") {
      TRY(parse_metadata(v, h));
      continue;
    }
    TRY_ASSIGN(auto t, parse_tensor(name, v));
    h.tensors.push_back(std::move(t));
  }
  TRY(check_tiling(h));
  return h;
}

}  // namespace autopod::models
