#include "hyperaccel/rpc/grpc_unary.h"

#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace hyperaccel::rpc {
namespace {

using Clock = std::chrono::steady_clock;

// Bounds on what a server may send besides the message: header names and values of one response
// (gRPC's own default is 8 KiB of metadata), and the receive windows we advertise.
constexpr std::size_t kMaxHeaderBytes = std::size_t{64} * 1024;
constexpr std::int32_t kStreamWindow = 1 << 20;
constexpr std::int32_t kConnectionWindow = 1 << 20;
constexpr std::size_t kPrefixBytes = 5;  // compressed flag + 4-byte big-endian length

const char* GrpcCodeName(int code) {
  static constexpr std::array<const char*, 17> kNames = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  return code >= 0 && code < static_cast<int>(kNames.size()) ? kNames[static_cast<std::size_t>(code)]
                                                             : "UNKNOWN";
}

StatusCode FromGrpcCode(int code) {
  switch (code) {
    case 3:   // INVALID_ARGUMENT
    case 11:  // OUT_OF_RANGE
      return StatusCode::kInvalidArgument;
    case 4: return StatusCode::kDeadlineExceeded;
    case 5: return StatusCode::kNotFound;
    case 6: return StatusCode::kAlreadyExists;
    case 8: return StatusCode::kResourceExhausted;
    case 9:   // FAILED_PRECONDITION
    case 7:   // PERMISSION_DENIED
    case 16:  // UNAUTHENTICATED
    case 12:  // UNIMPLEMENTED
      return StatusCode::kFailedPrecondition;
    case 10: return StatusCode::kConflict;
    case 14:  // UNAVAILABLE
    case 1:   // CANCELLED
      return StatusCode::kUnavailable;
    default:  // UNKNOWN, INTERNAL, DATA_LOSS, anything else
      return StatusCode::kInternal;
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// grpc-message is percent-encoded (PROTOCOL-HTTP2.md); a malformed escape is kept as it is.
std::string PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      const int hi = HexDigit(in[i + 1]);
      const int lo = HexDigit(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

// grpc-timeout: at most 8 digits and a unit.
std::string GrpcTimeout(std::chrono::milliseconds timeout) {
  const long long ms = std::max<long long>(1, timeout.count());
  if (ms <= 99'999'999) return std::to_string(ms) + "m";
  return std::to_string(std::min<long long>(99'999'999, ms / 1000)) + "S";
}

nghttp2_nv Header(const std::string& name, const std::string& value) {
  // nghttp2 copies names and values (no NO_COPY flags), and never writes through these pointers.
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

struct GrpcUnaryExchange::Impl {
  GrpcCallOptions options;
  std::string request;  // the length-prefixed message
  std::size_t request_sent = 0;
  nghttp2_session* session = nullptr;
  std::int32_t stream_id = -1;

  std::map<std::string, std::string> headers;   // the response headers
  std::map<std::string, std::string> trailers;  // the trailers (or the headers of a trailers-only response)
  bool in_trailers = false;
  std::size_t header_bytes = 0;
  std::string body;  // DATA as received: length-prefixed messages
  bool received_anything = false;
  bool stream_closed = false;
  std::uint32_t close_error = 0;  // RST_STREAM / GOAWAY code when the stream ended abnormally
  std::optional<Status> failure;  // set once the call cannot succeed any more
  std::string protocol_error;     // nghttp2's own words about the last protocol error

  ~Impl() {
    if (session != nullptr) nghttp2_session_del(session);
  }

  void FailOnce(Status s) {
    if (!failure) failure = std::move(s);
  }

  // ---- nghttp2 callbacks ----

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->hd.stream_id == self->stream_id) {
      // The first HEADERS of the response are its headers; a second block is the trailers. A
      // trailers-only response is one block with END_STREAM: its grpc-status is read from either.
      self->in_trailers = frame->headers.cat == NGHTTP2_HCAT_HEADERS;
    }
    return 0;
  }

  static int OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name,
                      std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                      void* user) {
    auto* self = static_cast<Impl*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != self->stream_id) return 0;
    self->received_anything = true;
    self->header_bytes += namelen + valuelen + 32;  // HPACK's accounting of a header field
    if (self->header_bytes > kMaxHeaderBytes) {
      self->FailOnce(Status(StatusCode::kResourceExhausted,
                            "response headers larger than " + std::to_string(kMaxHeaderBytes) + " bytes"));
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, self->stream_id, NGHTTP2_CANCEL);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    auto& into = self->in_trailers ? self->trailers : self->headers;
    into[std::string(reinterpret_cast<const char*>(name), namelen)] =
        std::string(reinterpret_cast<const char*>(value), valuelen);
    return 0;
  }

  static int OnDataChunk(nghttp2_session* session, std::uint8_t, std::int32_t stream_id,
                         const std::uint8_t* data, std::size_t len, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (stream_id != self->stream_id || self->failure) return 0;
    self->received_anything = true;
    // A unary response is one message: its prefix plus at most max_response_bytes.
    if (self->body.size() + len > self->options.max_response_bytes + kPrefixBytes) {
      self->FailOnce(Status(StatusCode::kResourceExhausted,
                            "response larger than the limit of " +
                                std::to_string(self->options.max_response_bytes) + " bytes"));
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
      return 0;
    }
    self->body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* self = static_cast<Impl*>(user);
    self->received_anything = true;
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.last_stream_id < self->stream_id &&
        !self->stream_closed) {
      self->FailOnce(Unavailable("server sent GOAWAY (" +
                                 std::string(nghttp2_http2_strerror(frame->goaway.error_code)) +
                                 ") before the call was processed"));
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, std::int32_t stream_id, std::uint32_t error_code, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (stream_id != self->stream_id) return 0;
    self->stream_closed = true;
    self->close_error = error_code;
    return 0;
  }

  static int OnError(nghttp2_session*, int, const char* msg, std::size_t len, void* user) {
    static_cast<Impl*>(user)->protocol_error.assign(msg, len);
    return 0;
  }

  static ssize_t ReadRequest(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                             std::uint32_t* data_flags, nghttp2_data_source*, void* user) {
    auto* self = static_cast<Impl*>(user);
    const std::size_t n = std::min(length, self->request.size() - self->request_sent);
    std::copy_n(reinterpret_cast<const std::uint8_t*>(self->request.data()) + self->request_sent, n, buf);
    self->request_sent += n;
    if (self->request_sent == self->request.size()) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  // The session cannot go on (nghttp2 gave up, or sent GOAWAY and wants no more I/O).
  void CheckSession() {
    if (stream_closed || failure) return;
    if (nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0) {
      FailOnce(Unavailable("HTTP/2 session ended before the response" +
                           (protocol_error.empty() ? std::string() : ": " + protocol_error) +
                           (received_anything ? "" : " (is it a gRPC server?)")));
    }
  }

  Result<std::string> Finish() const {
    if (failure) return *failure;
    if (!stream_closed) return Internal("the call has not ended");
    auto find = [&](const std::string& name) -> const std::string* {
      if (auto it = trailers.find(name); it != trailers.end()) return &it->second;
      if (auto it = headers.find(name); it != headers.end()) return &it->second;
      return nullptr;
    };
    const std::string* grpc_status = find("grpc-status");
    if (close_error != NGHTTP2_NO_ERROR && grpc_status == nullptr) {
      return Unavailable("server reset the stream (" + std::string(nghttp2_http2_strerror(close_error)) +
                         ")");
    }
    auto http_status = headers.find(":status");
    if (http_status == headers.end()) return Unavailable("response without :status (is it a gRPC server?)");
    if (http_status->second != "200") {
      return Unavailable("HTTP status " + http_status->second + " (is it a gRPC server?)");
    }
    auto content_type = headers.find("content-type");
    if (content_type == headers.end() || content_type->second.rfind("application/grpc", 0) != 0) {
      return Unavailable("response content-type is '" +
                         (content_type == headers.end() ? std::string() : content_type->second) +
                         "', not application/grpc");
    }
    if (grpc_status == nullptr) return Unavailable("response ended without grpc-status");
    int code = -1;
    if (!grpc_status->empty() && grpc_status->size() <= 3 &&
        std::all_of(grpc_status->begin(), grpc_status->end(), [](char c) { return c >= '0' && c <= '9'; })) {
      code = std::stoi(*grpc_status);
    }
    if (code < 0) return Unavailable("malformed grpc-status '" + grpc_status->substr(0, 32) + "'");
    if (code != 0) {
      const std::string* message = find("grpc-message");
      return Status(FromGrpcCode(code), "grpc-status " + std::to_string(code) + " (" + GrpcCodeName(code) +
                                            ")" + (message ? ": " + PercentDecode(*message) : std::string()));
    }
    // Exactly one length-prefixed, uncompressed message (we sent no grpc-accept-encoding but identity).
    if (body.size() < kPrefixBytes) {
      return Internal("response has " + std::to_string(body.size()) +
                      " bytes, not a length-prefixed message");
    }
    const auto* p = reinterpret_cast<const std::uint8_t*>(body.data());
    if (p[0] != 0)
      return Internal("response message is compressed (flag " + std::to_string(p[0]) +
                      "), none was accepted");
    const std::size_t length =
        (std::size_t{p[1]} << 24) | (std::size_t{p[2]} << 16) | (std::size_t{p[3]} << 8) | p[4];
    if (length > options.max_response_bytes) {
      return Status(StatusCode::kResourceExhausted, "response message of " + std::to_string(length) +
                                                        " bytes exceeds the limit of " +
                                                        std::to_string(options.max_response_bytes));
    }
    if (body.size() != kPrefixBytes + length) {
      return Internal("response message prefix says " + std::to_string(length) +
                      " bytes, the stream carried " + std::to_string(body.size() - kPrefixBytes));
    }
    return body.substr(kPrefixBytes);
  }
};

GrpcUnaryExchange::GrpcUnaryExchange(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcUnaryExchange::~GrpcUnaryExchange() = default;

Result<std::unique_ptr<GrpcUnaryExchange>> GrpcUnaryExchange::Create(std::string_view method,
                                                                     std::string_view request,
                                                                     const GrpcCallOptions& options) {
  if (method.empty() || method.front() != '/') return InvalidArgument("gRPC method must start with '/'");
  if (request.size() > 0xffffffffU) return InvalidArgument("request message too large");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->request.reserve(kPrefixBytes + request.size());
  const auto len = static_cast<std::uint32_t>(request.size());
  impl->request.push_back('\0');
  for (int shift = 24; shift >= 0; shift -= 8)
    impl->request.push_back(static_cast<char>((len >> shift) & 0xff));
  impl->request.append(request);

  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return Internal("nghttp2: out of memory");
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Impl::OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Impl::OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Impl::OnDataChunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Impl::OnFrameRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Impl::OnStreamClose);
  nghttp2_session_callbacks_set_error_callback2(cbs, &Impl::OnError);
  const int rv = nghttp2_session_client_new(&impl->session, cbs, impl.get());
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) return Internal(std::string("nghttp2: ") + nghttp2_strerror(rv));

  // Prior knowledge (h2c): the preface and our SETTINGS go first. No server push; large windows so
  // that a large List answer flows without waiting for WINDOW_UPDATEs (nghttp2 sends those itself
  // as the data is consumed).
  const std::array<nghttp2_settings_entry, 3> settings = {{
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(kMaxHeaderBytes)},
  }};
  if (int s = nghttp2_submit_settings(impl->session, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
      s != 0) {
    return Internal(std::string("nghttp2: ") + nghttp2_strerror(s));
  }
  if (int s = nghttp2_session_set_local_window_size(impl->session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
      s != 0) {
    return Internal(std::string("nghttp2: ") + nghttp2_strerror(s));
  }

  const std::string path(method);
  const std::string timeout = GrpcTimeout(options.timeout);
  const std::array<std::pair<std::string, std::string>, 9> fields = {{
      {":method", "POST"},
      {":scheme", "http"},
      {":path", path},
      {":authority", options.authority},
      {"content-type", "application/grpc"},
      {"te", "trailers"},
      {"grpc-timeout", timeout},
      {"grpc-accept-encoding", "identity"},
      {"user-agent", options.user_agent},
  }};
  std::vector<nghttp2_nv> nva;
  nva.reserve(fields.size());
  for (const auto& [name, value] : fields) nva.push_back(Header(name, value));
  nghttp2_data_provider provider{};
  provider.read_callback = &Impl::ReadRequest;
  impl->stream_id =
      nghttp2_submit_request(impl->session, nullptr, nva.data(), nva.size(), &provider, nullptr);
  if (impl->stream_id < 0) return Internal(std::string("nghttp2: ") + nghttp2_strerror(impl->stream_id));
  return std::unique_ptr<GrpcUnaryExchange>(new GrpcUnaryExchange(std::move(impl)));
}

void GrpcUnaryExchange::Output(std::string& out) {
  for (;;) {
    const std::uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(impl_->session, &data);
    if (n < 0) {
      impl_->FailOnce(Unavailable(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n))));
      return;
    }
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
  }
  impl_->CheckSession();
}

