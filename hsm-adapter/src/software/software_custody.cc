// The software backend. Every secret lives in SecretBytes (libsodium guarded memory); AES and
// CMAC run in OpenSSL contexts that are kept per key, so a key used for every ECU is derived
// and scheduled once. One mutex serialises calls: the work per call is a few microseconds.
#include "keyline/hsm/software_custody.h"

#include <sodium.h>

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>

#include "keyline/common/hex.h"
#include "peer_seal.h"
#include "secret_bytes.h"
#include "ec/p256.h"
#include "she/she_codec.h"
#include "software/master_key.h"
#include "software/openssl_aes.h"

namespace keyline::hsm {
namespace internal {
namespace {

std::atomic<uint32_t> next_custody_id{1};

constexpr uint8_t kStorageMagic[4] = {'K', 'L', 'W', '1'};
constexpr uint8_t kStorageSchemeSoftware = 0x01;  // XChaCha20-Poly1305 under the master KEK
constexpr size_t kStorageHeader = 4 + 1 + 1 + 8;  // magic, scheme, kind, KEK id
constexpr size_t kNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kTag = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "keylnsw1";
constexpr uint64_t kSubkeyStorage = 1;
constexpr uint64_t kSubkeyNamed = 2;

// The size of what a key kind stores and transports: AES key, Ed25519 seed, X25519 secret,
// P-256 scalar.
size_t PortableSize(KeyKind kind) { return kind == KeyKind::kAes128 ? 16 : 32; }

// Derived SHE material of one AES key, built on first use and kept with the key:
// Kenc = KDF(K, KEY_UPDATE_ENC_C) (K1 as auth key, K3 as new key),
// Kmac = KDF(K, KEY_UPDATE_MAC_C) (K2 as auth key, K4 as new key).
struct SheState {
  SecretBytes kenc_kmac{32};
  std::unique_ptr<AesCipher> cbc_kenc;     // M2
  std::unique_ptr<AesCmac> cmac_kmac;      // M3 / M5
  std::unique_ptr<AesCipher> ecb_kenc;     // M4 (compute)
  std::unique_ptr<AesCipher> ecb_kenc_dec; // M4 (check)
  std::span<const uint8_t, 16> kenc() const { return std::span<const uint8_t, 16>(kenc_kmac.data(), 16); }
  std::span<const uint8_t, 16> kmac() const {
    return std::span<const uint8_t, 16>(kenc_kmac.data() + 16, 16);
  }
};

struct Entry {
  KeyKind kind;
  SecretBytes secret;  // AES: 16; Ed25519: libsodium's 64-byte secret key; X25519, P-256: 32
  std::array<uint8_t, 32> public_key{};  // Ed25519, X25519
  std::vector<uint8_t> public_point;     // P-256, uncompressed
  std::shared_ptr<const P256Signer> signer;  // P-256, made at the first signature
  std::unique_ptr<SheState> she;
};

class SoftwareCustody final : public KeyCustody {
 public:
  SoftwareCustody() : custody_id_(next_custody_id.fetch_add(1)) {}

