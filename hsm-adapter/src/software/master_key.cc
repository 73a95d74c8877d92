#include "software/master_key.h"

#include <sodium.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace keyline::hsm {
namespace internal {
namespace {

constexpr uint8_t kMagic[4] = {'K', 'L', 'M', 'K'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kClear = 0;
constexpr uint8_t kArgon2id = 1;
constexpr size_t kChecksumSize = 32;
constexpr size_t kSaltSize = crypto_pwhash_SALTBYTES;
constexpr size_t kNonceSize = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr size_t kSealedSize = kMasterKeySize + crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr size_t kArgonHeader = 6 + 8 + 8 + kSaltSize;  // bytes before the nonce

void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

Status ReadWhole(const std::filesystem::path& path, std::string_view what,
                 SecretBytes& out, bool require_private) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return NotFoundError(std::string(what) + " " + path.string() +
                         " cannot be opened: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgumentError(std::string(what) + " " + path.string() +
                                " is not a regular file");
  }
  if (require_private && (st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return PermissionDeniedError(std::string(what) + " " + path.string() + " has mode " + mode +
                                 "; it must be readable by its owner only (chmod 600 " +
                                 path.string() + ")");
  }
  if (st.st_size > 4096) {
    ::close(fd);
    return InvalidArgumentError(std::string(what) + " " + path.string() +
                                " is too large to be a " + std::string(what));
  }
  SecretBytes buffer(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < buffer.size()) {
    ssize_t n = ::read(fd, buffer.data() + done, buffer.size() - done);
    if (n <= 0) {
      ::close(fd);
      return DataLossError(std::string(what) + " " + path.string() + " could not be read");
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  out = std::move(buffer);
  return Status::Ok();
}

}  // namespace

StatusOr<SecretBytes> ReadPassphrase(const PassphraseSource& source) {
  if (source.file.has_value() == source.env_var.has_value()) {
    return InvalidArgumentError(
        "a passphrase needs exactly one source: a passphrase file or an environment variable");
  }
  SecretBytes raw;
  std::string what;
  if (source.file) {
    what = "passphrase file " + source.file->string();
    RETURN_IF_ERROR(ReadWhole(*source.file, "passphrase file", raw, /*require_private=*/true));
  } else {
    what = "environment variable " + *source.env_var;
    const char* value = std::getenv(source.env_var->c_str());
    if (value == nullptr) return NotFoundError(what + " is not set");
    raw = SecretBytes::CopyOf({reinterpret_cast<const uint8_t*>(value), std::strlen(value)});
  }
  size_t size = raw.size();
  while (size > 0 && (raw.data()[size - 1] == '\n' || raw.data()[size - 1] == '\r')) --size;
  if (size == 0) return InvalidArgumentError(what + " holds an empty passphrase");
  return SecretBytes::CopyOf({raw.data(), size});
}

StatusOr<SecretBytes> LoadMasterKey(const std::filesystem::path& path,
                                    const PassphraseSource& passphrase) {
  RETURN_IF_ERROR(EnsureSodium());
  SecretBytes file;
  RETURN_IF_ERROR(ReadWhole(path, "master key file", file, /*require_private=*/true));
  const std::string where = "master key file " + path.string();
  const uint8_t* d = file.data();
  if (file.size() < 6 + kChecksumSize || std::memcmp(d, kMagic, 4) != 0) {
    return DataLossError(where + " is not a Keyline master key file (bad magic or truncated)");
  }
  size_t body_end = file.size() - kChecksumSize;
  uint8_t checksum[kChecksumSize];
  crypto_generichash(checksum, sizeof(checksum), d, body_end, nullptr, 0);
  if (sodium_memcmp(checksum, d + body_end, kChecksumSize) != 0) {
    return DataLossError(where + " is corrupt or was modified (checksum mismatch)");
  }
  if (d[4] != kVersion) {
    return DataLossError(where + " has unsupported version " + std::to_string(d[4]));
  }
  if (d[5] == kClear) {
    if (body_end != 6 + kMasterKeySize) return DataLossError(where + " has a malformed body");
    if (passphrase.file || passphrase.env_var) {
      return InvalidArgumentError(where + " is not passphrase-protected, but a passphrase was "
                                  "configured; remove the passphrase setting");
    }
    return SecretBytes::CopyOf({d + 6, kMasterKeySize});
  }
  if (d[5] != kArgon2id) return DataLossError(where + " has unknown protection " + std::to_string(d[5]));
  if (body_end != kArgonHeader + kNonceSize + kSealedSize) {
    return DataLossError(where + " has a malformed body");
  }
  if (!passphrase.file && !passphrase.env_var) {
    return FailedPreconditionError(where + " is passphrase-protected; configure a passphrase "
                                   "file or environment variable");
  }
  ASSIGN_OR_RETURN(SecretBytes phrase, ReadPassphrase(passphrase));
  uint64_t opslimit = GetU64(d + 6);
  uint64_t memlimit = GetU64(d + 14);
  if (opslimit < crypto_pwhash_OPSLIMIT_MIN || opslimit > crypto_pwhash_OPSLIMIT_MAX ||
      memlimit < crypto_pwhash_MEMLIMIT_MIN || memlimit > (uint64_t{1} << 34)) {
    return DataLossError(where + " has out-of-range Argon2id parameters");
  }
  SecretBytes wrapping_key(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  if (crypto_pwhash(wrapping_key.data(), wrapping_key.size(),
                    reinterpret_cast<const char*>(phrase.data()), phrase.size(), d + 22, opslimit,
                    static_cast<size_t>(memlimit), crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return ResourceExhaustedError(where + ": Argon2id ran out of memory (" +
                                  std::to_string(memlimit) + " bytes)");
  }
  SecretBytes key(kMasterKeySize);
  unsigned long long key_len = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(
          key.data(), &key_len, nullptr, d + kArgonHeader + kNonceSize, kSealedSize, d,
          kArgonHeader, d + kArgonHeader, wrapping_key.data()) != 0 ||
      key_len != kMasterKeySize) {
    return UnauthenticatedError("wrong passphrase for " + where);
  }
  return key;
}

}  // namespace internal

Status CreateMasterKeyFile(const std::filesystem::path& path,
                           const MasterKeyFileOptions& options) {
  using namespace internal;
  RETURN_IF_ERROR(EnsureSodium());
  const std::string where = "master key file " + path.string();
  bool protect = options.passphrase.file || options.passphrase.env_var;
  std::vector<uint8_t> header = {kMagic[0], kMagic[1], kMagic[2], kMagic[3], kVersion,
                                 protect ? kArgon2id : kClear};
  SecretBytes key(kMasterKeySize);
  randombytes_buf(key.data(), key.size());
  SecretBytes contents(protect ? kArgonHeader + kNonceSize + kSealedSize + kChecksumSize
                               : 6 + kMasterKeySize + kChecksumSize);
  uint8_t* c = contents.data();
  std::memcpy(c, header.data(), header.size());
  size_t body_end;
  if (!protect) {
    std::memcpy(c + 6, key.data(), kMasterKeySize);
    body_end = 6 + kMasterKeySize;
  } else {
    if (options.argon2_opslimit < crypto_pwhash_OPSLIMIT_MIN ||
        options.argon2_memlimit < crypto_pwhash_MEMLIMIT_MIN) {
      return InvalidArgumentError("Argon2id limits below libsodium's minimum");
    }
    ASSIGN_OR_RETURN(SecretBytes phrase, ReadPassphrase(options.passphrase));
    PutU64(c + 6, options.argon2_opslimit);
    PutU64(c + 14, options.argon2_memlimit);
    randombytes_buf(c + 22, kSaltSize);
    randombytes_buf(c + kArgonHeader, kNonceSize);
    SecretBytes wrapping_key(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    if (crypto_pwhash(wrapping_key.data(), wrapping_key.size(),
                      reinterpret_cast<const char*>(phrase.data()), phrase.size(), c + 22,
                      options.argon2_opslimit, options.argon2_memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
      return ResourceExhaustedError(where + ": Argon2id ran out of memory");
    }
    crypto_aead_xchacha20poly1305_ietf_encrypt(c + kArgonHeader + kNonceSize, nullptr,
                                               key.data(), kMasterKeySize, c, kArgonHeader,
                                               nullptr, c + kArgonHeader, wrapping_key.data());
    body_end = kArgonHeader + kNonceSize + kSealedSize;
  }
  crypto_generichash(c + body_end, kChecksumSize, c, body_end, nullptr, 0);

  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return AlreadyExistsError(where + " cannot be created: " + std::strerror(errno));
  }
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n <= 0) {
      ::close(fd);
      return InternalError(where + " could not be written: " + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    return InternalError(where + " could not be synced: " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace keyline::hsm
