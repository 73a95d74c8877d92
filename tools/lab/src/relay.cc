#include "keyline/lab/relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <vector>

#include <spdlog/spdlog.h>

namespace keyline::lab {
namespace {

// One direction of a relayed connection: bytes read from one socket, waiting to be written to
// the other.
struct Flow {
  std::string pending;
  bool source_closed = false;  // EOF read; the sink gets shutdown(SHUT_WR) once pending is sent
  bool sink_shut = false;
};

struct Connection {
  uint64_t id = 0;
  int client = -1;
  int upstream = -1;
  bool upstream_connecting = true;
  Flow to_upstream;
  Flow to_client;
  uint64_t bytes_up = 0;
  uint64_t bytes_down = 0;
};

StatusOr<sockaddr_in> ResolveTcp(const std::string& endpoint, const std::string& what) {
  const std::string prefix = "tcp://";
  const auto colon = endpoint.rfind(':');
  if (endpoint.rfind(prefix, 0) != 0 || colon == std::string::npos || colon < prefix.size()) {
    return InvalidArgumentError(what + " " + endpoint + ": expected tcp://HOST:PORT");
  }
  const std::string host = endpoint.substr(prefix.size(), colon - prefix.size());
  const std::string port = endpoint.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0 || found == nullptr) {
    return InvalidArgumentError(what + " " + endpoint + ": " + gai_strerror(rc));
  }
  sockaddr_in address{};
  std::memcpy(&address, found->ai_addr, sizeof address);
  freeaddrinfo(found);
  return address;
}

std::string Describe(const sockaddr_in& address) {
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &address.sin_addr, text, sizeof text);
  return std::string(text) + ":" + std::to_string(ntohs(address.sin_port));
}

// Closes with a reset instead of an orderly FIN: a cut line, not a polite goodbye.
void CloseAbruptly(int fd) {
  if (fd < 0) return;
  linger hard{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  close(fd);
}

}  // namespace

struct TcpRelay::Impl {
  RelayOptions options;
  sockaddr_in listen_address{};
  sockaddr_in to_address{};
  std::string listen_endpoint;
  int listener = -1;
  int control[2] = {-1, -1};
  bool cut = false;
  uint64_t next_id = 1;
  std::list<Connection> connections;

