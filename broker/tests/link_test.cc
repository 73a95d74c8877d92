// Links over real CurveZMQ sockets on loopback, with real RocksDB stores on both ends.
#include <chrono>
#include <mutex>
#include <thread>

#include <boost/test/unit_test.hpp>
#include <flatbuffers/flatbuffers.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "keyline/broker/database.h"
#include "keyline/broker/link.h"
#include "keyline/broker/message_store.h"
#include "keyline/broker/queue_inspector.h"
#include "keyline/wire/envelope_generated.h"
#include "keyline/wire/kms_pks_generated.h"
#include "keyline/wire/link_generated.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::broker {
namespace {

using namespace std::chrono_literals;
using TestDir = keyline::testing::TempDir;

// A StockRequest count that the test handler refuses for good (an application-level error).
constexpr uint32_t kRefusedCount = 999999;

LinkOptions FastLink() {
  LinkOptions options;
  options.heartbeat_interval_ms = 100;
  options.heartbeat_timeout_ms = 600;
  return options;
}

std::vector<uint8_t> StockRequest(uint32_t count) {
  flatbuffers::FlatBufferBuilder builder;
  builder.Finish(wire::CreateStockRequest(builder, builder.CreateString("r"),
                                          builder.CreateString("ecu-a"), count));
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

// One service: its data dir, store, and what its handler applied (in order).
struct Node {
  Node(std::filesystem::path data_dir, std::string service) : dir(std::move(data_dir)), name(std::move(service)) {
    Open();
  }
  ~Node() { Close(); }

  void Open() {
    auto opened = Database::Open({.path = dir / "db"});
    BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
    database = std::move(opened).value();
    auto made = MessageStore::Open(database.get(), {.self = name});
    BOOST_REQUIRE_MESSAGE(made.ok(), made.status().ToString());
    store = std::move(made).value();
  }
  void Close() {
    server.reset();
    client.reset();
    store.reset();
    database.reset();
  }

  DeliveryHandler Handler() {
    return [this](const Delivery& delivery, WriteContext&) -> Status {
      auto request = flatbuffers::GetRoot<wire::StockRequest>(delivery.payload.data());
      if (request->count() == kRefusedCount) return InvalidArgumentError("product ecu-x is unknown");
      std::lock_guard lock(mu);
      applied.push_back(request->count());
      return Status::Ok();
    };
  }

  void Send(const QueueId& to, uint32_t first, uint32_t count) {
    BOOST_REQUIRE(store->Commit([&](WriteContext& write) -> Status {
      for (uint32_t i = 0; i < count; ++i) {
        RETURN_IF_ERROR(write.Send(to, wire::MessageType::StockRequest, StockRequest(first + i)));
      }
      return Status::Ok();
    }).ok());
  }

  std::vector<uint32_t> Applied() {
    std::lock_guard lock(mu);
    return applied;
  }

  std::filesystem::path dir;
  std::string name;
  std::unique_ptr<Database> database;
  std::unique_ptr<MessageStore> store;
  std::unique_ptr<LinkServer> server;
  std::unique_ptr<LinkClient> client;
  std::mutex mu;
  std::vector<uint32_t> applied;
};

template <typename F>
bool WaitFor(F condition, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

std::vector<uint32_t> Range(uint32_t first, uint32_t count) {
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < count; ++i) out.push_back(first + i);
  return out;
}

// A KMS-like server and a plant-like client with registered keys.
struct Pair {
  explicit Pair(LinkOptions server_options = FastLink(), LinkOptions client_options = FastLink())
      : kms(dir.path() / "kms", "kms"),
        plant(dir.path() / "plant", "plant-a"),
        server_link(server_options),
        client_link(client_options) {
    server_keys = *CurveKeyPair::Generate();
    plant_keys = *CurveKeyPair::Generate();
    BOOST_REQUIRE(peers.Add(plant_keys.public_key(), "plant-a").ok());
    StartServer("tcp://127.0.0.1:0");
    StartClient();
  }
  // The links use `peers`: stop them before the registry goes.
  ~Pair() {
    plant.Close();
    kms.Close();
  }
  void StartServer(const std::string& bind_endpoint) {
    auto server = LinkServer::Start(kms.store.get(), kms.Handler(),
                                    {.bind_endpoint = bind_endpoint,
                                     .keys = server_keys,
                                     .peers = &peers,
                                     .link = server_link});
    BOOST_REQUIRE_MESSAGE(server.ok(), server.status().ToString());
    kms.server = std::move(server).value();
    this->endpoint = kms.server->endpoint();
  }
  void StartClient() {
    auto client = LinkClient::Start(plant.store.get(), plant.Handler(),
                                    {.server_endpoint = endpoint,
                                     .server_key = server_keys.public_key(),
                                     .server_name = "kms",
                                     .keys = plant_keys,
                                     .link = client_link});
    BOOST_REQUIRE_MESSAGE(client.ok(), client.status().ToString());
    plant.client = std::move(client).value();
  }

  TestDir dir;
  Node kms;
  Node plant;
  LinkOptions server_link;
  LinkOptions client_link;
  PeerRegistry peers;
  CurveKeyPair server_keys;
  CurveKeyPair plant_keys;
  std::string endpoint;
};

BOOST_AUTO_TEST_SUITE(LinkTests)

BOOST_AUTO_TEST_CASE(RegisteredClientExchangesMessagesBothWaysInOrder) {
  Pair pair;
  pair.plant.Send({"kms", "stock"}, 1, 500);
  pair.kms.Send({"plant-a", "config"}, 1000, 200);
  BOOST_TEST(WaitFor([&] { return pair.kms.Applied().size() == 500u; }));
  BOOST_TEST(WaitFor([&] { return pair.plant.Applied().size() == 200u; }));
  BOOST_TEST(pair.kms.Applied() == Range(1, 500), boost::test_tools::per_element());
  BOOST_TEST(pair.plant.Applied() == Range(1000, 200), boost::test_tools::per_element());
  // Acknowledged messages leave the outboxes.
  BOOST_TEST(WaitFor([&] { return pair.plant.store->AckedThrough({"kms", "stock"}) == 500u; }));
  BOOST_TEST(WaitFor([&] { return pair.kms.store->AckedThrough({"plant-a", "config"}) == 200u; }));
  BOOST_TEST(pair.kms.store->AppliedThrough({"plant-a", "stock"}) == 500u);
  BOOST_TEST(pair.plant.client->connected());
  BOOST_TEST(pair.kms.server->connected_peers() == std::vector<std::string>{"plant-a"});
  BOOST_TEST(pair.kms.server->counters().refused_total() == 0u);
}

BOOST_AUTO_TEST_CASE(ClientWithUnregisteredKeyIsRefusedAndOthersKeepWorking) {
  Pair pair;
  Node intruder(pair.dir.path() / "intruder", "plant-a");  // claims to be plant-a
  auto intruder_keys = *CurveKeyPair::Generate();
  auto client = LinkClient::Start(intruder.store.get(), intruder.Handler(),
                                  {.server_endpoint = pair.endpoint,
                                   .server_key = pair.server_keys.public_key(),
                                   .server_name = "kms",
                                   .keys = intruder_keys,
                                   .link = FastLink()});
  BOOST_REQUIRE(client.ok());
  intruder.Send({"kms", "stock"}, 9000, 5);
  pair.plant.Send({"kms", "stock"}, 1, 10);
  BOOST_TEST(WaitFor([&] { return pair.kms.Applied().size() == 10u; }));
  BOOST_TEST(WaitFor([&] { return pair.peers.refusals() > 0u; }));
  std::this_thread::sleep_for(300ms);
  BOOST_TEST(pair.kms.Applied() == Range(1, 10), boost::test_tools::per_element());
  BOOST_TEST(!(*client)->connected());
}

BOOST_AUTO_TEST_CASE(ClientWithoutCurveGetsNothingThrough) {
  Pair pair;
  zmq::context_t context;
  zmq::socket_t plain(context, zmq::socket_type::dealer);
  plain.set(zmq::sockopt::linger, 0);
  plain.connect(pair.endpoint);
  // A well-formed Data frame claiming to come from plant-a, sent without any encryption.
  flatbuffers::FlatBufferBuilder inner;
  auto payload = StockRequest(42);
  std::array<uint8_t, 16> id{};
  inner.Finish(wire::CreateEnvelope(inner, inner.CreateVector(id.data(), id.size()),
                                    inner.CreateString("stock"), 1, wire::MessageType::StockRequest,
                                    inner.CreateString("plant-a"), 1, inner.CreateVector(payload)));
  flatbuffers::FlatBufferBuilder builder;
  auto data = wire::CreateData(builder, builder.CreateVector(inner.GetBufferPointer(), inner.GetSize()));
  builder.Finish(wire::CreateLinkFrame(builder, wire::LinkBody::Data, data.Union()));
  (void)plain.send(zmq::const_buffer(builder.GetBufferPointer(), builder.GetSize()),
                   zmq::send_flags::dontwait);
  std::this_thread::sleep_for(400ms);
  BOOST_TEST(pair.kms.Applied().empty());
  BOOST_TEST(pair.kms.store->AppliedThrough({"plant-a", "stock"}) == 0u);
  BOOST_TEST(pair.kms.server->connected_peers() == std::vector<std::string>{"plant-a"});
  zmq::message_t reply;
  BOOST_TEST(!plain.recv(reply, zmq::recv_flags::dontwait).has_value());
}

BOOST_AUTO_TEST_CASE(RevokedKeyIsCutOffOnItsNextFrame) {
  Pair pair;
  pair.plant.Send({"kms", "stock"}, 1, 3);
  BOOST_TEST(WaitFor([&] { return pair.kms.Applied().size() == 3u; }));
  BOOST_TEST(pair.peers.Revoke(pair.plant_keys.public_key()));
  pair.plant.Send({"kms", "stock"}, 4, 3);
  BOOST_TEST(WaitFor([&] { return pair.kms.server->counters().refused.count("revoked_key") > 0; }));
  std::this_thread::sleep_for(300ms);
  BOOST_TEST(pair.kms.Applied().size() == 3u);
  // Registered again, the backlog drains by itself.
  BOOST_REQUIRE(pair.peers.Add(pair.plant_keys.public_key(), "plant-a").ok());
  BOOST_TEST(WaitFor([&] { return pair.kms.Applied().size() == 6u; }));
  BOOST_TEST(pair.kms.Applied() == Range(1, 6), boost::test_tools::per_element());
}

// A peer with a registered key that speaks the protocol badly: every bad frame is refused
// and counted, nothing is applied twice or out of order, and the server keeps serving.
BOOST_AUTO_TEST_CASE(BadFramesFromAnAuthenticatedPeerAreRefusedAndCounted) {
  Pair pair;
  auto rogue_keys = *CurveKeyPair::Generate();
  BOOST_REQUIRE(pair.peers.Add(rogue_keys.public_key(), "station-x").ok());
  zmq::context_t context;
  zmq::socket_t rogue(context, zmq::socket_type::dealer);
  rogue.set(zmq::sockopt::linger, 0);
  rogue.set(zmq::sockopt::curve_serverkey, zmq::const_buffer(pair.server_keys.public_key().data(), 32));
  rogue.set(zmq::sockopt::curve_publickey, zmq::const_buffer(rogue_keys.public_key().data(), 32));
  rogue.set(zmq::sockopt::curve_secretkey, zmq::const_buffer(rogue_keys.secret_key_for_socket(), 32));
  rogue.connect(pair.endpoint);

  auto send = [&](const void* data, size_t size) {
    BOOST_REQUIRE(rogue.send(zmq::const_buffer(data, size), zmq::send_flags::none).has_value());
  };
  auto data_frame = [&](const std::string& sender, uint64_t sequence, uint32_t count) {
    flatbuffers::FlatBufferBuilder inner;
    auto payload = StockRequest(count);
    std::array<uint8_t, 16> id{};
    id[0] = static_cast<uint8_t>(sequence);
    inner.Finish(wire::CreateEnvelope(inner, inner.CreateVector(id.data(), id.size()),
                                      inner.CreateString("stock"), sequence,
                                      wire::MessageType::StockRequest, inner.CreateString(sender),
                                      1, inner.CreateVector(payload)));
    flatbuffers::FlatBufferBuilder outer;
    auto data = wire::CreateData(outer, outer.CreateVector(inner.GetBufferPointer(), inner.GetSize()));
    outer.Finish(wire::CreateLinkFrame(outer, wire::LinkBody::Data, data.Union()));
    return std::string(reinterpret_cast<const char*>(outer.GetBufferPointer()), outer.GetSize());
  };

  std::string garbage = "this is not a flatbuffer at all";
  send(garbage.data(), garbage.size());
  std::string oversize(FastLink().max_frame_bytes + 100, 'x');
  send(oversize.data(), oversize.size());
  std::string wrong_sender = data_frame("plant-a", 1, 77);  // station-x pretending
  send(wrong_sender.data(), wrong_sender.size());
  std::string first = data_frame("station-x", 1, 1);
  send(first.data(), first.size());
  std::string replay = data_frame("station-x", 1, 1);
  send(replay.data(), replay.size());
  std::string gap = data_frame("station-x", 5, 5);
  send(gap.data(), gap.size());
  std::string refused = data_frame("station-x", 2, kRefusedCount);  // the handler refuses it for good
  send(refused.data(), refused.size());
  std::string after = data_frame("station-x", 3, 3);
  send(after.data(), after.size());

  BOOST_TEST(WaitFor([&] { return pair.kms.Applied().size() == 2u; }));
  BOOST_TEST(WaitFor([&] { return pair.kms.server->counters().dead_letters == 1u; }));
  auto counters = pair.kms.server->counters();
  BOOST_TEST(counters.refused["malformed"] == 1u);
  BOOST_TEST(counters.refused["too_large"] == 1u);
  BOOST_TEST(counters.refused["wrong_sender"] == 1u);
  BOOST_TEST(counters.duplicates_skipped == 1u);
  BOOST_TEST(counters.gaps == 1u);
  BOOST_TEST(pair.kms.Applied() == (std::vector<uint32_t>{1, 3}), boost::test_tools::per_element());
  BOOST_TEST(pair.kms.store->AppliedThrough({"station-x", "stock"}) == 3u);

  // The well-behaved plant is still served.
  pair.plant.Send({"kms", "stock"}, 100, 2);
  BOOST_TEST(WaitFor([&] { return pair.kms.Applied().size() == 4u; }));

  // keyline-queue's view of the live data dir names the peer's last contact and problem.
  InboundStreamView station;
  BOOST_TEST(WaitFor([&] {
    auto inspector = QueueInspector::Open(pair.kms.dir);
    if (!inspector.ok()) return false;
    auto inbound = (*inspector)->Inbound();
    if (!inbound.ok()) return false;
    for (const auto& view : *inbound) {
      if (view.from.peer == "station-x" && !view.link.last_error.empty()) station = view;
    }
    return station.link.last_contact_us > 0;
  }));
  BOOST_TEST(station.link.last_error.rfind("refused a frame: ", 0) == 0u, station.link.last_error);
}

// Found by tests/fuzz/fuzz_link: a frame whose body type says Hello but that carries no body.
// The Verifier accepts it; the link read the null Hello and the server process died. Now it is
// refused as invalid_field, and the peer and everyone else go on being served.
BOOST_AUTO_TEST_CASE(FrameWithABodyTypeButNoBodyIsRefused) {
  Pair pair;
  auto rogue_keys = *CurveKeyPair::Generate();
  BOOST_REQUIRE(pair.peers.Add(rogue_keys.public_key(), "station-x").ok());
  zmq::context_t context;
  zmq::socket_t rogue(context, zmq::socket_type::dealer);
  rogue.set(zmq::sockopt::linger, 0);
  rogue.set(zmq::sockopt::curve_serverkey, zmq::const_buffer(pair.server_keys.public_key().data(), 32));
  rogue.set(zmq::sockopt::curve_publickey, zmq::const_buffer(rogue_keys.public_key().data(), 32));
  rogue.set(zmq::sockopt::curve_secretkey, zmq::const_buffer(rogue_keys.secret_key_for_socket(), 32));
  rogue.connect(pair.endpoint);

  // The fuzzer's input (tests/fuzz/corpus/fuzz_link/), without its selector byte.
  const std::array<uint8_t, 16> crash = {0x08, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
                                         0x08, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01};
  BOOST_REQUIRE(rogue.send(zmq::const_buffer(crash.data(), crash.size()), zmq::send_flags::none)
                    .has_value());
  BOOST_TEST(WaitFor([&] { return pair.kms.server->counters().refused["invalid_field"] == 1u; }));

  pair.plant.Send({"kms", "stock"}, 1, 3);
  BOOST_TEST(WaitFor([&] { return pair.kms.Applied().size() == 3u; }));
  BOOST_TEST(pair.kms.Applied() == Range(1, 3), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(ServerRestartLosesNothingAndAppliesNothingTwice) {
  Pair pair;
  pair.plant.Send({"kms", "stock"}, 1, 2000);
  BOOST_TEST(WaitFor([&] { return !pair.kms.Applied().empty(); }));
  // Stop the KMS mid-stream, then start it again on the same port.
  pair.kms.Close();
  std::vector<uint32_t> before_restart = pair.kms.Applied();
  pair.plant.Send({"kms", "stock"}, 2001, 500);
  std::this_thread::sleep_for(800ms);  // longer than the heartbeat time-out
  pair.kms.Open();
  pair.StartServer(pair.endpoint);
  BOOST_TEST(WaitFor([&] { return pair.kms.store->AppliedThrough({"plant-a", "stock"}) == 2500u; }, 20s));
  std::vector<uint32_t> all = pair.kms.Applied();
  BOOST_TEST_MESSAGE("applied before the restart: " << before_restart.size());
  BOOST_TEST(all == Range(1, 2500), boost::test_tools::per_element());
  BOOST_TEST(WaitFor([&] { return pair.plant.store->AckedThrough({"kms", "stock"}) == 2500u; }));
}

BOOST_AUTO_TEST_CASE(ClientRestartResumesWhereItsPeerLeftOff) {
  Pair pair;
  pair.kms.Send({"plant-a", "config"}, 1, 300);
  BOOST_TEST(WaitFor([&] { return !pair.plant.Applied().empty(); }));
  pair.plant.Close();
  pair.kms.Send({"plant-a", "config"}, 301, 300);
  pair.plant.Open();
  pair.StartClient();
  BOOST_TEST(WaitFor([&] { return pair.plant.store->AppliedThrough({"kms", "config"}) == 600u; }, 20s));
  // Messages applied before the restart are in the plant's store, not in this new handler's list.
  std::vector<uint32_t> after = pair.plant.Applied();
  BOOST_REQUIRE(!after.empty());
  BOOST_TEST(after.back() == 600u);
  for (size_t i = 1; i < after.size(); ++i) BOOST_TEST(after[i] == after[i - 1] + 1);
}

BOOST_AUTO_TEST_CASE(ScheduledContactDrainsBothWaysThenDisconnects) {
  TestDir dir;
  Node kms(dir.path() / "kms", "kms");
  Node plant(dir.path() / "plant", "plant-b");
  auto server_keys = *CurveKeyPair::Generate();
  auto plant_keys = *CurveKeyPair::Generate();
  PeerRegistry peers;
  BOOST_REQUIRE(peers.Add(plant_keys.public_key(), "plant-b").ok());
  auto server = LinkServer::Start(kms.store.get(), kms.Handler(),
                                  {.bind_endpoint = "tcp://127.0.0.1:0",
                                   .keys = server_keys,
                                   .peers = &peers,
                                   .link = FastLink()});
  BOOST_REQUIRE(server.ok());
  plant.Send({"kms", "records"}, 1, 50);
  kms.Send({"plant-b", "stock"}, 100, 30);
  // An hour between contacts: only the first contact and ContactNow() may move anything.
  auto client = LinkClient::Start(plant.store.get(), plant.Handler(),
                                  {.server_endpoint = (*server)->endpoint(),
                                   .server_key = server_keys.public_key(),
                                   .server_name = "kms",
                                   .keys = plant_keys,
                                   .link = FastLink(),
                                   .contact_interval_s = 3600});
  BOOST_REQUIRE(client.ok());
  BOOST_TEST(WaitFor([&] { return kms.Applied().size() == 50u && plant.Applied().size() == 30u; }));
  // Drained both ways: the plant hangs up by itself.
  BOOST_TEST(WaitFor([&] { return !(*client)->connected(); }));
  BOOST_TEST((*client)->counters().contacts == 1u);
  BOOST_TEST(WaitFor([&] { return plant.store->AckedThrough({"kms", "records"}) == 50u; }));

  // New messages both ways wait for the next contact...
  plant.Send({"kms", "records"}, 51, 5);
  kms.Send({"plant-b", "stock"}, 130, 5);
  std::this_thread::sleep_for(500ms);
  BOOST_TEST(kms.Applied().size() == 50u);
  BOOST_TEST(plant.Applied().size() == 30u);
  // ...which ContactNow() opens at once.
  (*client)->ContactNow();
  BOOST_TEST(WaitFor([&] { return kms.Applied().size() == 55u && plant.Applied().size() == 35u; }));
  BOOST_TEST(WaitFor([&] { return !(*client)->connected(); }));
  BOOST_TEST((*client)->counters().contacts == 2u);
  BOOST_TEST(kms.Applied() == Range(1, 55), boost::test_tools::per_element());
  BOOST_TEST(plant.Applied() == Range(100, 35), boost::test_tools::per_element());
  client->reset();
  server->reset();
}

// A backlog goes out several messages to a frame (DataBatch), in order, each applied once.
BOOST_AUTO_TEST_CASE(BacklogTravelsInBatchesToAPeerThatAcceptsThem) {
  Pair pair;
  pair.plant.Send({"kms", "stock"}, 1, 3000);
  BOOST_TEST(WaitFor([&] { return pair.kms.Applied().size() == 3000u; }, 20s));
  BOOST_TEST(pair.kms.Applied() == Range(1, 3000), boost::test_tools::per_element());
  BOOST_TEST(pair.plant.client->counters().messages_sent == 3000u);
  // Heartbeats and Hellos aside, a few dozen frames carried the 3000 messages.
  BOOST_TEST(pair.kms.server->counters().frames_received < 1000u);
  BOOST_TEST(pair.kms.server->counters().refused_total() == 0u);
}

// A peer whose Hello announces no batches (max_batch_bytes 0, as from a release before
// DataBatch) gets one Data frame per message, in both directions.
BOOST_AUTO_TEST_CASE(PeerThatAnnouncesNoBatchesGetsOneDataFramePerMessage) {
  LinkOptions old_release = FastLink();
  old_release.max_batch_bytes = 0;
  Pair pair(/*server_link=*/old_release, /*client_link=*/FastLink());
  pair.plant.Send({"kms", "stock"}, 1, 300);
  pair.kms.Send({"plant-a", "config"}, 1000, 300);
  BOOST_TEST(WaitFor([&] { return pair.kms.Applied().size() == 300u; }, 20s));
  BOOST_TEST(WaitFor([&] { return pair.plant.Applied().size() == 300u; }, 20s));
  BOOST_TEST(pair.kms.Applied() == Range(1, 300), boost::test_tools::per_element());
  BOOST_TEST(pair.plant.Applied() == Range(1000, 300), boost::test_tools::per_element());
  BOOST_TEST(pair.kms.server->counters().frames_received >= 300u);
  BOOST_TEST(pair.plant.client->counters().frames_received >= 300u);
  BOOST_TEST(pair.kms.server->counters().refused_total() == 0u);
}

// Each item of a DataBatch is checked on its own: a bad one is refused and counted, the good
// ones before it are applied, and what follows a refused item is a gap the sender must resend.
BOOST_AUTO_TEST_CASE(BadItemsInADataBatchAreRefusedOneByOne) {
  Pair pair;
  auto rogue_keys = *CurveKeyPair::Generate();
  BOOST_REQUIRE(pair.peers.Add(rogue_keys.public_key(), "station-x").ok());
  zmq::context_t context;
  zmq::socket_t rogue(context, zmq::socket_type::dealer);
  rogue.set(zmq::sockopt::linger, 0);
  rogue.set(zmq::sockopt::curve_serverkey, zmq::const_buffer(pair.server_keys.public_key().data(), 32));
  rogue.set(zmq::sockopt::curve_publickey, zmq::const_buffer(rogue_keys.public_key().data(), 32));
  rogue.set(zmq::sockopt::curve_secretkey, zmq::const_buffer(rogue_keys.secret_key_for_socket(), 32));
  rogue.connect(pair.endpoint);

  struct Item {
    std::string sender;
    uint64_t sequence;
    uint32_t count;
  };
  auto batch_frame = [&](const std::vector<Item>& items) {
    flatbuffers::FlatBufferBuilder outer;
    std::vector<flatbuffers::Offset<wire::Data>> data;
    for (const Item& item : items) {
      flatbuffers::FlatBufferBuilder inner;
      auto payload = StockRequest(item.count);
      std::array<uint8_t, 16> id{};
      id[0] = static_cast<uint8_t>(item.sequence);
      inner.Finish(wire::CreateEnvelope(inner, inner.CreateVector(id.data(), id.size()),
                                        inner.CreateString("stock"), item.sequence,
                                        wire::MessageType::StockRequest,
                                        inner.CreateString(item.sender), 1,
                                        inner.CreateVector(payload)));
      data.push_back(wire::CreateData(outer, outer.CreateVector(inner.GetBufferPointer(), inner.GetSize())));
    }
    auto batch = wire::CreateDataBatch(outer, outer.CreateVector(data));
    outer.Finish(wire::CreateLinkFrame(outer, wire::LinkBody::DataBatch, batch.Union()));
    return std::string(reinterpret_cast<const char*>(outer.GetBufferPointer()), outer.GetSize());
  };
  auto send = [&](const std::string& frame) {
    BOOST_REQUIRE(rogue.send(zmq::buffer(frame), zmq::send_flags::none).has_value());
  };

  send(batch_frame({}));  // no items at all
  send(batch_frame({{"station-x", 1, 1}, {"plant-a", 2, 2}, {"station-x", 3, 3}}));
  send(batch_frame({{"station-x", 2, 20}, {"station-x", 3, 30}}));

  // Applied means durable, and the counters follow once the writes are.
  BOOST_TEST(WaitFor([&] { return pair.kms.store->AppliedThrough({"station-x", "stock"}) == 3u; }));
  BOOST_TEST(WaitFor([&] { return pair.kms.server->counters().messages_applied == 3u; }));
  auto counters = pair.kms.server->counters();
  BOOST_TEST(counters.refused["malformed"] == 1u);
  BOOST_TEST(counters.refused["wrong_sender"] == 1u);
  BOOST_TEST(counters.gaps == 1u);
  BOOST_TEST(pair.kms.Applied() == (std::vector<uint32_t>{1, 20, 30}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::broker
