// Storage keys of the broker column family. Internal to the broker.
//
//   'q' peer 0x00 stream 0x00 seq(8, big-endian)  -> Envelope bytes   (outbox message)
//   'a' peer 0x00 stream                          -> seq(8)           (outbox: acked through)
//   'i' peer 0x00 stream                          -> seq(8)           (inbox: applied through)
//   'd' peer 0x00 stream 0x00 seq(8)              -> reason 0x00 envelope (refused for good)
//   'l' peer                                       -> LinkState (link.fbs): last contact, last error
//
// Big-endian sequences make RocksDB's byte order the queue order. Names never contain 0x00
// (ValidateName), so a prefix cannot run into a neighbouring queue.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "keyline/broker/queue_id.h"

namespace keyline::broker::keys {

inline constexpr char kMessage = 'q';
inline constexpr char kAcked = 'a';
inline constexpr char kApplied = 'i';
inline constexpr char kDeadLetter = 'd';
inline constexpr char kLinkState = 'l';

inline void AppendBigEndian(std::string& out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(value >> shift));
}

inline uint64_t ReadBigEndian(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8 && i < bytes.size(); ++i) {
    value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  }
  return value;
}

inline std::string QueuePrefix(char kind, const QueueId& queue) {
  std::string key;
  key.reserve(queue.peer.size() + queue.stream.size() + 12);
  key.push_back(kind);
  key += queue.peer;
  key.push_back('\0');
  key += queue.stream;
  if (kind == kMessage || kind == kDeadLetter) key.push_back('\0');
  return key;
}

inline std::string MessageKey(const QueueId& queue, uint64_t sequence, char kind = kMessage) {
  std::string key = QueuePrefix(kind, queue);
  AppendBigEndian(key, sequence);
  return key;
}

inline std::string LinkStateKey(std::string_view peer) {
  std::string key(1, kLinkState);
  key += peer;
  return key;
}

inline std::string EncodeSequence(uint64_t sequence) {
  std::string value;
  AppendBigEndian(value, sequence);
  return value;
}

// Splits a key made by QueuePrefix/MessageKey back into its queue (and sequence).
struct ParsedKey {
  char kind;
  QueueId queue;
  uint64_t sequence = 0;  // message keys only
};
std::optional<ParsedKey> Parse(std::string_view key);

}  // namespace keyline::broker::keys
