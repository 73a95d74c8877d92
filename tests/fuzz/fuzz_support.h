// What every fuzz target shares: an invariant check that aborts (so libFuzzer records the input),
// aligned copies, and a walk over every field of a verified buffer.
#pragma once

#include <flatbuffers/minireflect.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "keyline/schemas/decode.h"

// An invariant of the code under test; a failure aborts, and libFuzzer saves the input.
#define FUZZ_CHECK(condition)                                                          \
  do {                                                                                 \
    if (!(condition)) {                                                                \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (false)

namespace keyline::fuzz {

// A heap copy of exactly `bytes`: 16-byte aligned (as a FlatBuffer wants, and as every service
// hands one to a decoder), and ASan reports a read one byte past its end.
inline std::vector<uint8_t> Copy(std::span<const uint8_t> bytes) {
  return {bytes.begin(), bytes.end()};
}

// Splits a fuzz input into a selector byte (which root type to decode) and an aligned copy of
// the rest. False for an empty input.
inline bool Split(const uint8_t* data, size_t size, uint8_t& selector,
                  std::vector<uint8_t>& rest) {
  if (size == 0) return false;
  selector = data[0];
  rest.assign(data + 1, data + size);
  return true;
}

// A refused buffer says why: a known DecodeError and a message naming what was decoded.
inline void CheckRefusal(const Status& status, schemas::DecodeError why) {
  FUZZ_CHECK(!status.ok());
  FUZZ_CHECK(!status.message().empty());
  FUZZ_CHECK(static_cast<size_t>(why) < schemas::kDecodeErrorCount);
  FUZZ_CHECK(schemas::DecodeErrorName(why) != "unknown_decode_error");
}

// Reads every field, string, vector element and sub-table of a verified T through its generated
// type table, the way a service or tool that reads everything would. Under ASan an offset the
// Verifier let through that points outside the buffer is reported here. Not for tables holding
// a union (minireflect follows a union value whose type is NONE).
template <typename T>
size_t ReadEveryField(std::span<const uint8_t> verified) {
  return flatbuffers::FlatBufferToString(verified.data(), T::MiniReflectTypeTable()).size();
}

// Decodes `bytes` as T with the project's decoder; on success reads every field. Returns
// whether it decoded.
template <typename T>
bool DecodeAndReadAll(std::span<const uint8_t> bytes, const char* what) {
  schemas::DecodeError why{};
  auto decoded = schemas::DecodeVerified<T>(bytes, what, {}, &why);
  if (!decoded.ok()) {
    CheckRefusal(decoded.status(), why);
    return false;
  }
  FUZZ_CHECK(reinterpret_cast<const uint8_t*>(*decoded) >= bytes.data());
  FUZZ_CHECK(reinterpret_cast<const uint8_t*>(*decoded) < bytes.data() + bytes.size());
  (void)ReadEveryField<T>(bytes);
  return true;
}

}  // namespace keyline::fuzz

namespace keyline::fuzz {

// A target over several stored tables: the first input byte (mod their number) picks the
// root table, the rest is the value as read from RocksDB, decoded with
// schemas::DecodeVerified<T> as the services decode it, then read whole.
template <typename... Tables>
int DecodeOneOf(const uint8_t* data, size_t size) {
  using Decoder = bool (*)(std::span<const uint8_t>, const char*);
  static constexpr Decoder kDecoders[] = {&DecodeAndReadAll<Tables>...};
  uint8_t selector = 0;
  std::vector<uint8_t> bytes;
  if (!Split(data, size, selector, bytes)) return 0;
  (void)kDecoders[selector % sizeof...(Tables)](bytes, "stored value");
  return 0;
}

}  // namespace keyline::fuzz
