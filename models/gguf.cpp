// The GGUF header parser (model-sources.md §4.3; the layout of ggml's gguf.h): magic, version,
// counts, metadata KVs, tensor infos. Untrusted bytes: every length is checked against what is
// left before it is used, and nothing is reserved from a count the file states.

#include <cstring>

#include "models/library.hpp"

namespace autopod::models {
namespace {

using core::ErrorCode;

constexpr std::uint64_t k_max_count = 1u << 24;    // tensors or KVs
constexpr std::uint64_t k_max_string = 1u << 24;   // one key or string value
constexpr std::uint64_t k_max_array = 1ull << 32;  // elements of one array
constexpr std::size_t k_kept_string = 256;
constexpr std::uint32_t k_max_dims = 8;

core::Error malformed(const std::string& what) {
  return core::Error{ErrorCode::protocol, "malformed gguf header: " + what,
                     "the file is damaged or not GGUF; download it again"};
}

// ggml_type names by id (ggml.h); the ones a diffusion GGUF uses.
std::string type_name(std::uint32_t t) {
  static const std::map<std::uint32_t, const char*> names = {
      {0, "F32"},   {1, "F16"},   {2, "Q4_0"},   {3, "Q4_1"},  {6, "Q5_0"},  {7, "Q5_1"},
      {8, "Q8_0"},  {9, "Q8_1"},  {10, "Q2_K"},  {11, "Q3_K"}, {12, "Q4_K"}, {13, "Q5_K"},
      {14, "Q6_K"}, {15, "Q8_K"}, {24, "I8"},    {25, "I16"},  {26, "I32"},  {27, "I64"},
      {28, "F64"},  {30, "BF16"}, {34, "TQ1_0"}, {35, "TQ2_0"}};
  auto it = names.find(t);
  return it == names.end() ? "type" + std::to_string(t) : it->second;
}

// Reads little-endian values off the front of the bytes; `short_read` once they run out.
class Reader {
 public:
  Reader(std::string_view bytes, bool wide) : m_bytes(bytes), m_wide(wide) {}
  bool short_read() const { return m_short; }
  template <typename T>
  T get() {
    T v{};
    if (m_short || m_bytes.size() - m_at < sizeof(T)) {
      m_short = true;
      return v;
    }
    std::memcpy(&v, m_bytes.data() + m_at, sizeof(T));  // hosts we build for are little-endian
    m_at += sizeof(T);
    return v;
  }
  // v1 wrote lengths and counts as u32, later versions as u64.
  std::uint64_t count() { return m_wide ? get<std::uint64_t>() : get<std::uint32_t>(); }
  core::Result<std::string> string() {
    std::uint64_t n = count();
    if (n > k_max_string)
      return core::fail(malformed("a string of " + std::to_string(n) + " bytes"));
    if (m_short || m_bytes.size() - m_at < n) {
      m_short = true;
      return std::string();
    }
    std::string s(m_bytes.substr(m_at, n));
    m_at += n;
    return s;
  }
  void skip(std::uint64_t n) {
    if (m_short || m_bytes.size() - m_at < n)
      m_short = true;
    else
      m_at += n;
  }

