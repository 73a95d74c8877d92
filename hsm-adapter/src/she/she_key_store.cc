#include "keyline/hsm/she_key_store.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "keyline/common/hex.h"
#include "she/she_codec.h"
#include "she/she_secrets.h"
#include "secret_bytes.h"
#include "software/openssl_aes.h"

namespace keyline::hsm {

using internal::AesCipher;
using internal::AesCmac;
using internal::Block;
using internal::SecretBytes;

std::string_view SheLoadErrorName(SheLoadError error) {
  switch (error) {
    case SheLoadError::kNone: return "NONE";
    case SheLoadError::kKeyUpdateError: return "KEY_UPDATE_ERROR";
    case SheLoadError::kWriteProtected: return "WRITE_PROTECTED";
    case SheLoadError::kCounterNotLarger: return "COUNTER_NOT_LARGER";
    case SheLoadError::kKeyEmpty: return "KEY_EMPTY";
    case SheLoadError::kKeyInvalid: return "KEY_INVALID";
  }
  return "UNKNOWN";
}

struct SheKeyStore::State {
  struct SlotState {
    SecretBytes key;  // 16 bytes when loaded
    uint32_t counter = 0;
    uint8_t flags = 0;
  };
  SheUid uid{};
  std::array<SlotState, 16> slots;
  AesCipher ecb{AesCipher::Mode::kEcb, AesCipher::Direction::kEncrypt};
  AesCipher cbc_decrypt{AesCipher::Mode::kCbcZeroIv, AesCipher::Direction::kDecrypt};
  AesCmac cmac;