  Status Listen() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return InternalError(std::string("socket: ") + std::strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<const sockaddr*>(&listen_address), sizeof listen_address) != 0 ||
        listen(fd, 64) != 0) {
      const int error = errno;
      close(fd);
      return UnavailableError("relay: cannot listen on " + Describe(listen_address) + ": " + std::strerror(error));
    }
    socklen_t length = sizeof listen_address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&listen_address), &length);
    listener = fd;
    return Status::Ok();
  }

  void Accept() {
    sockaddr_in peer{};
    socklen_t length = sizeof peer;
    const int client = accept4(listener, reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (client < 0) return;
    const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (upstream < 0) {
      CloseAbruptly(client);
      return;
    }
    Connection c;
    c.id = next_id++;
    c.client = client;
    c.upstream = upstream;
    if (connect(upstream, reinterpret_cast<const sockaddr*>(&to_address), sizeof to_address) == 0) {
      c.upstream_connecting = false;
    } else if (errno != EINPROGRESS) {
      spdlog::warn("connection {} from {}: cannot connect to {}: {}", c.id, Describe(peer), options.to,
                   std::strerror(errno));
      CloseAbruptly(client);
      close(upstream);
      return;
    }
    spdlog::info("connection {} from {} forwarded to {}", c.id, Describe(peer), options.to);
    connections.push_back(std::move(c));
  }

  void DropAll(const char* why) {
    const size_t dropped = connections.size();
    for (auto& c : connections) {
      CloseAbruptly(c.client);
      CloseAbruptly(c.upstream);
    }
    connections.clear();
    spdlog::info("{}: dropped {} connection(s)", why, dropped);
  }

  void DoCut() {
    if (cut) {
      spdlog::info("cut: already cut, refusing new connections on {}", listen_endpoint);
      return;
    }
    cut = true;
    if (listener >= 0) close(listener);
    listener = -1;
    DropAll("cut");
    spdlog::info("cut: refusing new connections on {}", listen_endpoint);
  }

  void DoReconnect() {
    if (!cut) {
      spdlog::info("reconnected: already accepting on {}", listen_endpoint);
      return;
    }
    if (Status s = Listen(); !s.ok()) {
      spdlog::error("reconnect failed, still cut: {}", s.message());
      return;
    }
    cut = false;
    spdlog::info("reconnected: accepting on {} again", listen_endpoint);
  }

  // Moves bytes along one flow; false when the connection is finished or broken.
  bool Pump(int source, int sink, Flow& flow, uint64_t& counter, short source_events, short sink_events) {
    if ((source_events & (POLLIN | POLLHUP | POLLERR)) && !flow.source_closed &&
        flow.pending.size() < options.buffer_bytes) {
      char buffer[16384];
      const ssize_t n = read(source, buffer, sizeof buffer);
      if (n > 0) {
        flow.pending.append(buffer, static_cast<size_t>(n));
        counter += static_cast<uint64_t>(n);
      } else if (n == 0) {
        flow.source_closed = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (!flow.pending.empty() && (sink_events & POLLOUT)) {
      const ssize_t n = send(sink, flow.pending.data(), flow.pending.size(), MSG_NOSIGNAL);
      if (n > 0) {
        flow.pending.erase(0, static_cast<size_t>(n));
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (flow.source_closed && flow.pending.empty() && !flow.sink_shut) {
      shutdown(sink, SHUT_WR);
      flow.sink_shut = true;
    }
    return true;
  }

  Status Serve() {
    while (true) {
      std::vector<pollfd> fds;
      fds.push_back({control[0], POLLIN, 0});
      if (listener >= 0) fds.push_back({listener, POLLIN, 0});
      const size_t first_connection = fds.size();
      for (const auto& c : connections) {
        short client_events = 0, upstream_events = 0;
        if (c.upstream_connecting) {
          upstream_events = POLLOUT;
        } else {
          if (!c.to_upstream.source_closed && c.to_upstream.pending.size() < options.buffer_bytes) client_events |= POLLIN;
          if (!c.to_client.pending.empty()) client_events |= POLLOUT;
          if (!c.to_client.source_closed && c.to_client.pending.size() < options.buffer_bytes) upstream_events |= POLLIN;
          if (!c.to_upstream.pending.empty()) upstream_events |= POLLOUT;
        }
        // A socket with nothing to wait for is left out (a negative fd), or its hang-up would
        // wake poll() again and again.
        fds.push_back({client_events != 0 ? c.client : -1, client_events, 0});
        fds.push_back({upstream_events != 0 ? c.upstream : -1, upstream_events, 0});
      }
      if (poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        return InternalError(std::string("relay: poll: ") + std::strerror(errno));
      }
      if (fds[0].revents & POLLIN) {
        char command = 0;
        while (read(control[0], &command, 1) == 1) {
          if (command == 'c') DoCut();
          if (command == 'r') DoReconnect();
          if (command == 'q') {
            DropAll("stopping");
            return Status::Ok();
          }
        }
        // Connections may have been dropped: the poll results below no longer match.
        continue;
      }
      size_t index = first_connection;
      for (auto it = connections.begin(); it != connections.end(); index += 2) {
        Connection& c = *it;
        const short client_events = fds[index].revents;
        const short upstream_events = fds[index + 1].revents;
        bool alive = true;
        if (c.upstream_connecting) {
          if (upstream_events & (POLLOUT | POLLERR | POLLHUP)) {
            int error = 0;
            socklen_t length = sizeof error;
            getsockopt(c.upstream, SOL_SOCKET, SO_ERROR, &error, &length);
            if (error != 0) {
              spdlog::warn("connection {}: cannot connect to {}: {}", c.id, options.to, std::strerror(error));
              alive = false;
            } else {
              c.upstream_connecting = false;
            }
          }
        } else {
          alive = Pump(c.client, c.upstream, c.to_upstream, c.bytes_up, client_events, upstream_events) &&
                  Pump(c.upstream, c.client, c.to_client, c.bytes_down, upstream_events, client_events);
          if ((client_events & POLLERR) || (upstream_events & POLLERR)) alive = false;
        }
        const bool finished = c.to_upstream.sink_shut && c.to_client.sink_shut;
        if (!alive || finished) {
          spdlog::info("connection {} closed{}: {} bytes up, {} bytes down", c.id, alive ? "" : " (broken)",
                       c.bytes_up, c.bytes_down);
          if (alive) {
            close(c.client);
            close(c.upstream);
          } else {
            CloseAbruptly(c.client);
            CloseAbruptly(c.upstream);
          }
          it = connections.erase(it);
        } else {
          ++it;
        }
      }
      if (listener >= 0 && (fds[1].revents & POLLIN)) Accept();
    }
  }
};

TcpRelay::TcpRelay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

TcpRelay::~TcpRelay() {
  if (impl_->listener >= 0) close(impl_->listener);
  for (auto& c : impl_->connections) {
    CloseAbruptly(c.client);
    CloseAbruptly(c.upstream);
  }
  close(impl_->control[0]);
  close(impl_->control[1]);
}

StatusOr<std::unique_ptr<TcpRelay>> TcpRelay::Open(const RelayOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  ASSIGN_OR_RETURN(impl->listen_address, ResolveTcp(options.listen, "--listen"));
  ASSIGN_OR_RETURN(impl->to_address, ResolveTcp(options.to, "--to"));
  if (pipe2(impl->control, O_CLOEXEC | O_NONBLOCK) != 0) {
    return InternalError(std::string("relay: pipe: ") + std::strerror(errno));
  }
  Status listening = impl->Listen();
  if (!listening.ok()) {
    close(impl->control[0]);
    close(impl->control[1]);
    return listening;
  }
  impl->listen_endpoint = "tcp://" + Describe(impl->listen_address);
  return std::unique_ptr<TcpRelay>(new TcpRelay(std::move(impl)));
}

const std::string& TcpRelay::listen_endpoint() const { return impl_->listen_endpoint; }

Status TcpRelay::Run() {
  spdlog::info("listening on {}, forwarding to {}", impl_->listen_endpoint, impl_->options.to);
  return impl_->Serve();
}

namespace {
void SendControl(int fd, char command) {
  ssize_t written = write(fd, &command, 1);
  (void)written;  // a full pipe already holds a pending command
}
}  // namespace

void TcpRelay::Cut() { SendControl(impl_->control[1], 'c'); }
void TcpRelay::Reconnect() { SendControl(impl_->control[1], 'r'); }
void TcpRelay::Stop() { SendControl(impl_->control[1], 'q'); }

}  // namespace keyline::lab
