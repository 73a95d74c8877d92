// Names of queues: one queue per (peer, stream) in each direction.
#pragma once

#include <compare>
#include <string>
#include <string_view>

#include "keyline/common/status.h"

namespace keyline::broker {

// A peer name ("plant-a", "station-a1", "kms") or a stream name ("records", "stock").
// 1..64 characters of [A-Za-z0-9._-]: they are part of storage keys and appear in tools.
[[nodiscard]] Status ValidateName(std::string_view what, std::string_view name);

struct QueueId {
  std::string peer;    // the other end of the link
  std::string stream;  // ordered sequence of messages within the link

  // "plant-a/records", the form keyline-queue prints and accepts.
  std::string ToString() const { return peer + "/" + stream; }
  // Parses "peer/stream".
  static StatusOr<QueueId> Parse(std::string_view text);

  friend auto operator<=>(const QueueId&, const QueueId&) = default;
};

}  // namespace keyline::broker
