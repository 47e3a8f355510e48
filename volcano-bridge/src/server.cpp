#include "hyperaccel/bridge/server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <iterator>
#include <limits>
#include <list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "hyperaccel/common/admin_server.h"
#include "hyperaccel/common/log.h"

namespace hyperaccel::bridge {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr int kListenBacklog = 1024;
// Buffers for bodies up to this size are kept for reuse; larger ones are freed after the request.
constexpr size_t kReuseLimit = size_t{1} << 20;
constexpr size_t kMaxIdleBuffers = 16;
// Form-encoded bodies (curl -d without a Content-Type) are refused above this size with a hint.
constexpr size_t kFormLimit = 8192;
constexpr uint32_t kHeaderLimit = 64 * 1024;
// Beast reads at most 64 KiB at a time; a buffer that size from the start reads a predicate body
// (about 100 KiB) in two reads instead of growing from 512 bytes.
constexpr size_t kReadBufferBytes = size_t{64} * 1024;
// A request (or a response write, or a TLS handshake) that makes no progress for this long is
// dropped; so is an error response's connection that the client does not close.
constexpr auto kReadTimeout = std::chrono::seconds(10);
constexpr auto kLingerTimeout = std::chrono::seconds(2);
// Stop() waits this long for requests in flight before it closes their connections.
constexpr auto kStopTimeout = std::chrono::seconds(15);

bool StartsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

std::string JsonError(std::string_view message) {
  std::string body = "{\"error\":";
  AppendJsonString(body, message);
  body += '}';
  return body;
}

// Request body buffers shared by the connections (one per connection would keep one for each of
// the idle keep-alive connections). Bodies over kReuseLimit get a buffer of their own, freed after
// the request.
class BufferPool {
 public:
  JsonBuffer Take(size_t expected_bytes) {
    if (expected_bytes <= kReuseLimit) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        JsonBuffer b = std::move(idle_.back().buffer);
        idle_.pop_back();
        return b;
      }
    }
    return JsonBuffer();
  }

  void Give(JsonBuffer buffer) {
    if (buffer.capacity() == 0 || buffer.capacity() > kReuseLimit) return;  // freed here
    buffer.Clear();
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdleBuffers) idle_.push_back({std::move(buffer), Clock::now()});
  }

  void Release(Clock::time_point unused_since) {
    std::vector<Idle> freed;
    std::lock_guard<std::mutex> lock(mu_);
    auto keep = std::stable_partition(idle_.begin(), idle_.end(),
                                      [&](const Idle& i) { return i.last_used > unused_since; });
    std::move(keep, idle_.end(), std::back_inserter(freed));
    idle_.erase(keep, idle_.end());
  }

 private:
  struct Idle {
    JsonBuffer buffer;
    Clock::time_point last_used;
  };
  std::mutex mu_;
  std::vector<Idle> idle_;
};

bool IsFormEncoded(std::string_view content_type) {
  return StartsWith(content_type, "application/x-www-form-urlencoded");
}

// A Beast body type that reads a request body straight into a JsonBuffer from the pool (reserved
// to the announced Content-Length), so the body is copied once, from the socket buffer. The
// parser enforces --max-body-bytes; form-encoded bodies over kFormLimit fail here (body_limit),
// before they are read when they announce their length.
struct JsonBody {
  struct value_type {
    JsonBuffer buffer;
    BufferPool* pool = nullptr;
  };

  class reader {
   public:
    // Made with the parser, before the header is read; init() runs once it has been.
    template <bool kIsRequest, class Fields>
    reader(http::header<kIsRequest, Fields>& header, value_type& body) : fields_(header), body_(body) {}

    void init(const boost::optional<std::uint64_t>& length, beast::error_code& ec) {
      if (IsFormEncoded(fields_[http::field::content_type])) limit_ = kFormLimit;
      const size_t announced = length ? static_cast<size_t>(*length) : 0;
      if (announced > limit_) {
        ec = http::error::body_limit;
        return;
      }
      if (body_.pool != nullptr) body_.buffer = body_.pool->Take(announced);
      body_.buffer.Clear();
      if (announced > 0) body_.buffer.Reserve(announced);
      ec = {};
    }