  Status Init(const SoftwareCustodyOptions& options) {
    RETURN_IF_ERROR(EnsureSodium());
    RETURN_IF_ERROR(zero_ecb_.SetKey(std::span<const uint8_t, 16>(kZero.data(), 16)));
    if (options.master_key_file) {
      ASSIGN_OR_RETURN(SecretBytes master, LoadMasterKey(*options.master_key_file, options.passphrase));
      kek_ = SecretBytes(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
      named_root_ = SecretBytes(32);
      crypto_kdf_derive_from_key(kek_.data(), kek_.size(), kSubkeyStorage, kKdfContext, master.data());
      crypto_kdf_derive_from_key(named_root_.data(), named_root_.size(), kSubkeyNamed, kKdfContext,
                                 master.data());
      static constexpr char kIdLabel[] = "keyline kek id";
      crypto_generichash(kek_id_.data(), kek_id_.size(), reinterpret_cast<const uint8_t*>(kIdLabel),
                         sizeof(kIdLabel) - 1, kek_.data(), kek_.size());
      master_key_file_ = options.master_key_file->string();
    }
    return Status::Ok();
  }

  CustodyInfo Info() const override {
    CustodyInfo info;
    info.backend = "software";
    info.description = std::string("libsodium ") + sodium_version_string() + " + " + OpenSslVersion() +
                       (master_key_file_.empty() ? ", no master key"
                                                 : ", master key " + master_key_file_ + " (KEK id " +
                                                       ToHex(kek_id_) + ")");
    if (master_key_file_.empty()) {
      info.limitations.push_back(
          "no master key file: storage wrapping and named keys are unavailable");
    }
    return info;
  }

  StatusOr<KeyHandle> GenerateKey(KeyKind kind) override {
    std::lock_guard lock(mu_);
    SecretBytes portable(PortableSize(kind));
    // A P-256 scalar must be below the group order: redraw the ~2^-32 of draws that are not.
    do {
      randombytes_buf(portable.data(), portable.size());
    } while (kind == KeyKind::kEcdsaP256 && !IsP256Scalar(portable.span()));
    return AddLocked(kind, portable);
  }

  StatusOr<KeyHandle> ImportKeyFromHex(KeyKind kind, std::string_view hex,
                                       std::string_view what) override {
    if (!IsKnownKind(kind)) return InvalidArgumentError(std::string(what) + ": unknown key kind");
    ASSIGN_OR_RETURN(SecretBytes portable, ParseSecretHex(hex, what, PortableSize(kind)));
    std::lock_guard lock(mu_);
    return AddLocked(kind, portable);
  }

  StatusOr<KeyHandle> GetOrCreateNamedKey(std::string_view name, KeyKind kind) override {
    if (!IsKnownKind(kind)) return InvalidArgumentError("named key '" + std::string(name) + "': unknown key kind");
    if (name.empty()) return InvalidArgumentError("a named key needs a non-empty name");
    std::lock_guard lock(mu_);
    if (named_root_.empty()) {
      return FailedPreconditionError("named key '" + std::string(name) +
                                     "' needs a master key file; none is configured");
    }
    std::string map_key = std::string(KeyKindName(kind)) + "/" + std::string(name);
    if (auto it = named_.find(map_key); it != named_.end() && keys_.count(it->second.id) != 0) {
      return it->second;
    }
    // Derived, not stored: the same master key always gives the same named key.
    SecretBytes portable(PortableSize(kind));
    crypto_generichash_state state;
    crypto_generichash_init(&state, named_root_.data(), named_root_.size(), portable.size());
    uint8_t kind_byte = static_cast<uint8_t>(kind);
    crypto_generichash_update(&state, &kind_byte, 1);
    crypto_generichash_update(&state, reinterpret_cast<const uint8_t*>(name.data()), name.size());
    crypto_generichash_final(&state, portable.data(), portable.size());
    Wipe({reinterpret_cast<uint8_t*>(&state), sizeof(state)});
    ASSIGN_OR_RETURN(KeyHandle handle, AddLocked(kind, portable));
    named_[map_key] = handle;
    return handle;
  }

  Status DestroyKey(KeyHandle handle) override {
    std::lock_guard lock(mu_);
    RETURN_IF_ERROR(FindLocked(handle, handle.kind).status());
    keys_.erase(handle.id);  // SecretBytes and OpenSSL contexts wipe themselves
    return Status::Ok();
  }

  StatusOr<PublicKey> GetPublicKey(KeyHandle handle) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, FindLocked(handle, std::nullopt));
    if (entry->kind == KeyKind::kAes128) {
      return InvalidArgumentError("key " + Describe(handle) + " is symmetric; it has no public key");
    }
    if (entry->kind == KeyKind::kEcdsaP256) {
      return InvalidArgumentError("key " + Describe(handle) +
                                  " has no 32-byte public key: use GetPublicKeyInfo");
    }
    return PublicKey{entry->kind, entry->public_key};
  }

