// Which Curve public keys may connect, and who each one is.
//
// The ZAP handler asks this registry about every CURVE handshake; a key maps to exactly one
// identity ("plant-a", "station-a1", "admin"). Keys can be added and revoked while links run:
// a revoked key's next handshake is refused (an established connection is closed by the link).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "keyline/broker/curve_keys.h"
#include "keyline/common/status.h"

namespace keyline::broker {

class PeerRegistry {
 public:
  // Registers `key` as `identity`. A key already registered to another identity is refused:
  // one key, one identity. Re-adding the same pair is a no-op.
  [[nodiscard]] Status Add(const CurvePublicKey& key, const std::string& identity);
  // Revokes the key; returns false when it was not registered.
  bool Revoke(const CurvePublicKey& key);
  // Revokes every key of `identity`.
  void RevokeIdentity(const std::string& identity);

  std::optional<std::string> IdentityOf(const CurvePublicKey& key) const;
  bool IsRegistered(const std::string& identity) const;

  // Counts a refused handshake (called by the ZAP handler).
  void CountRefusal() { std::lock_guard lock(mu_); ++refusals_; }
  uint64_t refusals() const { std::lock_guard lock(mu_); return refusals_; }

 private:
  mutable std::mutex mu_;
  std::map<CurvePublicKey, std::string> identities_;
  uint64_t refusals_ = 0;
};

}  // namespace keyline::broker
