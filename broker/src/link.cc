// The link engine behind LinkServer and LinkClient (docs/link-protocol.md).
//
// One thread per link owns the ZeroMQ socket. It receives frames, verifies them, hands
// deliveries to the MessageStore (a server to its commit thread; a client writes them itself
// when the store is idle), sends acknowledgements once those writes are durable (the store
// tells it through a completion queue, and an eventfd if another thread wrote them), and pumps
// committed outbox messages to each peer within the window.
#include "keyline/broker/link.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <flatbuffers/flatbuffers.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "keyline/common/thread_name.h"
#include "keyline/schemas/decode.h"
#include "keyline/wire/link_generated.h"
#include "zap_handler.h"

namespace keyline::broker {
namespace {

constexpr uint16_t kProtocolVersion = 1;
// Frames handled per loop turn before timers and sending get their turn.
constexpr int kMaxFramesPerTurn = 4096;
// Messages sent per loop turn, over all peers.
constexpr size_t kMaxSendsPerTurn = 8192;
constexpr int64_t kHelloRetryMs = 250;
// Link state for keyline-queue (last contact, last error) is written at most this often per peer.
constexpr int64_t kLinkStateEveryMs = 1000;
// A scheduled contact that has not drained by then is closed; the next one resumes.
constexpr int64_t kMaxContactMs = 10 * 60 * 1000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Wakes the link thread from other threads (commit listener, completions).
class Wakeup {
 public:
  Wakeup() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Wakeup() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }
  void Signal() {
    uint64_t one = 1;
    (void)!write(fd_, &one, sizeof one);
  }
  void Drain() {
    uint64_t value;
    (void)!read(fd_, &value, sizeof value);
  }

 private:
  int fd_;
};

// The link clients of one process share one ZeroMQ context, so one I/O thread serves all their
// sockets: a process with many links (the bench's simulated injectors) wakes one thread per
// burst instead of one per link. A server keeps its own context, which holds its ZAP handler
// (a context has room for one). The context ends with the last client that uses it.
std::shared_ptr<zmq::context_t> SharedClientContext() {
  static std::mutex mu;
  static std::weak_ptr<zmq::context_t> shared;
  std::lock_guard lock(mu);
  std::shared_ptr<zmq::context_t> context = shared.lock();
  if (!context) {
    context = std::make_shared<zmq::context_t>();
    shared = context;
  }
  return context;
}

enum class Outcome { kApplied, kDuplicate, kGap, kRetryLater, kDeadLetter };

// The outcomes of consecutive deliveries of one stream in one applied burst.
struct Completion {
  std::string peer;
  std::string stream;
  uint64_t applied = 0;
  uint64_t duplicates = 0;
  uint64_t dead_letters = 0;
  uint64_t gaps = 0;
  uint64_t retry_later = 0;

  void Add(Outcome outcome) {
    switch (outcome) {
      case Outcome::kApplied: ++applied; break;
      case Outcome::kDuplicate: ++duplicates; break;
      case Outcome::kDeadLetter: ++dead_letters; break;
      case Outcome::kGap: ++gaps; break;
      case Outcome::kRetryLater: ++retry_later; break;
    }
  }
};

// A verified delivery waiting to be handed to the store; `frame` owns the bytes it points into.
struct PendingDelivery {
  std::shared_ptr<const void> frame;
  Delivery delivery;
  std::span<const uint8_t> envelope;
};

// Most deliveries applied by one work item.
constexpr size_t kMaxDeliveriesPerWork = 1024;

struct Session {
  std::string peer;
  std::string routing_id;  // server side: the ROUTER's id of the peer's current connection
  bool hello_received = false;
  int64_t last_received_ms = 0;
  int64_t last_sent_ms = 0;
  int64_t last_hello_sent_ms = -1000000;
  int64_t resync_at_ms = 0;  // send a Hello then (0: none due)
  std::map<std::string, uint64_t> next_to_send;  // per outbound stream
  std::map<std::string, uint64_t> acked;         // per outbound stream, as the peer told us
  uint64_t peer_backlog = 0;
  // Largest DataBatch the peer accepts, from its latest Hello (0: one Data frame per message).
  uint64_t peer_max_batch_bytes = 0;
  int64_t last_contact_recorded_ms = -1000000;
};

class LinkEngine {
 public:
  LinkEngine(bool server, MessageStore* store, DeliveryHandler handler, LinkOptions options)
      : server_(server), store_(store), handler_(std::move(handler)), options_(options) {}

  ~LinkEngine() { Stop(); }

  Status StartServer(LinkServer::Options& options) {
    if (options.peers == nullptr) return InvalidArgumentError("LinkServer needs a PeerRegistry");
    peers_ = options.peers;
    try {
      context_ = std::make_shared<zmq::context_t>();
      ASSIGN_OR_RETURN(zap_, ZapHandler::Start(*context_, peers_));
      socket_ = zmq::socket_t(*context_, zmq::socket_type::router);
      ConfigureCommon();
      socket_.set(zmq::sockopt::router_mandatory, 1);
      RETURN_IF_ERROR(MakeAuthenticatedCurveServer(socket_, options.keys));
      socket_.bind(options.bind_endpoint);
      endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    } catch (const zmq::error_t& e) {
      return UnavailableError("link server cannot bind " + options.bind_endpoint + ": " +
                              e.what());
    }
    Launch();
    return Status::Ok();
  }

