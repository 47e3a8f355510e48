// A unary gRPC call over HTTP/2 on a unix socket, without gRPC's runtime: nghttp2 does the HTTP/2
// framing (HPACK, flow control, SETTINGS), this code does gRPC's part of the wire protocol
// (github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md): h2c with prior knowledge, POST with
// content-type application/grpc and te: trailers, grpc-timeout, 5-byte length-prefixed messages,
// and the call's status from grpc-status / grpc-message in the trailers (or a trailers-only
// response). The topology agent uses it for the kubelet's pod-resources List and the device plugin
// for Register and its own socket's self-check, so that neither links gRPC (docs/footprint.md has
// what that saves).
//
// Each call opens its own connection and closes it when the call ends: a kubelet that restarted
// (and recreated its socket) is reached by the next call, and nothing is kept between calls.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "hyperaccel/common/status.h"

namespace hyperaccel::rpc {

struct GrpcCallOptions {
  // The whole call: connect, request, response. Sent to the server as grpc-timeout as well.
  std::chrono::milliseconds timeout{5000};
  // The largest response message accepted; a larger one ends the call (RST_STREAM CANCEL) with
  // ResourceExhausted. gRPC's own client defaults to 4 MiB.
  std::size_t max_response_bytes = std::size_t{16} << 20;
  // HTTP/2 :authority (gRPC's clients send "localhost" on unix sockets).
  std::string authority = "localhost";
  std::string user_agent = "hyperaccel";
  // When >= 0, a descriptor (an eventfd or a pipe's read end) that becomes readable to cancel the
  // call from another thread: the call ends at once with Unavailable ("cancelled"). Not read.
  int cancel_fd = -1;
};

// One unary call as bytes in and bytes out, with no I/O of its own (GrpcUnaryCall drives it over a
// socket; tests and the fuzzer feed it directly). Not thread-safe.
class GrpcUnaryExchange {
 public:
  // `method` is the request path, "/<package>.<Service>/<Method>"; `request` the serialized message.
  static Result<std::unique_ptr<GrpcUnaryExchange>> Create(std::string_view method, std::string_view request,
                                                           const GrpcCallOptions& options);
  ~GrpcUnaryExchange();
  GrpcUnaryExchange(const GrpcUnaryExchange&) = delete;
  GrpcUnaryExchange& operator=(const GrpcUnaryExchange&) = delete;

  // Appends to `out` what should be written to the connection now (the preface, SETTINGS, the
  // request, WINDOW_UPDATEs as the response is consumed, ...).
  void Output(std::string& out);
  // Bytes read from the connection.
  void Input(const std::uint8_t* data, std::size_t size);
  // The server closed the connection (read returned 0).
  void InputClosed();
  // Records an error of the transport (connect, read, write, deadline) and ends the call.
  void Fail(Status status);
  // True once the call has ended: the response stream closed, or an error.
  bool Done() const;
  // After Done(): the response message, or why there is none.
  Result<std::string> Response() const;

 private:
  struct Impl;
  explicit GrpcUnaryExchange(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Calls `method` on the gRPC server listening on the unix socket `socket_path` and returns the
// serialized response message. Errors: Unavailable (cannot connect, connection lost, HTTP/2
// protocol error, not a gRPC server), DeadlineExceeded, ResourceExhausted (response too large),
// InvalidArgument (socket path too long), and for a gRPC status other than OK the status mapped to
// ours with "grpc-status N (NAME): <grpc-message>" as its message.
Result<std::string> GrpcUnaryCall(const std::string& socket_path, std::string_view method,
                                  std::string_view request, const GrpcCallOptions& options);

}  // namespace hyperaccel::rpc
