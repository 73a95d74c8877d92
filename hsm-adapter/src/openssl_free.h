// The deleter for std::unique_ptr over OpenSSL objects: OpenSslFree<EVP_PKEY_free> and so on.
#pragma once

namespace keyline::hsm::internal {

template <auto Free>
struct OpenSslFree {
  template <typename T>
  void operator()(T* p) const { Free(p); }
};

}  // namespace keyline::hsm::internal
