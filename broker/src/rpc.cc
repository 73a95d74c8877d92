// RpcServer and RpcClient (rpc.h): one ROUTER thread answering one request at a time, and a
// DEALER that waits for the reply to its own call id.
#include "keyline/broker/rpc.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "keyline/common/thread_name.h"
#include "zap_handler.h"

namespace keyline::broker {
namespace {

constexpr size_t kCallIdBytes = 8;
// ZMQ_EVENT_HANDSHAKE_FAILED_AUTH (libzmq 4.3): the server's ZAP handler refused our key.
constexpr uint16_t kEventHandshakeFailedAuth = 0x4000;
constexpr uint16_t kEventHandshakeFailedProtocol = 0x2000;

std::string EncodeCallId(uint64_t id) {
  std::string out;
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(id >> shift));
  return out;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class RpcServerImpl final : public RpcServer {
 public:
  RpcServerImpl(RpcHandler handler, size_t max_frame_bytes)
      : handler_(std::move(handler)), max_frame_bytes_(max_frame_bytes) {}

  ~RpcServerImpl() override {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    socket_.close();
    zap_.reset();
  }

  Status Start(Options& options) {
    if (options.peers == nullptr) return InvalidArgumentError("RpcServer needs a PeerRegistry");
    try {
      // The ZAP handler is bound before the socket exists: no client slips in unauthenticated.
      ASSIGN_OR_RETURN(zap_, ZapHandler::Start(context_, options.peers));
      socket_ = zmq::socket_t(context_, zmq::socket_type::router);
      socket_.set(zmq::sockopt::linger, 0);
      socket_.set(zmq::sockopt::router_mandatory, 1);
      // libzmq drops a connection that sends far more than we accept; between the limit and
      // this the request is answered RESOURCE_EXHAUSTED.
      socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(max_frame_bytes_ * 2 + 4096));
      RETURN_IF_ERROR(MakeAuthenticatedCurveServer(socket_, options.keys));
      socket_.bind(options.bind_endpoint);
      endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    } catch (const zmq::error_t& e) {
      return UnavailableError("rpc server cannot bind " + options.bind_endpoint + ": " + e.what());
    }
    thread_ = std::thread([this] {
      NameThisThread("rpc-server");
      Run();
    });
    return Status::Ok();
  }

  std::string endpoint() const override { return endpoint_; }
  RpcCounters counters() const override {
    std::lock_guard lock(mu_);
    return counters_;
  }

 private:
  void Run() {
    while (!stopping_) {
      std::vector<zmq::message_t> parts;
      try {
        zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
        zmq::poll(items, 1, std::chrono::milliseconds(100));
        if (!(items[0].revents & ZMQ_POLLIN)) continue;
        auto received =
            zmq::recv_multipart(socket_, std::back_inserter(parts), zmq::recv_flags::dontwait);
        if (!received) continue;
      } catch (const zmq::error_t& e) {
        if (e.num() == ETERM) return;
        if (e.num() != EINTR && e.num() != EAGAIN) spdlog::warn("rpc receive: {}", e.what());
        continue;
      }
      Handle(parts);
    }
  }

