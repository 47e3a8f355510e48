#include "hyperaccel/rpc/h2_server.h"

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hyperaccel/common/log.h"

namespace hyperaccel::rpc {

GrpcStatus ToGrpcStatus(const Status& status) {
  GrpcCode code = GrpcCode::kOk;
  switch (status.code()) {
    case StatusCode::kOk: code = GrpcCode::kOk; break;
    case StatusCode::kInvalidArgument: code = GrpcCode::kInvalidArgument; break;
    case StatusCode::kNotFound: code = GrpcCode::kNotFound; break;
    case StatusCode::kUnavailable: code = GrpcCode::kUnavailable; break;
    case StatusCode::kFailedPrecondition: code = GrpcCode::kFailedPrecondition; break;
    case StatusCode::kDeadlineExceeded: code = GrpcCode::kDeadlineExceeded; break;
    case StatusCode::kResourceExhausted: code = GrpcCode::kResourceExhausted; break;
    case StatusCode::kAlreadyExists: code = GrpcCode::kAlreadyExists; break;
    case StatusCode::kConflict: code = GrpcCode::kAborted; break;
    case StatusCode::kInternal: code = GrpcCode::kInternal; break;
  }
  return {code, status.ok() ? std::string() : status.message()};
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kPrefixBytes = 5;  // compressed flag + 4-byte big-endian length
// Header bytes of one request (HPACK's accounting); gRPC's default limit is 8 KiB.
constexpr std::uint32_t kMaxHeaderListBytes = 16 * 1024;
constexpr std::int32_t kStreamWindow = 1 << 20;
constexpr std::int32_t kConnectionWindow = 4 << 20;
constexpr std::size_t kReadChunk = std::size_t{64} * 1024;
// Output gathered from nghttp2 before one send(): a unary answer (HEADERS, DATA, trailers) goes out
// in one system call.
constexpr std::size_t kSendChunk = std::size_t{64} * 1024;
constexpr std::size_t kMaxLoggedPath = 200;

// grpc-message: bytes outside printable ASCII, and '%', as %XX (PROTOCOL-HTTP2.md). A space at
// either end too: HTTP/2 (RFC 9113 8.2.1) forbids leading and trailing whitespace in a field value,
// and strict peers (nghttp2 among them) drop such a field.
std::string PercentEncode(std::string_view in) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char ch = in[i];
    const auto c = static_cast<unsigned char>(ch);
    const bool edge_space = c == ' ' && (i == 0 || i + 1 == in.size());
    if (c >= 0x20 && c <= 0x7e && c != '%' && !edge_space) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

// grpc-timeout: 1 to 8 digits and a unit (H M S m u n). nullopt when malformed.
std::optional<Clock::duration> ParseGrpcTimeout(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  std::int64_t n = 0;
  for (const char c : v.substr(0, v.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  using std::chrono::duration_cast;
  switch (v.back()) {
    case 'H': return duration_cast<Clock::duration>(std::chrono::hours(n));
    case 'M': return duration_cast<Clock::duration>(std::chrono::minutes(n));
    case 'S': return duration_cast<Clock::duration>(std::chrono::seconds(n));
    case 'm': return duration_cast<Clock::duration>(std::chrono::milliseconds(n));
    case 'u': return duration_cast<Clock::duration>(std::chrono::microseconds(n));
    case 'n': return duration_cast<Clock::duration>(std::chrono::nanoseconds(n));
    default: return std::nullopt;
  }
}

nghttp2_nv Nv(std::string_view name, std::string_view value) {
  // nghttp2 copies names and values (no NO_COPY flags) and never writes through these pointers.
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

std::string_view Bytes(const std::uint8_t* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// The server whose serving thread this is (none elsewhere): its own hand-overs need no wake-up.
thread_local const void* tl_serving = nullptr;

enum class Kind { kUnary, kDeferred, kStreaming };

struct Method {
  Kind kind = Kind::kUnary;
  Server::Unary unary;
  Server::DeferredUnary deferred;
  Server::Streaming streaming;
};

}  // namespace

struct Server::Impl {
  struct Connection;
  struct Call;

  explicit Impl(ServerOptions o) : options(std::move(o)) {}

  ServerOptions options;
  std::map<std::string, Method, std::less<>> methods;

  int listen_fd = -1;
  int epoll_fd = -1;
  int event_fd = -1;
  std::thread thread;
  std::mutex shutdown_mu;  // one Shutdown() joins
  std::atomic<bool> shutdown_requested{false};
  std::atomic<Clock::rep> shutdown_deadline{0};

  // Calls with news from Write/Finish (any thread), drained by the serving thread.
  std::mutex notify_mu;
  std::vector<std::shared_ptr<Call>> notified;
  std::vector<std::shared_ptr<Call>> notified_spare;  // swapped in and out: no allocation per drain

  // Serving thread only.
  std::unordered_map<int, std::unique_ptr<Connection>> connections;
  std::set<std::pair<Clock::time_point, Call*>> deadlines;  // deferred unary calls with grpc-timeout
  std::vector<Connection*> to_flush;
  std::set<std::pair<Clock::time_point, int>> handshakes;  // connections before their SETTINGS
  std::string read_buf = std::string(kReadChunk, '\0');
  bool draining = false;  // shutdown began: no accept, GOAWAY sent

  struct AtomicCounters {
    std::atomic<std::uint64_t> connections_accepted{0}, connections_refused{0}, connections_open{0}, calls{0},
        calls_rejected{0}, protocol_errors{0};
  } counters;
  std::atomic<std::uint64_t> logged_errors{0};

  // ---------------------------------------------------------------- one call (one HTTP/2 stream)
  struct Call {
    Impl* server = nullptr;
    std::int32_t stream_id = 0;

    // Serving thread only.
    Connection* conn = nullptr;  // null once the stream ended or its connection closed
    const Method* method = nullptr;
    bool path_seen = false;
    bool method_post = false;
    bool content_type_seen = false;
    bool content_type_ok = false;
    bool encoding_ok = true;
    bool timeout_bad = false;
    std::optional<Clock::duration> timeout;
    std::string path_for_error;  // only when the path is unknown
    std::string body;            // the request as received: prefix + message
    bool rejected = false;       // answered with an error before dispatch; input ignored
    bool dispatched = false;
    bool headers_submitted = false;
    bool data_deferred = false;  // the data provider returned NGHTTP2_ERR_DEFERRED
    bool end_sent = false;       // the frame carrying END_STREAM was sent (trailers or trailers-only)
    bool rst_after_end = false;  // refused before the client finished sending: reset once answered
    std::set<std::pair<Clock::time_point, Call*>>::iterator deadline_it;
    bool has_deadline = false;
    // The message being sent: its prefix and body, and how much of both went out.
    std::array<std::uint8_t, kPrefixBytes> cur_prefix{};
    std::string cur;
    std::size_t cur_sent = 0;
    bool cur_active = false;

    // Any thread, under mu.
    mutable std::mutex mu;
    std::deque<std::string> queue;  // messages not started, without prefix
    std::atomic<std::size_t>* conn_queued = nullptr;
    bool ended = false;  // Finish() called, or cancelled, or the connection closed: Write refuses
    bool finish_requested = false;
    GrpcStatus final_status;
    bool in_notify_list = false;
    bool done_ran = false;
    std::function<void(bool)> on_done;
    std::atomic<bool> cancelled{false};

    // Queues a message; false once ended or over the connection's bound.
    // Both hand the call to the serving thread under `mu`: once EndCall() (which takes `mu`) has
    // run, nothing of the server is touched any more, so a late Finish() cannot race Shutdown().
    bool Write(std::string message, bool replace_unsent, std::shared_ptr<Call> self) {
      std::lock_guard<std::mutex> lock(mu);
      {
        if (ended || conn_queued == nullptr) return false;
        const std::size_t add = message.size() + kPrefixBytes;
        if (replace_unsent) {
          for (const auto& m : queue) conn_queued->fetch_sub(m.size() + kPrefixBytes);
          queue.clear();
        }
        if (conn_queued->load() + add > server->options.max_queued_bytes_per_connection) {
          for (const auto& m : queue) conn_queued->fetch_sub(m.size() + kPrefixBytes);
          queue.clear();
          ended = true;  // no trailers: Advance() resets the stream
          overflowed = true;
        } else {
          conn_queued->fetch_add(add);
          queue.push_back(std::move(message));
        }
      }
      server->NotifyLocked(*this, std::move(self));
      return !overflowed;
    }

    void Finish(GrpcStatus status, std::optional<std::string> message, std::shared_ptr<Call> self) {
      std::lock_guard<std::mutex> lock(mu);
      if (ended) return;
      ended = true;
      finish_requested = true;
      if (message && status.ok() && conn_queued != nullptr) {
        conn_queued->fetch_add(message->size() + kPrefixBytes);
        queue.push_back(std::move(*message));
      }
      final_status = std::move(status);
      server->NotifyLocked(*this, std::move(self));
    }

    bool overflowed = false;  // under mu
  };

  // ---------------------------------------------------------------- one connection
  struct Connection {
    Impl* server = nullptr;
    int fd = -1;
    nghttp2_session* session = nullptr;
    std::unordered_map<std::int32_t, std::shared_ptr<Call>> calls;
    std::string out;  // bytes nghttp2 produced that the socket did not take yet
    std::size_t out_sent = 0;
    bool epollout = false;
    bool in_flush_list = false;
    bool close_now = false;
    // Until the client's preface and SETTINGS arrive, the connection has a deadline (an entry in
    // Impl::handshakes): a client that connects and sends nothing cannot hold a place forever.
    bool in_handshake = false;
    std::set<std::pair<Clock::time_point, int>>::iterator handshake_it;
    std::atomic<std::size_t> queued_bytes{0};

    ~Connection() {
      if (session != nullptr) nghttp2_session_del(session);
      if (fd >= 0) ::close(fd);
    }
  };

  // ---------------------------------------------------------------- cross-thread hand-over
  // `call.mu` is held by the caller.
  void NotifyLocked(Call& call, std::shared_ptr<Call> self) {
    if (call.in_notify_list) return;
    call.in_notify_list = true;
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(notify_mu);
      wake = notified.empty();
      notified.push_back(std::move(self));
    }
    // The serving thread drains the list after each event it handles: no wake-up needed from it.
    if (wake && tl_serving != this) Wake();
  }

  void Wake() const {
    const std::uint64_t one = 1;
    while (::write(event_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }

  // ---------------------------------------------------------------- ending calls
  // Runs the call's OnDone once and detaches it from its connection. Serving thread.
  void EndCall(Call& call, bool cancelled) {
    std::function<void(bool)> done;
    {
      std::lock_guard<std::mutex> lock(call.mu);
      if (call.conn_queued != nullptr) {
        std::size_t dropped = 0;
        for (const auto& m : call.queue) dropped += m.size() + kPrefixBytes;
        call.conn_queued->fetch_sub(dropped);
      }
      call.queue.clear();
      call.conn_queued = nullptr;
      call.ended = true;
      if (cancelled) call.cancelled = true;
      if (!call.done_ran) {
        call.done_ran = true;
        done = std::move(call.on_done);
      }
    }
    if (call.cur_active && call.conn != nullptr) {
      call.conn->queued_bytes.fetch_sub(call.cur.size() + kPrefixBytes);
      call.cur_active = false;
    }
    call.cur.clear();
    call.conn = nullptr;
    if (call.has_deadline) {
      deadlines.erase(call.deadline_it);
      call.has_deadline = false;
    }
    if (done) done(cancelled);
  }

  // ---------------------------------------------------------------- responses
  void SubmitTrailersOnly(Connection& c, Call& call, const GrpcStatus& st, const char* http_status = "200") {
    const std::string code = std::to_string(static_cast<int>(st.code));
    const std::string message = PercentEncode(st.message);
    std::array<nghttp2_nv, 4> nva = {Nv(":status", http_status), Nv("content-type", "application/grpc"),
                                     Nv("grpc-status", code), Nv("grpc-message", message)};
    const std::size_t n = message.empty() ? 3 : 4;
    nghttp2_submit_response(c.session, call.stream_id, nva.data(), n, nullptr);
    call.headers_submitted = true;
    MarkFlush(c);
  }

  // Answers an invalid request at once and stops its input (RST_STREAM NO_ERROR after the answer
  // when the client has not finished sending).
  void Reject(Connection& c, Call& call, const GrpcStatus& st, bool stream_ended,
              const char* http_status = "200") {
    if (call.rejected || call.headers_submitted) return;
    call.rejected = true;
    ++counters.calls_rejected;
    call.body.clear();
    call.body.shrink_to_fit();
    {
      std::lock_guard<std::mutex> lock(call.mu);
      call.ended = true;
    }
    SubmitTrailersOnly(c, call, st, http_status);
    // The RST_STREAM goes after the answer is out (OnFrameSend): submitted now, nghttp2 would drop
    // the answer of a stream it is closing.
    call.rst_after_end = !stream_ended;
  }

  static ssize_t ReadData(nghttp2_session* session, std::int32_t stream_id, std::uint8_t* buf,
                          std::size_t length, std::uint32_t* data_flags, nghttp2_data_source* source, void*) {
    auto* call = static_cast<Call*>(source->ptr);
    if (!call->cur_active) {
      GrpcStatus status;
      bool finish = false;
      {
        std::lock_guard<std::mutex> lock(call->mu);
        if (!call->queue.empty()) {
          call->cur = std::move(call->queue.front());
          call->queue.pop_front();
          call->cur_active = true;
          call->cur_sent = 0;
          const auto len = static_cast<std::uint32_t>(call->cur.size());
          call->cur_prefix = {0, static_cast<std::uint8_t>(len >> 24), static_cast<std::uint8_t>(len >> 16),
                              static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)};
        } else if (call->overflowed) {
          call->data_deferred = true;  // the stream is being reset (Advance), never ended with trailers
          return NGHTTP2_ERR_DEFERRED;
        } else if (call->finish_requested) {
          finish = true;
          status = call->final_status;
        }
      }
      if (!call->cur_active) {
        if (!finish) {
          call->data_deferred = true;
          return NGHTTP2_ERR_DEFERRED;
        }
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        const std::string code = std::to_string(static_cast<int>(status.code));
        const std::string message = PercentEncode(status.message);
        std::array<nghttp2_nv, 2> nva = {Nv("grpc-status", code), Nv("grpc-message", message)};
        const int rv = nghttp2_submit_trailer(session, stream_id, nva.data(), message.empty() ? 1 : 2);
        if (rv != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        return 0;
      }
    }
    const std::size_t total = kPrefixBytes + call->cur.size();
    std::size_t n = 0;
    while (n < length && call->cur_sent < total) {
      if (call->cur_sent < kPrefixBytes) {
        buf[n++] = call->cur_prefix[call->cur_sent++];
        continue;
      }
      const std::size_t off = call->cur_sent - kPrefixBytes;
      const std::size_t k = std::min(length - n, call->cur.size() - off);
      std::copy_n(call->cur.data() + off, k, buf + n);
      n += k;
      call->cur_sent += k;
    }
    if (call->cur_sent == total) {
      if (call->conn != nullptr) call->conn->queued_bytes.fetch_sub(total);
      call->cur_active = false;
      call->cur.clear();
    }
    return static_cast<ssize_t>(n);
  }

  // Sends what a Write/Finish queued: the response headers the first time, then resumes the data.
  void Advance(Call& call) {
    Connection* c = call.conn;
    if (c == nullptr) return;
    bool overflowed = false;
    bool finish = false;
    bool empty = false;
    GrpcStatus status;
    {
      std::lock_guard<std::mutex> lock(call.mu);
      call.in_notify_list = false;
      overflowed = call.overflowed;
      finish = call.finish_requested;
      empty = call.queue.empty();
      status = call.final_status;
    }
    if (overflowed) {
      // The client reads nothing: RST_STREAM ENHANCE_YOUR_CALM, which gRPC clients report as
      // RESOURCE_EXHAUSTED (trailers could wait forever behind the flow-control window).
      nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call.stream_id, NGHTTP2_ENHANCE_YOUR_CALM);
      LogOnce("stream ended: client does not read its messages", call.stream_id);
      MarkFlush(*c);
      return;
    }
    if (!call.headers_submitted) {
      if (finish && empty && !call.cur_active) {
        SubmitTrailersOnly(*c, call, status);
        return;
      }
      if (empty && !finish) return;
      std::array<nghttp2_nv, 2> nva = {Nv(":status", "200"), Nv("content-type", "application/grpc")};
      nghttp2_data_provider provider{};
      provider.source.ptr = &call;
      provider.read_callback = &Impl::ReadData;
      if (nghttp2_submit_response(c->session, call.stream_id, nva.data(), nva.size(), &provider) != 0) {
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, call.stream_id, NGHTTP2_INTERNAL_ERROR);
      }
      call.headers_submitted = true;
    } else if (call.data_deferred) {
      call.data_deferred = false;
      nghttp2_session_resume_data(c->session, call.stream_id);
    }
    MarkFlush(*c);
  }

  void DrainNotified() {
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(notify_mu);
        if (notified.empty()) return;
        notified_spare.swap(notified);
      }
      for (auto& call : notified_spare) Advance(*call);
      notified_spare.clear();
    }
  }

  void LogOnce(const char* what, std::int32_t stream) {
    // A hostile client must not flood the log: the first errors at kWarn, later ones at kDebug.
    const std::uint64_t n = logged_errors.fetch_add(1);
    if (n < 20) {
      HA_LOG(kWarn, what).kv("stream", stream);
    } else {
      HA_LOG(kDebug, what).kv("stream", stream);
    }
  }

  void LogConn(const char* what, const std::string& detail) {
    const std::uint64_t n = logged_errors.fetch_add(1);
    if (n < 20) {
      HA_LOG(kWarn, what).kv("error", detail);
    } else {
      HA_LOG(kDebug, what).kv("error", detail);
    }
  }

  // ---------------------------------------------------------------- dispatch
  void Dispatch(Connection& c, const std::shared_ptr<Call>& sp) {
    Call& call = *sp;
    if (call.rejected || call.dispatched) return;
    call.dispatched = true;
    const std::string_view body = call.body;
    if (body.size() < kPrefixBytes) {
      Reject(c, call,
             {GrpcCode::kInternal, body.empty() ? "no request message" : "truncated request message"}, true);
      return;
    }
    const auto* p = reinterpret_cast<const std::uint8_t*>(body.data());
    const std::size_t len =
        (std::size_t{p[1]} << 24) | (std::size_t{p[2]} << 16) | (std::size_t{p[3]} << 8) | p[4];
    if (body.size() != kPrefixBytes + len) {
      Reject(c, call,
             {GrpcCode::kInternal, body.size() < kPrefixBytes + len ? "truncated request message"
                                                                    : "more than one request message"},
             true);
      return;
    }
    ++counters.calls;
    const std::string_view request = body.substr(kPrefixBytes);
    switch (call.method->kind) {
      case Kind::kUnary: {
        std::string response;
        GrpcStatus st = call.method->unary(request, &response);
        std::optional<std::string> msg;
        if (st.ok()) msg = std::move(response);
        call.Finish(std::move(st), std::move(msg), sp);
        break;
      }
      case Kind::kDeferred: {
        if (call.timeout) {
          call.deadline_it = deadlines.emplace(Clock::now() + *call.timeout, &call).first;
          call.has_deadline = true;
        }
        call.method->deferred(request, std::make_shared<Responder>(sp));
        break;
      }
      case Kind::kStreaming: call.method->streaming(request, std::make_shared<Stream>(sp)); break;
    }
    call.body.clear();
  }

  class Responder final : public UnaryResponder {
   public:
    explicit Responder(std::shared_ptr<Call> call) : call_(std::move(call)) {}
    ~Responder() override { call_->Finish({GrpcCode::kInternal, "no answer"}, std::nullopt, call_); }
    Responder(const Responder&) = delete;
    Responder& operator=(const Responder&) = delete;
    void Finish(GrpcStatus status, std::string response) override {
      std::optional<std::string> msg;
      if (status.ok()) msg = std::move(response);
      call_->Finish(std::move(status), std::move(msg), call_);
    }
    bool Cancelled() const override { return call_->cancelled.load(); }

   private:
    std::shared_ptr<Call> call_;
  };

  class Stream final : public ServerStream {
   public:
    explicit Stream(std::shared_ptr<Call> call) : call_(std::move(call)) {}
    bool Write(std::string message, bool replace_unsent) override {
      return call_->Write(std::move(message), replace_unsent, call_);
    }
    void Finish(GrpcStatus status) override { call_->Finish(std::move(status), std::nullopt, call_); }
    void OnDone(std::function<void(bool cancelled)> done) override {
      std::unique_lock<std::mutex> lock(call_->mu);
      if (!call_->done_ran) {
        call_->on_done = std::move(done);
        return;
      }
      const bool cancelled = call_->cancelled.load();
      lock.unlock();
      if (done) done(cancelled);
    }

   private:
    std::shared_ptr<Call> call_;
  };

  // ---------------------------------------------------------------- nghttp2 callbacks
  static Call* CallOf(nghttp2_session* s, std::int32_t stream_id) {
    return static_cast<Call*>(nghttp2_session_get_stream_user_data(s, stream_id));
  }

  static int OnBeginHeaders(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
    auto* c = static_cast<Connection*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto call = std::make_shared<Call>();
    call->server = c->server;
    call->stream_id = frame->hd.stream_id;
    call->conn = c;
    call->conn_queued = &c->queued_bytes;
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, call.get());
    c->calls.emplace(frame->hd.stream_id, std::move(call));
    return 0;
  }

  static int OnHeader(nghttp2_session* s, const nghttp2_frame* frame, const std::uint8_t* name,
                      std::size_t namelen, const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                      void* user) {
    auto* c = static_cast<Connection*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    Call* call = CallOf(s, frame->hd.stream_id);
    if (call == nullptr) return 0;
    const std::string_view n = Bytes(name, namelen);
    const std::string_view v = Bytes(value, valuelen);
    if (n == ":path") {
      call->path_seen = true;
      auto it = c->server->methods.find(v);
      if (it != c->server->methods.end()) {
        call->method = &it->second;
      } else {
        call->path_for_error.assign(v.substr(0, kMaxLoggedPath));
      }
    } else if (n == ":method") {
      call->method_post = v == "POST";
    } else if (n == "content-type") {
      call->content_type_seen = true;
      call->content_type_ok = v.starts_with("application/grpc");
    } else if (n == "grpc-encoding") {
      call->encoding_ok = v == "identity";
    } else if (n == "grpc-timeout") {
      call->timeout = ParseGrpcTimeout(v);
      call->timeout_bad = !call->timeout.has_value();
    }
    return 0;
  }

  static int OnDataChunk(nghttp2_session* s, std::uint8_t, std::int32_t stream_id, const std::uint8_t* data,
                         std::size_t len, void* user) {
    auto* c = static_cast<Connection*>(user);
    Call* call = CallOf(s, stream_id);
    if (call == nullptr || call->rejected || call->dispatched) return 0;
    Impl* self = c->server;
    // One message: once its prefix is in, its announced length is checked against the limit
    // before any more of it is kept.
    const std::size_t had = call->body.size();
    if (had < kPrefixBytes) {
      const std::size_t take = std::min(len, kPrefixBytes - had);
      call->body.append(Bytes(data, take));
      data += take;
      len -= take;
      if (call->body.size() == kPrefixBytes) {
        const auto* p = reinterpret_cast<const std::uint8_t*>(call->body.data());
        if (p[0] != 0) {
          self->Reject(*c, *call, {GrpcCode::kInternal, "compressed request message without grpc-encoding"},
                       false);
          return 0;
        }
        const std::size_t mlen =
            (std::size_t{p[1]} << 24) | (std::size_t{p[2]} << 16) | (std::size_t{p[3]} << 8) | p[4];
        if (mlen > self->options.max_request_bytes) {
          self->Reject(*c, *call,
                       {GrpcCode::kResourceExhausted, "request message of " + std::to_string(mlen) +
                                                          " bytes exceeds the limit of " +
                                                          std::to_string(self->options.max_request_bytes)},
                       false);
          return 0;
        }
        call->body.reserve(kPrefixBytes + mlen);
      }
    }
    if (len == 0) return 0;
    const auto* p = reinterpret_cast<const std::uint8_t*>(call->body.data());
    const std::size_t mlen =
        (std::size_t{p[1]} << 24) | (std::size_t{p[2]} << 16) | (std::size_t{p[3]} << 8) | p[4];
    if (call->body.size() + len > kPrefixBytes + mlen) {
      self->Reject(*c, *call, {GrpcCode::kInternal, "more than one request message"}, false);
      return 0;
    }
    call->body.append(Bytes(data, len));
    return 0;
  }

  // The request's headers are complete: refuse what is not a call we serve, at once.
  void CheckHeaders(Connection& c, Call& call, bool stream_ended) {
    if (!call.method_post) {
      Reject(c, call, {GrpcCode::kInternal, "method must be POST"}, stream_ended, "405");
    } else if (!call.content_type_seen || !call.content_type_ok) {
      Reject(c, call, {GrpcCode::kInternal, "content-type must be application/grpc"}, stream_ended, "415");
    } else if (!call.path_seen) {
      Reject(c, call, {GrpcCode::kUnimplemented, "request without :path"}, stream_ended);
    } else if (call.method == nullptr) {
      Reject(c, call, {GrpcCode::kUnimplemented, "unknown method " + call.path_for_error}, stream_ended);
    } else if (!call.encoding_ok) {
      Reject(c, call, {GrpcCode::kUnimplemented, "grpc-encoding other than identity is not supported"},
             stream_ended);
    } else if (call.timeout_bad) {
      Reject(c, call, {GrpcCode::kInternal, "malformed grpc-timeout"}, stream_ended);
    }
  }

  static int OnFrameRecv(nghttp2_session* s, const nghttp2_frame* frame, void* user) {
    auto* c = static_cast<Connection*>(user);
    Impl* self = c->server;
    if (frame->hd.type == NGHTTP2_SETTINGS && c->in_handshake) self->EndHandshake(*c);
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
    Call* call = CallOf(s, frame->hd.stream_id);
    if (call == nullptr) return 0;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      self->CheckHeaders(*c, *call, end);
    }
    if (end && !call->rejected) {
      auto it = c->calls.find(frame->hd.stream_id);
      if (it != c->calls.end()) {
        const std::shared_ptr<Call> keep = it->second;
        self->Dispatch(*c, keep);
      }
    }
    return 0;
  }

