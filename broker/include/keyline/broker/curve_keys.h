// CurveZMQ key pairs: how every link end proves who it is.
//
// A public key identifies a peer (the server's PeerRegistry maps it to "plant-a"); the secret
// key never leaves its holder's key file and never appears in a log or an error message.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "keyline/common/status.h"

namespace keyline::broker {

using CurvePublicKey = std::array<uint8_t, 32>;

// Z85 text (40 characters) of a public key, the form config files and keylinectl use.
std::string CurvePublicKeyToZ85(const CurvePublicKey& key);
StatusOr<CurvePublicKey> CurvePublicKeyFromZ85(std::string_view text, std::string_view what);

// Reads a public key file: one line of Z85, optionally written as "public = <z85>" (so a
// peer's key file and the public line of a key pair file both work). Errors name the path.
StatusOr<CurvePublicKey> LoadCurvePublicKeyFile(const std::filesystem::path& path);

class CurveKeyPair {
 public:
  CurveKeyPair() = default;
  ~CurveKeyPair();  // wipes the secret
  CurveKeyPair(const CurveKeyPair& other) = default;
  CurveKeyPair& operator=(const CurveKeyPair& other) = default;

  static StatusOr<CurveKeyPair> Generate();
  // Reads a key file written by Save: "public = <z85>\nsecret = <z85>\n". A file readable by
  // group or others is refused (the secret would be exposed).
  static StatusOr<CurveKeyPair> Load(const std::filesystem::path& path);
  // Writes the key file with mode 0600 (atomically: temp file + rename).
  [[nodiscard]] Status Save(const std::filesystem::path& path) const;

  const CurvePublicKey& public_key() const { return public_; }
  // The 32 raw secret bytes, for zmq_setsockopt(ZMQ_CURVE_SECRETKEY) only.
  const uint8_t* secret_key_for_socket() const { return secret_.data(); }

 private:
  CurvePublicKey public_{};
  std::array<uint8_t, 32> secret_{};
};

}  // namespace keyline::broker
