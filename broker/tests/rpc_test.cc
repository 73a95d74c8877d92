// RpcServer / RpcClient over real CurveZMQ sockets on loopback: the three ZAP cases (registered
// key, unregistered key, no CURVE at all), oversize requests, time-outs and handler errors.
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include <boost/test/unit_test.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "keyline/broker/rpc.h"

namespace keyline::broker {
namespace {

using namespace std::chrono_literals;

std::vector<uint8_t> Bytes(std::string_view text) { return {text.begin(), text.end()}; }
std::string Text(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }

// A server that echoes "<peer>:<request>", fails on "fail", and sleeps on "slow".
struct Fixture {
  Fixture() {
    server_keys = *CurveKeyPair::Generate();
    admin_keys = *CurveKeyPair::Generate();
    BOOST_REQUIRE(peers.Add(admin_keys.public_key(), "admin").ok());
    RpcServer::Options options;
    options.bind_endpoint = "tcp://127.0.0.1:0";
    options.keys = server_keys;
    options.peers = &peers;
    options.max_frame_bytes = 4096;
    auto started = RpcServer::Start(
        [](const std::string& peer,
           std::span<const uint8_t> request) -> StatusOr<std::vector<uint8_t>> {
          std::string text(request.begin(), request.end());
          if (text == "fail") return NotFoundError("product ecu-x is unknown");
          if (text == "slow") std::this_thread::sleep_for(700ms);
          return Bytes(peer + ":" + text);
        },
        options);
    BOOST_REQUIRE_MESSAGE(started.ok(), started.status().ToString());
    server = std::move(started).value();
  }

  std::unique_ptr<RpcClient> Client(const CurveKeyPair& keys) {
    auto client = RpcClient::Connect({server->endpoint(), server_keys.public_key(), keys});
    BOOST_REQUIRE_MESSAGE(client.ok(), client.status().ToString());
    return std::move(client).value();
  }