  // KDF(K, C) = Miyaguchi-Preneel over K || C with H0 = 0 (SHE.md), into guarded memory.
  Status Kdf(std::span<const uint8_t> key, const Block& constant, SecretBytes& out) {
    Block zero{};
    SecretBytes h1(16);
    SecretBytes k(16);
    std::memcpy(k.data(), key.data(), 16);
    Block e{};
    RETURN_IF_ERROR(ecb.SetKey(zero));
    RETURN_IF_ERROR(ecb.Run(k.span(), e));
    Block k_block{};
    std::memcpy(k_block.data(), k.data(), 16);
    internal::MpStep(e, k_block, zero, h1.data());
    Block h1_block{};
    std::memcpy(h1_block.data(), h1.data(), 16);
    RETURN_IF_ERROR(ecb.SetKey(h1_block));
    RETURN_IF_ERROR(ecb.Run(constant, e));
    out = SecretBytes(16);
    internal::MpStep(e, constant, h1_block, out.data());
    std::fill(k_block.begin(), k_block.end(), 0);
    std::fill(h1_block.begin(), h1_block.end(), 0);
    std::fill(e.begin(), e.end(), 0);
    return Status::Ok();
  }
};

SheKeyStore::SheKeyStore(const SheUid& uid) : state_(std::make_unique<State>()) { state_->uid = uid; }
SheKeyStore::~SheKeyStore() = default;
SheKeyStore::SheKeyStore(SheKeyStore&&) noexcept = default;
SheKeyStore& SheKeyStore::operator=(SheKeyStore&&) noexcept = default;

const SheUid& SheKeyStore::uid() const { return state_->uid; }

Status SheKeyStore::Provision(uint8_t slot, std::string_view hex, uint32_t counter, uint8_t flags) {
  if (slot > kSheMaxSlot) return InvalidArgumentError("slot " + std::to_string(slot) + " is not a SHE slot");
  if (counter > kSheMaxCounter) return InvalidArgumentError("counter exceeds 28 bits");
  if (flags > kSheMaxFlags) return InvalidArgumentError("flags exceed 5 bits");
  if (hex.size() != 32) return InvalidArgumentError("a SHE key is 32 hex digits");
  SecretBytes key(16);
  for (size_t i = 0; i < 16; ++i) {
    int high = HexDigitValue(hex[2 * i]);
    int low = HexDigitValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return InvalidArgumentError("a SHE key is 32 hex digits");
    key.data()[i] = static_cast<uint8_t>(high * 16 + low);
  }
  auto& s = state_->slots[slot];
  s.key = std::move(key);
  s.counter = counter;
  s.flags = flags;
  return Status::Ok();
}

Status SheKeyStore::ProvisionKey(uint8_t slot, const SheTransportKey& key, uint32_t counter,
                                 uint8_t flags) {
  if (slot > kSheMaxSlot) return InvalidArgumentError("slot " + std::to_string(slot) + " is not a SHE slot");
  if (counter > kSheMaxCounter) return InvalidArgumentError("counter exceeds 28 bits");
  if (flags > kSheMaxFlags) return InvalidArgumentError("flags exceed 5 bits");
  if (!key.secret_ || key.secret_->key.size() != 16) return InvalidArgumentError("the key is not loaded");
  auto& s = state_->slots[slot];
  s.key = SecretBytes::CopyOf(key.secret_->key.span());
  s.counter = counter;
  s.flags = flags;
  return Status::Ok();
}

namespace {
constexpr size_t kImageSlotBytes = 1 + 4 + 1 + 16;
constexpr size_t kImageBytes = 15 + 16 * kImageSlotBytes;
}  // namespace

SecretBytes SheKeyStore::ExportImage() const {
  SecretBytes image(kImageBytes);
  uint8_t* out = image.data();
  std::copy(state_->uid.begin(), state_->uid.end(), out);
  out += 15;
  for (const auto& slot : state_->slots) {
    out[0] = slot.key.empty() ? 0 : 1;
    out[1] = static_cast<uint8_t>(slot.counter >> 24);
    out[2] = static_cast<uint8_t>(slot.counter >> 16);
    out[3] = static_cast<uint8_t>(slot.counter >> 8);
    out[4] = static_cast<uint8_t>(slot.counter);
    out[5] = slot.flags;
    if (!slot.key.empty()) std::memcpy(out + 6, slot.key.data(), 16);
    out += kImageSlotBytes;
  }
  return image;
}

StatusOr<SheKeyStore> SheKeyStore::ImportImage(std::span<const uint8_t> image) {
  if (image.size() != kImageBytes) {
    return DataLossError("a SHE key store image is " + std::to_string(kImageBytes) +
                         " bytes, got " + std::to_string(image.size()));
  }
  SheUid uid{};
  std::copy_n(image.begin(), 15, uid.begin());
  SheKeyStore store(uid);
  const uint8_t* in = image.data() + 15;
  for (auto& slot : store.state_->slots) {
    uint32_t counter = (uint32_t{in[1]} << 24) | (uint32_t{in[2]} << 16) |
                       (uint32_t{in[3]} << 8) | uint32_t{in[4]};
    if (in[0] > 1 || counter > kSheMaxCounter || in[5] > kSheMaxFlags) {
      return DataLossError("a SHE key store image holds an impossible slot");
    }
    slot.counter = counter;
    slot.flags = in[5];
    if (in[0] == 1) slot.key = SecretBytes::CopyOf(std::span<const uint8_t>(in + 6, 16));
    in += kImageSlotBytes;
  }
  return store;
}

SheSlotInfo SheKeyStore::Slot(uint8_t slot) const {
  if (slot > kSheMaxSlot) return {};
  const auto& s = state_->slots[slot];
  return {!s.key.empty(), s.counter, s.flags};
}

StatusOr<SheLoadOutcome> SheKeyStore::LoadKey(std::span<const uint8_t, 16> m1,
                                              std::span<const uint8_t, 32> m2,
                                              std::span<const uint8_t, 16> m3) {
  State& st = *state_;
  SheLoadOutcome outcome;
  uint8_t id = static_cast<uint8_t>(m1[15] >> 4);
  uint8_t auth_id = static_cast<uint8_t>(m1[15] & 0x0F);
  if (id == kSheSlotSecretKey || id == kSheSlotBootMac || id == kSheSlotRamKey || id > 0xD) {
    outcome.error = SheLoadError::kKeyInvalid;
    return outcome;
  }
  // MASTER_ECU_KEY authorises every slot; otherwise a key may authorise its own update.
  if (auth_id != kSheSlotMasterEcuKey && auth_id != id) {
    outcome.error = SheLoadError::kKeyInvalid;
    return outcome;
  }
  const auto& auth = st.slots[auth_id];
  if (auth.key.empty()) {
    outcome.error = SheLoadError::kKeyEmpty;
    return outcome;
  }
  SecretBytes k1;
  SecretBytes k2;
  RETURN_IF_ERROR(st.Kdf(auth.key.span(), internal::kKeyUpdateEncC, k1));
  RETURN_IF_ERROR(st.Kdf(auth.key.span(), internal::kKeyUpdateMacC, k2));

  std::array<uint8_t, 48> mac_input{};
  std::copy(m1.begin(), m1.end(), mac_input.begin());
  std::copy(m2.begin(), m2.end(), mac_input.begin() + 16);
  std::array<uint8_t, 16> expected{};
  RETURN_IF_ERROR(st.cmac.SetKey(std::span<const uint8_t, 16>(k2.data(), 16)));
  RETURN_IF_ERROR(st.cmac.Compute(mac_input, expected));
  if (!SecretBytes::CopyOf(expected).Equals(m3)) {
    outcome.error = SheLoadError::kKeyUpdateError;
    return outcome;
  }
  // The UID must be this ECU's, or the wildcard where the slot's WILDCARD flag allows it.
  SheUid uid{};
  std::copy(m1.begin(), m1.begin() + 15, uid.begin());
  auto& target = st.slots[id];
  bool wildcard_ok = IsWildcardUid(uid) && !target.key.empty() && (target.flags & kSheFlagWildcard);
  if (uid != st.uid && !wildcard_ok) {
    outcome.error = SheLoadError::kKeyUpdateError;
    return outcome;
  }

  SecretBytes plain(32);
  RETURN_IF_ERROR(st.cbc_decrypt.SetKey(std::span<const uint8_t, 16>(k1.data(), 16)));
  RETURN_IF_ERROR(st.cbc_decrypt.Run(m2, plain.mutable_span()));
  uint64_t top = 0;
  for (int i = 0; i < 8; ++i) top = (top << 8) | plain.data()[i];
  uint32_t counter = static_cast<uint32_t>(top >> 36);
  uint8_t flags = static_cast<uint8_t>((top >> 31) & kSheMaxFlags);
  if (!target.key.empty() && (target.flags & kSheFlagWriteProtection)) {
    outcome.error = SheLoadError::kWriteProtected;
    return outcome;
  }
  if (!target.key.empty() && counter <= target.counter) {
    outcome.error = SheLoadError::kCounterNotLarger;
    return outcome;
  }
  SecretBytes new_key = SecretBytes::CopyOf(plain.span().subspan(16, 16));

  // M4 = UID | ID | AuthID | AES-ECB(K3, Counter | 1 | 0...), M5 = CMAC(K4, M4).
  SecretBytes k3;
  SecretBytes k4;
  RETURN_IF_ERROR(st.Kdf(new_key.span(), internal::kKeyUpdateEncC, k3));
  RETURN_IF_ERROR(st.Kdf(new_key.span(), internal::kKeyUpdateMacC, k4));
  SheProofFields fields;
  fields.uid = st.uid;
  fields.slot = id;
  fields.auth_slot = auth_id;
  Block header = internal::EncodeM1(fields);
  Block m4_plain = internal::EncodeM4Plain(counter);
  Block m4_secret{};
  RETURN_IF_ERROR(st.ecb.SetKey(std::span<const uint8_t, 16>(k3.data(), 16)));
  RETURN_IF_ERROR(st.ecb.Run(m4_plain, m4_secret));
  std::copy(header.begin(), header.end(), outcome.proof.m4.begin());
  std::copy(m4_secret.begin(), m4_secret.end(), outcome.proof.m4.begin() + 16);
  RETURN_IF_ERROR(st.cmac.SetKey(std::span<const uint8_t, 16>(k4.data(), 16)));
  RETURN_IF_ERROR(st.cmac.Compute(outcome.proof.m4, outcome.proof.m5));

  target.key = std::move(new_key);
  target.counter = counter;
  target.flags = flags;
  return outcome;
}

}  // namespace keyline::hsm
