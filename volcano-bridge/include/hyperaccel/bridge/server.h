// HTTP/1.1 front end (cpp-httplib): POST <prefix>/<verb> for every extender verb, GET /healthz
// and GET /metrics, optional TLS, a request size limit, keep-alive, a worker pool sized for
// Volcano's 16 parallel predicate calls plus connection churn.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "hyperaccel/bridge/service.h"
#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"

namespace httplib {
class Server;
}

namespace hyperaccel::bridge {

struct ServerOptions {
  std::string listen = ":8713";  // host:port; port 0 picks a free port
  std::string path_prefix;       // "" serves /predicate, "/v1" serves /v1/predicate
  size_t max_body_bytes = size_t{256} << 20;
  int threads = 32;  // worker threads; each open connection holds one while it is served
  int keep_alive_seconds = 5;
  // Request buffers and JSON parsers unused for this long are freed (their memory returned).
  // Volcano calls every schedule period (1 s by default), so a busy scheduler keeps them warm.
  int idle_release_seconds = 3;
  std::string tls_cert;  // both set: HTTPS
  std::string tls_key;
};

class HttpServer {
 public:
  HttpServer(Bridge* bridge, metrics::Registry* registry, ServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and serves in a background thread.
  Status Start();
  // Stops accepting, finishes requests in flight, joins the workers.
  void Stop();
  int port() const { return port_; }

 private:
  class BufferPool;
  void ReleaseIdleMemory();  // every second, on `reaper_`

  Bridge* bridge_;
  metrics::Registry* registry_;
  ServerOptions options_;
  std::unique_ptr<BufferPool> buffers_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::thread reaper_;
  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool stopping_ = false;
  int port_ = 0;
};

}  // namespace hyperaccel::bridge
