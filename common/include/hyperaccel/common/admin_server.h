// The small operations HTTP endpoint every daemon runs: GET /metrics (Prometheus text) and
// GET /healthz (200 "ok" or 503 with the reason), plus /readyz (same check as /healthz unless a
// separate readiness check is given). Built on cpp-httplib.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"

namespace httplib {
class Server;
}

namespace hyperaccel {

class AdminServer {
 public:
  using Check = std::function<Status()>;

  AdminServer(metrics::Registry* registry, Check healthz, Check readyz = nullptr);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Listens on "host:port" (":8080" = all interfaces, port 0 = any free port) and serves in a
  // background thread. An empty address disables the server (Start returns OK, port() is 0).
  Status Start(const std::string& address);
  void Stop();
  int port() const { return port_; }

 private:
  metrics::Registry* registry_;
  Check healthz_;
  Check readyz_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// Splits "host:port" (":8080" and "8080" mean all interfaces). Error on a bad port.
Result<std::pair<std::string, int>> ParseListenAddress(const std::string& address);

}  // namespace hyperaccel