  static int OnFrameSend(nghttp2_session* s, const nghttp2_frame* frame, void*) {
    if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      if (Call* call = CallOf(s, frame->hd.stream_id); call != nullptr) {
        call->end_sent = true;
        // Stop the rest of a refused request (RFC 9113 8.1: NO_ERROR after a complete response).
        if (call->rst_after_end) {
          nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, call->stream_id, NGHTTP2_NO_ERROR);
        }
      }
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session* s, std::int32_t stream_id, std::uint32_t error_code, void* user) {
    auto* c = static_cast<Connection*>(user);
    auto it = c->calls.find(stream_id);
    if (it == c->calls.end()) return 0;
    const std::shared_ptr<Call> call = std::move(it->second);
    c->calls.erase(it);
    nghttp2_session_set_stream_user_data(s, stream_id, nullptr);
    // Ended normally when our END_STREAM went out (trailers); anything else (RST_STREAM from the
    // client, a reset of ours) is a cancellation.
    (void)error_code;
    c->server->EndCall(*call, !call->end_sent);
    return 0;
  }

  // ---------------------------------------------------------------- I/O
  void MarkFlush(Connection& c) {
    if (!c.in_flush_list) {
      c.in_flush_list = true;
      to_flush.push_back(&c);
    }
  }

  void SetEpollOut(Connection& c, bool on) {
    if (c.epollout == on) return;
    c.epollout = on;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0U);
    ev.data.fd = c.fd;
    ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c.fd, &ev);
  }

  // Writes what nghttp2 has for the connection until the socket is full. False: close it.
  bool Flush(Connection& c) {
    for (;;) {
      if (c.out_sent == c.out.size()) {
        c.out.clear();
        c.out_sent = 0;
        while (c.out.size() < kSendChunk) {
          const std::uint8_t* data = nullptr;
          const ssize_t n = nghttp2_session_mem_send(c.session, &data);
          if (n < 0) {
            LogConn("HTTP/2 send failed; closing the connection", nghttp2_strerror(static_cast<int>(n)));
            return false;
          }
          if (n == 0) break;
          c.out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
        }
        if (c.out.empty()) {
          SetEpollOut(c, false);
          return nghttp2_session_want_read(c.session) != 0 || nghttp2_session_want_write(c.session) != 0;
        }
      }
      const ssize_t w = ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          SetEpollOut(c, true);
          return true;
        }
        return false;  // the peer is gone
      }
      c.out_sent += static_cast<std::size_t>(w);
    }
  }

  void CloseConnection(int fd) {
    auto it = connections.find(fd);
    if (it == connections.end()) return;
    std::unique_ptr<Connection> c = std::move(it->second);
    connections.erase(it);
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    if (c->in_handshake) EndHandshake(*c);
    // Every call still open ends as cancelled.
    auto calls = std::move(c->calls);
    for (auto& [id, call] : calls) {
      nghttp2_session_set_stream_user_data(c->session, id, nullptr);
      EndCall(*call, true);
    }
    if (c->in_flush_list) std::erase(to_flush, c.get());
    --counters.connections_open;
  }

  void OnReadable(Connection& c) {
    for (int i = 0; i < 16; ++i) {  // bounded: one busy connection does not starve the others
      const ssize_t n = ::recv(c.fd, read_buf.data(), read_buf.size(), 0);
      if (n == 0) {
        c.close_now = true;
        return;
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) c.close_now = true;
        return;
      }
      const ssize_t rv = nghttp2_session_mem_recv(
          c.session, reinterpret_cast<const std::uint8_t*>(read_buf.data()), static_cast<std::size_t>(n));
      if (rv < 0) {
        ++counters.protocol_errors;
        LogConn("HTTP/2 protocol error; closing the connection", nghttp2_strerror(static_cast<int>(rv)));
        // nghttp2 queued a GOAWAY: try to send it, then close.
        (void)Flush(c);
        c.close_now = true;
        return;
      }
      MarkFlush(c);
      if (static_cast<std::size_t>(n) < read_buf.size()) return;
    }
  }

  void Accept() {
    for (;;) {
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) LogConn("accept failed", ErrnoMessage(errno));
        return;
      }
      if (connections.size() >= options.max_connections) {
        ++counters.connections_refused;
        LogConn("connection refused",
                "max_connections (" + std::to_string(options.max_connections) + ") reached");
        ::close(fd);
        continue;
      }
      auto c = std::make_unique<Connection>();
      c->server = this;
      c->fd = fd;
      if (!NewSession(*c)) continue;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.fd = fd;
      if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        LogConn("epoll_ctl failed", ErrnoMessage(errno));
        continue;
      }
      ++counters.connections_accepted;
      ++counters.connections_open;
      Connection& ref = *c;
      ref.handshake_it = handshakes.emplace(Clock::now() + options.handshake_timeout, fd).first;
      ref.in_handshake = true;
      connections.emplace(fd, std::move(c));
      MarkFlush(ref);  // our SETTINGS
    }
  }

  bool NewSession(Connection& c) {
    nghttp2_session_callbacks* cbs = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return false;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Impl::OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &Impl::OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Impl::OnDataChunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Impl::OnFrameRecv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Impl::OnFrameSend);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Impl::OnStreamClose);
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    nghttp2_option_set_max_send_header_block_length(opt, std::size_t{64} * 1024);
    // nghttp2's HTTP messaging checks refuse an :authority holding '/', and gRPC Go clients before
    // 1.55 (kubelets among them) send the socket path there ("var/lib/kubelet/..."): every call of
    // such a kubelet would be reset. gRPC servers accept any authority; so do we, with the checks
    // off and what a gRPC request needs (:method POST, :path, content-type) checked in
    // CheckHeaders(). HTTP/2's framing rules (HPACK, flow control, stream states) stay nghttp2's.
    nghttp2_option_set_no_http_messaging(opt, 1);
    const int rv = nghttp2_session_server_new2(&c.session, cbs, &c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) return false;
    const std::array<nghttp2_settings_entry, 3> settings = {{
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(kStreamWindow)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxHeaderListBytes},
    }};
    if (nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, settings.data(), settings.size()) != 0)
      return false;
    return nghttp2_session_set_local_window_size(c.session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow) == 0;
  }

  void ExpireDeadlines() {
    const auto now = Clock::now();
    while (!deadlines.empty() && deadlines.begin()->first <= now) {
      Call* call = deadlines.begin()->second;
      deadlines.erase(deadlines.begin());
      call->has_deadline = false;
      call->cancelled = true;
      if (call->conn == nullptr) continue;
      auto it = call->conn->calls.find(call->stream_id);
      if (it == call->conn->calls.end()) continue;
      const std::shared_ptr<Call> keep = it->second;
      keep->Finish({GrpcCode::kDeadlineExceeded, "deadline exceeded"}, std::nullopt, keep);
    }
  }

  void EndHandshake(Connection& c) {
    handshakes.erase(c.handshake_it);
    c.in_handshake = false;
  }

  void ExpireHandshakes() {
    const auto now = Clock::now();
    while (!handshakes.empty() && handshakes.begin()->first <= now) {
      const int fd = handshakes.begin()->second;
      LogConn("connection closed: no HTTP/2 preface and SETTINGS in time",
              std::to_string(options.handshake_timeout.count()) + " ms");
      const std::size_t before = handshakes.size();
      CloseConnection(fd);  // erases its entry
      if (handshakes.size() == before) handshakes.erase(handshakes.begin());
    }
  }

  int EpollTimeoutMs(bool draining_now) const {
    Clock::time_point next = Clock::time_point::max();
    if (!deadlines.empty()) next = deadlines.begin()->first;
    if (!handshakes.empty()) next = std::min(next, handshakes.begin()->first);
    if (draining_now) next = std::min(next, Clock::time_point(Clock::duration(shutdown_deadline.load())));
    if (next == Clock::time_point::max()) return -1;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(next - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
  }

  void BeginDrain() {
    draining = true;
    if (listen_fd >= 0) {
      ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, listen_fd, nullptr);
      ::close(listen_fd);
      listen_fd = -1;
    }
    for (auto& [fd, c] : connections) {
      nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                            nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR, nullptr,
                            0);
      MarkFlush(*c);
    }
  }

  void Run() {
    tl_serving = this;
    Loop();
    // Normally empty by now; after an epoll failure, every call still ends (OnDone, responders
    // see Cancelled()) so that nothing refers to this server once its thread is gone.
    while (!connections.empty()) CloseConnection(connections.begin()->first);
  }

  void Loop() {
    std::array<epoll_event, 64> events{};
    for (;;) {
      const bool stop = shutdown_requested.load();
      if (stop && !draining) {
        BeginDrain();
        FlushAll();  // the GOAWAYs go out before idle connections close
      }
      if (draining) {
        // Connections with nothing left to serve close; at the deadline everything does.
        const bool past = Clock::now() >= Clock::time_point(Clock::duration(shutdown_deadline.load()));
        std::vector<int> done;
        for (auto& [fd, c] : connections) {
          if (past || (c->calls.empty() && c->out_sent == c->out.size())) done.push_back(fd);
        }
        for (const int fd : done) CloseConnection(fd);
        if (connections.empty()) return;
      }
      const int n =
          ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), EpollTimeoutMs(draining));
      if (n < 0 && errno != EINTR) {
        LogConn("epoll_wait failed", ErrnoMessage(errno));
        return;
      }
      for (int i = 0; i < n; ++i) {
        const int fd = events[static_cast<std::size_t>(i)].data.fd;
        const std::uint32_t ev = events[static_cast<std::size_t>(i)].events;
        if (fd == event_fd) {
          std::uint64_t v = 0;
          while (::read(event_fd, &v, sizeof v) < 0 && errno == EINTR) {
          }
          continue;
        }
        if (fd == listen_fd) {
          Accept();
          continue;
        }
        auto it = connections.find(fd);
        if (it == connections.end()) continue;
        Connection& c = *it->second;
        if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) OnReadable(c);
        if ((ev & EPOLLOUT) != 0) MarkFlush(c);
        if (c.close_now) CloseConnection(fd);
      }
      ExpireDeadlines();
      ExpireHandshakes();
      DrainNotified();
      FlushAll();
    }
  }

  void FlushAll() {
    // Flushing can end streams (OnStreamClose), which can queue more: loop until quiet.
    while (!to_flush.empty()) {
      std::vector<Connection*> batch;
      batch.swap(to_flush);
      for (Connection* c : batch) c->in_flush_list = false;
      for (Connection* c : batch) {
        if (!Flush(*c)) {
          CloseConnection(c->fd);
        }
      }
      DrainNotified();
    }
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() { Shutdown(std::chrono::steady_clock::now()); }

void Server::AddUnary(std::string path, Unary handler) {
  Method m;
  m.kind = Kind::kUnary;
  m.unary = std::move(handler);
  impl_->methods[std::move(path)] = std::move(m);
}

void Server::AddDeferredUnary(std::string path, DeferredUnary handler) {
  Method m;
  m.kind = Kind::kDeferred;
  m.deferred = std::move(handler);
  impl_->methods[std::move(path)] = std::move(m);
}

void Server::AddServerStreaming(std::string path, Streaming handler) {
  Method m;
  m.kind = Kind::kStreaming;
  m.streaming = std::move(handler);
  impl_->methods[std::move(path)] = std::move(m);
}

Status Server::Start(const std::string& socket_path) {
  Impl& s = *impl_;
  if (s.thread.joinable() || s.shutdown_requested) return FailedPrecondition("server already started");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path) {
    return InvalidArgument("unix socket path '" + socket_path + "' is empty or longer than " +
                           std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  socket_path.copy(addr.sun_path, socket_path.size());
  struct stat st {};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    return Status(StatusCode::kAlreadyExists, socket_path + " already exists");
  }
  bool bound = false;
  auto fail = [&](const std::string& what) {
    const int err = errno;
    if (bound) ::unlink(socket_path.c_str());  // ours until Start() succeeds
    if (s.listen_fd >= 0) ::close(s.listen_fd);
    if (s.epoll_fd >= 0) ::close(s.epoll_fd);
    if (s.event_fd >= 0) ::close(s.event_fd);
    s.listen_fd = s.epoll_fd = s.event_fd = -1;
    return Unavailable(what + ": " + ErrnoMessage(err));
  };
  s.listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s.listen_fd < 0) return fail("socket");
  if (::bind(s.listen_fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno == EADDRINUSE) {
      ::close(s.listen_fd);
      s.listen_fd = -1;
      return Status(StatusCode::kAlreadyExists, socket_path + " already exists");
    }
    return fail("bind " + socket_path);
  }
  bound = true;
  if (::listen(s.listen_fd, 128) != 0) return fail("listen " + socket_path);
  s.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (s.epoll_fd < 0) return fail("epoll_create1");
  s.event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s.event_fd < 0) return fail("eventfd");
  for (const int fd : {s.listen_fd, s.event_fd}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (::epoll_ctl(s.epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) return fail("epoll_ctl");
  }
  s.thread = std::thread([&s] { s.Run(); });
  const std::string name = s.options.thread_name.substr(0, 15);
  pthread_setname_np(s.thread.native_handle(), name.c_str());
  return Status::Ok();
}

void Server::Shutdown(std::chrono::steady_clock::time_point deadline) {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.shutdown_mu);
  if (!s.thread.joinable()) return;
  s.shutdown_deadline = deadline.time_since_epoch().count();
  s.shutdown_requested = true;
  s.Wake();
  s.thread.join();
  if (s.listen_fd >= 0) ::close(s.listen_fd);
  ::close(s.epoll_fd);
  ::close(s.event_fd);
  s.listen_fd = s.epoll_fd = s.event_fd = -1;
}

ServerCounters Server::Counters() const {
  const auto& c = impl_->counters;
  return {c.connections_accepted.load(), c.connections_refused.load(),
          c.connections_open.load(),     c.calls.load(),
          c.calls_rejected.load(),       c.protocol_errors.load()};
}

}  // namespace hyperaccel::rpc
