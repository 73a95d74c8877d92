// The PKCS#11 backend. One logged-in R/W session per custody, serialised by a mutex.
//
// Where keys live:
//   KEK (AES-256) and storage MAC key (HMAC-SHA256): token objects, sensitive, never extractable.
//   Ed25519 keys: on the token, sensitive, never extractable; EdDSA runs on the token.
//   AES keys (SHE keys, transport keys): session objects, extractable only by wrapping (for
//     storage) and readable by this process, because the SHE KDF needs the value (see
//     CustodyInfo::limitations). Every AES-ECB/CBC/CMAC of the protocol runs on the token.
//   X25519 keys: generic-secret objects; sealed boxes are opened in guarded host memory.
//   ECDSA P-256 keys: on the token, sensitive, never extractable; the host hashes (SHA-256),
//     CKM_ECDSA signs the digest on the token.
#include "keyline/hsm/pkcs11_custody.h"

#include <sodium.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "keyline/common/hex.h"
#include "keyline/common/log.h"
#include "ec/p256.h"
#include "peer_seal.h"
#include "pkcs11/pkcs11_module.h"
#include "secret_bytes.h"
#include "she/she_codec.h"

namespace keyline::hsm {
namespace internal {
namespace {

std::atomic<uint32_t> next_custody_id{0x80000001u};

constexpr uint8_t kStorageMagic[4] = {'K', 'L', 'W', '1'};
constexpr uint8_t kStorageSchemePkcs11 = 0x02;  // AES-KW under the token KEK + HMAC-SHA256
constexpr size_t kStorageHeader = 4 + 1 + 1 + 8 + 1;  // magic, scheme, kind, KEK id, length
constexpr size_t kMacSize = 32;
// CKA_EC_PARAMS for Ed25519: the OID 1.3.101.112 (RFC 8410).
constexpr uint8_t kEd25519Params[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
// CKA_EC_PARAMS for P-256: the OID 1.2.840.10045.3.1.7 (prime256v1).
constexpr uint8_t kP256Params[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

// Attribute templates whose values stay alive as long as the template.
class Template {
 public:
  Template& Ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
    auto& slot = storage_.emplace_back(sizeof(CK_ULONG));
    std::memcpy(slot.data(), &value, sizeof(value));
    attrs_.push_back({type, slot.data(), sizeof(CK_ULONG)});
    return *this;
  }
  Template& Bool(CK_ATTRIBUTE_TYPE type, bool value) {
    auto& slot = storage_.emplace_back(1, value ? CK_TRUE : CK_FALSE);
    attrs_.push_back({type, slot.data(), 1});
    return *this;
  }
  Template& Bytes(CK_ATTRIBUTE_TYPE type, std::span<const uint8_t> value) {
    auto& slot = storage_.emplace_back(value.begin(), value.end());
    attrs_.push_back({type, slot.data(), static_cast<CK_ULONG>(slot.size())});
    return *this;
  }
  Template& Text(CK_ATTRIBUTE_TYPE type, std::string_view value) {
    return Bytes(type, {reinterpret_cast<const uint8_t*>(value.data()), value.size()});
  }
  // A secret value: referenced, not copied, so it stays in guarded memory.
  Template& Secret(CK_ATTRIBUTE_TYPE type, const SecretBytes& value) {
    attrs_.push_back({type, const_cast<uint8_t*>(value.data()), static_cast<CK_ULONG>(value.size())});
    return *this;
  }
  CK_ATTRIBUTE* data() { return attrs_.data(); }
  CK_ULONG size() const { return static_cast<CK_ULONG>(attrs_.size()); }

 private:
  std::deque<std::vector<uint8_t>> storage_;
  std::vector<CK_ATTRIBUTE> attrs_;
};

struct SheObjects {
  CK_OBJECT_HANDLE kenc = CK_INVALID_HANDLE;  // K1 / K3: encrypt, decrypt
  CK_OBJECT_HANDLE kmac = CK_INVALID_HANDLE;  // K2 / K4: CMAC sign
};

struct Entry {
  KeyKind kind;
  CK_OBJECT_HANDLE object = CK_INVALID_HANDLE;  // secret key, or the private key
  CK_OBJECT_HANDLE public_object = CK_INVALID_HANDLE;
  std::array<uint8_t, 32> public_key{};  // Ed25519, X25519
  std::vector<uint8_t> public_point;     // P-256, uncompressed
  bool named = false;  // a token object: DestroyKey drops the handle, never the object
  std::optional<SheObjects> she;
};

std::string TokenLabel(const CK_UTF8CHAR (&label)[32]) {
  std::string text(reinterpret_cast<const char*>(label), 32);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

StatusOr<SecretBytes> ReadPin(const Pkcs11CustodyOptions& options) {
  if (options.pin_file.has_value() == options.pin_env_var.has_value()) {
    return InvalidArgumentError("PKCS#11: set exactly one PIN source, a PIN file or an "
                                "environment variable (never a command-line argument)");
  }
  std::string line;
  if (options.pin_file) {
    std::ifstream in(*options.pin_file);
    if (!in) return NotFoundError("PKCS#11 PIN file " + options.pin_file->string() + " cannot be read");
    std::getline(in, line);
  } else {
    const char* value = std::getenv(options.pin_env_var->c_str());
    if (value == nullptr) {
      return NotFoundError("PKCS#11 PIN environment variable " + *options.pin_env_var + " is not set");
    }
    line = value;
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  SecretBytes pin = SecretBytes::CopyOf({reinterpret_cast<const uint8_t*>(line.data()), line.size()});
  Wipe({reinterpret_cast<uint8_t*>(line.data()), line.size()});
  if (pin.empty()) return InvalidArgumentError("PKCS#11 PIN is empty");
  return pin;
}

struct RequiredMechanism {
  CK_MECHANISM_TYPE type;
  const char* name;
  const char* needed_for;
};

constexpr RequiredMechanism kRequired[] = {
    {CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN", "generating AES keys and the KEK"},
    {CKM_AES_ECB, "CKM_AES_ECB", "the SHE KDF and M4"},
    {CKM_AES_CBC, "CKM_AES_CBC", "SHE M2"},
    {CKM_AES_CMAC, "CKM_AES_CMAC", "SHE M3 and M5"},
    {CKM_AES_KEY_WRAP, "CKM_AES_KEY_WRAP", "wrapping keys for storage"},
    {CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN", "the storage MAC key"},
    {CKM_SHA256_HMAC, "CKM_SHA256_HMAC", "authenticating stored keys"},
    {CKM_EC_EDWARDS_KEY_PAIR_GEN, "CKM_EC_EDWARDS_KEY_PAIR_GEN", "Ed25519 signing keys"},
    {CKM_EDDSA, "CKM_EDDSA", "signing records"},
};

class Pkcs11Custody final : public KeyCustody {
 public:
  Pkcs11Custody() : custody_id_(next_custody_id.fetch_add(1)) {}

  ~Pkcs11Custody() override {
    std::lock_guard lock(mu_);
    if (f_ == nullptr || session_ == CK_INVALID_HANDLE) return;
    // Session objects die with the session; close it so the token forgets them now.
    f_->C_CloseSession(session_);
  }

  Status Init(const Pkcs11CustodyOptions& options) {
    RETURN_IF_ERROR(EnsureSodium());
    if (options.module_path.empty()) return InvalidArgumentError("PKCS#11: module_path is not set");
    if (options.token_label.empty() && !options.slot_id) {
      return InvalidArgumentError("PKCS#11: set token_label (or slot_id)");
    }
    ASSIGN_OR_RETURN(SecretBytes pin, ReadPin(options));
    ASSIGN_OR_RETURN(f_, LoadPkcs11Module(options.module_path));
    prefix_ = options.label_prefix;
    RETURN_IF_ERROR(FindSlot(options));
    RETURN_IF_ERROR(CheckMechanisms());
    CK_RV rv = f_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session_);
    if (rv != CKR_OK) return CkError(rv, "C_OpenSession on token '" + token_label_ + "'");
    rv = f_->C_Login(session_, CKU_USER, pin.data(), static_cast<CK_ULONG>(pin.size()));
    if (rv == CKR_PIN_INCORRECT) {
      return UnauthenticatedError("PKCS#11: wrong PIN for token '" + token_label_ + "'");
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      return CkError(rv, "C_Login on token '" + token_label_ + "'", StatusCode::kUnauthenticated);
    }
    RETURN_IF_ERROR(OpenKek(options.create_missing_kek));
    RETURN_IF_ERROR(CreateZeroKey());
    for (const std::string& limitation : Limitations()) {
      spdlog::warn("hsm pkcs11 token '{}': {}", token_label_, limitation);
    }
    return Status::Ok();
  }

  CustodyInfo Info() const override {
    CustodyInfo info;
    info.backend = "pkcs11";
    info.description = "token '" + token_label_ + "' (" + manufacturer_ + " " + model_ + ") slot " +
                       std::to_string(slot_) + ", KEK id " + ToHex(kek_id_);
    info.limitations = Limitations();
    return info;
  }

  StatusOr<KeyHandle> GenerateKey(KeyKind kind) override {
    std::lock_guard lock(mu_);
    switch (kind) {
      case KeyKind::kAes128: {
        CK_MECHANISM mech{CKM_AES_KEY_GEN, nullptr, 0};
        Template t = AesTemplate(false);
        t.Ulong(CKA_VALUE_LEN, 16);
        CK_OBJECT_HANDLE object;
        CK_RV rv = f_->C_GenerateKey(session_, &mech, t.data(), t.size(), &object);
        if (rv != CKR_OK) return CkError(rv, "C_GenerateKey(AES-128)");
        return AddLocked(Entry{kind, object});
      }
      case KeyKind::kEd25519:
        return GenerateEd25519Locked("", false);
      case KeyKind::kX25519: {
        SecretBytes secret(32);
        RETURN_IF_ERROR(RandomLocked(secret.mutable_span()));
        return CreateFromValueLocked(kind, secret, "", false);
      }
      case KeyKind::kEcdsaP256:
        return GenerateP256Locked("", false);
    }
    return InvalidArgumentError("unknown key kind");
  }

  StatusOr<KeyHandle> ImportKeyFromHex(KeyKind kind, std::string_view hex,
                                       std::string_view what) override {
    if (kind != KeyKind::kAes128 && kind != KeyKind::kX25519) {
      if (kind == KeyKind::kEd25519 || kind == KeyKind::kEcdsaP256) {
        return UnimplementedError(std::string(what) + ": the PKCS#11 backend generates " +
                                  std::string(KeyKindName(kind)) +
                                  " keys on the token and does not import them");
      }
      return InvalidArgumentError(std::string(what) + ": unknown key kind");
    }
    ASSIGN_OR_RETURN(SecretBytes value, ParseSecretHex(hex, what, kind == KeyKind::kAes128 ? 16 : 32));
    std::lock_guard lock(mu_);
    return CreateFromValueLocked(kind, value, "", false);
  }

  StatusOr<KeyHandle> GetOrCreateNamedKey(std::string_view name, KeyKind kind) override {
    if (name.empty()) return InvalidArgumentError("a named key needs a non-empty name");
    std::lock_guard lock(mu_);
    std::string label = prefix_ + "named." + std::string(KeyKindName(kind)) + "." + std::string(name);
    if (auto it = named_.find(label); it != named_.end() && keys_.count(it->second.id) != 0) {
      return it->second;
    }
    KeyHandle handle;
    if (kind == KeyKind::kEcdsaP256) {
      ASSIGN_OR_RETURN(std::optional<CK_OBJECT_HANDLE> priv, FindLocked(CKO_PRIVATE_KEY, label));
      ASSIGN_OR_RETURN(std::optional<CK_OBJECT_HANDLE> pub, FindLocked(CKO_PUBLIC_KEY, label));
      if (priv && pub) {
        Entry entry{kind, *priv, *pub};
        entry.named = true;
        ASSIGN_OR_RETURN(entry.public_point, ReadP256PointLocked(*pub));
        ASSIGN_OR_RETURN(handle, AddLocked(std::move(entry)));
      } else {
        ASSIGN_OR_RETURN(handle, GenerateP256Locked(label, true));
      }
    } else if (kind == KeyKind::kEd25519) {
      ASSIGN_OR_RETURN(std::optional<CK_OBJECT_HANDLE> priv, FindLocked(CKO_PRIVATE_KEY, label));
      ASSIGN_OR_RETURN(std::optional<CK_OBJECT_HANDLE> pub, FindLocked(CKO_PUBLIC_KEY, label));
      if (priv && pub) {
        Entry entry{kind, *priv, *pub};
        entry.named = true;
        ASSIGN_OR_RETURN(entry.public_key, ReadEdPublicLocked(*pub));
        ASSIGN_OR_RETURN(handle, AddLocked(std::move(entry)));
      } else {
        ASSIGN_OR_RETURN(handle, GenerateEd25519Locked(label, true));
      }
    } else {
      ASSIGN_OR_RETURN(std::optional<CK_OBJECT_HANDLE> object, FindLocked(CKO_SECRET_KEY, label));
      if (object) {
        Entry entry{kind, *object};
        entry.named = true;
        if (kind == KeyKind::kX25519) {
          ASSIGN_OR_RETURN(SecretBytes value, ReadValueLocked(entry));
          crypto_scalarmult_base(entry.public_key.data(), value.data());
        }
        ASSIGN_OR_RETURN(handle, AddLocked(std::move(entry)));
      } else {
        SecretBytes value(kind == KeyKind::kAes128 ? 16 : 32);
        RETURN_IF_ERROR(RandomLocked(value.mutable_span()));
        ASSIGN_OR_RETURN(handle, CreateFromValueLocked(kind, value, label, true));
      }
    }
    named_[label] = handle;
    return handle;
  }

  Status DestroyKey(KeyHandle handle) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, EntryLocked(handle, std::nullopt));
    DestroyObjectsLocked(*entry);
    keys_.erase(handle.id);
    return Status::Ok();
  }

  StatusOr<PublicKey> GetPublicKey(KeyHandle handle) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, EntryLocked(handle, std::nullopt));
    if (entry->kind == KeyKind::kAes128) {
      return InvalidArgumentError("key #" + std::to_string(handle.id) + " is symmetric; it has no public key");
    }
    if (entry->kind == KeyKind::kEcdsaP256) {
      return InvalidArgumentError("ecdsa-p256 key #" + std::to_string(handle.id) +
                                  " has no 32-byte public key: use GetPublicKeyInfo");
    }
    return PublicKey{entry->kind, entry->public_key};
  }

  StatusOr<std::vector<uint8_t>> GetPublicKeyInfo(KeyHandle handle) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, EntryLocked(handle, KeyKind::kEcdsaP256));
    return P256SpkiOfPoint(entry->public_point);
  }

