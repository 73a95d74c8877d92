// The relay as the lab runs it: `keyline-lab relay` as a real process in front of a TCP echo
// server, cut with SIGUSR1 and reconnected with SIGUSR2.
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <thread>

#include <boost/test/unit_test.hpp>

#include "keyline/lab/supervisor.h"
#include "keyline/testing/temp_dir.h"

namespace keyline::lab {
namespace {

using namespace std::chrono_literals;

// Echoes every byte back on each connection; closes its side after the client's EOF.
class EchoServer {
 public:
  EchoServer() {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BOOST_REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    BOOST_REQUIRE(listen(listener_, 16) == 0);
    socklen_t length = sizeof address;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~EchoServer() {
    stop_ = true;
    thread_.join();
    close(listener_);
  }
  int port() const { return port_; }

 private:
  void Serve() {
    std::vector<std::thread> connections;
    while (!stop_) {
      pollfd fd{listener_, POLLIN, 0};
      if (poll(&fd, 1, 50) <= 0) continue;
      const int client = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      connections.emplace_back([client] {
        char buffer[8192];
        ssize_t n;
        while ((n = read(client, buffer, sizeof buffer)) > 0) {
          if (send(client, buffer, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
        }
        close(client);
      });
    }
    for (auto& c : connections) c.join();
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Connects to 127.0.0.1:port; -errno when refused.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    const int error = errno;
    close(fd);
    return -error;
  }
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

// Sends `data`, closes the sending side, and reads until the peer closes. What came back, or
// what came back before the connection broke.
std::string RoundTrip(int fd, const std::string& data) {
  std::thread writer([&] {
    size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    shutdown(fd, SHUT_WR);
  });
  std::string back;
  char buffer[8192];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0) back.append(buffer, static_cast<size_t>(n));
  writer.join();
  return back;
}

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string data(size, '\0');
  for (auto& c : data) c = static_cast<char>(random());
  return data;
}

// `keyline-lab relay` in front of an echo server, listening on a port it picked itself.
struct RelayProcess {
  RelayProcess() {
    ProcessSpec spec{"relay",
                     {KEYLINE_LAB_PATH, "relay", "--listen", "tcp://127.0.0.1:0", "--to",
                      "tcp://127.0.0.1:" + std::to_string(echo.port())},
                     dir.path(),
                     InheritedEnvironment(),
                     dir.path() / "relay.log"};
    auto started = StartProcess(spec);
    BOOST_REQUIRE_MESSAGE(started.ok(), started.status().ToString());
    identity = *started;
    Status ready = WaitForLogLine("relay", identity, spec.log_file, 0, "listening on", 10s);
    BOOST_REQUIRE_MESSAGE(ready.ok(), ready.ToString());
    const std::string log = LogTail(spec.log_file);
    const auto at = log.find("127.0.0.1:");
    port = std::stoi(log.substr(at + 10));
  }
  ~RelayProcess() { StopProcesses({{"relay", identity}}, 5s); }

  // Sends a control signal and waits for the relay to log that it acted on it.
  void Signal(int signal, const std::string& logged) {
    const uint64_t offset = FileSize(dir.path() / "relay.log");
    kill(identity.pid, signal);
    Status done = WaitForLogLine("relay", identity, dir.path() / "relay.log", offset, logged, 10s);
    BOOST_REQUIRE_MESSAGE(done.ok(), done.ToString());
  }

  keyline::testing::TempDir dir;
  EchoServer echo;
  ProcessIdentity identity;
  int port = 0;
};

BOOST_AUTO_TEST_SUITE(Relay)

BOOST_AUTO_TEST_CASE(ForwardsEveryByteBothWaysAndPassesOnTheClose) {
  RelayProcess relay;
  const uint32_t seed = std::random_device{}();
  BOOST_TEST_MESSAGE("seed " << seed);
  const std::string data = RandomBytes(3 * 1024 * 1024 + 17, seed);
  std::vector<std::thread> clients;
  std::vector<std::string> echoed(3);
  for (size_t i = 0; i < echoed.size(); ++i) {
    clients.emplace_back([&, i] {
      const int fd = Connect(relay.port);
      if (fd < 0) return;
      echoed[i] = RoundTrip(fd, data);
      close(fd);
    });
  }
  for (auto& c : clients) c.join();
  for (const auto& e : echoed) {
    BOOST_TEST(e.size() == data.size());
    BOOST_TEST((e == data));
  }
}

BOOST_AUTO_TEST_CASE(CutDropsOpenConnectionsAndRefusesNewOnes) {
  RelayProcess relay;
  const int open = Connect(relay.port);
  BOOST_REQUIRE(open >= 0);
  BOOST_REQUIRE(send(open, "ping", 4, MSG_NOSIGNAL) == 4);
  char buffer[16];
  BOOST_REQUIRE(read(open, buffer, sizeof buffer) == 4);

  relay.Signal(SIGUSR1, "refusing new connections");
  // The open connection is reset: the next read sees the end, not a time-out.
  errno = 0;
  const ssize_t after_cut = read(open, buffer, sizeof buffer);
  BOOST_TEST(after_cut <= 0);
  BOOST_TEST((after_cut == 0 || errno == ECONNRESET), "read after the cut: " << std::strerror(errno));
  close(open);
  BOOST_TEST(Connect(relay.port) == -ECONNREFUSED);
  // A second cut changes nothing and says so.
  relay.Signal(SIGUSR1, "already cut");
  BOOST_TEST(Connect(relay.port) == -ECONNREFUSED);
}

BOOST_AUTO_TEST_CASE(ReconnectAcceptsAndForwardsAgain) {
  RelayProcess relay;
  relay.Signal(SIGUSR1, "refusing new connections");
  BOOST_TEST(Connect(relay.port) == -ECONNREFUSED);
  relay.Signal(SIGUSR2, "accepting on");
  const int fd = Connect(relay.port);
  BOOST_REQUIRE(fd >= 0);
  BOOST_TEST(RoundTrip(fd, "after the reconnect") == "after the reconnect");
  close(fd);
}

BOOST_AUTO_TEST_CASE(SigtermStopsTheRelayCleanly) {
  RelayProcess relay;
  BOOST_TEST(StopProcesses({{"relay", relay.identity}}, 5s).empty());  // none needed SIGKILL
  BOOST_TEST(!IsRunning(relay.identity));
  BOOST_TEST(LogTail(relay.dir.path() / "relay.log").find("stopping") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

}  // namespace
}  // namespace keyline::lab
