// A gRPC server on a unix socket without gRPC's runtime: nghttp2 does the HTTP/2 framing (HPACK,
// flow control, SETTINGS, PING, GOAWAY), this code does gRPC's part of the wire protocol
// (github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): h2c with prior knowledge, POST
// requests with content-type application/grpc, 5-byte length-prefixed messages, responses with
// grpc-status / grpc-message in the trailers (or a trailers-only response for an error). Messages
// are bytes: the caller parses and serializes them (Protobuf or anything else).
//
// One thread serves every connection (epoll): it reads a request, runs its handler inline and
// writes the answer with no hand-over to another thread, which is what keeps a unary call to one
// wake-up of the server. Answers and stream messages given from other threads are queued and the
// serving thread is woken (eventfd).
//
// Supported: unary and server-streaming methods, any number of connections and concurrent
// streams (bounded by the options), grpc-timeout on unary calls, cancellation by the client
// (RST_STREAM or a closed connection), graceful shutdown with a deadline. Not supported (refused
// with UNIMPLEMENTED or INTERNAL, never a crash): client-streaming and bidirectional methods,
// compressed messages (grpc-encoding other than identity), TLS.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "hyperaccel/common/status.h"

namespace hyperaccel::rpc {

// gRPC's status codes, with their wire numbers.
enum class GrpcCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// The status a call ends with (grpc-status and grpc-message; the message is percent-encoded on the
// wire by the server).
struct GrpcStatus {
  GrpcCode code = GrpcCode::kOk;
  std::string message;
  bool ok() const { return code == GrpcCode::kOk; }
};

// Our Status as a gRPC status (kConflict -> ABORTED; every code has a mapping).
GrpcStatus ToGrpcStatus(const Status& status);

// The answer to one unary call whose handler answers later (AddDeferredUnary). Finish() may be
// called from any thread, once; later calls, and calls after the client cancelled or the
// connection closed, do nothing. Dropping the last reference without Finish() ends the call with
// INTERNAL ("no answer").
class UnaryResponder {
 public:
  virtual ~UnaryResponder() = default;
  virtual void Finish(GrpcStatus status, std::string response) = 0;
  // True once the client cancelled or the connection closed.
  virtual bool Cancelled() const = 0;
};

// One server-streaming call. Thread-safe.
class ServerStream {
 public:
  virtual ~ServerStream() = default;
  // Queues `message` (serialized, without the 5-byte prefix). With `replace_unsent`, a message
  // still queued whose sending has not started is dropped in its favour (a consumer that only needs
  // the latest state is never sent stale ones). Returns false, and does nothing, once the stream
  // is finished, cancelled or its connection closed.
  virtual bool Write(std::string message, bool replace_unsent = false) = 0;
  // Ends the stream with `status` after the messages already queued. Idempotent.
  virtual void Finish(GrpcStatus status) = 0;
  // Sets what runs once, on the serving thread, when the stream has ended for any reason: its
  // trailers were sent (`cancelled` false), or the client cancelled, the connection closed or the
  // server shut down (`cancelled` true). Set it inside the handler; if the stream already ended by
  // then it runs at once. The callback must not call Server::Shutdown().
  virtual void OnDone(std::function<void(bool cancelled)> done) = 0;
};

struct ServerOptions {
  // The serving thread's name (pthread_setname_np, at most 15 characters).
  std::string thread_name = "rpc-server";
  // A request message larger than this ends its call with RESOURCE_EXHAUSTED (gRPC's default).
  std::size_t max_request_bytes = std::size_t{4} << 20;
  // Connections beyond this are accepted and closed at once (logged).
  std::size_t max_connections = 64;
  // SETTINGS_MAX_CONCURRENT_STREAMS advertised to each client.
  std::uint32_t max_concurrent_streams = 100;
  // Queued bytes of one connection's unsent stream messages beyond which Write() refuses (returns
  // false and the stream ends with RESOURCE_EXHAUSTED): a client that never reads cannot grow our
  // memory without bound.
  std::size_t max_queued_bytes_per_connection = std::size_t{16} << 20;
  // A connection whose HTTP/2 preface and SETTINGS have not arrived this long after it was
  // accepted is closed (logged): connecting and sending nothing cannot hold one of the
  // max_connections places.
  std::chrono::milliseconds handshake_timeout{10000};
};

// Counters for tests and metrics (read at any time).
struct ServerCounters {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_refused = 0;  // over max_connections
  std::uint64_t connections_open = 0;
  std::uint64_t calls = 0;            // requests dispatched to a handler
  std::uint64_t calls_rejected = 0;   // unknown method, bad headers or framing, too large
  std::uint64_t protocol_errors = 0;  // connections closed on an HTTP/2 error
};

class Server {
 public:
  // Runs on the serving thread; returns the status and fills `*response` (sent only when OK).
  using Unary = std::function<GrpcStatus(std::string_view request, std::string* response)>;
  // Runs on the serving thread and must not block; answers through the responder, now or later.
  using DeferredUnary = std::function<void(std::string_view request, std::shared_ptr<UnaryResponder>)>;
  // Runs on the serving thread when the call's request has arrived; writes through the stream,
  // now or later, and must not block.
  using Streaming = std::function<void(std::string_view request, std::shared_ptr<ServerStream>)>;

  explicit Server(ServerOptions options = {});
  ~Server();  // Shutdown(now) if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // `path` is "/<package>.<Service>/<Method>". Register every method before Start().
  void AddUnary(std::string path, Unary handler);
  void AddDeferredUnary(std::string path, DeferredUnary handler);
  void AddServerStreaming(std::string path, Streaming handler);

  // Binds and listens on the unix socket `socket_path` (which must not exist: AlreadyExists;
  // InvalidArgument for a path longer than sun_path), then starts the serving thread.
  // The socket file is the caller's: Shutdown() does not remove it.
  Status Start(const std::string& socket_path);

  // Stops accepting, sends GOAWAY on every connection, keeps serving the calls already started
  // until they end or `deadline` passes, then cancels what is left (their OnDone runs with
  // `cancelled` true, deferred answers are dropped), closes every connection and joins the serving
  // thread. Safe to call more than once and from any thread but the serving one.
  void Shutdown(std::chrono::steady_clock::time_point deadline);

  ServerCounters Counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hyperaccel::rpc
