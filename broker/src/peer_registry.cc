#include "keyline/broker/peer_registry.h"

namespace keyline::broker {

Status PeerRegistry::Add(const CurvePublicKey& key, const std::string& identity) {
  std::lock_guard lock(mu_);
  auto it = identities_.find(key);
  if (it != identities_.end() && it->second != identity) {
    return AlreadyExistsError("Curve key " + CurvePublicKeyToZ85(key) +
                              " is already registered to '" + it->second + "'");
  }
  identities_[key] = identity;
  return Status::Ok();
}

bool PeerRegistry::Revoke(const CurvePublicKey& key) {
  std::lock_guard lock(mu_);
  return identities_.erase(key) > 0;
}

void PeerRegistry::RevokeIdentity(const std::string& identity) {
  std::lock_guard lock(mu_);
  std::erase_if(identities_, [&](const auto& entry) { return entry.second == identity; });
}

std::optional<std::string> PeerRegistry::IdentityOf(const CurvePublicKey& key) const {
  std::lock_guard lock(mu_);
  auto it = identities_.find(key);
  if (it == identities_.end()) return std::nullopt;
  return it->second;
}

bool PeerRegistry::IsRegistered(const std::string& identity) const {
  std::lock_guard lock(mu_);
  for (const auto& [key, name] : identities_) {
    if (name == identity) return true;
  }
  return false;
}

}  // namespace keyline::broker
