// KeyCustody: the one interface through which Keyline handles key material.
//
// Key bytes never cross this interface. Callers hold KeyHandles (references to keys inside one
// custody instance) and opaque blobs (WrappedKey, WrappedKeySet) that are safe to store in
// RocksDB, to queue and to send. Everything that needs a key in clear (AES, CMAC, the SHE
// memory-update protocol, Ed25519 signing, sealing for a peer) happens behind this interface.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<KeyCustody> hsm, CreateSoftwareCustody(options));
//   ASSIGN_OR_RETURN(KeyHandle transport, hsm->UnwrapFromStorage(blob, "product/P1/transport"));
//   ASSIGN_OR_RETURN(SheLoadMessages m, hsm->ComputeSheLoad(request));
//
// Thread safety: every implementation is safe to call from several threads at once.
// Errors: every function returns Status/StatusOr; no exception crosses this interface, and no
// error message contains key bytes.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "keyline/common/status.h"
#include "keyline/hsm/key_handle.h"
#include "keyline/hsm/she.h"

namespace keyline::hsm {

// A public key (Ed25519 verification key or X25519 agreement key): 32 bytes, public data.
struct PublicKey {
  KeyKind kind = KeyKind::kEd25519;
  std::array<uint8_t, 32> bytes{};

  friend bool operator==(const PublicKey&, const PublicKey&) = default;
};

// One key wrapped under the custody's local key-encryption key: opaque, authenticated, bound
// to the `context` given when it was wrapped. Safe to store; only the same custody (same master
// key file or same token KEK) can unwrap it.
struct WrappedKey {
  std::vector<uint8_t> bytes;
};

// Keys wrapped for a named peer's X25519 public key (a plant's PKS, the KMS's import key).
// Same format from every backend: the software backend can unwrap what PKCS#11 wrapped.
struct WrappedKeySet {
  std::vector<uint8_t> bytes;
};

// An Ed25519 signature.
using Signature = std::array<uint8_t, 64>;

// How a backend does what it does. A backend states its limitations here (and logs them at
// start-up) instead of silently falling back.
struct CustodyInfo {
  std::string backend;                   // "software" | "pkcs11"
  std::string description;               // "libsodium 1.0.18 + OpenSSL 3.0.x" / token label, slot
  std::vector<std::string> limitations;  // one sentence each; empty when none
};

class KeyCustody {
 public:
  virtual ~KeyCustody() = default;

  virtual CustodyInfo Info() const = 0;

  // --- Keys -----------------------------------------------------------------------------

  // A fresh random key of `kind`.
  [[nodiscard]] virtual StatusOr<KeyHandle> GenerateKey(KeyKind kind) = 0;

  // Imports a key given as hex (an engineer's input, an OEM's test vector). The digits are
  // parsed straight into guarded memory. `what` names the value in errors ("--new-key"); errors
  // never echo the digits. kAes128 takes 32 hex digits; kEd25519 / kX25519 take a 64-digit seed.
  [[nodiscard]] virtual StatusOr<KeyHandle> ImportKeyFromHex(KeyKind kind, std::string_view hex,
                                                             std::string_view what) = 0;

  // A long-lived key of this custody known by name ("pks-signing", "plant-transport"): the same
  // key every time the same custody (master key / token) is opened. Created on first use.
  // The handle stays valid for the custody's lifetime; DestroyKey on it only drops the handle.
  [[nodiscard]] virtual StatusOr<KeyHandle> GetOrCreateNamedKey(std::string_view name,
                                                                KeyKind kind) = 0;

  // Forgets the key behind `handle` and wipes its memory. Unknown handles are NotFound.
  [[nodiscard]] virtual Status DestroyKey(KeyHandle handle) = 0;

  // The public half of a kEd25519 / kX25519 key. A kEcdsaP256 key is refused: use
  // GetPublicKeyInfo.
  [[nodiscard]] virtual StatusOr<PublicKey> GetPublicKey(KeyHandle handle) = 0;

  // The public half of a kEcdsaP256 key as a DER SubjectPublicKeyInfo (id-ecPublicKey,
  // prime256v1): what a CSR or a certificate carries.
  [[nodiscard]] virtual StatusOr<std::vector<uint8_t>> GetPublicKeyInfo(KeyHandle handle) = 0;

  // The AES key check value (first 3 bytes of AES-ECB(key, 0^128)), the usual way to compare
  // symmetric keys by eye without revealing them. kAes128 only.
  [[nodiscard]] virtual StatusOr<std::array<uint8_t, 3>> KeyCheckValue(KeyHandle handle) = 0;

  // --- Storage under the local key-encryption key ----------------------------------------

  // Wraps `key` for storage. `context` is bound to the blob (say what the blob is:
  // "keyset/42/slot/1"); unwrapping needs the same context.
  [[nodiscard]] virtual StatusOr<WrappedKey> WrapForStorage(KeyHandle key,
                                                            std::string_view context) = 0;
  // WrapForStorage for many keys at once, `contexts[i]` bound to `keys[i]`: what an import of
  // a million key sets calls, so a backend can take its lock and its randomness once per call.
  // All or nothing: an unknown handle fails the whole call. Defined here (a loop) so that
  // KeyCustody keeps no out-of-line member: stand-ins need not link the adapter.
  [[nodiscard]] virtual StatusOr<std::vector<WrappedKey>> WrapManyForStorage(
      std::span<const KeyHandle> keys, std::span<const std::string> contexts) {
    if (keys.size() != contexts.size()) {
      return InvalidArgumentError("WrapManyForStorage: " + std::to_string(keys.size()) +
                                  " keys but " + std::to_string(contexts.size()) + " contexts");
    }
    std::vector<WrappedKey> wrapped;
    wrapped.reserve(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      ASSIGN_OR_RETURN(WrappedKey one, WrapForStorage(keys[i], contexts[i]));
      wrapped.push_back(std::move(one));
    }
    return wrapped;
  }
  // A modified blob, another context or another custody's blob is an error (kDataLoss /
  // kFailedPrecondition), never a wrong key.
  [[nodiscard]] virtual StatusOr<KeyHandle> UnwrapFromStorage(const WrappedKey& blob,
                                                              std::string_view context) = 0;