  void Handle(std::vector<zmq::message_t>& parts) {
    if (parts.size() < 2) return;  // a routing id alone: nothing to answer
    std::string peer;
    try {
      peer = parts.back().gets("User-Id");
    } catch (const zmq::error_t&) {
    }
    const std::string routing_id = parts.front().to_string();
    if (peer.empty()) {
      // Cannot happen with ZAP enforced; refuse rather than trust anything else.
      Count([](RpcCounters& c) { ++c.refused; });
      return;
    }
    if (parts.size() != 3 || parts[1].size() != kCallIdBytes) {
      Count([](RpcCounters& c) { ++c.refused; });
      spdlog::warn("rpc: refused a request from {}: not call-id + body", peer);
      if (parts.size() >= 2 && parts[1].size() == kCallIdBytes) {
        Reply(routing_id, parts[1].to_string(),
              InvalidArgumentError("rpc request must be two frames: call id and body"));
      }
      return;
    }
    const std::string call_id = parts[1].to_string();
    if (parts[2].size() > max_frame_bytes_) {
      Count([](RpcCounters& c) { ++c.refused; });
      spdlog::warn("rpc: refused a {}-byte request from {}: limit {}", parts[2].size(), peer,
                   max_frame_bytes_);
      Reply(routing_id, call_id,
            ResourceExhaustedError("request of " + std::to_string(parts[2].size()) +
                                   " bytes exceeds the " + std::to_string(max_frame_bytes_) +
                                   "-byte limit"));
      return;
    }
    // An aligned copy: FlatBuffers readers want 8-byte alignment, a zmq frame promises none.
    std::vector<uint8_t> body(parts[2].size());
    if (!body.empty()) std::memcpy(body.data(), parts[2].data(), body.size());
    Count([](RpcCounters& c) { ++c.requests; });
    StatusOr<std::vector<uint8_t>> reply = InternalError("rpc handler threw");
    try {
      reply = handler_(peer, body);
    } catch (const std::exception& e) {
      spdlog::error("rpc handler threw on a request from {}: {}", peer, e.what());
    }
    if (!reply.ok()) {
      Count([](RpcCounters& c) { ++c.handler_errors; });
      Reply(routing_id, call_id, reply.status());
      return;
    }
    Send(routing_id, call_id, StatusCode::kOk, *reply);
  }

  void Reply(const std::string& routing_id, const std::string& call_id, const Status& status) {
    Send(routing_id, call_id, status.code(),
         std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(status.message().data()),
                                  status.message().size()));
  }

  void Send(const std::string& routing_id, const std::string& call_id, StatusCode code,
            std::span<const uint8_t> payload) {
    const uint8_t code_byte = static_cast<uint8_t>(code);
    std::vector<zmq::const_buffer> frames = {zmq::buffer(routing_id), zmq::buffer(call_id),
                                             zmq::buffer(&code_byte, 1),
                                             zmq::buffer(payload.data(), payload.size())};
    try {
      zmq::send_multipart(socket_, frames, zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      // The client went away (ROUTER_MANDATORY): its answer has nobody to go to.
      spdlog::warn("rpc reply not delivered: {}", e.what());
    }
  }

  template <typename F>
  void Count(F f) {
    std::lock_guard lock(mu_);
    f(counters_);
  }

  RpcHandler handler_;
  size_t max_frame_bytes_;
  zmq::context_t context_;
  std::unique_ptr<ZapHandler> zap_;
  zmq::socket_t socket_;
  std::string endpoint_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  RpcCounters counters_;
};

class RpcClientImpl final : public RpcClient {
 public:
  explicit RpcClientImpl(Options options) : options_(std::move(options)) {}
  ~RpcClientImpl() override {
    socket_.close();
    monitor_.close();
  }

  Status Open() {
    try {
      socket_ = zmq::socket_t(context_, zmq::socket_type::dealer);
      socket_.set(zmq::sockopt::linger, 0);
      socket_.set(zmq::sockopt::curve_serverkey,
                  zmq::const_buffer(options_.server_key.data(), 32));
      socket_.set(zmq::sockopt::curve_publickey,
                  zmq::const_buffer(options_.keys.public_key().data(), 32));
      socket_.set(zmq::sockopt::curve_secretkey,
                  zmq::const_buffer(options_.keys.secret_key_for_socket(), 32));
      // Handshake failures arrive as monitor events: a refused key gets a clear error
      // instead of a silent time-out.
      const std::string monitor_endpoint =
          "inproc://rpc-monitor-" + std::to_string(reinterpret_cast<uintptr_t>(this));
      if (zmq_socket_monitor(socket_.handle(), monitor_endpoint.c_str(),
                             kEventHandshakeFailedAuth | kEventHandshakeFailedProtocol) != 0) {
        return InternalError("rpc client: cannot monitor its socket");
      }
      monitor_ = zmq::socket_t(context_, zmq::socket_type::pair);
      monitor_.set(zmq::sockopt::linger, 0);
      monitor_.connect(monitor_endpoint);
      socket_.connect(options_.server_endpoint);
    } catch (const zmq::error_t& e) {
      return InvalidArgumentError("rpc client cannot connect to " + options_.server_endpoint +
                                  ": " + e.what());
    }
    return Status::Ok();
  }