void GrpcUnaryExchange::Input(const std::uint8_t* data, std::size_t size) {
  if (Done()) return;
  const ssize_t n = nghttp2_session_mem_recv(impl_->session, data, size);
  if (n < 0) {
    impl_->FailOnce(Unavailable(
        std::string("HTTP/2 protocol error: ") +
        (impl_->protocol_error.empty() ? nghttp2_strerror(static_cast<int>(n)) : impl_->protocol_error) +
        (impl_->received_anything ? "" : " (is it a gRPC server?)")));
    return;
  }
  impl_->CheckSession();
}

void GrpcUnaryExchange::InputClosed() {
  if (Done()) return;
  impl_->FailOnce(Unavailable(impl_->received_anything
                                  ? "connection closed before the response ended"
                                  : "connection closed before any response (is it a gRPC server?)"));
}

void GrpcUnaryExchange::Fail(Status status) { impl_->FailOnce(std::move(status)); }

bool GrpcUnaryExchange::Done() const { return impl_->stream_closed || impl_->failure.has_value(); }

Result<std::string> GrpcUnaryExchange::Response() const { return impl_->Finish(); }

namespace {

// A connected non-blocking unix socket, closed on destruction.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// After a failed write: hands what the peer sent before it closed to the exchange (recv does not
// block; the socket is non-blocking), and the end of the stream when it is there.
void DrainAfterWriteError(int fd, GrpcUnaryExchange& ex, std::array<std::uint8_t, 16384>& buf) {
  while (!ex.Done()) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n > 0) {
      ex.Input(buf.data(), static_cast<std::size_t>(n));
    } else if (n == 0 || errno == ECONNRESET) {
      ex.InputClosed();
    } else if (errno != EINTR) {
      return;
    }
  }
}

