// The ZAP handler of a LinkServer's ZeroMQ context (RFC 27): admits CURVE clients whose
// public key is in the PeerRegistry, sets the message User-Id to the key's identity, and
// attaches the key itself (property "X-Curve-Key", Z85) so the link can notice a revocation
// on an established connection. Internal to the broker.
#pragma once

#include <atomic>
#include <thread>

#include <zmq.hpp>

#include "keyline/broker/curve_keys.h"
#include "keyline/broker/peer_registry.h"
#include "keyline/common/status.h"

namespace keyline::broker {

inline constexpr char kZapDomain[] = "keyline";
inline constexpr char kCurveKeyProperty[] = "X-Curve-Key";

// Makes `socket` a CURVE server with `keys` whose every handshake goes through the ZAP
// handler: ZAP fails open unless the domain is set and enforced, so every server socket is set
// up here, in one place. Throws zmq::error_t like the cppzmq calls it makes; returns an error
// when this libzmq cannot enforce the domain (the socket must then not be bound).
[[nodiscard]] Status MakeAuthenticatedCurveServer(zmq::socket_t& socket, const CurveKeyPair& keys);

class ZapHandler {
 public:
  // Binds inproc://zeromq.zap.01 in `context`. Must happen before any socket of the context
  // binds, or unauthenticated clients could slip in before the handler exists.
  static StatusOr<std::unique_ptr<ZapHandler>> Start(zmq::context_t& context, PeerRegistry* peers);
  ~ZapHandler();

 private:
  ZapHandler(zmq::socket_t socket, PeerRegistry* peers);
  void Run();
  zmq::socket_t socket_;
  PeerRegistry* peers_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace keyline::broker