  StatusOr<std::vector<uint8_t>> Call(std::span<const uint8_t> request, int timeout_ms) override {
    const std::string call_id = EncodeCallId(++next_call_id_);
    try {
      std::vector<zmq::const_buffer> frames = {zmq::buffer(call_id),
                                               zmq::buffer(request.data(), request.size())};
      if (!zmq::send_multipart(socket_, frames, zmq::send_flags::dontwait)) {
        return UnavailableError("rpc to " + options_.server_endpoint +
                                ": send queue full (server unreachable?)");
      }
      const int64_t deadline = NowMs() + timeout_ms;
      while (true) {
        const int64_t left = deadline - NowMs();
        if (left <= 0) break;
        zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                                   {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
        zmq::poll(items, 2, std::chrono::milliseconds(left));
        if (items[1].revents & ZMQ_POLLIN) {
          std::vector<zmq::message_t> event;
          (void)zmq::recv_multipart(monitor_, std::back_inserter(event), zmq::recv_flags::dontwait);
          uint16_t id = 0;
          if (!event.empty() && event[0].size() >= 2) std::memcpy(&id, event[0].data(), 2);
          if (id == kEventHandshakeFailedAuth) {
            return UnauthenticatedError("rpc to " + options_.server_endpoint +
                                        ": the server refused this client's Curve key "
                                        "(not registered, or revoked)");
          }
          if (id == kEventHandshakeFailedProtocol) {
            return UnauthenticatedError("rpc to " + options_.server_endpoint +
                                        ": CURVE handshake failed (wrong server key?)");
          }
        }
        if (!(items[0].revents & ZMQ_POLLIN)) continue;
        std::vector<zmq::message_t> parts;
        auto received =
            zmq::recv_multipart(socket_, std::back_inserter(parts), zmq::recv_flags::dontwait);
        if (!received) continue;
        if (parts.size() != 3 || parts[0].to_string() != call_id || parts[1].size() != 1) {
          continue;  // a late answer to an earlier call that timed out, or junk
        }
        const uint8_t code = *static_cast<const uint8_t*>(parts[1].data());
        if (code == 0) {
          const auto* data = static_cast<const uint8_t*>(parts[2].data());
          return std::vector<uint8_t>(data, data + parts[2].size());
        }
        if (code > static_cast<uint8_t>(StatusCode::kInternal)) {
          return InternalError("rpc reply with unknown status code " + std::to_string(code));
        }
        return Status(static_cast<StatusCode>(code), parts[2].to_string());
      }
    } catch (const zmq::error_t& e) {
      return UnavailableError("rpc to " + options_.server_endpoint + ": " + e.what());
    }
    return DeadlineExceededError("rpc to " + options_.server_endpoint + ": no reply within " +
                                 std::to_string(timeout_ms) +
                                 " ms (server down or unreachable, or it does not know our key)");
  }

 private:
  Options options_;
  zmq::context_t context_;
  zmq::socket_t socket_;
  zmq::socket_t monitor_;
  uint64_t next_call_id_ = 0;
};

}  // namespace

StatusOr<std::unique_ptr<RpcServer>> RpcServer::Start(RpcHandler handler, Options options) {
  if (!handler) return InvalidArgumentError("RpcServer needs a handler");
  auto server = std::make_unique<RpcServerImpl>(std::move(handler), options.max_frame_bytes);
  RETURN_IF_ERROR(server->Start(options));
  return std::unique_ptr<RpcServer>(std::move(server));
}

StatusOr<std::unique_ptr<RpcClient>> RpcClient::Connect(Options options) {
  auto client = std::make_unique<RpcClientImpl>(std::move(options));
  RETURN_IF_ERROR(client->Open());
  return std::unique_ptr<RpcClient>(std::move(client));
}

}  // namespace keyline::broker