  // --- Key sets for a peer ---------------------------------------------------------------

  // Seals `keys` (kAes128 only) for the holder of the X25519 private key behind `peer`.
  // `context` is sealed with them ("stock-batch/7/plant/p1") and must match on unwrapping.
  [[nodiscard]] virtual StatusOr<WrappedKeySet> WrapForPeer(std::span<const KeyHandle> keys,
                                                            const PublicKey& peer,
                                                            std::string_view context) = 0;
  // Opens a set sealed for `own_key` (a kX25519 key of this custody); returns the keys in the
  // order they were wrapped. A set for another peer is kPermissionDenied; a modified one is
  // kDataLoss.
  [[nodiscard]] virtual StatusOr<std::vector<KeyHandle>> UnwrapFromPeer(
      KeyHandle own_key, const WrappedKeySet& blob, std::string_view context) = 0;

  // --- SHE memory update protocol (see she.h) ------------------------------------------

  // M1, M2, M3 loading `request.new_key` into `request.slot`, authorised by `request.auth_key`.
  // Keys derived from a handle (K1/K2 of an auth key) are cached with the handle, so a transport
  // key used for every ECU is derived once.
  [[nodiscard]] virtual StatusOr<SheLoadMessages> ComputeSheLoad(const SheLoadRequest& request) = 0;

  // The M4, M5 an ECU must answer after storing `new_key` with these fields.
  [[nodiscard]] virtual StatusOr<SheProof> ComputeSheProof(KeyHandle new_key,
                                                           const SheProofFields& fields) = 0;

  // Whether `proof` proves that an ECU holds `new_key`, and what it says (UID, slot, auth slot,
  // counter). A proof that does not match is a result with valid == false, not an error; errors
  // are for bad handles or backend failures.
  [[nodiscard]] virtual StatusOr<SheProofCheck> CheckSheProof(KeyHandle new_key,
                                                              const SheProof& proof) = 0;

  // --- Signatures and randomness -------------------------------------------------------

  // Ed25519 signature by a kEd25519 key.
  [[nodiscard]] virtual StatusOr<Signature> Sign(KeyHandle signing_key,
                                                 std::span<const uint8_t> message) = 0;

  // ECDSA P-256 signature over SHA-256(message) by a kEcdsaP256 key, DER-encoded
  // (ECDSA-Sig-Value, as X.509 carries it).
  [[nodiscard]] virtual StatusOr<std::vector<uint8_t>> SignEcdsaSha256(
      KeyHandle signing_key, std::span<const uint8_t> message) = 0;

  // `size` random bytes from the backend's generator (the token's for PKCS#11).
  [[nodiscard]] virtual StatusOr<std::vector<uint8_t>> Random(size_t size) = 0;

  // --- Benchmark hook ------------------------------------------------------------------

  // For keyline-bench: `calls` AES-128-ECB encryptions of `blocks_per_call` blocks under the
  // kAes128 `key`, through the same library (or token) and the same code path the SHE
  // functions use. The ciphertext is discarded. Gives the raw ceiling for SHE throughput.
  [[nodiscard]] virtual Status BenchmarkAesBlocks(KeyHandle key, size_t calls,
                                                  size_t blocks_per_call) = 0;
};

// Checks an Ed25519 signature against a public key. Needs no custody (public data only): an
// OEM or the KMS verifies records with it. kUnauthenticated when the signature does not match.
[[nodiscard]] Status VerifySignature(const PublicKey& key, std::span<const uint8_t> message,
                                     const Signature& signature);

// Checks a DER ECDSA P-256 / SHA-256 signature against a DER SubjectPublicKeyInfo. Needs no
// custody. kUnauthenticated when the signature does not match (or is not DER);
// kInvalidArgument when the key is not a P-256 SubjectPublicKeyInfo.
[[nodiscard]] Status VerifyEcdsaSha256(std::span<const uint8_t> spki_der,
                                       std::span<const uint8_t> message,
                                       std::span<const uint8_t> signature);

// Destroys the key when it goes out of scope; for keys unwrapped for one request.
class ScopedKey {
 public:
  ScopedKey() = default;
  ScopedKey(KeyCustody* custody, KeyHandle handle) : custody_(custody), handle_(handle) {}
  ScopedKey(ScopedKey&& other) noexcept;
  ScopedKey& operator=(ScopedKey&& other) noexcept;
  ScopedKey(const ScopedKey&) = delete;
  ScopedKey& operator=(const ScopedKey&) = delete;
  ~ScopedKey();

  const KeyHandle& get() const { return handle_; }
  // Gives up ownership without destroying the key.
  KeyHandle release();

 private:
  void Reset();
  KeyCustody* custody_ = nullptr;
  KeyHandle handle_;
};

}  // namespace keyline::hsm
