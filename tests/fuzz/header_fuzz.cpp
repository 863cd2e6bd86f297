// libFuzzer target for the model header parsers (models/safetensors.cpp, models/gguf.cpp) and
// recognition on whatever they accept: bytes from a volume or a download are untrusted.
// Built with clang (-fsanitize=fuzzer,address,undefined) by tests/fuzz/CMakeLists.txt.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "models/library.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  namespace m = autopod::models;
  if (auto h = m::parse_safetensors_header(bytes)) {
    auto r = m::recognise(*h);
    if (h->expected_size() < 8 + h->header_length)
      __builtin_trap();  // the size cannot wrap
    (void)r;
  }
  if (auto g = m::parse_gguf_header(bytes))
    (void)m::recognise(*g);
  (void)m::recognise_by_name(std::string(bytes.substr(0, 64)), "loras");
  return 0;
}
