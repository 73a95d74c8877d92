// A sender or receiver process for the SIGKILL test (broker_kill_test). Each run resumes from
// its data dir: the test kills it at random points and starts it again.
//
//   broker_kill_peer sender   DIR ENDPOINT KEYS_DIR N   queue N messages (resuming), send, exit when all acked
//   broker_kill_peer receiver DIR ENDPOINT KEYS_DIR N   apply, exit once N applied and acked
//
// The receiver's handler writes one "effect" row per application with a random suffix, so a
// message applied twice would leave two rows: the test counts rows, not just positions.
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <flatbuffers/flatbuffers.h>
#include <spdlog/spdlog.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "keyline/broker/database.h"
#include "keyline/broker/link.h"
#include "keyline/broker/message_store.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/kms_pks_generated.h"

using namespace keyline;
using namespace keyline::broker;

namespace {

std::string BigEndian(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, value >>= 8) out[static_cast<size_t>(i)] = static_cast<char>(value & 0xff);
  return out;
}

LinkOptions Fast() {
  LinkOptions options;
  options.heartbeat_interval_ms = 100;
  options.heartbeat_timeout_ms = 800;
  return options;
}

int Fail(const Status& status) {
  std::cerr << "kill_peer: " << status << "\n";
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: broker_kill_peer sender|receiver DIR ENDPOINT KEYS_DIR N\n";
    return 2;
  }
  std::string role = argv[1];
  std::filesystem::path dir = argv[2];
  std::string endpoint = argv[3];
  std::filesystem::path keys = argv[4];
  uint64_t total = std::strtoull(argv[5], nullptr, 10);
  spdlog::set_level(spdlog::level::warn);
  if (sodium_init() < 0) return 3;

  auto server_keys = CurveKeyPair::Load(keys / "server.key");
  auto client_keys = CurveKeyPair::Load(keys / "client.key");
  if (!server_keys.ok()) return Fail(server_keys.status());
  if (!client_keys.ok()) return Fail(client_keys.status());

  auto database = Database::Open({.path = dir, .column_families = {"effects"}});
  if (!database.ok()) return Fail(database.status());
  auto store = MessageStore::Open(database->get(), {.self = role});
  if (!store.ok()) return Fail(store.status());

  if (role == "receiver") {
    rocksdb::ColumnFamilyHandle* effects = (*database)->Family("effects");
    auto handler = [effects](const Delivery& delivery, WriteContext& write) -> Status {
      auto request = flatbuffers::GetRoot<wire::StockRequest>(delivery.payload.data());
      if (request->count() != delivery.sequence) {
        return DataLossError("payload " + std::to_string(request->count()) + " arrived as #" +
                             std::to_string(delivery.sequence));
      }
      uint64_t nonce = 0;
      randombytes_buf(&nonce, sizeof nonce);
      write.batch().Put(effects, BigEndian(delivery.sequence) + BigEndian(nonce), "");
      return Status::Ok();
    };
    PeerRegistry peers;
    if (auto s = peers.Add(client_keys->public_key(), "sender"); !s.ok()) return Fail(s);
    auto server = LinkServer::Start(store->get(), handler,
                                    {.bind_endpoint = endpoint,
                                     .keys = *server_keys,
                                     .peers = &peers,
                                     .link = Fast()});
    if (!server.ok()) return Fail(server.status());
    while ((*store)->AppliedThrough({"sender", "numbers"}) < total) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the last acks go out
    return 0;
  }

  auto client = LinkClient::Start(store->get(),
                                  [](const Delivery&, WriteContext&) { return Status::Ok(); },
                                  {.server_endpoint = endpoint,
                                   .server_key = server_keys->public_key(),
                                   .server_name = "receiver",
                                   .keys = *client_keys,
                                   .link = Fast()});
  if (!client.ok()) return Fail(client.status());
  const QueueId queue{"receiver", "numbers"};
  // Queue the rest in batches of 100 per durable write; the count carried is the sequence.
  while ((*store)->LastSequence(queue) < total) {
    Status s = (*store)->Commit([&](WriteContext& write) -> Status {
      uint64_t next = (*store)->LastSequence(queue) + 1;
      for (uint64_t i = next; i < next + 100 && i <= total; ++i) {
        flatbuffers::FlatBufferBuilder builder;
        builder.Finish(wire::CreateStockRequest(builder, builder.CreateString("kill"),
                                                builder.CreateString("numbers"),
                                                static_cast<uint32_t>(i)));
        std::span<const uint8_t> payload(builder.GetBufferPointer(), builder.GetSize());
        ASSIGN_OR_RETURN(uint64_t sequence, write.Send(queue, wire::MessageType::StockRequest, payload));
        if (sequence != i) return InternalError("sequence " + std::to_string(sequence) + " for payload " + std::to_string(i));
      }
      return Status::Ok();
    });
    if (!s.ok()) return Fail(s);
  }
  while ((*store)->AckedThrough(queue) < total) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return 0;
}
