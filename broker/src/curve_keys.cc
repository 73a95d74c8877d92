#include "keyline/broker/curve_keys.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <sodium.h>
#include <zmq.h>

namespace keyline::broker {
namespace {

StatusOr<std::array<uint8_t, 32>> DecodeZ85(std::string_view text, std::string_view what) {
  std::array<uint8_t, 32> out{};
  if (text.size() != 40) {
    return InvalidArgumentError(std::string(what) + ": a Curve key is 40 Z85 characters, got " +
                                std::to_string(text.size()));
  }
  std::string copy(text);
  if (zmq_z85_decode(out.data(), copy.c_str()) == nullptr) {
    return InvalidArgumentError(std::string(what) + ": not valid Z85 text");
  }
  return out;
}

std::string EncodeZ85(const uint8_t* bytes) {
  char text[41] = {};
  zmq_z85_encode(text, bytes, 32);
  return text;
}

}  // namespace

std::string CurvePublicKeyToZ85(const CurvePublicKey& key) { return EncodeZ85(key.data()); }

StatusOr<CurvePublicKey> CurvePublicKeyFromZ85(std::string_view text, std::string_view what) {
  return DecodeZ85(text, what);
}

CurveKeyPair::~CurveKeyPair() { sodium_memzero(secret_.data(), secret_.size()); }

StatusOr<CurveKeyPair> CurveKeyPair::Generate() {
  char public_text[41] = {};
  char secret_text[41] = {};
  if (zmq_curve_keypair(public_text, secret_text) != 0) {
    return UnimplementedError("this libzmq has no CURVE support (zmq_curve_keypair failed)");
  }
  CurveKeyPair pair;
  zmq_z85_decode(pair.public_.data(), public_text);
  zmq_z85_decode(pair.secret_.data(), secret_text);
  sodium_memzero(secret_text, sizeof secret_text);
  return pair;
}

StatusOr<CurveKeyPair> CurveKeyPair::Load(const std::filesystem::path& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    return NotFoundError(path.string() + ": Curve key file not found");
  }
  if ((info.st_mode & 077) != 0) {
    return PermissionDeniedError(path.string() +
                                 ": Curve key file is readable by others; chmod 600 it");
  }
  std::ifstream in(path);
  std::string line;
  std::string public_text;
  std::string secret_text;
  while (std::getline(in, line)) {
    if (line.rfind("public = ", 0) == 0) public_text = line.substr(9);
    if (line.rfind("secret = ", 0) == 0) secret_text = line.substr(9);
  }
  if (public_text.empty() || secret_text.empty()) {
    return InvalidArgumentError(path.string() +
                                ": not a Curve key file (needs 'public = ' and 'secret = ' lines)");
  }
  CurveKeyPair pair;
  ASSIGN_OR_RETURN(pair.public_, DecodeZ85(public_text, path.string() + " public"));
  auto secret = DecodeZ85(secret_text, path.string() + " secret");
  sodium_memzero(secret_text.data(), secret_text.size());
  if (!secret.ok()) return secret.status();
  pair.secret_ = *secret;
  sodium_memzero(secret->data(), secret->size());
  // The public key must belong to the secret key: a mismatched file would fail every handshake.
  std::array<uint8_t, 32> derived{};
  crypto_scalarmult_base(derived.data(), pair.secret_.data());
  if (derived != pair.public_) {
    return InvalidArgumentError(path.string() + ": public key does not match the secret key");
  }
  return pair;
}

StatusOr<CurvePublicKey> LoadCurvePublicKeyFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError(path.string() + ": cannot read the Curve public key file");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("secret = ", 0) == 0) continue;  // a key pair file: use its public line
    if (line.rfind("public = ", 0) == 0) line = line.substr(9);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    return CurvePublicKeyFromZ85(line, path.string());
  }
  return InvalidArgumentError(path.string() + ": no Curve public key (40 Z85 characters) in it");
}

Status CurveKeyPair::Save(const std::filesystem::path& path) const {
  std::filesystem::path temp = path;
  temp += ".tmp";
  std::string secret_text = EncodeZ85(secret_.data());
  std::string content = "public = " + EncodeZ85(public_.data()) + "\nsecret = " + secret_text + "\n";
  sodium_memzero(secret_text.data(), secret_text.size());
  mode_t old_mask = umask(077);
  {
    std::ofstream out(temp, std::ios::trunc);
    out << content;
    out.close();
    sodium_memzero(content.data(), content.size());
    if (!out) {
      umask(old_mask);
      return UnavailableError(path.string() + ": cannot write the Curve key file");
    }
  }
  umask(old_mask);
  std::error_code ec;
  std::filesystem::permissions(temp, std::filesystem::perms::owner_read |
                                         std::filesystem::perms::owner_write, ec);
  std::filesystem::rename(temp, path, ec);
  if (ec) return UnavailableError(path.string() + ": cannot write the Curve key file: " + ec.message());
  return Status::Ok();
}

}  // namespace keyline::broker
