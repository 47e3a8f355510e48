// HTTP/1.1 front end (Boost.Beast on Asio): POST <prefix>/<verb> for every extender verb, GET
// /healthz, /readyz and /metrics, optional TLS, a request size limit, keep-alive, and a few event
// loop threads serving many connections (Volcano's 16 parallel predicate calls plus connection
// churn).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "hyperaccel/bridge/service.h"
#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"

namespace hyperaccel::bridge {

struct ServerOptions {
  std::string listen = ":8713";  // host:port; port 0 picks a free port
  std::string path_prefix;       // "" serves /predicate, "/v1" serves /v1/predicate
  size_t max_body_bytes = size_t{256} << 20;
  // Connections served at once; beyond this the server stops accepting until one closes (the
  // rest wait in the listen queue). Requests run on min(threads, CPUs, at least 2) threads.
  int threads = 32;
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

  // Binds and serves in background threads.
  Status Start();
  // Stops accepting, closes idle connections, finishes requests in flight, joins the threads.
  void Stop();
  int port() const { return port_; }

 private:
  class Impl;           // the Asio event loop, the listening socket and the open connections (server.cpp)
  void Housekeeping();  // every second, on `reaper_`: idle memory, timed-out connections

  Bridge* bridge_;
  metrics::Registry* registry_;
  ServerOptions options_;
  std::unique_ptr<Impl> impl_;
  std::thread reaper_;
  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool stopping_ = false;
  int port_ = 0;
};

}  // namespace hyperaccel::bridge