    template <class ConstBufferSequence>
    size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
      if (beast::buffer_bytes(buffers) > limit_ - body_.buffer.size()) {
        ec = http::error::body_limit;
        return 0;
      }
      size_t n = 0;
      for (const auto b : beast::buffers_range_ref(buffers)) {
        body_.buffer.Append(std::string_view(static_cast<const char*>(b.data()), b.size()));
        n += b.size();
      }
      ec = {};
      return n;
    }

    void finish(beast::error_code& ec) { ec = {}; }

   private:
    const http::fields& fields_;
    value_type& body_;
    size_t limit_ = std::numeric_limits<size_t>::max();
  };
};

using Request = http::request<JsonBody>;

// What the connections share with the server. Constant while serving, except the members with
// their own synchronisation.
struct Shared {
  Bridge* bridge = nullptr;
  metrics::Registry* registry = nullptr;
  ServerOptions options;
  std::string prefix;  // "" or "/v1"
  BufferPool buffers;
};

// An open connection, as the server's housekeeping sees it. The calls post to its event loop.
class Connection {
 public:
  virtual ~Connection() = default;
  // Closes the connection if its deadline (idle keep-alive, stalled request) has passed.
  virtual void CloseIfExpired(Clock::time_point now) = 0;
  // Closes the connection unless a request is in flight (Stop()).
  virtual void CloseIfIdle() = 0;
};

// The open connections: a limit on how many, and Stop()'s wait for them to finish.
class ConnectionSet {
 public:
  using Entry = std::list<std::weak_ptr<Connection>>::iterator;

  explicit ConnectionSet(size_t limit) : limit_(limit) {}

  // Registers a connection; nullopt once stopping (the caller closes it).
  std::optional<Entry> Add(std::weak_ptr<Connection> c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return std::nullopt;
    return open_.insert(open_.end(), std::move(c));
  }

  // Called by a connection as it is destroyed; resumes accepting if Full() paused it.
  void Remove(Entry e) {
    bool resume = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_.erase(e);
      if (paused_ && open_.size() < limit_ && !stopping_) {
        paused_ = false;
        resume = true;
      }
      if (open_.empty()) drained_.notify_all();
    }
    if (resume) resume_accept_();
  }

  // True (and accepting paused until a connection closes) when the limit is reached.
  bool Full(std::function<void()> resume_accept) {
    std::lock_guard<std::mutex> lock(mu_);
    if (open_.size() < limit_) return false;
    paused_ = true;
    resume_accept_ = std::move(resume_accept);
    return true;
  }

  template <typename F>
  void ForEach(F&& f) {
    std::vector<std::shared_ptr<Connection>> open;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& w : open_) {
        if (auto c = w.lock()) open.push_back(std::move(c));
      }
    }
    for (const auto& c : open) f(*c);
  }

  void SetStopping() {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }

  // Waits until every connection has closed; false on timeout.
  bool WaitDrained(Clock::duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return drained_.wait_for(lock, timeout, [this] { return open_.empty(); });
  }

  bool stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

 private:
  const size_t limit_;
  std::mutex mu_;
  std::condition_variable drained_;
  std::list<std::weak_ptr<Connection>> open_;
  bool paused_ = false;
  bool stopping_ = false;
  std::function<void()> resume_accept_;
};