  PeerRegistry peers;
  CurveKeyPair server_keys;
  CurveKeyPair admin_keys;
  std::unique_ptr<RpcServer> server;
};

BOOST_AUTO_TEST_SUITE(RpcTests)

BOOST_AUTO_TEST_CASE(RegisteredKeyGetsAnswerWithItsIdentity) {
  Fixture f;
  auto client = f.Client(f.admin_keys);
  auto reply = client->Call(Bytes("status"), 5000);
  BOOST_REQUIRE_MESSAGE(reply.ok(), reply.status().ToString());
  BOOST_TEST(Text(*reply) == "admin:status");
  // A second call on the same connection works too.
  auto again = client->Call(Bytes("again"), 5000);
  BOOST_REQUIRE(again.ok());
  BOOST_TEST(Text(*again) == "admin:again");
  BOOST_TEST(f.server->counters().requests == 2u);
}

BOOST_AUTO_TEST_CASE(UnregisteredKeyIsRefusedWithClearError) {
  Fixture f;
  auto stranger = *CurveKeyPair::Generate();
  auto client = f.Client(stranger);
  auto reply = client->Call(Bytes("status"), 3000);
  BOOST_REQUIRE(!reply.ok());
  BOOST_TEST(reply.status().code() == StatusCode::kUnauthenticated);
  BOOST_TEST(reply.status().message().find("refused this client's Curve key") != std::string::npos,
             reply.status().message());
  BOOST_TEST(f.server->counters().requests == 0u);
  BOOST_TEST(f.peers.refusals() >= 1u);
}

BOOST_AUTO_TEST_CASE(PlainClientWithoutCurveGetsNothing) {
  Fixture f;
  zmq::context_t context;
  zmq::socket_t plain(context, zmq::socket_type::dealer);
  plain.set(zmq::sockopt::linger, 0);
  plain.connect(f.server->endpoint());
  uint8_t call_id[8] = {0, 0, 0, 0, 0, 0, 0, 1};
  std::vector<zmq::const_buffer> frames = {zmq::buffer(call_id, 8), zmq::str_buffer("status")};
  zmq::send_multipart(plain, frames, zmq::send_flags::dontwait);
  zmq::pollitem_t items[] = {{plain.handle(), 0, ZMQ_POLLIN, 0}};
  zmq::poll(items, 1, 800ms);
  BOOST_TEST(!(items[0].revents & ZMQ_POLLIN));
  BOOST_TEST(f.server->counters().requests == 0u);
}

BOOST_AUTO_TEST_CASE(OversizeRequestIsRefusedWithoutReachingHandler) {
  Fixture f;
  auto client = f.Client(f.admin_keys);
  std::vector<uint8_t> big(5000, 'x');
  auto reply = client->Call(big, 5000);
  BOOST_REQUIRE(!reply.ok());
  BOOST_TEST(reply.status().code() == StatusCode::kResourceExhausted);
  BOOST_TEST(reply.status().message().find("5000 bytes exceeds the 4096-byte limit") !=
                 std::string::npos,
             reply.status().message());
  BOOST_TEST(f.server->counters().requests == 0u);
  BOOST_TEST(f.server->counters().refused == 1u);
  // The connection still serves the next, well-sized request.
  auto next = client->Call(Bytes("ok"), 5000);
  BOOST_REQUIRE_MESSAGE(next.ok(), next.status().ToString());
  BOOST_TEST(Text(*next) == "admin:ok");
}

BOOST_AUTO_TEST_CASE(SlowAnswerIsDeadlineExceededAndLateReplyIsDropped) {
  Fixture f;
  auto client = f.Client(f.admin_keys);
  auto reply = client->Call(Bytes("slow"), 200);
  BOOST_REQUIRE(!reply.ok());
  BOOST_TEST(reply.status().code() == StatusCode::kDeadlineExceeded);
  BOOST_TEST(reply.status().message().find("no reply within 200 ms") != std::string::npos,
             reply.status().message());
  // The late reply to "slow" arrives during the next call and must not be taken for its answer.
  auto next = client->Call(Bytes("next"), 5000);
  BOOST_REQUIRE_MESSAGE(next.ok(), next.status().ToString());
  BOOST_TEST(Text(*next) == "admin:next");
}

BOOST_AUTO_TEST_CASE(ServerDownIsDeadlineExceeded) {
  auto server_keys = *CurveKeyPair::Generate();
  auto keys = *CurveKeyPair::Generate();
  // Bind-and-close to learn a port nobody listens on.
  std::string endpoint;
  {
    zmq::context_t context;
    zmq::socket_t probe(context, zmq::socket_type::router);
    probe.bind("tcp://127.0.0.1:0");
    endpoint = probe.get(zmq::sockopt::last_endpoint);
  }
  auto client = RpcClient::Connect({endpoint, server_keys.public_key(), keys});
  BOOST_REQUIRE(client.ok());
  auto reply = (*client)->Call(Bytes("status"), 300);
  BOOST_REQUIRE(!reply.ok());
  BOOST_TEST(reply.status().code() == StatusCode::kDeadlineExceeded);
}

BOOST_AUTO_TEST_CASE(HandlerErrorComesBackAsItsStatus) {
  Fixture f;
  auto client = f.Client(f.admin_keys);
  auto reply = client->Call(Bytes("fail"), 5000);
  BOOST_REQUIRE(!reply.ok());
  BOOST_TEST(reply.status().code() == StatusCode::kNotFound);
  BOOST_TEST(reply.status().message() == "product ecu-x is unknown");
  BOOST_TEST(f.server->counters().handler_errors == 1u);
}

BOOST_AUTO_TEST_CASE(WrongServerKeyFailsHandshake) {
  Fixture f;
  auto impostor_key = *CurveKeyPair::Generate();
  auto client = RpcClient::Connect({f.server->endpoint(), impostor_key.public_key(), f.admin_keys});
  BOOST_REQUIRE(client.ok());
  auto reply = (*client)->Call(Bytes("status"), 1000);
  BOOST_REQUIRE(!reply.ok());
  BOOST_TEST(f.server->counters().requests == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::broker
