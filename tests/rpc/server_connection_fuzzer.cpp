// libFuzzer target: arbitrary bytes on one connection of the nghttp2 gRPC server (h2_server.h).
// The server runs once, on its own thread, with a unary, a deferred and a streaming method; each
// input is written to a new unix-socket connection, whose write side is then shut, and the
// connection is read until the server closes it. Whatever the bytes, the server must neither crash
// nor leak nor stop serving (ASan/UBSan and a closing check per input). The seed corpus holds
// requests captured from the gRPC C++ client (tests/rpc/corpus/connection).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "hyperaccel/rpc/h2_server.h"

namespace {

using namespace hyperaccel::rpc;

std::string& SocketPath() {
  static std::string path = "/tmp/rpc-fuzz-" + std::to_string(::getpid()) + ".sock";
  return path;
}

Server& TheServer() {
  static Server* server = [] {
    ServerOptions o;
    o.max_request_bytes = std::size_t{64} * 1024;
    o.max_queued_bytes_per_connection = std::size_t{256} * 1024;
    auto* s = new Server(o);
    s->AddUnary("/fuzz.Svc/Unary", [](std::string_view req, std::string* resp) {
      if (!req.empty() && req[0] == 'e') return GrpcStatus{GrpcCode::kInvalidArgument, std::string(req)};
      resp->assign(req);
      return GrpcStatus{};
    });
    s->AddDeferredUnary("/fuzz.Svc/Deferred",
                        [](std::string_view req, const std::shared_ptr<UnaryResponder>& r) {
                          if (req.size() % 2 == 0) r->Finish({}, std::string(req));  // odd: dropped, INTERNAL
                        });
    s->AddServerStreaming("/fuzz.Svc/Stream",
                          [](std::string_view req, const std::shared_ptr<ServerStream>& st) {
                            for (std::size_t i = 0; i < req.size() % 8; ++i)
                              st->Write(std::string(req), i % 2 == 1);
                            if (req.size() % 3 != 0)
                              st->Finish({GrpcCode::kAborted, "done"});  // else left open
                          });
    ::unlink(SocketPath().c_str());
    if (auto st = s->Start(SocketPath()); !st.ok()) {
      std::fprintf(stderr, "fuzzer: %s\n", st.ToString().c_str());
      std::abort();
    }
    std::atexit([] {
      TheServer().Shutdown(std::chrono::steady_clock::now());
      ::unlink(SocketPath().c_str());
    });
    return s;
  }();
  return *server;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)TheServer();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  SocketPath().copy(addr.sun_path, SocketPath().size());
  if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("fuzzer: connect");
    std::abort();  // the server stopped serving
  }
  timeval tv{10, 0};  // a server that never closes is a finding too
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::size_t sent = 0;
  while (sent < size) {
    const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server closed early (a protocol error): fine
    sent += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::array<char, 16384> buf{};
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      std::fprintf(stderr, "fuzzer: the server did not close the connection within 10 s\n");
      std::abort();
    }
    break;  // closed (0) or reset
  }
  ::close(fd);
  return 0;
}
