#include "keyline/hsm/she_store_seal.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "keyline/common/hex.h"
#include "secret_bytes.h"
#include "she/she_secrets.h"

namespace keyline::hsm {

using internal::SecretBytes;

namespace {

constexpr uint8_t kSealMagic[4] = {'K', 'L', 'S', '1'};

std::string Errno() { return std::strerror(errno); }

// Reads a key file of 2 * `bytes` hex digits (surrounding whitespace allowed) straight into
// guarded memory. Refuses a file readable by group or others.
StatusOr<SecretBytes> ReadHexKeyFile(const std::filesystem::path& path, size_t bytes) {
  RETURN_IF_ERROR(internal::EnsureSodium());
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError(path.string() + ": cannot open key file: " + Errno());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return InternalError(path.string() + ": cannot stat key file: " + Errno());
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    return PermissionDeniedError(path.string() +
                                 ": key file is readable by group or others; chmod 600 it");
  }
  SecretBytes raw(256);
  size_t used = 0;
  while (used < raw.size()) {
    ssize_t n = ::read(fd, raw.data() + used, raw.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return InternalError(path.string() + ": cannot read key file: " + Errno());
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  ::close(fd);
  size_t begin = 0;
  size_t end = used;
  auto space = [](uint8_t c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (begin < end && space(raw.data()[begin])) ++begin;
  while (end > begin && space(raw.data()[end - 1])) --end;
  std::string_view hex(reinterpret_cast<const char*>(raw.data()) + begin, end - begin);
  return internal::ParseSecretHex(hex, path.string(), bytes);
}

}  // namespace

Status WriteRandomKeyFile(const std::filesystem::path& path, size_t bytes) {
  RETURN_IF_ERROR(internal::EnsureSodium());
  if (bytes == 0 || bytes > 64) return InvalidArgumentError("a key file holds 1..64 bytes");
  SecretBytes key(bytes);
  randombytes_buf(key.data(), bytes);
  SecretBytes hex(bytes * 2 + 2);
  sodium_bin2hex(reinterpret_cast<char*>(hex.data()), hex.size(), key.data(), bytes);
  hex.data()[bytes * 2] = '\n';
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return AlreadyExistsError(path.string() + ": cannot create key file: " + Errno());
  size_t want = bytes * 2 + 1;
  bool ok = ::write(fd, hex.data(), want) == static_cast<ssize_t>(want) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return InternalError(path.string() + ": cannot write key file: " + Errno());
  return Status::Ok();
}

SheTransportKey::SheTransportKey() : secret_(std::make_unique<Secret>()) {}
SheTransportKey::~SheTransportKey() = default;
SheTransportKey::SheTransportKey(SheTransportKey&&) noexcept = default;
SheTransportKey& SheTransportKey::operator=(SheTransportKey&&) noexcept = default;

StatusOr<SheTransportKey> SheTransportKey::LoadFile(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(SecretBytes key, ReadHexKeyFile(path, 16));
  SheTransportKey out;
  out.secret_->key = std::move(key);
  return out;
}

struct SheStoreSealer::Secret {
  SecretBytes key;  // crypto_secretbox_KEYBYTES
};

SheStoreSealer::SheStoreSealer() : secret_(std::make_unique<Secret>()) {}
SheStoreSealer::~SheStoreSealer() = default;
SheStoreSealer::SheStoreSealer(SheStoreSealer&&) noexcept = default;
SheStoreSealer& SheStoreSealer::operator=(SheStoreSealer&&) noexcept = default;

StatusOr<SheStoreSealer> SheStoreSealer::LoadKeyFile(const std::filesystem::path& path) {
  static_assert(crypto_secretbox_KEYBYTES == 32);
  ASSIGN_OR_RETURN(SecretBytes key, ReadHexKeyFile(path, crypto_secretbox_KEYBYTES));
  SheStoreSealer out;
  out.secret_->key = std::move(key);
  return out;
}

namespace {
constexpr size_t kImageBytes = 15 + 16 * 22;
}  // namespace

size_t SheStoreSealer::SealedSize() {
  return sizeof(kSealMagic) + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES +
         kImageBytes;
}

StatusOr<std::vector<uint8_t>> SheStoreSealer::Seal(const SheKeyStore& store) const {
  SecretBytes image = store.ExportImage();
  if (image.size() != kImageBytes) return InternalError("SHE key store image has an unexpected size");
  std::vector<uint8_t> out(SealedSize());
  std::memcpy(out.data(), kSealMagic, sizeof(kSealMagic));
  uint8_t* nonce = out.data() + sizeof(kSealMagic);
  randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
  if (crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES, image.data(), image.size(),
                            nonce, secret_->key.data()) != 0) {
    return InternalError("crypto_secretbox_easy failed");
  }
  return out;
}

StatusOr<SheKeyStore> SheStoreSealer::Open(std::span<const uint8_t> sealed) const {
  if (sealed.size() != SealedSize() ||
      std::memcmp(sealed.data(), kSealMagic, sizeof(kSealMagic)) != 0) {
    return DataLossError("sealed SHE key store: expected " + std::to_string(SealedSize()) +
                         " bytes starting with KLS1, got " + std::to_string(sealed.size()) +
                         " bytes");
  }
  const uint8_t* nonce = sealed.data() + sizeof(kSealMagic);
  const uint8_t* box = nonce + crypto_secretbox_NONCEBYTES;
  size_t box_size = sealed.size() - sizeof(kSealMagic) - crypto_secretbox_NONCEBYTES;
  SecretBytes image(kImageBytes);
  if (crypto_secretbox_open_easy(image.data(), box, box_size, nonce, secret_->key.data()) != 0) {
    return DataLossError(
        "sealed SHE key store does not open under this state key (altered, or another key)");
  }
  return SheKeyStore::ImportImage(image.span());
}

}  // namespace keyline::hsm
