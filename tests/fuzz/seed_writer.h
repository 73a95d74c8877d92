// Seed corpus writing shared by seed_corpus.cc and seed_corpus_pks.cc (pks_store.fbs and
// kms_store.fbs each define wire::KeySetState, so one file cannot include both).
#pragma once

#include <flatbuffers/flatbuffers.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "keyline/schemas/build.h"
#include "keyline/schemas/decode.h"

namespace keyline::fuzz {

using Bytes = std::vector<uint8_t>;

inline Bytes Finished(const flatbuffers::FlatBufferBuilder& fbb) {
  auto bytes = schemas::FinishedBytes(fbb);
  return {bytes.begin(), bytes.end()};
}

// Writes <root>/<target>/<name>.
class SeedWriter {
 public:
  explicit SeedWriter(std::filesystem::path root) : root_(std::move(root)) {}

  void Write(const std::string& target, const std::string& name, const Bytes& bytes) {
    std::filesystem::create_directories(root_ / target);
    std::ofstream out(root_ / target / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "keyline-fuzz-seeds: cannot write %s/%s\n", target.c_str(), name.c_str());
      std::exit(1);
    }
  }
  void Write(const std::string& target, const std::string& name, uint8_t selector,
             std::span<const uint8_t> bytes) {
    Bytes prefixed{selector};
    prefixed.insert(prefixed.end(), bytes.begin(), bytes.end());
    Write(target, name, prefixed);
  }
  // The same, once `bytes` decodes as T with the project's decoder.
  template <typename T>
  void WriteVerified(const std::string& target, const std::string& name, uint8_t selector,
                     const Bytes& bytes) {
    Require(schemas::DecodeVerified<T>(bytes, name).status(), target, name);
    Write(target, name, selector, bytes);
  }

  // A seed that does not decode would only test the refusals: stop, naming it.
  static void Require(const Status& decoded, const std::string& target, const std::string& name) {
    if (decoded.ok()) return;
    std::fprintf(stderr, "keyline-fuzz-seeds: seed %s/%s does not decode: %s\n", target.c_str(),
                 name.c_str(), decoded.message().c_str());
    std::exit(1);
  }

 private:
  std::filesystem::path root_;
};

// Seeds for fuzz_pks_store (seed_corpus_pks.cc).
void WritePksStoreSeeds(SeedWriter& out);

}  // namespace keyline::fuzz
