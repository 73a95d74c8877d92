// Links: moving a MessageStore's outbound queues to peers and applying what peers send,
// over CurveZMQ, by the protocol in docs/link-protocol.md.
//
// A LinkServer (ROUTER, binds) serves many authenticated clients; a LinkClient (DEALER,
// connects) talks to one server. Both send every committed outbox message to its peer in
// order, within a bounded window, until acknowledged, and resume after any reconnect; both
// apply received messages through a DeliveryHandler inside the store's group write, record
// the applied position in the same write, and acknowledge only once that write is durable.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "keyline/broker/curve_keys.h"
#include "keyline/broker/message_store.h"
#include "keyline/broker/peer_registry.h"
#include "keyline/common/status.h"

namespace keyline::broker {

// A received message, verified: envelope and payload passed the FlatBuffers Verifier, the
// sender is the authenticated peer, and the sequence is the next one of its stream.
struct Delivery {
  std::string peer;    // authenticated identity of the sender
  std::string stream;
  uint64_t sequence = 0;
  wire::MessageType type{};
  std::span<const uint8_t> payload;  // verified as `type`; valid during the handler call only
  int64_t created_at_us = 0;
};

// Applies one delivery inside the group write (state changes, replies via write.Send).
//  - OK: applied; the link records the position and acknowledges once durable.
//  - UNAVAILABLE or RESOURCE_EXHAUSTED: not now; nothing is recorded, the peer resends later.
//  - any other error: refused for good; recorded as a dead letter (keyline-queue shows it),
//    counted, and acknowledged so that one bad message cannot stop the stream.
using DeliveryHandler = std::function<Status(const Delivery&, WriteContext&)>;

struct LinkOptions {
  // Unacknowledged messages in flight per stream. Default 4096: enough to keep a link busy
  // through the receiver's fsync (keyline-bench queue --window shows the effect).
  size_t window = 4096;
  // Largest frame accepted; bigger ones are refused and counted. Default 1 MiB.
  size_t max_frame_bytes = 1u << 20;
  // Largest DataBatch frame (several messages in one frame) this side sends or accepts. Each
  // side announces what it accepts in its Hello and a sender never exceeds the smaller of the
  // two; a peer that announces nothing (an older release) gets one Data frame per message.
  // 0: no batches on this link. Capped at max_frame_bytes. Default 64 KiB: big enough that
  // per-frame costs vanish, small enough to stay below malloc's mmap threshold.
  size_t max_batch_bytes = 64u << 10;
  // Send a heartbeat after this long without sending. Default 1000 ms.
  int heartbeat_interval_ms = 1000;
  // Declare the peer dead after this long without hearing from it. Default 5000 ms.
  int heartbeat_timeout_ms = 5000;
};

// Counters for status pages, tests and benchmarks.
struct LinkCounters {
  uint64_t frames_received = 0;
  uint64_t frames_sent = 0;
  uint64_t messages_sent = 0;
  uint64_t messages_applied = 0;
  uint64_t duplicates_skipped = 0;  // replayed sequences recognised and not applied again
  uint64_t gaps = 0;                // sequences ahead of the next expected one (resync asked)
  uint64_t dead_letters = 0;
  uint64_t peers_lost = 0;          // heartbeat time-outs
  uint64_t reconnects = 0;          // client only
  uint64_t contacts = 0;            // client only: connections opened (scheduled contact)
  // Refused frames by reason ("malformed", "too_large", "wrong_sender", "revoked_key", ...).
  std::map<std::string, uint64_t> refused;
  uint64_t refused_total() const {
    uint64_t total = 0;
    for (const auto& [reason, count] : refused) total += count;
    return total;
  }
};

class LinkServer {
 public:
  struct Options {
    // Where to bind, e.g. "tcp://0.0.0.0:7100"; port 0 picks a free port (see endpoint()).
    std::string bind_endpoint;
    // The server's own key pair.
    CurveKeyPair keys;
    // Admitted client keys; must outlive the server. Changes apply to new handshakes at once
    // and to established connections at their next frame.
    PeerRegistry* peers = nullptr;
    LinkOptions link;
  };

  // Binds and starts serving. `store` must outlive the server.
  static StatusOr<std::unique_ptr<LinkServer>> Start(MessageStore* store, DeliveryHandler handler,
                                                     Options options);
  virtual ~LinkServer() = default;

  // The bound endpoint with the real port ("tcp://127.0.0.1:41234").
  virtual std::string endpoint() const = 0;
  virtual LinkCounters counters() const = 0;
  // Identities with a live session (heard from within the heartbeat time-out).
  virtual std::vector<std::string> connected_peers() const = 0;
};

class LinkClient {
 public:
  struct Options {
    // The server to dial, e.g. "tcp://kms.example:7100".
    std::string server_endpoint;
    // The server's public key: the handshake fails against anyone else.
    CurvePublicKey server_key{};
    // The server's identity, as this side names it in its queues ("kms").
    std::string server_name;
    // This client's key pair (registered at the server).
    CurveKeyPair keys;
    LinkOptions link;
    // 0 (default): stay connected. N > 0: scheduled contact — connect every N seconds (and
    // whenever ContactNow() asks), exchange both ways until both sides have nothing left for
    // each other, then disconnect: a plant that talks to the centre only from time to time.
    int contact_interval_s = 0;
  };

  static StatusOr<std::unique_ptr<LinkClient>> Start(MessageStore* store, DeliveryHandler handler,
                                                     Options options);
  virtual ~LinkClient() = default;

  // True once the server answered our Hello and has not gone silent since (nor, with
  // scheduled contact, been disconnected after draining).
  virtual bool connected() const = 0;
  // Scheduled contact: open a contact now instead of waiting for the interval (for example,
  // stock fell below its minimum). Continuous links ignore it. Thread-safe.
  virtual void ContactNow() = 0;
  virtual LinkCounters counters() const = 0;
};

}  // namespace keyline::broker
