#include "zap_handler.h"

#include <cstring>

#include <spdlog/spdlog.h>
#include <zmq_addon.hpp>

#include "keyline/common/thread_name.h"

namespace keyline::broker {

namespace {
// libzmq 4.3's ZMQ_ZAP_ENFORCE_DOMAIN is a draft option: set by number (see TOOLCHAIN notes).
constexpr int kZapEnforceDomain = 93;
}  // namespace

Status MakeAuthenticatedCurveServer(zmq::socket_t& socket, const CurveKeyPair& keys) {
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, zmq::const_buffer(keys.secret_key_for_socket(), 32));
  socket.set(zmq::sockopt::zap_domain, kZapDomain);
  int enforce = 1;
  if (zmq_setsockopt(socket.handle(), kZapEnforceDomain, &enforce, sizeof enforce) != 0) {
    return InternalError("this libzmq cannot enforce the ZAP domain; refusing to start open");
  }
  return Status::Ok();
}
namespace {

// ZMTP property encoding for the ZAP reply's metadata frame: name-length(1) name
// value-length(4, big-endian) value.
std::string EncodeProperty(std::string_view name, std::string_view value) {
  std::string out;
  out.push_back(static_cast<char>(name.size()));
  out += name;
  uint32_t size = static_cast<uint32_t>(value.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(size >> shift));
  out += value;
  return out;
}

}  // namespace

ZapHandler::ZapHandler(zmq::socket_t socket, PeerRegistry* peers)
    : socket_(std::move(socket)), peers_(peers) {
  thread_ = std::thread([this] {
    NameThisThread("zap");
    Run();
  });
}

ZapHandler::~ZapHandler() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
}

StatusOr<std::unique_ptr<ZapHandler>> ZapHandler::Start(zmq::context_t& context,
                                                        PeerRegistry* peers) {
  try {
    zmq::socket_t socket(context, zmq::socket_type::rep);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::rcvtimeo, 100);  // lets the thread notice it should stop
    socket.bind("inproc://zeromq.zap.01");
    return std::unique_ptr<ZapHandler>(new ZapHandler(std::move(socket), peers));
  } catch (const zmq::error_t& e) {
    return InternalError(std::string("starting the ZAP handler: ") + e.what());
  }
}

void ZapHandler::Run() {
  while (!stopping_) {
    std::vector<zmq::message_t> request;
    try {
      auto received = zmq::recv_multipart(socket_, std::back_inserter(request));
      if (!received) continue;  // time-out: check stopping_
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      spdlog::error("ZAP handler: {}", e.what());
      continue;
    }
    // version, request id, domain, address, routing id, mechanism, credentials...
    std::string version = request.size() > 0 ? request[0].to_string() : "";
    std::string request_id = request.size() > 1 ? request[1].to_string() : "";
    std::string domain = request.size() > 2 ? request[2].to_string() : "";
    std::string address = request.size() > 3 ? request[3].to_string() : "";
    std::string mechanism = request.size() > 5 ? request[5].to_string() : "";

    std::string status_code = "400";
    std::string status_text;
    std::string user_id;
    std::string metadata;
    if (version != "1.0" || request.size() < 6) {
      status_text = "malformed ZAP request";
    } else if (domain != kZapDomain) {
      status_text = "unknown ZAP domain";
    } else if (mechanism != "CURVE" || request.size() != 7 || request[6].size() != 32) {
      status_text = "CURVE required";
      spdlog::warn("link: refused a {} connection from {}: CURVE is required", mechanism, address);
    } else {
      CurvePublicKey key;
      std::memcpy(key.data(), request[6].data(), key.size());
      auto identity = peers_->IdentityOf(key);
      if (!identity) {
        status_text = "unknown key";
        spdlog::warn("link: refused Curve key {} from {}: not registered (or revoked)",
                     CurvePublicKeyToZ85(key), address);
      } else {
        status_code = "200";
        status_text = "OK";
        user_id = *identity;
        metadata = EncodeProperty(kCurveKeyProperty, CurvePublicKeyToZ85(key));
      }
    }
    if (status_code != "200") peers_->CountRefusal();

    std::string reply_version = version.empty() ? "1.0" : version;
    std::vector<zmq::const_buffer> reply = {
        zmq::buffer(reply_version), zmq::buffer(request_id),
        zmq::buffer(status_code), zmq::buffer(status_text), zmq::buffer(user_id),
        zmq::buffer(metadata)};
    try {
      zmq::send_multipart(socket_, reply);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      spdlog::error("ZAP handler reply: {}", e.what());
    }
  }
}

}  // namespace keyline::broker
