// The small operations HTTP endpoint every daemon runs: GET /metrics (Prometheus text) and
// GET /healthz (200 "ok" or 503 with the reason), plus /readyz (same check as /healthz unless a
// separate readiness check is given).
//
// One thread runs an event loop (Boost.Asio/Beast) for every connection, so clients that connect
// and then send slowly or not at all cost a socket each and hold up nobody: each request must
// arrive whole within a deadline, requests are small, and the connections are limited in total
// and per client address, the oldest being closed first when a new one would pass a limit.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"

namespace hyperaccel {

// What one admin endpoint tolerates. The defaults fit a kubelet probing every few seconds and a
// Prometheus scraping every 15 s or so, with room to spare.
struct AdminLimits {
  // Open connections at once; a new one beyond this closes the oldest connection of the client
  // address that holds the most.
  int max_connections = 256;
  // Open connections from one client address; a new one beyond this closes that address's oldest.
  int max_connections_per_client = 32;
  // A request (request line, headers and body) must arrive whole within this time of the server
  // starting to wait for it, including a keep-alive connection's idle time before it.
  std::chrono::milliseconds request_timeout{5000};
  // A response must be taken by the client within this time.
  std::chrono::milliseconds write_timeout{5000};
  uint32_t max_header_bytes = 8 * 1024;  // request line and headers; 431 above
  uint32_t max_body_bytes = 1024;        // the endpoints take no body; 413 above
};

class AdminServer {
 public:
  using Check = std::function<Status()>;

  AdminServer(metrics::Registry* registry, Check healthz, Check readyz = nullptr);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Limits for the next Start() (the defaults otherwise).
  void SetLimits(const AdminLimits& limits) { limits_ = limits; }

  // Listens on "host:port" (":8080" = all interfaces, port 0 = any free port) and serves in a
  // background thread. An empty address disables the server (Start returns OK, port() is 0).
  // The checks run on that thread and should answer quickly.
  Status Start(const std::string& address);
  // Closes the listening socket and every connection, and joins the thread.
  void Stop();
  int port() const { return port_; }

 private:
  class Impl;  // the event loop, the listening socket and the open connections (admin_server.cpp)

  metrics::Registry* registry_;
  Check healthz_;
  Check readyz_;
  AdminLimits limits_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  int port_ = 0;
};

// Splits "host:port" (":8080" and "8080" mean all interfaces). Error on a bad port.
Result<std::pair<std::string, int>> ParseListenAddress(const std::string& address);

}  // namespace hyperaccel
