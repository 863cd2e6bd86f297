#pragma once
// Shared by the models tests: the three fakes started on loopback, test bytes, fast options.

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>

#include "core/fs.hpp"
#include "core/http.hpp"
#include "fakes/fake_clock.hpp"
#include "harness/harness.hpp"
#include "models/internal.hpp"
#include "models/models.hpp"
#include "sandbox/model_hubs.hpp"
#include "sandbox/storage_server.hpp"

namespace autopod::testing {

// Deterministic bytes that differ at every offset (so a misplaced range changes the hash).
inline std::string test_bytes(std::size_t n, unsigned seed = 1) {
  std::string out(n, '\0');
  std::mt19937 rng(seed);
  for (auto& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

inline std::string sha256_of(const std::string& bytes) {
  models::Sha256 sha;
  sha.update(bytes.data(), bytes.size());
  return sha.hex();
}

inline std::string read_all(const std::filesystem::path& p) {
  auto r = core::read_file(p);
  return r ? *r : std::string();
}

// Storage, Hugging Face and Civitai fakes on loopback, started, and a resolver aimed at them.
struct Hubs {
  explicit Hubs(sandbox::StorageOptions options = {}) : storage(options) {
    EXPECT_TRUE(storage.start());
    EXPECT_TRUE(hf.start());
    EXPECT_TRUE(civitai.start());
  }
  models::Endpoints endpoints(std::string hf_token = {}, std::string civitai_token = {}) const {
    models::Endpoints ep;
    ep.hf = hf.url();
    ep.civitai = civitai.url();
    ep.hf_token = std::move(hf_token);
    ep.civitai_token = std::move(civitai_token);
    return ep;
  }
  models::Resolver resolver(std::string hf_token = {}, std::string civitai_token = {}) {
    return models::Resolver(*transport, endpoints(std::move(hf_token), std::move(civitai_token)),
                            clock);
  }
  sandbox::StorageServer storage;
  sandbox::HfFake hf{storage};
  sandbox::CivitaiFake civitai{storage};
  std::unique_ptr<core::HttpTransport> transport = core::make_curl_transport();
  FakeClock clock;  // resolver retries back off without sleeping
};

inline models::ManifestEntry entry(const std::string& source, const std::string& folder = "checkpoints",
                                   const std::string& name = {}) {
  models::ManifestEntry e;
  auto s = models::parse_source(source);
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  if (s) e.source = *s;
  e.folder = folder;
  e.name = name;
  e.where = "test";
  return e;
}

// Small chunks and short backoffs, so that multi-connection paths run on megabytes.
inline models::TransferOptions fast_options(int connections = 4) {
  models::TransferOptions o;
  o.connections = connections;
  o.chunk_bytes = 1 << 20;
  o.single_stream_below = 1 << 20;
  o.stall_timeout = std::chrono::milliseconds(1000);
  o.backoff = core::BackoffSchedule{std::chrono::milliseconds(5), std::chrono::milliseconds(40)};
  return o;
}

}  // namespace autopod::testing