// One accepted connection (plain TCP or TLS): reads requests one after another, each into a
// pooled JSON buffer, and answers each in turn. Everything runs on the connection's event loop;
// `deadline_` is also read by CloseIfExpired's caller.
template <class Stream>
class HttpConnection final : public Connection, public std::enable_shared_from_this<HttpConnection<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;

  // `load` counts the open connections of the event loop `stream` belongs to.
  HttpConnection(Stream stream, Shared& shared, ConnectionSet& set, std::atomic<int>& load)
      : stream_(std::move(stream)), shared_(shared), set_(set), load_(load) {
    load_.fetch_add(1, std::memory_order_relaxed);
  }
  ~HttpConnection() override {
    GiveBody();
    load_.fetch_sub(1, std::memory_order_relaxed);
    if (entry_) set_.Remove(*entry_);
  }

  auto executor() { return stream_.get_executor(); }

  void Start(ConnectionSet::Entry entry) {
    entry_ = entry;
    buffer_.reserve(kReadBufferBytes);
    if constexpr (kTls) {
      SetDeadline(kReadTimeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Close();
                                self->ReadRequest();
                              });
    } else {
      ReadRequest();
    }
  }

  void CloseIfExpired(Clock::time_point now) override {
    if (deadline_.load(std::memory_order_relaxed) > now.time_since_epoch().count()) return;
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->deadline_.load(std::memory_order_relaxed) <= Clock::now().time_since_epoch().count()) {
        self->Close();
      }
    });
  }

  void CloseIfIdle() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      const bool waiting =
          self->state_ == State::kHandshake ||
          (self->state_ == State::kReading && !self->parser_->got_some() && self->buffer_.size() == 0);
      if (waiting) self->Close();
    });
  }

 private:
  enum class State { kHandshake, kReading, kWriting, kLingering, kClosed };

  void SetDeadline(Clock::duration d) {
    deadline_.store((Clock::now() + d).time_since_epoch().count(), std::memory_order_relaxed);
  }

  tcp::socket& socket() { return beast::get_lowest_layer(stream_); }

  void ReadRequest() {
    state_ = State::kReading;
    header_checked_ = false;
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(shared_.options.max_body_bytes);
    parser_->get().body().pool = &shared_.buffers;
    SetDeadline(std::chrono::seconds(shared_.options.keep_alive_seconds));
    ReadSome();
  }

  void ReadSome() {
    http::async_read_some(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t /*bytes*/) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) return OnReadError(ec);
    SetDeadline(kReadTimeout);
    if (parser_->is_header_done() && !header_checked_) {
      header_checked_ = true;
      const Request& req = parser_->get();
      if (!parser_->is_done() && beast::iequals(req[http::field::expect], "100-continue")) {
        continue_.emplace(http::status::continue_, req.version());
        http::async_write(stream_, *continue_,
                          [self = this->shared_from_this()](beast::error_code wec, size_t /*bytes*/) {
                            if (wec) return self->Close();
                            self->ReadSome();
                          });
        return;
      }
    }
    if (!parser_->is_done()) return ReadSome();
    OnRequest();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::body_limit) return Reject(413);
    if (ec == http::error::header_limit) return Reject(431);
    // A parse error (rather than the connection ending or failing): the request is malformed.
    if (ec.category() == beast::error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return Reject(400);
    }
    Close();
  }

  // The request path ("" before the request line has been read).
  std::string Path() const {
    const std::string_view target = parser_->get().target();
    return std::string(target.substr(0, target.find('?')));
  }

  std::optional<Verb> VerbAt(std::string_view path) const {
    if (!StartsWith(path, shared_.prefix) || path.size() <= shared_.prefix.size() + 1 ||
        path[shared_.prefix.size()] != '/') {
      return std::nullopt;
    }
    const std::string_view name = path.substr(shared_.prefix.size() + 1);
    for (Verb verb : kAllVerbs) {
      if (name == VerbName(verb)) return verb;
    }
    return std::nullopt;
  }

  // Answers an error (with a JSON body saying why), counting it against the verb if the path is
  // one. The connection is closed after the answer unless the whole request has been read.
  void Reject(int status) {
    const std::string path = Path();
    std::string message;
    if (status == 413) {
      message = IsFormEncoded(parser_->get()[http::field::content_type])
                    ? "form-encoded body over 8 KiB: send Content-Type: application/json"
                    : "request body larger than " + std::to_string(shared_.options.max_body_bytes) +
                          " bytes (--max-body-bytes)";
    } else if (status == 431) {
      message = "request header larger than " + std::to_string(kHeaderLimit) + " bytes";
    } else if (status == 404) {
      message = "no such path " + path;
    } else {
      message = "bad request";
    }
    if (auto verb = VerbAt(path)) {
      shared_.bridge->CountRejected(*verb, status, status == 413 ? "too_large" : "http");
    }
    HA_LOG(kWarn, "rejected request").kv("path", path).kv("status", status).kv("error", message);
    Respond(status, "application/json", JsonError(message));
  }

  void OnRequest() {
    const Request& req = parser_->get();
    const std::string path = Path();
    if (auto verb = VerbAt(path)) {
      if (req.method() != http::verb::post) return Reject(404);
      JsonBuffer& body = parser_->get().body().buffer;
      if (StartsWith(req[http::field::content_type], "multipart/form-data")) {
        body.Clear();  // not a JSON body: the verb sees an empty one
      }
      Reply reply;
      try {
        reply = shared_.bridge->Handle(*verb, body);
      } catch (const std::exception& e) {
        HA_LOG(kError, "request failed").kv("path", path).kv("error", e.what());
        reply.status = 500;
        reply.body = JsonError(std::string("internal error: ") + e.what());
      }
      GiveBody();
      return Respond(reply.status, "application/json", std::move(reply.body));
    }
    if (req.method() == http::verb::get) {
      if (path == "/healthz" || path == "/readyz") return Respond(200, "text/plain", "ok\n");
      if (path == "/metrics") {
        return Respond(200, "text/plain; version=0.0.4; charset=utf-8",
                       shared_.registry ? shared_.registry->Render() : std::string());
      }
      // What the bridge predicts for this session: each tentatively allocated task, its node and
      // the cards placement will give it (read-only; for operators and the end-to-end demo).
      if (path == "/debug/session") {
        nlohmann::json allocations = nlohmann::json::array();
        for (const auto& t : shared_.bridge->state().Tentatives()) {
          allocations.push_back(
              {{"task", t.task_uid}, {"node", t.node}, {"job", t.job}, {"cards", t.card_ids}});
        }
        return Respond(200, "application/json", nlohmann::json{{"allocations", allocations}}.dump());
      }
    }
    Reject(404);
  }

  void GiveBody() {
    if (parser_) shared_.buffers.Give(std::move(parser_->get().body().buffer));
  }

  void Respond(int status, std::string_view content_type, std::string body) {
    const bool complete = parser_->is_done();
    const bool keep_alive = complete && parser_->get().keep_alive() && !set_.stopping();
    response_ = {};
    response_.version(parser_->get().version());
    response_.result(static_cast<unsigned>(status));
    response_.set(http::field::content_type, content_type);
    response_.body() = std::move(body);
    response_.keep_alive(keep_alive);
    response_.prepare_payload();
    state_ = State::kWriting;
    SetDeadline(kReadTimeout);
    http::async_write(stream_, response_,
                      [self = this->shared_from_this(), keep_alive, complete](beast::error_code ec, size_t) {
                        self->response_ = {};
                        if (ec) return self->Close();
                        if (keep_alive) return self->ReadRequest();
                        if (!complete) return self->Linger();
                        self->Close();
                      });
  }

  // After an error answer sent before the request was read to its end: stop sending, then read
  // and drop what the client still sends until it closes, so that closing does not reset the
  // connection (and lose the answer) while the client is still writing.
  void Linger() {
    state_ = State::kLingering;
    GiveBody();
    beast::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_send, ignored);
    SetDeadline(kLingerTimeout);  // however much the client still sends
    Drain();
  }

  void Drain() {
    buffer_.clear();
    socket().async_read_some(buffer_.prepare(kReadBufferBytes),
                             [self = this->shared_from_this()](beast::error_code ec, size_t /*bytes*/) {
                               if (ec || self->state_ == State::kClosed) return self->Close();
                               self->Drain();
                             });
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    deadline_.store(Clock::time_point::max().time_since_epoch().count(), std::memory_order_relaxed);
    beast::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }

  Stream stream_;
  Shared& shared_;
  ConnectionSet& set_;
  std::atomic<int>& load_;
  std::optional<ConnectionSet::Entry> entry_;
  std::atomic<Clock::rep> deadline_{Clock::time_point::max().time_since_epoch().count()};
  State state_ = State::kHandshake;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<JsonBody>> parser_;
  bool header_checked_ = false;
  std::optional<http::response<http::empty_body>> continue_;
  http::response<http::string_body> response_;
};

}  // namespace