  StatusOr<std::vector<uint8_t>> GetPublicKeyInfo(KeyHandle handle) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, FindLocked(handle, KeyKind::kEcdsaP256));
    return P256SpkiOfOwnPoint(entry->public_point);  // computed from its scalar here
  }

  StatusOr<std::array<uint8_t, 3>> KeyCheckValue(KeyHandle handle) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, FindLocked(handle, KeyKind::kAes128));
    RETURN_IF_ERROR(scratch_ecb_.SetKey(std::span<const uint8_t, 16>(entry->secret.data(), 16)));
    Block out{};
    RETURN_IF_ERROR(scratch_ecb_.Run(kZero, out));
    return std::array<uint8_t, 3>{out[0], out[1], out[2]};
  }

  StatusOr<WrappedKey> WrapForStorage(KeyHandle key, std::string_view context) override {
    std::lock_guard lock(mu_);
    RETURN_IF_ERROR(RequireKekLocked("wrap a key for storage"));
    ASSIGN_OR_RETURN(Entry * entry, FindLocked(key, std::nullopt));
    std::array<uint8_t, kNonce> nonce{};
    randombytes_buf(nonce.data(), nonce.size());
    return WrapLocked(*entry, context, nonce.data());
  }

  // One lock and one draw of randomness for all nonces: per key, getrandom was a tenth of an
  // import's time.
  StatusOr<std::vector<WrappedKey>> WrapManyForStorage(std::span<const KeyHandle> keys,
                                                       std::span<const std::string> contexts) override {
    if (keys.size() != contexts.size()) return KeyCustody::WrapManyForStorage(keys, contexts);
    std::lock_guard lock(mu_);
    RETURN_IF_ERROR(RequireKekLocked("wrap keys for storage"));
    std::vector<Entry*> entries;
    entries.reserve(keys.size());
    for (KeyHandle key : keys) {
      ASSIGN_OR_RETURN(Entry * entry, FindLocked(key, std::nullopt));
      entries.push_back(entry);
    }
    std::vector<uint8_t> nonces(keys.size() * kNonce);
    randombytes_buf(nonces.data(), nonces.size());
    std::vector<WrappedKey> wrapped;
    wrapped.reserve(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      wrapped.push_back(WrapLocked(*entries[i], contexts[i], nonces.data() + i * kNonce));
    }
    return wrapped;
  }

  StatusOr<KeyHandle> UnwrapFromStorage(const WrappedKey& blob, std::string_view context) override {
    std::lock_guard lock(mu_);
    RETURN_IF_ERROR(RequireKekLocked("unwrap a stored key"));
    const std::vector<uint8_t>& b = blob.bytes;
    if (b.size() < kStorageHeader + kNonce + kTag || std::memcmp(b.data(), kStorageMagic, 4) != 0) {
      return DataLossError("wrapped key is truncated or not a Keyline wrapped key");
    }
    if (b[4] != kStorageSchemeSoftware) {
      return FailedPreconditionError("wrapped key uses scheme " + std::to_string(b[4]) +
                                     ", which the software backend does not hold the KEK for");
    }
    auto kind = static_cast<KeyKind>(b[5]);
    if (!IsKnownKind(kind) || b.size() != kStorageHeader + kNonce + PortableSize(kind) + kTag) {
      return DataLossError("wrapped key has a malformed header");
    }
    if (std::memcmp(b.data() + 6, kek_id_.data(), kek_id_.size()) != 0) {
      return FailedPreconditionError(
          "wrapped key was made under KEK " + ToHex(std::span<const uint8_t>(b.data() + 6, 8)) +
          ", this custody's KEK is " + ToHex(kek_id_) + " (another master key file?)");
    }
    std::vector<uint8_t> ad = AssociatedData(b.data(), context);
    SecretBytes portable(PortableSize(kind));
    unsigned long long len = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            portable.data(), &len, nullptr, b.data() + kStorageHeader + kNonce,
            b.size() - kStorageHeader - kNonce, ad.data(), ad.size(), b.data() + kStorageHeader,
            kek_.data()) != 0) {
      return DataLossError("wrapped key failed authentication for context '" + std::string(context) +
                           "': it was modified, or was wrapped for another context");
    }
    return AddLocked(kind, portable);
  }

  StatusOr<WrappedKeySet> WrapForPeer(std::span<const KeyHandle> keys, const PublicKey& peer,
                                      std::string_view context) override {
    std::lock_guard lock(mu_);
    std::vector<ClearKey> clear;
    clear.reserve(keys.size());
    for (const KeyHandle& handle : keys) {
      ASSIGN_OR_RETURN(Entry * entry, FindLocked(handle, KeyKind::kAes128));
      clear.push_back({KeyKind::kAes128, &entry->secret});
    }
    return SealKeySet(clear, peer, context);
  }

  StatusOr<std::vector<KeyHandle>> UnwrapFromPeer(KeyHandle own_key, const WrappedKeySet& blob,
                                                  std::string_view context) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * own, FindLocked(own_key, KeyKind::kX25519));
    ASSIGN_OR_RETURN(std::vector<OpenedKey> opened,
                     OpenKeySet(own->secret, PublicKey{KeyKind::kX25519, own->public_key}, blob, context));
    std::vector<KeyHandle> handles;
    for (OpenedKey& key : opened) {
      auto handle = AddLocked(key.kind, key.bytes);
      if (!handle.ok()) {
        for (const KeyHandle& h : handles) keys_.erase(h.id);
        return handle.status();
      }
      handles.push_back(*handle);
    }
    return handles;
  }

  StatusOr<SheLoadMessages> ComputeSheLoad(const SheLoadRequest& request) override {
    RETURN_IF_ERROR(ValidateSheFields(request.fields));
    RETURN_IF_ERROR(ValidateSheFlags(request.flags));
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * auth, FindLocked(request.auth_key, KeyKind::kAes128));
    ASSIGN_OR_RETURN(Entry * fresh, FindLocked(request.new_key, KeyKind::kAes128));
    ASSIGN_OR_RETURN(SheState * auth_she, SheOfLocked(*auth));
    SheLoadMessages out;
    out.m1 = EncodeM1(request.fields);
    // M2 = AES-CBC(K1, IV 0, Counter|Flags|0 || NewKey); the plaintext sits in guarded memory.
    // A stack buffer wiped after use: sodium_malloc per call would cost four system calls.
    std::array<uint8_t, 32> plain;
    Block first = EncodeM2FirstBlock(request.fields.counter, request.flags);
    std::memcpy(plain.data(), first.data(), 16);
    std::memcpy(plain.data() + 16, fresh->secret.data(), 16);
    if (!auth_she->cbc_kenc) {
      auth_she->cbc_kenc = std::make_unique<AesCipher>(AesCipher::Mode::kCbcZeroIv,
                                                       AesCipher::Direction::kEncrypt);
      RETURN_IF_ERROR(auth_she->cbc_kenc->SetKey(auth_she->kenc()));
    }
    Status encrypted = auth_she->cbc_kenc->Run(plain, out.m2);
    Wipe(plain);
    RETURN_IF_ERROR(encrypted);
    // M3 = AES-CMAC(K2, M1 | M2).
    std::array<uint8_t, 48> m1m2;
    std::memcpy(m1m2.data(), out.m1.data(), 16);
    std::memcpy(m1m2.data() + 16, out.m2.data(), 32);
    ASSIGN_OR_RETURN(AesCmac * cmac, CmacOfLocked(*auth_she));
    RETURN_IF_ERROR(cmac->Compute(m1m2, out.m3));
    return out;
  }

  StatusOr<SheProof> ComputeSheProof(KeyHandle new_key, const SheProofFields& fields) override {
    RETURN_IF_ERROR(ValidateSheFields(fields));
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * fresh, FindLocked(new_key, KeyKind::kAes128));
    ASSIGN_OR_RETURN(SheState * she, SheOfLocked(*fresh));
    SheProof out;
    Block header = EncodeM1(fields);
    Block plain = EncodeM4Plain(fields.counter);
    if (!she->ecb_kenc) {
      she->ecb_kenc = std::make_unique<AesCipher>(AesCipher::Mode::kEcb, AesCipher::Direction::kEncrypt);
      RETURN_IF_ERROR(she->ecb_kenc->SetKey(she->kenc()));
    }
    std::memcpy(out.m4.data(), header.data(), 16);
    RETURN_IF_ERROR(she->ecb_kenc->Run(plain, std::span<uint8_t>(out.m4.data() + 16, 16)));
    ASSIGN_OR_RETURN(AesCmac * cmac, CmacOfLocked(*she));
    RETURN_IF_ERROR(cmac->Compute(out.m4, out.m5));
    return out;
  }

  StatusOr<SheProofCheck> CheckSheProof(KeyHandle new_key, const SheProof& proof) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * fresh, FindLocked(new_key, KeyKind::kAes128));
    ASSIGN_OR_RETURN(SheState * she, SheOfLocked(*fresh));
    SheProofCheck check;
    DecodeM4Header(std::span<const uint8_t, 16>(proof.m4.data(), 16), check);
    std::array<uint8_t, 16> expected_m5;
    ASSIGN_OR_RETURN(AesCmac * cmac, CmacOfLocked(*she));
    RETURN_IF_ERROR(cmac->Compute(proof.m4, expected_m5));
    bool mac_ok = sodium_memcmp(expected_m5.data(), proof.m5.data(), 16) == 0;
    if (!she->ecb_kenc_dec) {
      she->ecb_kenc_dec =
          std::make_unique<AesCipher>(AesCipher::Mode::kEcb, AesCipher::Direction::kDecrypt);
      RETURN_IF_ERROR(she->ecb_kenc_dec->SetKey(she->kenc()));
    }
    Block plain{};
    RETURN_IF_ERROR(she->ecb_kenc_dec->Run(std::span<const uint8_t>(proof.m4.data() + 16, 16), plain));
    uint32_t counter = 0;
    bool padding_ok = DecodeM4Plain(plain, counter);
    check.valid = mac_ok && padding_ok;
    check.counter = check.valid ? counter : 0;
    return check;
  }

  StatusOr<Signature> Sign(KeyHandle signing_key, std::span<const uint8_t> message) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, FindLocked(signing_key, KeyKind::kEd25519));
    Signature signature{};
    crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(),
                         entry->secret.data());
    return signature;
  }

  StatusOr<std::vector<uint8_t>> SignEcdsaSha256(KeyHandle signing_key,
                                                 std::span<const uint8_t> message) override {
    std::shared_ptr<const P256Signer> signer;
    {
      std::lock_guard lock(mu_);
      ASSIGN_OR_RETURN(Entry * entry, FindLocked(signing_key, KeyKind::kEcdsaP256));
      if (!entry->signer) {
        ASSIGN_OR_RETURN(entry->signer, P256Signer::Create(entry->secret, entry->public_point));
      }
      signer = entry->signer;
    }
    // Outside the lock: other keys of the custody are not held up by this signature.
    return signer->Sign(message);
  }

  StatusOr<std::vector<uint8_t>> Random(size_t size) override {
    if (size > (1u << 20)) return InvalidArgumentError("at most 1 MiB of random bytes per call");
    std::vector<uint8_t> out(size);
    randombytes_buf(out.data(), out.size());
    return out;
  }

  Status BenchmarkAesBlocks(KeyHandle key, size_t calls, size_t blocks_per_call) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, FindLocked(key, KeyKind::kAes128));
    AesCipher cipher(AesCipher::Mode::kEcb, AesCipher::Direction::kEncrypt);
    RETURN_IF_ERROR(cipher.SetKey(std::span<const uint8_t, 16>(entry->secret.data(), 16)));
    std::vector<uint8_t> in(16 * blocks_per_call, 0x5a);
    std::vector<uint8_t> out(in.size());
    for (size_t i = 0; i < calls; ++i) {
      RETURN_IF_ERROR(cipher.Run(in, out));
      in[0] = out[0];  // a data dependency, so no call can be skipped
    }
    return Status::Ok();
  }

 private:
  static constexpr Block kZero{};

  static bool IsKnownKind(KeyKind kind) {
    return kind == KeyKind::kAes128 || kind == KeyKind::kEd25519 || kind == KeyKind::kX25519 ||
           kind == KeyKind::kEcdsaP256;
  }

  std::string Describe(const KeyHandle& handle) const {
    return std::string(KeyKindName(handle.kind)) + " key #" + std::to_string(handle.id);
  }

  // Builds the entry from the portable form (AES key, Ed25519 seed, X25519 secret, P-256
  // scalar).
  StatusOr<KeyHandle> AddLocked(KeyKind kind, const SecretBytes& portable) {
    Entry entry{kind, SecretBytes(), {}, {}, nullptr};
    switch (kind) {
      case KeyKind::kAes128:
        entry.secret = SecretBytes::CopyOf(portable.span());
        break;
      case KeyKind::kEd25519:
        entry.secret = SecretBytes(crypto_sign_SECRETKEYBYTES);
        crypto_sign_seed_keypair(entry.public_key.data(), entry.secret.data(), portable.data());
        break;
      case KeyKind::kX25519:
        entry.secret = SecretBytes::CopyOf(portable.span());
        crypto_scalarmult_base(entry.public_key.data(), entry.secret.data());
        break;
      case KeyKind::kEcdsaP256: {
        ASSIGN_OR_RETURN(entry.public_point, P256PointOf(portable));
        entry.secret = SecretBytes::CopyOf(portable.span());
        break;
      }
      default:
        return InvalidArgumentError("unknown key kind " + std::to_string(static_cast<int>(kind)));
    }
    KeyHandle handle{next_id_++, custody_id_, kind};
    keys_.emplace(handle.id, std::move(entry));
    return handle;
  }

  SecretBytes PortableOf(const Entry& entry) const {
    if (entry.kind == KeyKind::kEd25519) return SecretBytes::CopyOf({entry.secret.data(), 32});
    return SecretBytes::CopyOf(entry.secret.span());
  }

  StatusOr<Entry*> FindLocked(const KeyHandle& handle, std::optional<KeyKind> kind) {
    if (handle.custody_id != custody_id_) {
      return InvalidArgumentError(Describe(handle) + " belongs to another custody");
    }
    auto it = keys_.find(handle.id);
    if (it == keys_.end()) return NotFoundError(Describe(handle) + " does not exist (destroyed?)");
    if (it->second.kind != handle.kind || (kind && it->second.kind != *kind)) {
      return InvalidArgumentError(Describe(handle) + " cannot be used here: need a " +
                                  std::string(KeyKindName(kind.value_or(handle.kind))) + " key");
    }
    return &it->second;
  }

  Status RequireKekLocked(std::string_view what) const {
    if (kek_.empty()) {
      return FailedPreconditionError("cannot " + std::string(what) +
                                     ": the software custody has no master key file configured");
    }
    return Status::Ok();
  }

  // The storage blob: header, the given nonce, XChaCha20-Poly1305 under the KEK with the
  // header and context as associated data.
  WrappedKey WrapLocked(const Entry& entry, std::string_view context, const uint8_t* nonce) {
    SecretBytes portable = PortableOf(entry);
    WrappedKey out;
    out.bytes.resize(kStorageHeader + kNonce + portable.size() + kTag);
    uint8_t* b = out.bytes.data();
    std::memcpy(b, kStorageMagic, 4);
    b[4] = kStorageSchemeSoftware;
    b[5] = static_cast<uint8_t>(entry.kind);
    std::memcpy(b + 6, kek_id_.data(), kek_id_.size());
    std::memcpy(b + kStorageHeader, nonce, kNonce);
    std::vector<uint8_t> ad = AssociatedData(b, context);
    crypto_aead_xchacha20poly1305_ietf_encrypt(b + kStorageHeader + kNonce, nullptr, portable.data(),
                                               portable.size(), ad.data(), ad.size(), nullptr,
                                               b + kStorageHeader, kek_.data());
    return out;
  }

  static std::vector<uint8_t> AssociatedData(const uint8_t* header, std::string_view context) {
    std::vector<uint8_t> ad(header, header + kStorageHeader);
    ad.insert(ad.end(), context.begin(), context.end());
    return ad;
  }

  // Kenc, Kmac = Miyaguchi-Preneel(K || C): H1 = AES(0, K) ^ K, then AES(H1, C) ^ C ^ H1.
  StatusOr<SheState*> SheOfLocked(Entry& entry) {
    if (entry.she) return entry.she.get();
    auto she = std::make_unique<SheState>();
    Block k{};
    std::memcpy(k.data(), entry.secret.data(), 16);
    Block e0{};
    Block h1{};
    RETURN_IF_ERROR(zero_ecb_.Run(k, e0));
    MpStep(e0, k, kZero, h1.data());
    std::array<uint8_t, 32> constants;
    std::memcpy(constants.data(), kKeyUpdateEncC.data(), 16);
    std::memcpy(constants.data() + 16, kKeyUpdateMacC.data(), 16);
    std::array<uint8_t, 32> enc{};
    RETURN_IF_ERROR(scratch_ecb_.SetKey(h1));
    RETURN_IF_ERROR(scratch_ecb_.Run(constants, enc));
    Block enc_c{};
    Block enc_m{};
    std::memcpy(enc_c.data(), enc.data(), 16);
    std::memcpy(enc_m.data(), enc.data() + 16, 16);
    MpStep(enc_c, kKeyUpdateEncC, h1, she->kenc_kmac.data());
    MpStep(enc_m, kKeyUpdateMacC, h1, she->kenc_kmac.data() + 16);
    Wipe(k);
    Wipe(e0);
    Wipe(h1);
    Wipe(enc);
    Wipe(enc_c);
    Wipe(enc_m);
    entry.she = std::move(she);
    return entry.she.get();
  }

  StatusOr<AesCmac*> CmacOfLocked(SheState& she) {
    if (!she.cmac_kmac) {
      auto cmac = std::make_unique<AesCmac>();
      RETURN_IF_ERROR(cmac->SetKey(she.kmac()));
      she.cmac_kmac = std::move(cmac);
    }
    return she.cmac_kmac.get();
  }

  const uint32_t custody_id_;
  std::mutex mu_;
  std::unordered_map<uint64_t, Entry> keys_;
  std::map<std::string, KeyHandle> named_;
  uint64_t next_id_ = 1;
  SecretBytes kek_;
  SecretBytes named_root_;
  std::array<uint8_t, 8> kek_id_{};
  std::string master_key_file_;
  AesCipher zero_ecb_{AesCipher::Mode::kEcb, AesCipher::Direction::kEncrypt};
  AesCipher scratch_ecb_{AesCipher::Mode::kEcb, AesCipher::Direction::kEncrypt};
};

}  // namespace
}  // namespace internal

StatusOr<std::unique_ptr<KeyCustody>> CreateSoftwareCustody(const SoftwareCustodyOptions& options) {
  auto custody = std::make_unique<internal::SoftwareCustody>();
  RETURN_IF_ERROR(custody->Init(options));
  return std::unique_ptr<KeyCustody>(std::move(custody));
}

}  // namespace keyline::hsm
