#include "agent/service/secrets.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/fs.hpp"

namespace autopod::agent::service {

namespace {

std::string hex(const unsigned char* data, std::size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 15];
  }
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

core::Result<std::string> load_or_make_secret(const std::filesystem::path& file) {
  if (auto text = core::read_file(file); text && !trim(*text).empty()) return trim(*text);
  else if (!text && text.error().code != core::ErrorCode::not_found)
    return core::fail(text.error());
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1)
    return core::fail(core::ErrorCode::internal, "openssl could not make random bytes for " + file.string());
  std::string secret = hex(bytes, sizeof bytes);
  TRY(core::ensure_dir(file.parent_path()));
  TRY(core::write_file_atomic(file, secret + "\n", 0600));
  return secret;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &len);
  return hex(out, len);
}

std::string webhook_signature(std::string_view secret, std::int64_t unix_time, std::string_view body) {
  std::string t = std::to_string(unix_time);
  std::string signed_text = t + "." + std::string(body);
  return "t=" + t + ",v1=" + hmac_sha256_hex(secret, signed_text);
}

}  // namespace autopod::agent::service