// The event loops: one thread each, each serving its own connections (a connection stays on the
// loop that accepted it), so a request is read, handled and answered on one thread without
// handing it between threads. The listening socket is on the first loop.
class HttpServer::Impl {
 public:
  Impl(Bridge* bridge, metrics::Registry* registry, const ServerOptions& options, std::string prefix,
       int threads)
      : connections_(static_cast<size_t>(std::max(1, options.threads))),
        loops_(MakeLoops(threads)),
        acceptor_(loops_.front()->io),
        retry_(loops_.front()->io) {
    shared_.bridge = bridge;
    shared_.registry = registry;
    shared_.options = options;
    shared_.prefix = std::move(prefix);
  }

  Status LoadTls(const std::string& cert, const std::string& key) {
    tls_.emplace(ssl::context::tls_server);
    tls_->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression);
    beast::error_code ec;
    tls_->use_certificate_chain_file(cert, ec);
    if (!ec) tls_->use_private_key_file(key, ssl::context::pem, ec);
    if (ec) {
      return InvalidArgument("cannot load TLS certificate '" + cert + "' or key '" + key +
                             "': " + ec.message());
    }
    return Status::Ok();
  }

  // Binds and listens; returns the port.
  Result<int> Listen(const std::string& host, int port) {
    beast::error_code ec;
    tcp::resolver resolver(loops_.front()->io);
    auto found = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
    if (ec || found.empty()) return Unavailable("cannot resolve listen host '" + host + "': " + ec.message());
    const tcp::endpoint endpoint = found.begin()->endpoint();
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    // Volcano opens up to 16 connections at once (Go keeps only 2 idle); an overflowing accept
    // queue resets connections.
    if (!ec) acceptor_.listen(kListenBacklog, ec);
    if (ec) return Unavailable(ec.message());
    return static_cast<int>(acceptor_.local_endpoint().port());
  }

  // Starts accepting and the loops' threads.
  void Run() {
    asio::post(acceptor_.get_executor(), [this] { Accept(); });
    for (auto& loop : loops_) {
      loop->thread = std::thread([l = loop.get()] { l->io.run(); });
    }
  }

  void CloseExpired() {
    const auto now = Clock::now();
    connections_.ForEach([now](Connection& c) { c.CloseIfExpired(now); });
  }

  void Stop() {
    connections_.SetStopping();
    asio::post(acceptor_.get_executor(), [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      retry_.cancel();
    });
    connections_.ForEach([](Connection& c) { c.CloseIfIdle(); });
    if (!connections_.WaitDrained(kStopTimeout)) {
      HA_LOG(kWarn, "requests still in flight at shutdown: closing their connections");
    }
    for (auto& loop : loops_) loop->io.stop();
    for (auto& loop : loops_) {
      if (loop->thread.joinable()) loop->thread.join();
    }
  }

  Shared& shared() { return shared_; }

 private:
  struct Loop {
    std::atomic<int> connections{0};  // before `io`: its connections go with it and count down
    asio::io_context io{1};           // run by one thread
    asio::executor_work_guard<asio::io_context::executor_type> busy = asio::make_work_guard(io);
    std::thread thread;
  };

  static std::vector<std::unique_ptr<Loop>> MakeLoops(int n) {
    std::vector<std::unique_ptr<Loop>> loops;
    for (int i = 0; i < std::max(1, n); ++i) loops.push_back(std::make_unique<Loop>());
    return loops;
  }

  // The loop with the fewest connections, the listening socket's own on a tie (no hand-over).
  Loop& LeastBusy() {
    Loop* best = loops_.front().get();
    for (auto& loop : loops_) {
      if (loop->connections.load(std::memory_order_relaxed) <
          best->connections.load(std::memory_order_relaxed)) {
        best = loop.get();
      }
    }
    return *best;
  }

  void Accept() {
    if (connections_.stopping() || !acceptor_.is_open()) return;
    Loop& loop = LeastBusy();
    acceptor_.async_accept(loop.io, [this, &loop](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {
        // Out of file descriptors and the like: try again shortly rather than spin.
        HA_LOG(kWarn, "accept failed").kv("error", ec.message());
        retry_.expires_after(std::chrono::milliseconds(100));
        retry_.async_wait([this](beast::error_code wait) {
          if (!wait) Accept();
        });
        return;
      }
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (tls_) {
        Serve(std::make_shared<HttpConnection<ssl::stream<tcp::socket>>>(
            ssl::stream<tcp::socket>(std::move(socket), *tls_), shared_, connections_, loop.connections));
      } else {
        Serve(std::make_shared<HttpConnection<tcp::socket>>(std::move(socket), shared_, connections_,
                                                            loop.connections));
      }
      if (connections_.Full([this] { asio::post(acceptor_.get_executor(), [this] { Accept(); }); })) return;
      Accept();
    });
  }

  template <class C>
  void Serve(std::shared_ptr<C> c) {
    auto entry = connections_.Add(c);
    if (!entry) return;  // stopping: closed as `c` goes
    // Inline when the connection is on the listening socket's loop, else queued to its own.
    asio::dispatch(c->executor(), [c, e = *entry] { c->Start(e); });
  }

  // Declaration order is destruction order reversed: the connections (owned by handlers queued
  // in the loops) go before the state they use.
  Shared shared_;
  ConnectionSet connections_;
  std::optional<ssl::context> tls_;
  std::vector<std::unique_ptr<Loop>> loops_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
};