 private:
  std::string_view m_bytes;
  bool m_wide;
  std::size_t m_at = 0;
  bool m_short = false;
};

std::uint64_t scalar_size(std::uint32_t type) {
  switch (type) {
    case 0:
    case 1:
    case 7:
      return 1;  // u8, i8, bool
    case 2:
    case 3:
      return 2;  // u16, i16
    case 4:
    case 5:
    case 6:
      return 4;  // u32, i32, f32
    case 10:
    case 11:
    case 12:
      return 8;  // u64, i64, f64
    default:
      return 0;
  }
}

// One value of `type`; its text when it is a scalar or a string, "[N items]" for an array.
core::Result<std::string> read_value(Reader& r, std::uint32_t type, int depth) {
  switch (type) {
    case 0:
      return std::to_string(r.get<std::uint8_t>());
    case 1:
      return std::to_string(r.get<std::int8_t>());
    case 2:
      return std::to_string(r.get<std::uint16_t>());
    case 3:
      return std::to_string(r.get<std::int16_t>());
    case 4:
      return std::to_string(r.get<std::uint32_t>());
    case 5:
      return std::to_string(r.get<std::int32_t>());
    case 6:
      return std::to_string(r.get<float>());
    case 7:
      return std::string(r.get<std::uint8_t>() ? "true" : "false");
    case 10:
      return std::to_string(r.get<std::uint64_t>());
    case 11:
      return std::to_string(r.get<std::int64_t>());
    case 12:
      return std::to_string(r.get<double>());
    case 8: {
      TRY_ASSIGN(auto s, r.string());
      if (s.size() > k_kept_string)
        s.resize(k_kept_string);
      return s;
    }
    case 9: {
      if (depth >= 2)
        return core::fail(malformed("arrays nested deeper than 2"));
      auto item = r.get<std::uint32_t>();
      std::uint64_t n = r.count();
      if (n > k_max_array)
        return core::fail(malformed("an array of " + std::to_string(n) + " items"));
      if (std::uint64_t size = scalar_size(item); size != 0) {
        r.skip(n * size);  // n <= 2^32 and size <= 8: no overflow
      } else if (item == 8 || item == 9) {
        for (std::uint64_t i = 0; i < n && !r.short_read(); ++i)
          TRY(read_value(r, item, depth + 1));
      } else {
        return core::fail(malformed("an array of unknown type " + std::to_string(item)));
      }
      return "[" + std::to_string(n) + " items]";
    }
    default:
      return core::fail(malformed("unknown value type " + std::to_string(type)));
  }
}

core::Status read_tensor_infos(Reader& r, GgufHeader& h) {
  std::map<std::string, std::uint64_t> by_type;
  for (std::uint64_t i = 0; i < h.tensor_count; ++i) {
    TRY_ASSIGN(auto name, r.string());
    auto dims = r.get<std::uint32_t>();
    if (r.short_read())
      return {};
    if (dims > k_max_dims)
      return core::fail(
          malformed("tensor " + name + " has " + std::to_string(dims) + " dimensions"));
    for (std::uint32_t d = 0; d < dims; ++d)
      r.count();
    auto type = r.get<std::uint32_t>();
    r.get<std::uint64_t>();  // offset
    if (r.short_read())
      return {};
    h.tensor_names.push_back(std::move(name));
    ++by_type[type_name(type)];
  }
  std::uint64_t best = 0;
  for (const auto& [type, n] : by_type)
    if (n > best && type != "F32")
      best = n, h.quantization = type;  // norms and biases stay F32
  if (h.quantization.empty() && !by_type.empty())
    h.quantization = by_type.begin()->first;
  h.complete = true;
  return {};
}

}  // namespace

core::Result<GgufHeader> parse_gguf_header(std::string_view bytes) {
  if (bytes.size() < 4 || bytes.substr(0, 4) != "GGUF")
    return core::fail(malformed("no GGUF magic"));
  GgufHeader h;
  Reader head(bytes.substr(4), false);
  h.version = head.get<std::uint32_t>();
  if (head.short_read())
    return core::fail(malformed("the file ends inside the header"));
  if (h.version < 1 || h.version > 3)
    return core::fail(malformed("version " + std::to_string(h.version) + " (known: 1 to 3)"));
  Reader r(bytes.substr(8), h.version >= 2);
  h.tensor_count = r.count();
  h.kv_count = r.count();
  if (r.short_read())
    return core::fail(malformed("the file ends inside the header"));
  if (h.tensor_count > k_max_count || h.kv_count > k_max_count)
    return core::fail(malformed(std::to_string(h.tensor_count) + " tensors, " +
                                std::to_string(h.kv_count) + " KVs (at most 2^24 each)"));
  for (std::uint64_t i = 0; i < h.kv_count; ++i) {
    TRY_ASSIGN(auto key, r.string());
    auto type = r.get<std::uint32_t>();
    if (r.short_read())
      return h;
    TRY_ASSIGN(auto value, read_value(r, type, 0));
    if (r.short_read())
      return h;
    if (key == "general.architecture")
      h.architecture = value;
    if (key == "general.file_type" && (type == 4 || type == 5))
      h.file_type = std::stoll(value);
    if (type != 9)
      h.metadata[key] = value;
  }
  TRY(read_tensor_infos(r, h));
  return h;
}

}  // namespace autopod::models
