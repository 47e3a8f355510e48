// HTTP/1.1 front end (Boost.Beast on Asio): POST <prefix>/<verb> for every extender verb, GET
// /healthz, /readyz and /metrics, optional TLS, keep-alive, and a few event loop threads serving
// many connections (Volcano's 16 parallel predicate calls plus connection churn).
//
// Hardened against slow and greedy clients: a request's header and body must each arrive within
// a deadline; connections are limited in total and per client address (a new connection over a
// limit closes that client's oldest idle or unfinished one); a body larger than --max-body-bytes
// is refused with 413 from its Content-Length, before it is read; and bodies being read or
// handled at once may hold at most --max-inflight-body-bytes (503 for a body that would pass it).
#pragma once

#include <chrono>
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
  // Largest request body. Volcano's onSessionOpen snapshot of a 1000-node, 10 000-pod cluster is
  // about 156 MiB; larger bodies get 413 as soon as their Content-Length is read.
  size_t max_body_bytes = size_t{192} << 20;
  // Request bodies held at once (being read, or parsed and handled), summed over connections; a
  // body that would take the sum past this gets 503 before it is read. The default admits one
  // maximum-size snapshot plus 32 MiB for the small predicate, prioritize and event bodies that
  // Volcano sends meanwhile.
  size_t max_inflight_body_bytes = (size_t{192} + 32) << 20;
  // Open connections; a new one beyond this closes an idle or unfinished connection of the client
  // address holding the most.
  int max_connections = 1024;
  // Open connections from one client address (Volcano opens up to 16 at once); a new one beyond
  // this closes that address's oldest idle or unfinished connection.
  int max_connections_per_client = 64;
  // Event loop threads: at most this many, one per CPU, at least 2.
  int threads = 32;
  int keep_alive_seconds = 5;  // a connection waiting for its next request
  // From a request's first byte to the end of its header.
  std::chrono::milliseconds header_timeout{250};
  // From the end of the header to the end of the body: this, plus the body's length at
  // body_bytes_per_second (a large snapshot gets the time a slow network needs for it).
  std::chrono::milliseconds body_timeout{500};
  size_t body_bytes_per_second = size_t{16} << 20;
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
  void Housekeeping();  // every second, on `reaper_`: idle memory

  Bridge* bridge_;
  metrics::Registry* registry_;
  ServerOptions options_;
  metrics::Counter* dropped_ = nullptr;  // connections closed by a limit or deadline, by reason
  metrics::Gauge* inflight_ = nullptr;   // body bytes held
  std::unique_ptr<Impl> impl_;
  std::thread reaper_;
  std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  bool stopping_ = false;
  int port_ = 0;
};

}  // namespace hyperaccel::bridge