int RemainingMs(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

}  // namespace

Result<std::string> GrpcUnaryCall(const std::string& socket_path, std::string_view method,
                                  std::string_view request, const GrpcCallOptions& options) {
  const Clock::time_point deadline = Clock::now() + options.timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path) {
    return InvalidArgument("unix socket path '" + socket_path + "' is empty or longer than " +
                           std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  socket_path.copy(addr.sun_path, socket_path.size());  // sun_path stays NUL-terminated (checked above)

  auto exchange = GrpcUnaryExchange::Create(method, request, options);
  if (!exchange.ok()) return exchange.status();
  GrpcUnaryExchange& ex = **exchange;

  Socket sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (sock.fd() < 0) return Unavailable("socket: " + ErrnoMessage(errno));
  // A unix socket connects at once or not at all (EAGAIN: the listener's backlog is full).
  if (::connect(sock.fd(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return Unavailable("connect " + socket_path + ": " + ErrnoMessage(errno));
  }

  std::string pending;
  std::size_t written = 0;
  std::array<std::uint8_t, 16384> buf{};
  while (true) {
    ex.Output(pending);
    while (written < pending.size()) {
      const ssize_t n = ::send(sock.fd(), pending.data() + written, pending.size() - written, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        // The peer may have answered and closed before reading the whole request (an HTTP/1.1
        // server rejecting the preface, say): what it sent says more than the failed write.
        const int write_errno = errno;
        DrainAfterWriteError(sock.fd(), ex, buf);
        if (!ex.Done()) ex.Fail(Unavailable("write: " + ErrnoMessage(write_errno)));
        break;
      }
      written += static_cast<std::size_t>(n);
    }
    if (written == pending.size()) {
      pending.clear();
      written = 0;
    }
    if (ex.Done()) break;

    // The deadline covers the whole call, also against a server that trickles bytes.
    const int left = RemainingMs(deadline);
    std::array<pollfd, 2> pfds{{{sock.fd(), static_cast<short>(POLLIN | (pending.empty() ? 0 : POLLOUT)), 0},
                                {options.cancel_fd, POLLIN, 0}}};
    const nfds_t nfds = options.cancel_fd >= 0 ? 2 : 1;
    const int ready = left > 0 ? ::poll(pfds.data(), nfds, left) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return Unavailable("poll: " + ErrnoMessage(errno));
    if (ready == 0) {
      return Status(StatusCode::kDeadlineExceeded, "no complete response within the deadline of " +
                                                       std::to_string(options.timeout.count()) + " ms");
    }
    // Readable, closed or broken: each of them means stop now (the descriptor is not read).
    if (nfds == 2 && (pfds[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0) {
      return Unavailable("cancelled");
    }
    const pollfd& pfd = pfds[0];
    if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = ::recv(sock.fd(), buf.data(), buf.size(), 0);
      // A unix socket whose peer closed without reading all we sent reports ECONNRESET once the
      // data it did send has been read: the same end of the stream.
      if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        ex.InputClosed();
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        ex.Fail(Unavailable("read: " + ErrnoMessage(errno)));
      } else if (n > 0) {
        ex.Input(buf.data(), static_cast<std::size_t>(n));
      }
    }
  }
  return ex.Response();
}

}  // namespace hyperaccel::rpc
