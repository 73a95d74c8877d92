// Request/response over CurveZMQ, for what is not store-and-forward: keylinectl -> KMS
// administration (later the EOL tester -> injector and injector -> ECU simulator).
//
// An RpcServer (ROUTER, CURVE server, binds) admits only Curve keys registered in a
// PeerRegistry, through the same ZAP handler as the links, and hands each request to one
// handler with the caller's authenticated identity. An RpcClient (DEALER, CURVE client)
// sends one request at a time and waits for its reply.
//
// Wire grammar (each line one ZeroMQ frame; the ROUTER's routing-id frame comes first on the
// server side and is not shown):
//
//   request = call-id body            ; call-id: 8 bytes, big-endian, chosen by the client
//   reply   = call-id code payload    ; code: 1 byte, keyline::StatusCode (0 = OK)
//                                     ; payload: the reply body (OK) or the error message
//
// A reply whose call-id is not the one awaited (the answer to a call that timed out) is
// dropped by the client. Requests are handled one after another, in arrival order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "keyline/broker/curve_keys.h"
#include "keyline/broker/peer_registry.h"
#include "keyline/common/status.h"

namespace keyline::broker {

// Answers one request. `peer` is the caller's identity from the PeerRegistry (ZAP User-Id);
// `request` is valid during the call only. A non-OK status goes back to the caller as its
// code and message (the message must not hold secrets: it is sent as is).
using RpcHandler =
    std::function<StatusOr<std::vector<uint8_t>>(const std::string& peer,
                                                 std::span<const uint8_t> request)>;

struct RpcCounters {
  uint64_t requests = 0;        // requests handed to the handler
  uint64_t handler_errors = 0;  // of which the handler answered with an error
  uint64_t refused = 0;         // malformed or oversize requests, answered without the handler
};

class RpcServer {
 public:
  struct Options {
    // Where to bind, e.g. "tcp://0.0.0.0:7200"; port 0 picks a free port (see endpoint()).
    std::string bind_endpoint;
    // The server's own key pair.
    CurveKeyPair keys;
    // Admitted client keys; must outlive the server. Required.
    PeerRegistry* peers = nullptr;
    // Largest request body accepted; a bigger one is answered RESOURCE_EXHAUSTED without
    // reaching the handler. Default 1 MiB.
    size_t max_frame_bytes = 1u << 20;
  };

  // Starts the ZAP handler, binds, and serves on its own thread until destroyed.
  static StatusOr<std::unique_ptr<RpcServer>> Start(RpcHandler handler, Options options);
  virtual ~RpcServer() = default;

  // The bound endpoint with the real port ("tcp://127.0.0.1:41234").
  virtual std::string endpoint() const = 0;
  virtual RpcCounters counters() const = 0;
};

class RpcClient {
 public:
  struct Options {
    // The server to dial, e.g. "tcp://kms.example:7200".
    std::string server_endpoint;
    // The server's public key: the handshake fails against anyone else.
    CurvePublicKey server_key{};
    // This client's key pair (registered at the server).
    CurveKeyPair keys;
  };

  // Connects lazily: nothing is sent until the first Call.
  static StatusOr<std::unique_ptr<RpcClient>> Connect(Options options);
  virtual ~RpcClient() = default;

  // Sends `request` and waits up to `timeout_ms` for the reply body. The server's error comes
  // back as its Status; no answer in time is DEADLINE_EXCEEDED (an unregistered key or a server
  // that is down look the same from here: the message says so). Not thread-safe: one call at a
  // time per client.
  virtual StatusOr<std::vector<uint8_t>> Call(std::span<const uint8_t> request,
                                              int timeout_ms) = 0;
};

}  // namespace keyline::broker
