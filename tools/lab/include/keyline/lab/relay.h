// The lab's stand-in for a plant's WAN link: a TCP relay between a PKS and the KMS that can be
// cut and reconnected without root (no firewall rules, no network namespaces).
//
//   keyline-lab relay --listen tcp://127.0.0.1:P --to tcp://127.0.0.1:Q
//
// Every connection accepted on `listen` is forwarded byte for byte to a new connection to `to`.
// Cut() resets every open connection (both ends see an abrupt close, like a dropped line) and
// closes the listening socket, so new connections are refused; Reconnect() listens again.
// One thread, plain POSIX sockets and poll(); the control calls only write one byte to a pipe,
// so they are safe in signal handlers (SIGUSR1 cut, SIGUSR2 reconnect, SIGTERM stop).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "keyline/common/status.h"

namespace keyline::lab {

struct RelayOptions {
  std::string listen;  // tcp://HOST:PORT to accept on; port 0 picks a free one. Required.
  std::string to;      // tcp://HOST:PORT to forward to. Required.
  // Bytes buffered per direction of a connection before reading from its source pauses.
  // Default 256 KiB.
  size_t buffer_bytes = 256 * 1024;
};

class TcpRelay {
 public:
  // Checks both endpoints and binds `listen`. Errors name the endpoint.
  static StatusOr<std::unique_ptr<TcpRelay>> Open(const RelayOptions& options);
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  // The bound endpoint, with the real port when `listen` asked for port 0.
  const std::string& listen_endpoint() const;

  // Serves until Stop(). Logs each connection, cut and reconnect (spdlog).
  [[nodiscard]] Status Run();

  // Async-signal-safe requests to the thread in Run().
  void Cut();
  void Reconnect();
  void Stop();

 private:
  struct Impl;
  explicit TcpRelay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace keyline::lab