  Status StartClient(LinkClient::Options& options) {
    RETURN_IF_ERROR(ValidateName("server name", options.server_name));
    if (options.contact_interval_s < 0) {
      return InvalidArgumentError("contact_interval_s must be 0 (continuous) or positive");
    }
    client_options_ = options;
    scheduled_ = options.contact_interval_s > 0;
    try {
      OpenClientSocket();  // the first contact starts at once, in both modes
    } catch (const zmq::error_t& e) {
      return InvalidArgumentError("link client cannot connect to " + options.server_endpoint +
                                  ": " + e.what());
    }
    client_session_.peer = options.server_name;
    client_session_.last_received_ms = NowMs();
    Launch();
    return Status::Ok();
  }

  void Stop() {
    if (!thread_.joinable()) return;
    store_->RemoveCommitListener(listener_id_);
    stopping_ = true;
    wakeup_.Signal();
    thread_.join();
    // Deliveries still in the store's queue call back into this engine: wait for them.
    std::unique_lock lock(completions_mu_);
    in_flight_cv_.wait(lock, [this] { return in_flight_ == 0; });
    lock.unlock();
    socket_.close();
    zap_.reset();
  }

  std::string endpoint() const { return endpoint_; }

  LinkCounters counters() const {
    std::lock_guard lock(counters_mu_);
    return counters_;
  }
  std::vector<std::string> connected_peers() const {
    std::lock_guard lock(counters_mu_);
    return connected_;
  }
  bool connected() const { return client_connected_; }
  void ContactNow() {
    contact_requested_ = true;
    wakeup_.Signal();
  }

 private:
  void ConfigureCommon() {
    socket_.set(zmq::sockopt::linger, 0);
    // Flow control is the window's job; high-water marks must never drop or block first.
    socket_.set(zmq::sockopt::sndhwm, 1000000);
    socket_.set(zmq::sockopt::rcvhwm, 1000000);
    // libzmq itself disconnects a peer sending far more than we accept (memory protection);
    // anything between the limit and this is refused and counted by the link.
    socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(options_.max_frame_bytes * 2 + 4096));
    socket_.set(zmq::sockopt::heartbeat_ivl, options_.heartbeat_interval_ms);
    socket_.set(zmq::sockopt::heartbeat_timeout, options_.heartbeat_timeout_ms);
    socket_.set(zmq::sockopt::heartbeat_ttl, options_.heartbeat_timeout_ms);
  }

  void OpenClientSocket() {
    if (!context_) context_ = SharedClientContext();
    socket_ = zmq::socket_t(*context_, zmq::socket_type::dealer);
    ConfigureCommon();
    socket_.set(zmq::sockopt::immediate, 1);
    socket_.set(zmq::sockopt::reconnect_ivl, 100);
    socket_.set(zmq::sockopt::reconnect_ivl_max, 2000);
    socket_.set(zmq::sockopt::curve_serverkey,
                zmq::const_buffer(client_options_.server_key.data(), 32));
    socket_.set(zmq::sockopt::curve_publickey,
                zmq::const_buffer(client_options_.keys.public_key().data(), 32));
    socket_.set(zmq::sockopt::curve_secretkey,
                zmq::const_buffer(client_options_.keys.secret_key_for_socket(), 32));
    socket_.connect(client_options_.server_endpoint);
    in_contact_ = true;
    contact_started_ms_ = NowMs();
    Count([](LinkCounters& c) { ++c.contacts; });
  }

  void Launch() {
    listener_id_ = store_->AddCommitListener([this](const std::vector<QueueId>&) { wakeup_.Signal(); });
    thread_ = std::thread([this] {
      NameThisThread(server_ ? "link-server" : "link-client");
      Run();
    });
  }

  void Run() {
    link_thread_ = std::this_thread::get_id();
    while (!stopping_) {
      if (WaitForWork(std::chrono::milliseconds(50)) && socket_.handle() != nullptr) ReceiveFrames();
      SubmitDeliveries();
      HandleCompletions();
      Pump();
      Timers();
    }
  }