HttpServer::HttpServer(Bridge* bridge, metrics::Registry* registry, ServerOptions options)
    : bridge_(bridge), registry_(registry), options_(std::move(options)) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  auto address = ParseListenAddress(options_.listen);
  if (!address.ok()) return address.status();
  std::string prefix = options_.path_prefix;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (!prefix.empty() && prefix.front() != '/') prefix.insert(prefix.begin(), '/');
  // One event loop per CPU (at least 2: a long request such as a large onSessionOpen does not
  // hold up the others), no more than the connection limit.
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = std::clamp(cpus, 2, std::max(2, options_.threads));
  auto impl = std::make_unique<Impl>(bridge_, registry_, options_, prefix, threads);

  const bool tls = !options_.tls_cert.empty() || !options_.tls_key.empty();
  if (tls) {
    if (options_.tls_cert.empty() || options_.tls_key.empty()) {
      return InvalidArgument("TLS needs both --tls-cert and --tls-key");
    }
    if (Status s = impl->LoadTls(options_.tls_cert, options_.tls_key); !s.ok()) return s;
  }
  const auto& [host, port] = address.value();
  auto bound = impl->Listen(host, port);
  if (!bound.ok()) {
    return Unavailable("cannot listen on " + options_.listen +
                       " (address in use?): " + bound.status().message());
  }
  port_ = bound.value();
  impl->Run();
  impl_ = std::move(impl);
  {
    std::lock_guard<std::mutex> lock(reaper_mu_);
    stopping_ = false;
  }
  reaper_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(reaper_mu_);
    while (!reaper_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; })) {
      lock.unlock();
      Housekeeping();
      lock.lock();
    }
  });
  HA_LOG(kInfo, "extender listening")
      .kv("address", host + ":" + std::to_string(port_))
      .kv("tls", tls)
      .kv("prefix", prefix.empty() ? "/" : prefix)
      .kv("threads", threads)
      .kv("max_connections", std::max(1, options_.threads));
  return Status::Ok();
}

void HttpServer::Stop() {
  if (!impl_) return;
  impl_->Stop();  // the reaper keeps closing stalled connections meanwhile
  {
    std::lock_guard<std::mutex> lock(reaper_mu_);
    stopping_ = true;
  }
  reaper_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  impl_.reset();
}

void HttpServer::Housekeeping() {
  impl_->CloseExpired();
  const auto unused_since = Clock::now() - std::chrono::seconds(options_.idle_release_seconds);
  impl_->shared().buffers.Release(unused_since);
  bridge_->ReleaseIdleMemory(unused_since);
}

}  // namespace hyperaccel::bridge