  // CKM_ECDSA signs a digest: hashing on the host keeps the message off the token and works on
  // tokens without CKM_ECDSA_SHA256.
  StatusOr<std::vector<uint8_t>> SignEcdsaSha256(KeyHandle signing_key,
                                                 std::span<const uint8_t> message) override {
    std::array<uint8_t, crypto_hash_sha256_BYTES> digest{};
    crypto_hash_sha256(digest.data(), message.data(), message.size());
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, EntryLocked(signing_key, KeyKind::kEcdsaP256));
    CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
    CK_RV rv = f_->C_SignInit(session_, &mech, entry->object);
    if (rv != CKR_OK) return CkError(rv, "C_SignInit(ECDSA)");
    std::array<uint8_t, 2 * kP256ScalarSize> r_s{};
    CK_ULONG len = r_s.size();
    rv = f_->C_Sign(session_, digest.data(), static_cast<CK_ULONG>(digest.size()), r_s.data(), &len);
    if (rv != CKR_OK || len != r_s.size()) return CkError(rv, "C_Sign(ECDSA)");
    return EcdsaRawToDer(r_s);
  }

  StatusOr<std::array<uint8_t, 3>> KeyCheckValue(KeyHandle handle) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, EntryLocked(handle, KeyKind::kAes128));
    Block zero{};
    Block out{};
    RETURN_IF_ERROR(CipherLocked(CKM_AES_ECB, entry->object, true, zero, out));
    return std::array<uint8_t, 3>{out[0], out[1], out[2]};
  }

  StatusOr<WrappedKey> WrapForStorage(KeyHandle key, std::string_view context) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, EntryLocked(key, std::nullopt));
    if (entry->kind == KeyKind::kEd25519 || entry->kind == KeyKind::kEcdsaP256) {
      return UnimplementedError("the PKCS#11 backend keeps " + std::string(KeyKindName(entry->kind)) +
                                " keys on the token, never extractable: use GetOrCreateNamedKey "
                                "instead of storage wrapping");
    }
    CK_MECHANISM mech{CKM_AES_KEY_WRAP, nullptr, 0};
    std::array<uint8_t, 64> wrapped{};
    CK_ULONG wrapped_len = wrapped.size();
    CK_RV rv = f_->C_WrapKey(session_, &mech, kek_, entry->object, wrapped.data(), &wrapped_len);
    if (rv != CKR_OK) return CkError(rv, "C_WrapKey(AES-KW)");
    WrappedKey out;
    out.bytes.assign(kStorageMagic, kStorageMagic + 4);
    out.bytes.push_back(kStorageSchemePkcs11);
    out.bytes.push_back(static_cast<uint8_t>(entry->kind));
    out.bytes.insert(out.bytes.end(), kek_id_.begin(), kek_id_.end());
    out.bytes.push_back(static_cast<uint8_t>(wrapped_len));
    out.bytes.insert(out.bytes.end(), wrapped.begin(), wrapped.begin() + wrapped_len);
    ASSIGN_OR_RETURN(auto mac, StorageMacLocked(out.bytes, context));
    out.bytes.insert(out.bytes.end(), mac.begin(), mac.end());
    return out;
  }

  StatusOr<KeyHandle> UnwrapFromStorage(const WrappedKey& blob, std::string_view context) override {
    std::lock_guard lock(mu_);
    const std::vector<uint8_t>& b = blob.bytes;
    if (b.size() < kStorageHeader + kMacSize || std::memcmp(b.data(), kStorageMagic, 4) != 0) {
      return DataLossError("wrapped key is truncated or not a Keyline wrapped key");
    }
    if (b[4] != kStorageSchemePkcs11) {
      return FailedPreconditionError("wrapped key uses scheme " + std::to_string(b[4]) +
                                     ", which this PKCS#11 token does not hold the KEK for");
    }
    auto kind = static_cast<KeyKind>(b[5]);
    size_t wrapped_len = b[14];
    if ((kind != KeyKind::kAes128 && kind != KeyKind::kX25519) ||
        b.size() != kStorageHeader + wrapped_len + kMacSize) {
      return DataLossError("wrapped key has a malformed header");
    }
    if (std::memcmp(b.data() + 6, kek_id_.data(), kek_id_.size()) != 0) {
      return FailedPreconditionError(
          "wrapped key was made under KEK " + ToHex(std::span<const uint8_t>(b.data() + 6, 8)) +
          ", this token's KEK is " + ToHex(kek_id_) + " (another token?)");
    }
    std::span<const uint8_t> body(b.data(), b.size() - kMacSize);
    ASSIGN_OR_RETURN(auto mac, StorageMacLocked(body, context));
    if (sodium_memcmp(mac.data(), b.data() + body.size(), kMacSize) != 0) {
      return DataLossError("wrapped key failed authentication for context '" + std::string(context) +
                           "': it was modified, or was wrapped for another context");
    }
    CK_MECHANISM mech{CKM_AES_KEY_WRAP, nullptr, 0};
    Template t = kind == KeyKind::kAes128 ? AesTemplate(false) : GenericTemplate(false);
    CK_OBJECT_HANDLE object;
    CK_RV rv = f_->C_UnwrapKey(session_, &mech, kek_, const_cast<uint8_t*>(b.data() + kStorageHeader),
                               static_cast<CK_ULONG>(wrapped_len), t.data(), t.size(), &object);
    if (rv != CKR_OK) return CkError(rv, "C_UnwrapKey(AES-KW)", StatusCode::kDataLoss);
    Entry entry{kind, object};
    if (kind == KeyKind::kX25519) {
      ASSIGN_OR_RETURN(SecretBytes value, ReadValueLocked(entry));
      crypto_scalarmult_base(entry.public_key.data(), value.data());
    }
    return AddLocked(std::move(entry));
  }

  StatusOr<WrappedKeySet> WrapForPeer(std::span<const KeyHandle> keys, const PublicKey& peer,
                                      std::string_view context) override {
    std::lock_guard lock(mu_);
    std::vector<SecretBytes> values;
    values.reserve(keys.size());
    for (const KeyHandle& handle : keys) {
      ASSIGN_OR_RETURN(Entry * entry, EntryLocked(handle, KeyKind::kAes128));
      ASSIGN_OR_RETURN(SecretBytes value, ReadValueLocked(*entry));
      values.push_back(std::move(value));
    }
    std::vector<ClearKey> clear;
    for (const SecretBytes& value : values) clear.push_back({KeyKind::kAes128, &value});
    return SealKeySet(clear, peer, context);
  }

  StatusOr<std::vector<KeyHandle>> UnwrapFromPeer(KeyHandle own_key, const WrappedKeySet& blob,
                                                  std::string_view context) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * own, EntryLocked(own_key, KeyKind::kX25519));
    ASSIGN_OR_RETURN(SecretBytes secret, ReadValueLocked(*own));
    ASSIGN_OR_RETURN(std::vector<OpenedKey> opened,
                     OpenKeySet(secret, PublicKey{KeyKind::kX25519, own->public_key}, blob, context));
    std::vector<KeyHandle> handles;
    for (OpenedKey& key : opened) {
      auto handle = CreateFromValueLocked(key.kind, key.bytes, "", false);
      if (!handle.ok()) {
        for (const KeyHandle& h : handles) {
          DestroyObjectsLocked(keys_.at(h.id));
          keys_.erase(h.id);
        }
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
    ASSIGN_OR_RETURN(Entry * auth, EntryLocked(request.auth_key, KeyKind::kAes128));
    ASSIGN_OR_RETURN(Entry * fresh, EntryLocked(request.new_key, KeyKind::kAes128));
    ASSIGN_OR_RETURN(SheObjects auth_she, SheOfLocked(*auth));
    ASSIGN_OR_RETURN(SecretBytes new_value, ReadValueLocked(*fresh));
    SheLoadMessages out;
    out.m1 = EncodeM1(request.fields);
    SecretBytes plain(32);
    Block first = EncodeM2FirstBlock(request.fields.counter, request.flags);
    std::memcpy(plain.data(), first.data(), 16);
    std::memcpy(plain.data() + 16, new_value.data(), 16);
    RETURN_IF_ERROR(CipherLocked(CKM_AES_CBC, auth_she.kenc, true, plain.span(), out.m2));
    std::array<uint8_t, 48> m1m2;
    std::memcpy(m1m2.data(), out.m1.data(), 16);
    std::memcpy(m1m2.data() + 16, out.m2.data(), 32);
    RETURN_IF_ERROR(CmacLocked(auth_she.kmac, m1m2, out.m3));
    return out;
  }

  StatusOr<SheProof> ComputeSheProof(KeyHandle new_key, const SheProofFields& fields) override {
    RETURN_IF_ERROR(ValidateSheFields(fields));
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * fresh, EntryLocked(new_key, KeyKind::kAes128));
    ASSIGN_OR_RETURN(SheObjects she, SheOfLocked(*fresh));
    SheProof out;
    Block header = EncodeM1(fields);
    std::memcpy(out.m4.data(), header.data(), 16);
    RETURN_IF_ERROR(CipherLocked(CKM_AES_ECB, she.kenc, true, EncodeM4Plain(fields.counter),
                                 std::span<uint8_t>(out.m4.data() + 16, 16)));
    RETURN_IF_ERROR(CmacLocked(she.kmac, out.m4, out.m5));
    return out;
  }

  StatusOr<SheProofCheck> CheckSheProof(KeyHandle new_key, const SheProof& proof) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * fresh, EntryLocked(new_key, KeyKind::kAes128));
    ASSIGN_OR_RETURN(SheObjects she, SheOfLocked(*fresh));
    SheProofCheck check;
    DecodeM4Header(std::span<const uint8_t, 16>(proof.m4.data(), 16), check);
    std::array<uint8_t, 16> expected{};
    RETURN_IF_ERROR(CmacLocked(she.kmac, proof.m4, expected));
    bool mac_ok = sodium_memcmp(expected.data(), proof.m5.data(), 16) == 0;
    Block plain{};
    RETURN_IF_ERROR(CipherLocked(CKM_AES_ECB, she.kenc, false,
                                 std::span<const uint8_t>(proof.m4.data() + 16, 16), plain));
    uint32_t counter = 0;
    bool padding_ok = DecodeM4Plain(plain, counter);
    check.valid = mac_ok && padding_ok;
    check.counter = check.valid ? counter : 0;
    return check;
  }

  StatusOr<Signature> Sign(KeyHandle signing_key, std::span<const uint8_t> message) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, EntryLocked(signing_key, KeyKind::kEd25519));
    CK_MECHANISM mech{CKM_EDDSA, nullptr, 0};
    CK_RV rv = f_->C_SignInit(session_, &mech, entry->object);
    if (rv != CKR_OK) return CkError(rv, "C_SignInit(EdDSA)");
    // A null pointer for an empty message is CKR_ARGUMENTS_BAD on SoftHSM and leaves the
    // operation active: always pass a real buffer.
    static uint8_t empty = 0;
    Signature signature{};
    CK_ULONG len = signature.size();
    rv = f_->C_Sign(session_, message.empty() ? &empty : const_cast<uint8_t*>(message.data()),
                    static_cast<CK_ULONG>(message.size()), signature.data(), &len);
    if (rv != CKR_OK || len != signature.size()) return CkError(rv, "C_Sign(EdDSA)");
    return signature;
  }

  StatusOr<std::vector<uint8_t>> Random(size_t size) override {
    if (size > (1u << 20)) return InvalidArgumentError("at most 1 MiB of random bytes per call");
    std::lock_guard lock(mu_);
    std::vector<uint8_t> out(size);
    RETURN_IF_ERROR(RandomLocked(out));
    return out;
  }

  Status BenchmarkAesBlocks(KeyHandle key, size_t calls, size_t blocks_per_call) override {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Entry * entry, EntryLocked(key, KeyKind::kAes128));
    std::vector<uint8_t> in(16 * blocks_per_call, 0x5a);
    std::vector<uint8_t> out(in.size());
    for (size_t i = 0; i < calls; ++i) {
      RETURN_IF_ERROR(CipherLocked(CKM_AES_ECB, entry->object, true, in, out));
      in[0] = out[0];
    }
    return Status::Ok();
  }

 private:
  std::vector<std::string> Limitations() const {
    return {
        "SHE: the Miyaguchi-Preneel KDF feeds the key itself into AES as data, which no standard "
        "PKCS#11 mechanism does; AES keys are therefore readable by this process, each is read "
        "into guarded memory when its SHE keys are derived (once per handle), and all "
        "AES-ECB/CBC/CMAC of the protocol runs on the token",
        "X25519: sealed boxes (X25519 + XSalsa20-Poly1305) have no PKCS#11 mechanism; the "
        "agreement key is a token secret object opened in guarded host memory",
        "ECDSA P-256: keys stay on the token and cannot be wrapped for storage; keep a "
        "long-lived one (an issuing CA's) as a named key",
    };
  }

  Status FindSlot(const Pkcs11CustodyOptions& options) {
    CK_ULONG count = 0;
    CK_RV rv = f_->C_GetSlotList(CK_TRUE, nullptr, &count);
    if (rv != CKR_OK) return CkError(rv, "C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(count);
    rv = f_->C_GetSlotList(CK_TRUE, slots.data(), &count);
    if (rv != CKR_OK) return CkError(rv, "C_GetSlotList");
    slots.resize(count);
    std::vector<std::string> seen;
    for (CK_SLOT_ID slot : slots) {
      CK_TOKEN_INFO info{};
      if (f_->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
      std::string label = TokenLabel(info.label);
      seen.push_back("'" + label + "'");
      bool match = options.slot_id ? slot == *options.slot_id
                                   : (label == options.token_label && (info.flags & CKF_TOKEN_INITIALIZED));
      if (match) {
        slot_ = slot;
        token_label_ = label;
        manufacturer_ = std::string(reinterpret_cast<const char*>(info.manufacturerID), 32);
        model_ = std::string(reinterpret_cast<const char*>(info.model), 16);
        while (!manufacturer_.empty() && manufacturer_.back() == ' ') manufacturer_.pop_back();
        while (!model_.empty() && model_.back() == ' ') model_.pop_back();
        return Status::Ok();
      }
    }
    std::string list;
    for (const std::string& s : seen) list += (list.empty() ? "" : ", ") + s;
    return NotFoundError(
        "PKCS#11: no token " +
        (options.slot_id ? "in slot " + std::to_string(*options.slot_id) : "labelled '" + options.token_label + "'") +
        " (tokens present: " + (list.empty() ? "none" : list) + ")");
  }

  Status CheckMechanisms() {
    CK_ULONG count = 0;
    CK_RV rv = f_->C_GetMechanismList(slot_, nullptr, &count);
    if (rv != CKR_OK) return CkError(rv, "C_GetMechanismList");
    std::vector<CK_MECHANISM_TYPE> mechanisms(count);
    rv = f_->C_GetMechanismList(slot_, mechanisms.data(), &count);
    if (rv != CKR_OK) return CkError(rv, "C_GetMechanismList");
    std::string missing;
    for (const RequiredMechanism& required : kRequired) {
      if (std::find(mechanisms.begin(), mechanisms.end(), required.type) == mechanisms.end()) {
        missing += std::string(missing.empty() ? "" : "; ") + required.name + " (needed for " +
                   required.needed_for + ")";
      }
    }
    if (!missing.empty()) {
      return FailedPreconditionError("PKCS#11 token '" + token_label_ + "' lacks " + missing);
    }
    return Status::Ok();
  }

  StatusOr<std::optional<CK_OBJECT_HANDLE>> FindLocked(CK_OBJECT_CLASS cls, const std::string& label) {
    Template t;
    t.Ulong(CKA_CLASS, cls).Text(CKA_LABEL, label).Bool(CKA_TOKEN, true);
    CK_RV rv = f_->C_FindObjectsInit(session_, t.data(), t.size());
    if (rv != CKR_OK) return CkError(rv, "C_FindObjectsInit");
    CK_OBJECT_HANDLE found[2];
    CK_ULONG count = 0;
    rv = f_->C_FindObjects(session_, found, 2, &count);
    f_->C_FindObjectsFinal(session_);
    if (rv != CKR_OK) return CkError(rv, "C_FindObjects");
    if (count > 1) {
      return FailedPreconditionError("PKCS#11 token '" + token_label_ + "' holds several objects "
                                     "labelled '" + label + "'; remove the duplicates");
    }
    if (count == 0) return std::optional<CK_OBJECT_HANDLE>();
    return std::optional<CK_OBJECT_HANDLE>(found[0]);
  }

  Status OpenKek(bool create_missing) {
    std::string kek_label = prefix_ + "kek";
    std::string mac_label = prefix_ + "kek-mac";
    ASSIGN_OR_RETURN(std::optional<CK_OBJECT_HANDLE> kek, FindLocked(CKO_SECRET_KEY, kek_label));
    ASSIGN_OR_RETURN(std::optional<CK_OBJECT_HANDLE> mac, FindLocked(CKO_SECRET_KEY, mac_label));
    if (!kek || !mac) {
      if (!create_missing) {
        return NotFoundError("PKCS#11 token '" + token_label_ + "' has no '" + kek_label + "' and '" +
                             mac_label + "' keys, and creating them is switched off");
      }
      std::array<uint8_t, 8> id{};
      RETURN_IF_ERROR(RandomLocked(id));
      if (!kek) {
        CK_MECHANISM mech{CKM_AES_KEY_GEN, nullptr, 0};
        Template t;
        t.Ulong(CKA_CLASS, CKO_SECRET_KEY).Ulong(CKA_KEY_TYPE, CKK_AES).Ulong(CKA_VALUE_LEN, 32)
            .Bool(CKA_TOKEN, true).Bool(CKA_PRIVATE, true).Bool(CKA_SENSITIVE, true)
            .Bool(CKA_EXTRACTABLE, false).Bool(CKA_WRAP, true).Bool(CKA_UNWRAP, true)
            .Bool(CKA_ENCRYPT, false).Bool(CKA_DECRYPT, false).Text(CKA_LABEL, kek_label)
            .Bytes(CKA_ID, id);
        CK_OBJECT_HANDLE object;
        CK_RV rv = f_->C_GenerateKey(session_, &mech, t.data(), t.size(), &object);
        if (rv != CKR_OK) return CkError(rv, "C_GenerateKey(KEK)");
        kek = object;
      }
      if (!mac) {
        CK_MECHANISM mech{CKM_GENERIC_SECRET_KEY_GEN, nullptr, 0};
        Template t;
        t.Ulong(CKA_CLASS, CKO_SECRET_KEY).Ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
            .Ulong(CKA_VALUE_LEN, 32).Bool(CKA_TOKEN, true).Bool(CKA_PRIVATE, true)
            .Bool(CKA_SENSITIVE, true).Bool(CKA_EXTRACTABLE, false).Bool(CKA_SIGN, true)
            .Bool(CKA_VERIFY, true).Text(CKA_LABEL, mac_label).Bytes(CKA_ID, id);
        CK_OBJECT_HANDLE object;
        CK_RV rv = f_->C_GenerateKey(session_, &mech, t.data(), t.size(), &object);
        if (rv != CKR_OK) return CkError(rv, "C_GenerateKey(storage MAC key)");
        mac = object;
      }
      spdlog::info("hsm pkcs11 token '{}': created KEK '{}' and MAC key '{}'", token_label_, kek_label,
                   mac_label);
    }
    kek_ = *kek;
    mac_key_ = *mac;
    std::array<uint8_t, 8> id{};
    CK_ATTRIBUTE attr{CKA_ID, id.data(), id.size()};
    CK_RV rv = f_->C_GetAttributeValue(session_, kek_, &attr, 1);
    if (rv != CKR_OK || attr.ulValueLen != id.size()) {
      return FailedPreconditionError("PKCS#11 KEK '" + kek_label + "' has no 8-byte CKA_ID");
    }
    kek_id_ = id;
    return Status::Ok();
  }

  Status CreateZeroKey() {
    SecretBytes zero(16);
    Template t = AesTemplate(false);
    t.Secret(CKA_VALUE, zero);
    CK_RV rv = f_->C_CreateObject(session_, t.data(), t.size(), &zero_key_);
    if (rv != CKR_OK) return CkError(rv, "C_CreateObject(zero key for the SHE KDF)");
    return Status::Ok();
  }

  // AES keys: extractable by wrapping and readable (CKA_SENSITIVE false) for the SHE KDF.
  static Template AesTemplate(bool token) {
    Template t;
    t.Ulong(CKA_CLASS, CKO_SECRET_KEY).Ulong(CKA_KEY_TYPE, CKK_AES).Bool(CKA_TOKEN, token)
        .Bool(CKA_PRIVATE, true).Bool(CKA_SENSITIVE, false).Bool(CKA_EXTRACTABLE, true)
        .Bool(CKA_ENCRYPT, true).Bool(CKA_DECRYPT, true).Bool(CKA_SIGN, true).Bool(CKA_VERIFY, true);
    return t;
  }
  static Template GenericTemplate(bool token) {
    Template t;
    t.Ulong(CKA_CLASS, CKO_SECRET_KEY).Ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET).Bool(CKA_TOKEN, token)
        .Bool(CKA_PRIVATE, true).Bool(CKA_SENSITIVE, false).Bool(CKA_EXTRACTABLE, true);
    return t;
  }

  StatusOr<KeyHandle> CreateFromValueLocked(KeyKind kind, const SecretBytes& value,
                                            const std::string& label, bool token) {
    Template t = kind == KeyKind::kAes128 ? AesTemplate(token) : GenericTemplate(token);
    t.Secret(CKA_VALUE, value);
    if (!label.empty()) t.Text(CKA_LABEL, label);
    CK_OBJECT_HANDLE object;
    CK_RV rv = f_->C_CreateObject(session_, t.data(), t.size(), &object);
    if (rv != CKR_OK) return CkError(rv, "C_CreateObject(" + std::string(KeyKindName(kind)) + ")");
    Entry entry{kind, object};
    entry.named = token;
    if (kind == KeyKind::kX25519) crypto_scalarmult_base(entry.public_key.data(), value.data());
    return AddLocked(std::move(entry));
  }

  // A non-extractable signing key pair on the token: both halves carry the label when named.
  StatusOr<Entry> GenerateSigningPairLocked(KeyKind kind, CK_MECHANISM_TYPE mechanism,
                                            CK_KEY_TYPE key_type, std::span<const uint8_t> params,
                                            const std::string& label, bool token) {
    CK_MECHANISM mech{mechanism, nullptr, 0};
    Template pub;
    pub.Ulong(CKA_CLASS, CKO_PUBLIC_KEY).Ulong(CKA_KEY_TYPE, key_type).Bool(CKA_TOKEN, token)
        .Bool(CKA_VERIFY, true).Bytes(CKA_EC_PARAMS, params);
    Template priv;
    priv.Ulong(CKA_CLASS, CKO_PRIVATE_KEY).Ulong(CKA_KEY_TYPE, key_type).Bool(CKA_TOKEN, token)
        .Bool(CKA_PRIVATE, true).Bool(CKA_SENSITIVE, true).Bool(CKA_EXTRACTABLE, false)
        .Bool(CKA_SIGN, true);
    if (!label.empty()) {
      pub.Text(CKA_LABEL, label);
      priv.Text(CKA_LABEL, label);
    }
    CK_OBJECT_HANDLE pub_object;
    CK_OBJECT_HANDLE priv_object;
    CK_RV rv = f_->C_GenerateKeyPair(session_, &mech, pub.data(), pub.size(), priv.data(), priv.size(),
                                     &pub_object, &priv_object);
    if (rv != CKR_OK) return CkError(rv, "C_GenerateKeyPair(" + std::string(KeyKindName(kind)) + ")");
    Entry entry{kind, priv_object, pub_object};
    entry.named = token;
    return entry;
  }

  StatusOr<KeyHandle> GenerateEd25519Locked(const std::string& label, bool token) {
    ASSIGN_OR_RETURN(Entry entry, GenerateSigningPairLocked(KeyKind::kEd25519, CKM_EC_EDWARDS_KEY_PAIR_GEN,
                                                           CKK_EC_EDWARDS, kEd25519Params, label, token));
    ASSIGN_OR_RETURN(entry.public_key, ReadEdPublicLocked(entry.public_object));
    return AddLocked(std::move(entry));
  }

  StatusOr<KeyHandle> GenerateP256Locked(const std::string& label, bool token) {
    ASSIGN_OR_RETURN(Entry entry, GenerateSigningPairLocked(KeyKind::kEcdsaP256, CKM_EC_KEY_PAIR_GEN, CKK_EC,
                                                           kP256Params, label, token));
    auto point = ReadP256PointLocked(entry.public_object);
    if (!point.ok()) {
      DestroyObjectsLocked(entry);
      return point.status();
    }
    entry.public_point = std::move(point).value();
    return AddLocked(std::move(entry));
  }

  StatusOr<std::vector<uint8_t>> ReadP256PointLocked(CK_OBJECT_HANDLE object) {
    std::array<uint8_t, 80> buffer{};
    CK_ATTRIBUTE attr{CKA_EC_POINT, buffer.data(), buffer.size()};
    CK_RV rv = f_->C_GetAttributeValue(session_, object, &attr, 1);
    if (rv != CKR_OK) return CkError(rv, "C_GetAttributeValue(CKA_EC_POINT)");
    return P256PointOfCkaEcPoint(std::span<const uint8_t>(buffer.data(), attr.ulValueLen));
  }

  // CKA_EC_POINT of an Ed25519 key: the 32 bytes, raw or as a DER OCTET STRING (04 20 ...).
  StatusOr<std::array<uint8_t, 32>> ReadEdPublicLocked(CK_OBJECT_HANDLE object) {
    std::array<uint8_t, 64> buffer{};
    CK_ATTRIBUTE attr{CKA_EC_POINT, buffer.data(), buffer.size()};
    CK_RV rv = f_->C_GetAttributeValue(session_, object, &attr, 1);
    if (rv != CKR_OK) return CkError(rv, "C_GetAttributeValue(CKA_EC_POINT)");
    std::array<uint8_t, 32> out{};
    if (attr.ulValueLen == 32) {
      std::memcpy(out.data(), buffer.data(), 32);
    } else if (attr.ulValueLen == 34 && buffer[0] == 0x04 && buffer[1] == 0x20) {
      std::memcpy(out.data(), buffer.data() + 2, 32);
    } else {
      return InternalError("Ed25519 CKA_EC_POINT has an unexpected encoding");
    }
    return out;
  }

  StatusOr<SecretBytes> ReadValueLocked(const Entry& entry) {
    SecretBytes value(entry.kind == KeyKind::kAes128 ? 16 : 32);
    CK_ATTRIBUTE attr{CKA_VALUE, value.data(), static_cast<CK_ULONG>(value.size())};
    CK_RV rv = f_->C_GetAttributeValue(session_, entry.object, &attr, 1);
    if (rv != CKR_OK) return CkError(rv, "C_GetAttributeValue(CKA_VALUE)");
    if (attr.ulValueLen != value.size()) return InternalError("key value has an unexpected length");
    return value;
  }

  StatusOr<KeyHandle> AddLocked(Entry entry) {
    KeyHandle handle{next_id_++, custody_id_, entry.kind};
    keys_.emplace(handle.id, std::move(entry));
    return handle;
  }

  StatusOr<Entry*> EntryLocked(const KeyHandle& handle, std::optional<KeyKind> kind) {
    std::string name = std::string(KeyKindName(handle.kind)) + " key #" + std::to_string(handle.id);
    if (handle.custody_id != custody_id_) return InvalidArgumentError(name + " belongs to another custody");
    auto it = keys_.find(handle.id);
    if (it == keys_.end()) return NotFoundError(name + " does not exist (destroyed?)");
    if (it->second.kind != handle.kind || (kind && it->second.kind != *kind)) {
      return InvalidArgumentError(name + " cannot be used here: need a " +
                                  std::string(KeyKindName(kind.value_or(handle.kind))) + " key");
    }
    return &it->second;
  }

  void DestroyObjectsLocked(Entry& entry) {
    // Failures here leave a session object that dies with the session: nothing to report.
    if (entry.she) {
      f_->C_DestroyObject(session_, entry.she->kenc);
      f_->C_DestroyObject(session_, entry.she->kmac);
    }
    if (!entry.named) {
      f_->C_DestroyObject(session_, entry.object);
      if (entry.public_object != CK_INVALID_HANDLE) f_->C_DestroyObject(session_, entry.public_object);
    }
  }

  Status RandomLocked(std::span<uint8_t> out) {
    if (out.empty()) return Status::Ok();
    CK_RV rv = f_->C_GenerateRandom(session_, out.data(), static_cast<CK_ULONG>(out.size()));
    if (rv != CKR_OK) return CkError(rv, "C_GenerateRandom");
    return Status::Ok();
  }

  Status CipherLocked(CK_MECHANISM_TYPE type, CK_OBJECT_HANDLE key, bool encrypt,
                      std::span<const uint8_t> in, std::span<uint8_t> out) {
    uint8_t iv[16] = {};
    CK_MECHANISM mech{type, type == CKM_AES_CBC ? iv : nullptr,
                      type == CKM_AES_CBC ? static_cast<CK_ULONG>(sizeof(iv)) : 0};
    CK_RV rv = encrypt ? f_->C_EncryptInit(session_, &mech, key) : f_->C_DecryptInit(session_, &mech, key);
    if (rv != CKR_OK) return CkError(rv, encrypt ? "C_EncryptInit" : "C_DecryptInit");
    CK_ULONG len = static_cast<CK_ULONG>(out.size());
    auto* data = const_cast<uint8_t*>(in.data());
    rv = encrypt ? f_->C_Encrypt(session_, data, static_cast<CK_ULONG>(in.size()), out.data(), &len)
                 : f_->C_Decrypt(session_, data, static_cast<CK_ULONG>(in.size()), out.data(), &len);
    if (rv != CKR_OK || len != out.size()) return CkError(rv, encrypt ? "C_Encrypt" : "C_Decrypt");
    return Status::Ok();
  }

  Status CmacLocked(CK_OBJECT_HANDLE key, std::span<const uint8_t> message, std::span<uint8_t, 16> tag) {
    CK_MECHANISM mech{CKM_AES_CMAC, nullptr, 0};
    CK_RV rv = f_->C_SignInit(session_, &mech, key);
    if (rv != CKR_OK) return CkError(rv, "C_SignInit(AES-CMAC)");
    CK_ULONG len = 16;
    rv = f_->C_Sign(session_, const_cast<uint8_t*>(message.data()), static_cast<CK_ULONG>(message.size()),
                    tag.data(), &len);
    if (rv != CKR_OK || len != 16) return CkError(rv, "C_Sign(AES-CMAC)");
    return Status::Ok();
  }

  StatusOr<std::array<uint8_t, kMacSize>> StorageMacLocked(std::span<const uint8_t> body,
                                                           std::string_view context) {
    // MAC input: body | context; the body's fixed header makes the split unambiguous.
    std::vector<uint8_t> input(body.begin(), body.end());
    input.insert(input.end(), context.begin(), context.end());
    CK_MECHANISM mech{CKM_SHA256_HMAC, nullptr, 0};
    CK_RV rv = f_->C_SignInit(session_, &mech, mac_key_);
    if (rv != CKR_OK) return CkError(rv, "C_SignInit(HMAC-SHA256)");
    std::array<uint8_t, kMacSize> mac{};
    CK_ULONG len = mac.size();
    rv = f_->C_Sign(session_, input.data(), static_cast<CK_ULONG>(input.size()), mac.data(), &len);
    if (rv != CKR_OK || len != mac.size()) return CkError(rv, "C_Sign(HMAC-SHA256)");
    return mac;
  }

  // Kenc, Kmac of an AES key as session objects, derived once per handle. The steps of the
  // Miyaguchi-Preneel compression run on the token; the XORs need the key value (see above).
  StatusOr<SheObjects> SheOfLocked(Entry& entry) {
    if (entry.she) return *entry.she;
    ASSIGN_OR_RETURN(SecretBytes k, ReadValueLocked(entry));
    Block kb{};
    std::memcpy(kb.data(), k.data(), 16);
    Block e0{};
    RETURN_IF_ERROR(CipherLocked(CKM_AES_ECB, zero_key_, true, kb, e0));
    SecretBytes h1(16);
    MpStep(e0, kb, Block{}, h1.data());
    Wipe(kb);
    Wipe(e0);
    Template t = AesTemplate(false);
    t.Secret(CKA_VALUE, h1);
    CK_OBJECT_HANDLE h1_object;
    CK_RV rv = f_->C_CreateObject(session_, t.data(), t.size(), &h1_object);
    if (rv != CKR_OK) return CkError(rv, "C_CreateObject(SHE KDF)");
    std::array<uint8_t, 32> constants;
    std::memcpy(constants.data(), kKeyUpdateEncC.data(), 16);
    std::memcpy(constants.data() + 16, kKeyUpdateMacC.data(), 16);
    std::array<uint8_t, 32> enc{};
    Status encrypted = CipherLocked(CKM_AES_ECB, h1_object, true, constants, enc);
    f_->C_DestroyObject(session_, h1_object);
    RETURN_IF_ERROR(encrypted);
    Block h1b{};
    std::memcpy(h1b.data(), h1.data(), 16);
    Block enc_c{};
    Block enc_m{};
    std::memcpy(enc_c.data(), enc.data(), 16);
    std::memcpy(enc_m.data(), enc.data() + 16, 16);
    SecretBytes kenc(16);
    SecretBytes kmac(16);
    MpStep(enc_c, kKeyUpdateEncC, h1b, kenc.data());
    MpStep(enc_m, kKeyUpdateMacC, h1b, kmac.data());
    Wipe(h1b);
    Wipe(enc);
    Wipe(enc_c);
    Wipe(enc_m);
    SheObjects objects;
    Template tenc = AesTemplate(false);
    tenc.Secret(CKA_VALUE, kenc);
    rv = f_->C_CreateObject(session_, tenc.data(), tenc.size(), &objects.kenc);
    if (rv != CKR_OK) return CkError(rv, "C_CreateObject(SHE Kenc)");
    Template tmac = AesTemplate(false);
    tmac.Secret(CKA_VALUE, kmac);
    rv = f_->C_CreateObject(session_, tmac.data(), tmac.size(), &objects.kmac);
    if (rv != CKR_OK) {
      f_->C_DestroyObject(session_, objects.kenc);
      return CkError(rv, "C_CreateObject(SHE Kmac)");
    }
    entry.she = objects;
    return objects;
  }

  const uint32_t custody_id_;
  std::mutex mu_;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE kek_ = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE mac_key_ = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE zero_key_ = CK_INVALID_HANDLE;
  std::array<uint8_t, 8> kek_id_{};
  std::string prefix_;
  std::string token_label_;
  std::string manufacturer_;
  std::string model_;
  std::unordered_map<uint64_t, Entry> keys_;
  std::map<std::string, KeyHandle> named_;
  uint64_t next_id_ = 1;
};

}  // namespace
}  // namespace internal

StatusOr<std::unique_ptr<KeyCustody>> CreatePkcs11Custody(const Pkcs11CustodyOptions& options) {
  auto custody = std::make_unique<internal::Pkcs11Custody>();
  RETURN_IF_ERROR(custody->Init(options));
  return std::unique_ptr<KeyCustody>(std::move(custody));
}

}  // namespace keyline::hsm