  // Sleeps until the wake-up fd or the socket has something, or `timeout` passes. One poll()
  // on the socket's ZMQ_FD, where zmq_poll makes two and asks the socket's state twice: this
  // loop turns for every message, and each system call is dear on a virtual machine. ZMQ_FD
  // only signals changes, so the socket is asked first whether a message already waits.
  // Returns whether the socket may have a message (a turn woken only by the wake-up fd, or by
  // the time-out, need not try to receive).
  bool WaitForWork(std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{wakeup_.fd(), POLLIN, 0}, {-1, POLLIN, 0}};
    nfds_t count = 1;
    try {
      if (socket_.handle() != nullptr) {
        if (socket_.get(zmq::sockopt::events) & ZMQ_POLLIN) return true;
        fds[1].fd = socket_.get(zmq::sockopt::fd);
        count = 2;
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR && e.num() != ETERM) spdlog::error("link poll: {}", e.what());
      return true;
    }
    if (::poll(fds, count, static_cast<int>(timeout.count())) <= 0) return false;
    if (fds[0].revents & POLLIN) wakeup_.Drain();
    return count == 2 && (fds[1].revents & (POLLIN | POLLERR)) != 0;
  }

  // ---- receiving ----------------------------------------------------------------------------

  void ReceiveFrames() {
    for (int i = 0; i < kMaxFramesPerTurn; ++i) {
      std::vector<zmq::message_t> parts;
      try {
        auto received = zmq::recv_multipart(socket_, std::back_inserter(parts),
                                            zmq::recv_flags::dontwait);
        if (!received) return;
      } catch (const zmq::error_t& e) {
        if (e.num() != EAGAIN) spdlog::warn("link receive: {}", e.what());
        return;
      }
      size_t expected = server_ ? 2 : 1;
      std::string peer = server_ ? "" : client_session_.peer;
      if (server_ && !parts.empty()) {
        try {
          peer = parts.back().gets("User-Id");
        } catch (const zmq::error_t&) {
          peer.clear();
        }
      }
      if (peer.empty()) {
        // Cannot happen with ZAP enforced; refuse rather than trust anything else.
        Refuse("?", "unauthenticated");
        continue;
      }
      if (parts.size() != expected) {
        Refuse(peer, "unexpected_multipart");
        continue;
      }
      Session* session = server_ ? ServerSession(peer, parts.front().to_string()) : &client_session_;
      if (server_) {
        // A key revoked after the handshake: refuse and forget the connection's session.
        std::string key_text;
        try {
          key_text = parts.back().gets(kCurveKeyProperty);
        } catch (const zmq::error_t&) {
        }
        auto key = CurvePublicKeyFromZ85(key_text, "peer key");
        if (!key.ok() || peers_->IdentityOf(*key) != peer) {
          Refuse(peer, "revoked_key");
          sessions_.erase(peer);
          continue;
        }
      }
      HandleFrame(*session, std::move(parts.back()));
    }
  }

  Session* ServerSession(const std::string& peer, const std::string& routing_id) {
    Session& session = sessions_[peer];
    if (session.peer.empty()) {
      session.peer = peer;
      spdlog::info("link: {} connected", peer);
    }
    if (session.routing_id != routing_id) {
      // A new connection of this peer: what was in flight on the old one may be lost.
      session.routing_id = routing_id;
      session.hello_received = false;
      session.next_to_send.clear();
    }
    return &session;
  }

  void HandleFrame(Session& session, zmq::message_t&& message) {
    Count([](LinkCounters& c) { ++c.frames_received; });
    session.last_received_ms = NowMs();
    if (session.last_received_ms - session.last_contact_recorded_ms >= kLinkStateEveryMs) {
      session.last_contact_recorded_ms = session.last_received_ms;
      store_->RecordContact(session.peer, NowUs());
    }
    if (message.size() > options_.max_frame_bytes) {
      Refuse(session.peer, "too_large");
      return;
    }
    // The frame's bytes live as long as the delivery work that reads them: the ZeroMQ message
    // itself when its data is 8-aligned (as FlatBuffers' 8-byte fields want; libzmq's heap
    // messages are), otherwise an aligned copy.
    std::shared_ptr<const void> frame;
    std::span<const uint8_t> bytes;
    auto owned = std::make_shared<zmq::message_t>(std::move(message));
    if (reinterpret_cast<uintptr_t>(owned->data()) % 8 == 0) {
      bytes = {static_cast<const uint8_t*>(owned->data()), owned->size()};
      frame = std::move(owned);
    } else {
      auto copy = std::make_shared<std::string>(static_cast<const char*>(owned->data()),
                                                owned->size());
      bytes = {reinterpret_cast<const uint8_t*>(copy->data()), copy->size()};
      frame = std::move(copy);
    }
    schemas::DecodeError why{};
    schemas::DecodeLimits limits;
    limits.max_bytes = options_.max_frame_bytes;
    auto decoded = schemas::DecodeVerified<wire::LinkFrame>(bytes, "LinkFrame", limits, &why);
    if (!decoded.ok()) {
      Refuse(session.peer, std::string(schemas::DecodeErrorName(why)));
      return;
    }
    const wire::LinkFrame* link_frame = *decoded;
    bool is_hello = false;
    switch (link_frame->body_type()) {
      case wire::LinkBody::Hello:
        is_hello = true;
        OnHello(session, *link_frame->body_as_Hello());
        break;
      case wire::LinkBody::Data:
        last_data_received_ms_ = NowMs();
        OnData(session, frame, *link_frame->body_as_Data());
        break;
      case wire::LinkBody::DataBatch:
        last_data_received_ms_ = NowMs();
        OnDataBatch(session, frame, *link_frame->body_as_DataBatch());
        break;
      case wire::LinkBody::Ack:
        OnAck(session, *link_frame->body_as_Ack());
        break;
      case wire::LinkBody::Heartbeat:
        session.peer_backlog = link_frame->body_as_Heartbeat()->backlog();
        break;
      default:
        Refuse(session.peer, "unknown_frame");
        return;
    }
    // A peer we hold no resume point for (we restarted, or it reconnected): ask for its Hello.
    if (!is_hello && !session.hello_received) SendHello(session, /*reply=*/false, /*force=*/false);
  }

  void OnHello(Session& session, const wire::Hello& hello) {
    if (hello.version() != kProtocolVersion) {
      Refuse(session.peer, "protocol_version");
      return;
    }
    session.hello_received = true;
    session.peer_backlog = hello.backlog();
    session.peer_max_batch_bytes = hello.max_batch_bytes();
    session.next_to_send.clear();
    std::map<std::string, uint64_t> positions;
    if (hello.positions() != nullptr) {
      for (const auto* position : *hello.positions()) {
        if (position == nullptr || position->stream() == nullptr) continue;
        positions[position->stream()->str()] = position->applied_through();
      }
    }
    for (const auto& queue : store_->QueuesTo(session.peer)) {
      uint64_t applied = positions.count(queue.stream) ? positions[queue.stream] : 0;
      uint64_t acked = store_->AckedThrough(queue);
      if (applied < acked) {
        spdlog::error("link: {} says it applied {} through {}, but acknowledged {} before: "
                      "the peer lost its state; resending from {}",
                      session.peer, queue.stream, applied, acked, acked + 1);
        applied = acked;
      }
      applied = std::min(applied, store_->LastSequence(queue));
      session.acked[queue.stream] = applied;
      session.next_to_send[queue.stream] = applied + 1;
      if (applied > acked) store_->Acknowledge(queue, applied);
    }
    if (!server_) {
      client_connected_ = true;
      last_hello_reply_ms_ = hello.reply() ? NowMs() : last_hello_reply_ms_;
    }
    if (!hello.reply()) SendHello(session, /*reply=*/true, /*force=*/true);
  }

  // Each item is handled as its own Data frame: one bad envelope is refused alone, and a gap
  // after it makes the rest gaps too (the peer rewinds after our Hello).
  void OnDataBatch(Session& session, const std::shared_ptr<const void>& frame,
                   const wire::DataBatch& batch) {
    if (batch.items() == nullptr || batch.items()->size() == 0) {
      Refuse(session.peer, "malformed");
      return;
    }
    for (const wire::Data* data : *batch.items()) {
      if (data == nullptr) {
        Refuse(session.peer, "malformed");
        continue;
      }
      OnData(session, frame, *data);
    }
  }

  void OnData(Session& session, const std::shared_ptr<const void>& frame, const wire::Data& data) {
    if (data.envelope() == nullptr) {
      Refuse(session.peer, "malformed");
      return;
    }
    std::span<const uint8_t> bytes(data.envelope()->data(), data.envelope()->size());
    schemas::DecodeError why{};
    schemas::DecodeLimits limits;
    limits.max_bytes = options_.max_frame_bytes;
    auto envelope = schemas::DecodeEnvelope(bytes, limits, &why);
    if (!envelope.ok()) {
      Refuse(session.peer, std::string(schemas::DecodeErrorName(why)));
      return;
    }
    const wire::Envelope* e = envelope->envelope;
    if (e->sender() == nullptr || e->sender()->string_view() != session.peer) {
      Refuse(session.peer, "wrong_sender");
      return;
    }
    std::string stream = e->stream() != nullptr ? e->stream()->str() : "";
    if (!ValidateName("stream", stream).ok() || e->sequence() == 0) {
      Refuse(session.peer, "bad_stream_or_sequence");
      return;
    }
    pending_.push_back({frame,
                        Delivery{session.peer, stream, e->sequence(), envelope->type,
                                 envelope->payload, e->created_at_us()},
                        bytes});
    if (pending_.size() >= kMaxDeliveriesPerWork) SubmitDeliveries();
  }

  // Hands the deliveries received so far to the store as ONE work item: one function call,
  // one completion and one wake-up per burst instead of per message. A client writes them on
  // its own thread when the store is idle (its one server waits for the acknowledgement
  // anyway); a server leaves the write to the commit thread and goes on receiving from its
  // other peers, whose deliveries join the next group.
  void SubmitDeliveries() {
    if (pending_.empty()) return;
    auto batch = std::make_shared<std::vector<PendingDelivery>>(std::move(pending_));
    pending_.clear();
    auto outcomes = std::make_shared<std::vector<Outcome>>(batch->size(), Outcome::kRetryLater);
    {
      std::lock_guard lock(completions_mu_);
      ++in_flight_;
    }
    auto submit = server_ ? &MessageStore::Submit : &MessageStore::SubmitOrWriteNow;
    (store_->*submit)(
        [this, batch, outcomes](WriteContext& write) -> Status {
          for (size_t i = 0; i < batch->size(); ++i) {
            const PendingDelivery& pending = (*batch)[i];
            // A delivery that must wait (retry later) leaves the rest of its stream as gaps:
            // the peer resends from it after the resync.
            (*outcomes)[i] = Apply(pending.delivery, pending.envelope, write);
          }
          return Status::Ok();
        },
        [this, batch, outcomes](const Status& status) {
          // Everything under the lock: once in_flight_ reaches 0, Stop() may destroy this
          // engine, so nothing of it may be touched after the lock is released.
          std::lock_guard lock(completions_mu_);
          bool was_empty = completions_.empty();
          Completion* current = nullptr;
          for (size_t i = 0; i < batch->size(); ++i) {
            const Delivery& delivery = (*batch)[i].delivery;
            if (current == nullptr || current->peer != delivery.peer ||
                current->stream != delivery.stream) {
              current = &completions_.emplace_back();
              current->peer = delivery.peer;
              current->stream = delivery.stream;
            }
            current->Add(status.ok() ? (*outcomes)[i] : Outcome::kRetryLater);
          }
          // Written on the link thread itself: this turn handles the completions next.
          if (was_empty && std::this_thread::get_id() != link_thread_) wakeup_.Signal();
          if (--in_flight_ == 0) in_flight_cv_.notify_all();
        },
        Durability::kSync);
  }

  // Runs inside the group write, on the thread writing it.
  Outcome Apply(const Delivery& delivery, std::span<const uint8_t> envelope, WriteContext& write) {
    QueueId from{delivery.peer, delivery.stream};
    uint64_t applied = write.AppliedThrough(from);
    if (delivery.sequence <= applied) return Outcome::kDuplicate;
    if (delivery.sequence > applied + 1) return Outcome::kGap;
    write.SetSavePoint();
    Status status;
    try {
      status = handler_(delivery, write);
    } catch (const std::exception& e) {
      status = InternalError(std::string("delivery handler threw: ") + e.what());
    }
    if (status.ok()) {
      write.PopSavePoint();
      write.MarkApplied(from, delivery.sequence);
      return Outcome::kApplied;
    }
    write.RollbackToSavePoint();
    if (status.code() == StatusCode::kUnavailable ||
        status.code() == StatusCode::kResourceExhausted) {
      return Outcome::kRetryLater;
    }
    spdlog::warn("link: refused {} #{} from {} for good: {}", delivery.stream, delivery.sequence,
                 delivery.peer, status.ToString());
    write.RecordDeadLetter(from, delivery.sequence, status.ToString(), envelope);
    write.MarkApplied(from, delivery.sequence);
    return Outcome::kDeadLetter;
  }

  void HandleCompletions() {
    std::vector<Completion> done;
    {
      std::lock_guard lock(completions_mu_);
      done.swap(completions_);
    }
    if (done.empty()) return;
    std::map<QueueId, bool> to_ack;
    for (const auto& completion : done) {
      Session* session = FindSession(completion.peer);
      Count([&](LinkCounters& c) {
        c.messages_applied += completion.applied;
        c.duplicates_skipped += completion.duplicates;
        c.dead_letters += completion.dead_letters;
        c.gaps += completion.gaps;
      });
      if (completion.gaps > 0 && session != nullptr) {
        SendHello(*session, /*reply=*/false, /*force=*/false);
      }
      if (completion.retry_later > 0 && session != nullptr && session->resync_at_ms == 0) {
        session->resync_at_ms = NowMs() + 1000;
      }
      if (completion.applied + completion.duplicates + completion.dead_letters > 0) {
        to_ack[{completion.peer, completion.stream}] = true;
      }
    }
    for (const auto& [queue, unused] : to_ack) {
      Session* session = FindSession(queue.peer);
      if (session == nullptr) continue;
      flatbuffers::FlatBufferBuilder builder(128);
      auto ack = wire::CreateAck(builder, builder.CreateString(queue.stream),
                                 store_->AppliedThrough(queue));
      builder.Finish(wire::CreateLinkFrame(builder, wire::LinkBody::Ack, ack.Union()));
      SendFrame(*session, builder);
    }
  }

  void OnAck(Session& session, const wire::Ack& ack) {
    if (ack.stream() == nullptr) {
      Refuse(session.peer, "malformed");
      return;
    }
    QueueId queue{session.peer, ack.stream()->str()};
    uint64_t through = std::min(ack.through(), store_->LastSequence(queue));
    uint64_t& acked = session.acked[queue.stream];
    if (through <= acked) return;
    acked = through;
    store_->Acknowledge(queue, through);
  }

  // ---- sending ------------------------------------------------------------------------------

  void Pump() {
    size_t budget = kMaxSendsPerTurn;
    if (server_) {
      for (auto& [peer, session] : sessions_) {
        if (!PumpSession(session, budget)) break;
      }
    } else {
      PumpSession(client_session_, budget);
    }
  }

  // Returns false when the socket cannot take more now or the budget is spent.
  bool PumpSession(Session& session, size_t& budget) {
    if (!session.hello_received) return true;
    const size_t batch_limit = static_cast<size_t>(
        std::min<uint64_t>(session.peer_max_batch_bytes, AnnouncedBatchBytes()));
    for (const auto& queue : store_->QueuesTo(session.peer)) {
      uint64_t acked = std::max(session.acked[queue.stream], store_->AckedThrough(queue));
      uint64_t last = store_->LastSequence(queue);
      uint64_t& next = session.next_to_send[queue.stream];
      next = std::max(next, acked + 1);
      OutgoingBatch batch(send_builder_, batch_limit);
      // A frame that could not be sent takes its messages back: they go out next turn.
      auto flush = [&]() -> bool {
        if (batch.empty()) return true;
        uint64_t first = batch.first_sequence();
        size_t count = batch.size();
        bool sent = SendFrame(session, batch.Finish());
        batch.Reset();
        if (!sent) {
          next = first;
          budget += count;
          return false;
        }
        Count([count](LinkCounters& c) { c.messages_sent += count; });
        return true;
      };
      while (next <= last && next - acked - 1 < options_.window && budget > 0) {
        size_t room = std::min<size_t>(options_.window - (next - acked - 1), budget);
        auto messages = store_->Read(queue, next, std::min<size_t>(room, 512), 4u << 20);
        if (!messages.ok()) {
          spdlog::error("link: {}", messages.status().ToString());
          (void)flush();
          return false;
        }
        if (messages->empty() || messages->front().sequence != next) {
          spdlog::error("link: outbox {} misses sequence {}", queue.ToString(), next);
          (void)flush();
          return false;
        }
        for (const auto& message : *messages) {
          if (message.sequence != next) break;
          std::span<const uint8_t> envelope(
              reinterpret_cast<const uint8_t*>(message.envelope.data()), message.envelope.size());
          if (!batch.Fits(envelope.size()) && !flush()) return false;
          if (batch.Fits(envelope.size())) {
            batch.Add(message.sequence, envelope);
          } else {
            // Alone it is too big for a batch (or the peer takes none): one Data frame.
            bool sent = SendFrame(session, DataFrame(envelope));
            batch.Reset();
            if (!sent) return false;
            Count([](LinkCounters& c) { ++c.messages_sent; });
          }
          ++next;
          --budget;
        }
      }
      if (!flush()) return false;
      if (budget == 0) return false;
    }
    return true;
  }

  // What this side accepts in a DataBatch, as its Hello announces it.
  uint64_t AnnouncedBatchBytes() const {
    return std::min(options_.max_batch_bytes, options_.max_frame_bytes);
  }

  flatbuffers::FlatBufferBuilder& DataFrame(std::span<const uint8_t> envelope) {
    send_builder_.Clear();
    // Envelopes hold 8-byte fields: keep them 8-aligned inside the frame, as they were stored.
    send_builder_.ForceVectorAlignment(envelope.size(), 1, 8);
    auto bytes = send_builder_.CreateVector(envelope.data(), envelope.size());
    auto data = wire::CreateData(send_builder_, bytes);
    send_builder_.Finish(wire::CreateLinkFrame(send_builder_, wire::LinkBody::Data, data.Union()));
    return send_builder_;
  }

  // Builds one DataBatch frame in a reused builder, keeping it within `limit` bytes.
  class OutgoingBatch {
   public:
    OutgoingBatch(flatbuffers::FlatBufferBuilder& builder, size_t limit)
        : builder_(builder), limit_(limit) {
      builder_.Clear();
    }
    bool empty() const { return items_.empty(); }
    size_t size() const { return items_.size(); }
    uint64_t first_sequence() const { return first_sequence_; }
    // Whether an envelope of `bytes` still fits (a batch takes at least one if `limit` allows).
    bool Fits(size_t bytes) const {
      return builder_.GetSize() + bytes + (items_.size() + 1) * kItemOverhead + kFrameOverhead <=
             limit_;
    }
    void Add(uint64_t sequence, std::span<const uint8_t> envelope) {
      if (items_.empty()) first_sequence_ = sequence;
      builder_.ForceVectorAlignment(envelope.size(), 1, 8);
      auto bytes = builder_.CreateVector(envelope.data(), envelope.size());
      items_.push_back(wire::CreateData(builder_, bytes));
    }
    flatbuffers::FlatBufferBuilder& Finish() {
      auto batch = wire::CreateDataBatch(builder_, builder_.CreateVector(items_));
      builder_.Finish(wire::CreateLinkFrame(builder_, wire::LinkBody::DataBatch, batch.Union()));
      return builder_;
    }
    // After Finish and a send (or after the builder served another frame): start afresh.
    void Reset() {
      items_.clear();
      builder_.Clear();
    }

   private:
    // Per item: its offset in the items vector, the Data table, its vtable share and
    // padding; per frame: the LinkFrame and DataBatch tables, vtables and root offset.
    static constexpr size_t kItemOverhead = 32;
    static constexpr size_t kFrameOverhead = 64;
    flatbuffers::FlatBufferBuilder& builder_;
    size_t limit_;
    std::vector<flatbuffers::Offset<wire::Data>> items_;
    uint64_t first_sequence_ = 0;
  };

  void SendHello(Session& session, bool reply, bool force) {
    int64_t now = NowMs();
    if (!force && now - session.last_hello_sent_ms < kHelloRetryMs) return;
    flatbuffers::FlatBufferBuilder builder(256);
    std::vector<flatbuffers::Offset<wire::StreamPosition>> positions;
    for (const auto& [stream, applied] : store_->InboundFrom(session.peer)) {
      positions.push_back(wire::CreateStreamPosition(builder, builder.CreateString(stream), applied));
    }
    auto hello = wire::CreateHello(builder, kProtocolVersion, reply,
                                   builder.CreateVector(positions), Backlog(session),
                                   AnnouncedBatchBytes());
    builder.Finish(wire::CreateLinkFrame(builder, wire::LinkBody::Hello, hello.Union()));
    if (SendFrame(session, builder)) session.last_hello_sent_ms = now;
  }

  // Messages waiting for `session`'s peer: the acknowledgements just received count at once,
  // before the store has written them.
  uint64_t Backlog(const Session& session) const {
    uint64_t backlog = 0;
    for (const auto& queue : store_->QueuesTo(session.peer)) {
      auto it = session.acked.find(queue.stream);
      uint64_t acked = std::max(store_->AckedThrough(queue), it == session.acked.end() ? 0 : it->second);
      uint64_t last = store_->LastSequence(queue);
      backlog += last > acked ? last - acked : 0;
    }
    return backlog;
  }

  // Returns false when the frame could not be sent now (no connection yet, or the peer's
  // connection is gone); the protocol resends what matters.
  bool SendFrame(Session& session, flatbuffers::FlatBufferBuilder& builder) {
    zmq::const_buffer frame(builder.GetBufferPointer(), builder.GetSize());
    if (socket_.handle() == nullptr) return false;  // between scheduled contacts
    try {
      if (server_) {
        if (session.routing_id.empty()) return false;
        if (!socket_.send(zmq::buffer(session.routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
          return false;
        }
      }
      if (!socket_.send(frame, zmq::send_flags::dontwait)) return false;
    } catch (const zmq::error_t& e) {
      if (e.num() == EHOSTUNREACH) {
        // The peer's connection is gone; it will Hello again when it reconnects.
        session.hello_received = false;
        session.routing_id.clear();
        return false;
      }
      spdlog::warn("link send to {}: {}", session.peer, e.what());
      return false;
    }
    session.last_sent_ms = NowMs();
    Count([](LinkCounters& c) { ++c.frames_sent; });
    return true;
  }

  // ---- timers -------------------------------------------------------------------------------

  void Timers() {
    int64_t now = NowMs();
    std::vector<std::string> connected;
    if (server_) {
      for (auto it = sessions_.begin(); it != sessions_.end();) {
        Session& session = it->second;
        if (now - session.last_received_ms > options_.heartbeat_timeout_ms) {
          spdlog::warn("link: {} silent for {} ms: session closed", session.peer,
                       now - session.last_received_ms);
          Count([](LinkCounters& c) { ++c.peers_lost; });
          RecordError(session.peer, "silent for " + std::to_string(now - session.last_received_ms) + " ms");
          it = sessions_.erase(it);
          continue;
        }
        SessionTimers(session, now);
        connected.push_back(session.peer);
        ++it;
      }
    } else if (scheduled_ && !in_contact_) {
      if (contact_requested_.exchange(false) || now >= next_contact_ms_) StartContact();
    } else {
      Session& session = client_session_;
      contact_requested_ = false;  // already in contact
      if (scheduled_ && ContactDrained(session, now)) {
        EndContact("drained");
      } else if (scheduled_ && now - contact_started_ms_ > kMaxContactMs) {
        EndContact("took too long; the next contact resumes");
      } else if (now - session.last_received_ms > options_.heartbeat_timeout_ms) {
        if (client_connected_) {
          spdlog::warn("link: {} silent for {} ms: reconnecting", session.peer,
                       now - session.last_received_ms);
          Count([](LinkCounters& c) { ++c.peers_lost; });
          RecordError(session.peer, "silent for " + std::to_string(now - session.last_received_ms) + " ms");
        }
        Reconnect();
      } else {
        SessionTimers(session, now);
        if (!session.hello_received) SendHello(session, /*reply=*/false, /*force=*/false);
      }
      if (client_connected_) connected.push_back(session.peer);
    }
    std::lock_guard lock(counters_mu_);
    connected_ = std::move(connected);
  }

  void SessionTimers(Session& session, int64_t now) {
    if (session.resync_at_ms != 0 && now >= session.resync_at_ms) {
      session.resync_at_ms = 0;
      SendHello(session, /*reply=*/false, /*force=*/true);
    }
    if (now - session.last_sent_ms >= options_.heartbeat_interval_ms && session.hello_received) {
      flatbuffers::FlatBufferBuilder builder(64);
      auto heartbeat = wire::CreateHeartbeat(builder, NowUs(), Backlog(session));
      builder.Finish(wire::CreateLinkFrame(builder, wire::LinkBody::Heartbeat, heartbeat.Union()));
      SendFrame(session, builder);
    }
  }

  // Scheduled contact: both sides have nothing left for each other. The server's backlog is
  // the one it reported in its latest Hello reply; we ask again (a Hello) once our side is
  // drained, so a reply newer than our last acknowledgement decides.
  bool ContactDrained(Session& session, int64_t now) {
    if (!session.hello_received || Backlog(session) != 0) return false;
    {
      std::lock_guard lock(completions_mu_);
      if (in_flight_ != 0 || !completions_.empty()) return false;
    }
    if (!pending_.empty()) return false;
    if (session.peer_backlog == 0 && last_hello_reply_ms_ > last_data_received_ms_) return true;
    SendHello(session, /*reply=*/false, /*force=*/false);
    (void)now;
    return false;
  }

  void StartContact() {
    try {
      OpenClientSocket();
    } catch (const zmq::error_t& e) {
      spdlog::error("link: contacting {}: {}", client_options_.server_endpoint, e.what());
      next_contact_ms_ = NowMs() + 1000L * client_options_.contact_interval_s;
      return;
    }
    Session& session = client_session_;
    session.hello_received = false;
    session.next_to_send.clear();
    session.peer_backlog = UINT64_MAX;
    session.last_received_ms = contact_started_ms_;
    session.last_hello_sent_ms = -1000000;
    SendHello(session, /*reply=*/false, /*force=*/true);
  }

  void EndContact(const char* why) {
    spdlog::info("link: contact with {} closed: {}", client_session_.peer, why);
    socket_.close();
    in_contact_ = false;
    client_connected_ = false;
    client_session_.hello_received = false;
    next_contact_ms_ = NowMs() + 1000L * client_options_.contact_interval_s;
  }

  void Reconnect() {
    client_connected_ = false;
    Count([](LinkCounters& c) { ++c.reconnects; });
    try {
      socket_.close();
      OpenClientSocket();
    } catch (const zmq::error_t& e) {
      spdlog::error("link: reconnecting to {}: {}", client_options_.server_endpoint, e.what());
    }
    Session& session = client_session_;
    session.hello_received = false;
    session.next_to_send.clear();
    session.last_received_ms = NowMs();
    session.last_hello_sent_ms = -1000000;
  }

  // Throttled per peer, so a flood of bad frames costs one write a second, not one each.
  void RecordError(const std::string& peer, const std::string& error) {
    int64_t now = NowMs();
    int64_t& last = last_error_recorded_ms_[peer];
    if (now - last < kLinkStateEveryMs) return;
    last = now;
    store_->RecordLinkError(peer, error, NowUs());
  }

  Session* FindSession(const std::string& peer) {
    if (!server_) return &client_session_;
    auto it = sessions_.find(peer);
    return it == sessions_.end() ? nullptr : &it->second;
  }

  void Refuse(const std::string& peer, const std::string& reason) {
    spdlog::warn("link: refused a frame from {}: {}", peer, reason);
    RecordError(peer, "refused a frame: " + reason);
    std::lock_guard lock(counters_mu_);
    ++counters_.refused[reason];
  }

  template <typename F>
  void Count(F update) {
    std::lock_guard lock(counters_mu_);
    update(counters_);
  }

  const bool server_;
  MessageStore* store_;
  DeliveryHandler handler_;
  LinkOptions options_;
  PeerRegistry* peers_ = nullptr;
  LinkClient::Options client_options_;

  std::shared_ptr<zmq::context_t> context_;  // declared before the socket: outlives it
  std::unique_ptr<ZapHandler> zap_;
  zmq::socket_t socket_;
  std::string endpoint_;
  Wakeup wakeup_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> client_connected_{false};
  // Scheduled contact (client only; link thread except contact_requested_).
  bool scheduled_ = false;
  bool in_contact_ = false;
  std::atomic<bool> contact_requested_{false};
  int64_t next_contact_ms_ = 0;
  int64_t contact_started_ms_ = 0;
  int64_t last_hello_reply_ms_ = 0;
  int64_t last_data_received_ms_ = 0;
  std::thread thread_;
  std::thread::id link_thread_;  // set by the thread itself before it touches anything else

  std::map<std::string, Session> sessions_;  // server: by peer identity (link thread only)
  Session client_session_;                   // client (link thread only)

  std::map<std::string, int64_t> last_error_recorded_ms_;  // link thread only
  std::vector<PendingDelivery> pending_;  // received this turn, not yet submitted (link thread)
  flatbuffers::FlatBufferBuilder send_builder_{64 << 10};  // Data frames (link thread)
  uint64_t listener_id_ = 0;
  std::mutex completions_mu_;  // guards completions_ and in_flight_
  std::vector<Completion> completions_;
  size_t in_flight_ = 0;  // deliveries submitted to the store and not yet completed
  std::condition_variable in_flight_cv_;

  mutable std::mutex counters_mu_;
  LinkCounters counters_;
  std::vector<std::string> connected_;
};

class LinkServerImpl final : public LinkServer {
 public:
  explicit LinkServerImpl(std::unique_ptr<LinkEngine> engine) : engine_(std::move(engine)) {}
  std::string endpoint() const override { return engine_->endpoint(); }
  LinkCounters counters() const override { return engine_->counters(); }
  std::vector<std::string> connected_peers() const override { return engine_->connected_peers(); }

 private:
  std::unique_ptr<LinkEngine> engine_;
};

class LinkClientImpl final : public LinkClient {
 public:
  explicit LinkClientImpl(std::unique_ptr<LinkEngine> engine) : engine_(std::move(engine)) {}
  bool connected() const override { return engine_->connected(); }
  void ContactNow() override { engine_->ContactNow(); }
  LinkCounters counters() const override { return engine_->counters(); }

 private:
  std::unique_ptr<LinkEngine> engine_;
};

}  // namespace

StatusOr<std::unique_ptr<LinkServer>> LinkServer::Start(MessageStore* store,
                                                        DeliveryHandler handler, Options options) {
  auto engine = std::make_unique<LinkEngine>(true, store, std::move(handler), options.link);
  RETURN_IF_ERROR(engine->StartServer(options));
  return std::unique_ptr<LinkServer>(new LinkServerImpl(std::move(engine)));
}

StatusOr<std::unique_ptr<LinkClient>> LinkClient::Start(MessageStore* store,
                                                        DeliveryHandler handler, Options options) {
  auto engine = std::make_unique<LinkEngine>(false, store, std::move(handler), options.link);
  RETURN_IF_ERROR(engine->StartClient(options));
  return std::unique_ptr<LinkClient>(new LinkClientImpl(std::move(engine)));
}

}  // namespace keyline::broker
