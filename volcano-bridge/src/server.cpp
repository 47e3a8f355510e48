#include "hyperaccel/bridge/server.h"

#include <unistd.h>

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
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "hyperaccel/common/admin_server.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/tcp_listener.h"

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
// An idle connection's first read takes up to this much (the request line and headers, usually
// all of them); the buffer grows from there. Small, so that many idle connections cost little.
constexpr size_t kFirstReadBytes = size_t{4} * 1024;
// What a lingering connection reads (and drops) at a time.
constexpr size_t kReadBufferBytes = size_t{64} * 1024;
// A response write or a TLS handshake that takes longer than this is dropped.
constexpr auto kWriteTimeout = std::chrono::seconds(10);
constexpr auto kHandshakeTimeout = std::chrono::seconds(1);
// How long an error answer's connection reads and drops what the client still sends.
constexpr auto kLingerTimeout = std::chrono::seconds(2);
// How often deadlines are checked (so they are enforced to within this).
constexpr auto kDeadlineTick = std::chrono::milliseconds(50);
// Dropped connections are logged at most this often (an attack must not flood the log).
constexpr auto kDropLogInterval = std::chrono::seconds(10);
// Stop() waits this long for requests in flight before it closes their connections.
constexpr auto kStopTimeout = std::chrono::seconds(15);
// How many steps (parse, read, write) a plain TCP connection takes one after another on the
// stack before it goes back to the event loop (a pipelined or finely chunked request must not
// grow the stack without bound).
constexpr int kMaxInlineSteps = 16;

// True for the errors of a non-blocking call that only mean "not now".
bool WouldBlock(const beast::error_code& ec) {
  return ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::interrupted;
}

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

// The bytes of request bodies held at once (--max-inflight-body-bytes). A body reserves its
// announced length before it is read (a chunked body, as it arrives) and gives it back once it
// has been handled.
class BodyBudget {
 public:
  explicit BodyBudget(size_t limit) : limit_(limit) {}
  bool Reserve(size_t bytes) {
    size_t held = held_.load(std::memory_order_relaxed);
    do {
      if (bytes > limit_ - std::min(held, limit_)) return false;
    } while (!held_.compare_exchange_weak(held, held + bytes, std::memory_order_relaxed));
    return true;
  }
  void Release(size_t bytes) { held_.fetch_sub(bytes, std::memory_order_relaxed); }
  size_t held() const { return held_.load(std::memory_order_relaxed); }
  size_t limit() const { return limit_; }

 private:
  const size_t limit_;
  std::atomic<size_t> held_{0};
};

bool IsFormEncoded(std::string_view content_type) {
  return StartsWith(content_type, "application/x-www-form-urlencoded");
}

// A Beast body type that reads a request body straight into a JsonBuffer from the pool (reserved
// to the announced Content-Length), so the body is copied once, from the socket buffer. The
// parser enforces --max-body-bytes; form-encoded bodies over kFormLimit fail here (body_limit),
// before they are read when they announce their length; so do bodies the in-flight budget cannot
// take (`over_budget` then says so).
struct JsonBody {
  struct value_type {
    JsonBuffer buffer;
    BufferPool* pool = nullptr;
    BodyBudget* budget = nullptr;
    size_t reserved = 0;  // bytes of `budget` this body holds
    bool over_budget = false;

    void ReleaseBudget() {
      if (budget != nullptr && reserved > 0) budget->Release(reserved);
      reserved = 0;
    }
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
      if (!Reserve(announced)) {
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
      const size_t bytes = beast::buffer_bytes(buffers);
      if (bytes > limit_ - body_.buffer.size()) {
        ec = http::error::body_limit;
        return 0;
      }
      // A chunked body reserves its bytes as they come.
      if (body_.buffer.size() + bytes > body_.reserved &&
          !Reserve(body_.buffer.size() + bytes - body_.reserved)) {
        ec = http::error::body_limit;
        return 0;
      }
      size_t n = 0;
      for (const auto b : beast::buffers_range_ref(buffers)) {
        // Bytes read into the buffer's own tail (ReadBody) are taken where they are.
        if (b.data() == body_.buffer.tail() && b.size() <= body_.buffer.room()) {
          body_.buffer.Commit(b.size());
        } else {
          body_.buffer.Append(std::string_view(static_cast<const char*>(b.data()), b.size()));
        }
        n += b.size();
      }
      ec = {};
      return n;
    }

    void finish(beast::error_code& ec) { ec = {}; }

   private:
    bool Reserve(size_t bytes) {
      if (bytes == 0 || body_.budget == nullptr) return true;
      if (!body_.budget->Reserve(bytes)) {
        body_.over_budget = true;
        return false;
      }
      body_.reserved += bytes;
      return true;
    }

    const http::fields& fields_;
    value_type& body_;
    size_t limit_ = std::numeric_limits<size_t>::max();
  };
};

using Request = http::request<JsonBody>;

// What the connections share with the server. Constant while serving, except the members with
// their own synchronisation.
struct Shared {
  explicit Shared(size_t inflight_limit) : budget(inflight_limit) {}
  Bridge* bridge = nullptr;
  metrics::Registry* registry = nullptr;
  ServerOptions options;
  std::string prefix;  // "" or "/v1"
  BufferPool buffers;
  BodyBudget budget;
  metrics::Counter* dropped = nullptr;  // connections closed by a limit or deadline, by reason

  void CountDropped(const char* reason) const {
    if (dropped != nullptr) dropped->Inc({reason});
  }
};

// An open connection, as the server's housekeeping sees it. The calls post to its event loop.
class Connection {
 public:
  virtual ~Connection() = default;
  // Closes the connection if its deadline (idle keep-alive, stalled request) has passed.
  virtual void CloseIfExpired(Clock::time_point now) = 0;
  // Closes the connection unless a request is in flight (Stop()).
  virtual void CloseIfIdle() = 0;
  // False while a request is being handled or answered (the connection is then not closed to
  // make room for another).
  virtual bool Evictable() const = 0;
  // Closes the connection to make room for another (a connection limit).
  virtual void Evict(const char* reason) = 0;
};

// The open connections, oldest first, with their client addresses: the limits on how many (in
// total and per client), and Stop()'s wait for them to finish.
class ConnectionSet {
 public:
  struct Slot {
    std::weak_ptr<Connection> connection;
    asio::ip::address peer;
    bool counted = true;  // false once chosen to make room (it no longer counts against the limits)
  };
  using Entry = std::list<Slot>::iterator;

  ConnectionSet(size_t limit, size_t per_client)
      : limit_(std::max<size_t>(1, limit)), per_client_(std::max<size_t>(1, per_client)) {}

  // Registers a connection from `peer`, first choosing connections to close to make room for it
  // within the limits (the caller closes them, outside the lock). nullopt once stopping, or when
  // nothing can make room (every connection of the client is busy); the caller closes `c` then.
  std::optional<Entry> Add(std::weak_ptr<Connection> c, const asio::ip::address& peer,
                           std::vector<std::pair<std::shared_ptr<Connection>, const char*>>* evict) {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return std::nullopt;
    if (per_peer_[peer] >= per_client_) {
      auto victim = OldestEvictable(peer);
      if (!victim) return Refused(peer);
      evict->emplace_back(std::move(victim), "client_limit");
    } else if (counted_ >= limit_) {
      auto busiest = std::max_element(per_peer_.begin(), per_peer_.end(),
                                      [](const auto& a, const auto& b) { return a.second < b.second; });
      auto victim = OldestEvictable(busiest->first);
      if (!victim) return Refused(peer);
      evict->emplace_back(std::move(victim), "connection_limit");
    }
    ++per_peer_[peer];
    ++counted_;
    return open_.insert(open_.end(), Slot{std::move(c), peer, true});
  }

  // Called by a connection as it is destroyed.
  void Remove(Entry e) {
    std::lock_guard<std::mutex> lock(mu_);
    if (e->counted) Uncount(*e);
    open_.erase(e);
    if (open_.empty()) drained_.notify_all();
  }

  template <typename F>
  void ForEach(F&& f) {
    std::vector<std::shared_ptr<Connection>> open;
    {
      std::lock_guard<std::mutex> lock(mu_);
      open.reserve(open_.size());
      for (const auto& slot : open_) {
        if (auto c = slot.connection.lock()) open.push_back(std::move(c));
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
  // The oldest counted connection of `peer` not busy with a request, uncounted; null if none.
  // Caller holds mu_.
  std::shared_ptr<Connection> OldestEvictable(const asio::ip::address& peer) {
    for (auto& slot : open_) {
      if (!slot.counted || slot.peer != peer) continue;
      auto c = slot.connection.lock();
      if (!c || !c->Evictable()) continue;
      Uncount(slot);
      return c;
    }
    return nullptr;
  }

  std::nullopt_t Refused(const asio::ip::address& peer) {
    if (per_peer_[peer] == 0) per_peer_.erase(peer);
    return std::nullopt;
  }

  void Uncount(Slot& slot) {
    slot.counted = false;
    --counted_;
    auto it = per_peer_.find(slot.peer);
    if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
  }

  const size_t limit_;
  const size_t per_client_;
  std::mutex mu_;
  std::condition_variable drained_;
  std::list<Slot> open_;
  std::map<asio::ip::address, size_t> per_peer_;  // counted connections by client address
  size_t counted_ = 0;
  bool stopping_ = false;
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
    if (parser_) parser_->get().body().ReleaseBudget();
    load_.fetch_sub(1, std::memory_order_relaxed);
    if (entry_) set_.Remove(*entry_);
  }

  auto executor() { return stream_.get_executor(); }

  void Start(ConnectionSet::Entry entry) {
    entry_ = entry;
    if constexpr (kTls) {
      SetDeadline(kHandshakeTimeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->Close();
                                self->ReadRequest();
                              });
    } else {
      // Non-blocking from the start (the ioctl asio would make before the first read), so that
      // reads of bytes that have already arrived and answer writes can be made right away, and
      // their handlers run without a round through the event loop (each of those costs an
      // epoll_wait). Without it every step goes through the event loop, as for TLS.
      // non_blocking(), not native_non_blocking(): only the user-level mode makes asio's
      // synchronous read_some and write_some return would_block; with the native mode alone they
      // poll until the client sends or reads, and a client that stalls would hold the event loop
      // and every connection on it.
      beast::error_code ec;
      socket().non_blocking(true, ec);
      inline_io_ = !ec;
      ReadRequest();
    }
  }

  void CloseIfExpired(Clock::time_point now) override {
    if (deadline_.load(std::memory_order_relaxed) > now.time_since_epoch().count()) return;
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->deadline_.load(std::memory_order_relaxed) <= Clock::now().time_since_epoch().count()) {
        self->shared_.CountDropped(self->DeadlineName());
        self->Close();
      }
    });
  }

  bool Evictable() const override { return !busy_.load(std::memory_order_relaxed); }

  void Evict(const char* reason) override {
    shared_.CountDropped(reason);
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (!self->busy_.load(std::memory_order_relaxed)) self->Close();
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
  // Which deadline runs while reading a request.
  enum class Phase { kIdle, kHeader, kBody };

  const char* DeadlineName() const {
    if (state_ == State::kHandshake) return "handshake_timeout";
    if (state_ != State::kReading) return "write_timeout";
    switch (phase_) {
      case Phase::kIdle: return "idle_timeout";
      case Phase::kHeader: return "header_timeout";
      case Phase::kBody: return "body_timeout";
    }
    return "timeout";
  }

  void SetDeadline(Clock::duration d) {
    deadline_.store((Clock::now() + d).time_since_epoch().count(), std::memory_order_relaxed);
  }

  tcp::socket& socket() { return beast::get_lowest_layer(stream_); }

  void ReadRequest() {
    state_ = State::kReading;
    phase_ = Phase::kIdle;
    busy_.store(false, std::memory_order_relaxed);
    header_checked_ = false;
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(shared_.options.max_body_bytes);
    parser_->get().body().pool = &shared_.buffers;
    parser_->get().body().budget = &shared_.budget;
    if (buffer_.size() > 0) {
      StartHeaderDeadline();  // a pipelined request has begun already
      return ReadSome();
    }
    // Wait for the first bytes with the idle deadline. (The parser makes no progress, and so
    // does not call back, until a whole header has arrived: the header deadline must start here.)
    SetDeadline(std::chrono::seconds(shared_.options.keep_alive_seconds));
    stream_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = this->shared_from_this()](beast::error_code ec, size_t bytes) {
                              self->inline_steps_ = 0;
                              if (self->state_ == State::kClosed) return;
                              if (ec) return self->Close();  // closed, reset, or idle too long
                              self->buffer_.commit(bytes);
                              // A full read: the rest of the request has likely arrived too.
                              self->more_waiting_ = bytes == kFirstReadBytes;
                              self->StartHeaderDeadline();
                              self->ReadSome();
                            });
  }

  void StartHeaderDeadline() {
    phase_ = Phase::kHeader;
    SetDeadline(shared_.options.header_timeout);
  }

  // The body's deadline: body_timeout plus its length at body_bytes_per_second (the largest
  // allowed body when the length is not announced).
  void StartBodyDeadline() {
    phase_ = Phase::kBody;
    const auto announced = parser_->content_length();
    const double bytes = static_cast<double>(announced ? *announced : shared_.options.max_body_bytes);
    const double rate = static_cast<double>(std::max<size_t>(1, shared_.options.body_bytes_per_second));
    SetDeadline(shared_.options.body_timeout +
                std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(bytes / rate)));
  }

  // One step of the parser: over the bytes already read when there are some (inline, as
  // http::async_read_some would after a round through the event loop), else after reading more.
  void ReadSome() {
    if (buffer_.size() > 0 && InlineStep()) {
      beast::error_code ec;
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec != http::error::need_more) return OnRead(ec);
    }
    http::async_read_some(stream_, buffer_, *parser_,
                          [self = this->shared_from_this()](beast::error_code ec, size_t /*bytes*/) {
                            self->inline_steps_ = 0;
                            self->more_waiting_ = false;
                            self->OnRead(ec);
                          });
  }

  // Whether the next step may run on this stack (plain TCP, within kMaxInlineSteps).
  bool InlineStep() {
    if (!inline_io_ || inline_steps_ >= kMaxInlineSteps) return false;
    ++inline_steps_;
    return true;
  }

  void OnRead(beast::error_code ec) {
    if (state_ == State::kClosed) return;
    if (ec) return OnReadError(ec);
    // Progress does not extend a deadline: a request that trickles in still has to arrive in time.
    if (parser_->is_header_done() && !header_checked_) {
      header_checked_ = true;
      StartBodyDeadline();
      const Request& req = parser_->get();
      if (!parser_->is_done() && beast::iequals(req[http::field::expect], "100-continue")) {
        continue_.emplace(http::status::continue_, req.version());
        http::async_write(stream_, *continue_,
                          [self = this->shared_from_this()](beast::error_code wec, size_t /*bytes*/) {
                            self->inline_steps_ = 0;
                            if (wec) return self->Close();
                            self->ReadSome();
                          });
        return;
      }
    }
    if (!parser_->is_done()) return header_checked_ ? ReadBody() : ReadSome();
    OnRequest();
  }

  // The rest of a body whose length was announced: read from the socket straight into its
  // (pooled, reserved) JSON buffer, as much as has arrived in one read, rather than through the
  // connection's small read buffer a few KiB at a time and copied from there. The parser still
  // sees every byte (taken in place, JsonBody's put), so its limits and state stay in charge.
  // Chunked bodies are read through the parser.
  void ReadBody() {
    JsonBuffer& body = parser_->get().body().buffer;
    const auto announced = parser_->content_length();
    if (!announced || parser_->chunked() || *announced <= body.size()) return ReadSome();
    if (buffer_.size() > 0) {  // the body's first bytes, read with the header
      beast::error_code ec;
      const size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec) return OnReadError(ec);
      if (parser_->is_done()) return OnRequest();
      if (buffer_.size() > 0) return ReadSome();  // not all taken: let the parser lead
    }
    const size_t want = std::min(body.room(), static_cast<size_t>(*announced) - body.size());
    if (want == 0) return ReadSome();
    char* into = body.tail();
    // Read at once when the last read filled its buffer (the body is likely here already);
    // otherwise, or if nothing has arrived, wait for it in the event loop.
    if (more_waiting_ && InlineStep()) {
      beast::error_code ec;
      const size_t bytes = socket().read_some(asio::buffer(into, want), ec);
      if (!WouldBlock(ec)) return OnBodyRead(ec, into, bytes, want);
    }
    stream_.async_read_some(asio::buffer(into, want), [self = this->shared_from_this(), into, want](
                                                          beast::error_code ec, size_t bytes) {
      self->inline_steps_ = 0;
      self->OnBodyRead(ec, into, bytes, want);
    });
  }

  void OnBodyRead(beast::error_code ec, char* into, size_t bytes, size_t wanted) {
    if (state_ == State::kClosed) return;
    if (ec) return Close();  // closed or reset mid-body, or the body deadline passed
    more_waiting_ = bytes == wanted;
    beast::error_code pec;
    parser_->put(asio::const_buffer(into, bytes), pec);
    if (pec) return OnReadError(pec);
    if (parser_->is_done()) return OnRequest();
    ReadBody();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::body_limit && parser_->get().body().over_budget) return Reject(503);
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
    } else if (status == 503) {
      message = "busy: request bodies in flight would pass " + std::to_string(shared_.budget.limit()) +
                " bytes (--max-inflight-body-bytes); try again";
    } else if (status == 431) {
      message = "request header larger than " + std::to_string(kHeaderLimit) + " bytes";
    } else if (status == 404) {
      message = "no such path " + path;
    } else {
      message = "bad request";
    }
    if (auto verb = VerbAt(path)) {
      shared_.bridge->CountRejected(*verb, status,
                                    status == 413   ? "too_large"
                                    : status == 503 ? "busy"
                                                    : "http");
    }
    HA_LOG(kWarn, "rejected request").kv("path", path).kv("status", status).kv("error", message);
    Respond(status, "application/json", JsonError(message));
  }

  void OnRequest() {
    busy_.store(true, std::memory_order_relaxed);
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

  // Returns the body's buffer to the pool and its bytes to the in-flight budget.
  void GiveBody() {
    if (!parser_) return;
    shared_.buffers.Give(std::move(parser_->get().body().buffer));
    parser_->get().body().ReleaseBudget();
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
    if (status == 503) response_.set(http::field::retry_after, "1");
    state_ = State::kWriting;
    busy_.store(true, std::memory_order_relaxed);
    SetDeadline(kWriteTimeout);
    serializer_.emplace(response_);
    // Written at once as far as the socket takes it (the whole answer, unless the client is
    // not reading); the rest in the event loop.
    if (InlineStep()) {
      beast::error_code ec;
      http::write(socket(), *serializer_, ec);
      if (!WouldBlock(ec)) return OnWritten(ec, keep_alive, complete);
    }
    http::async_write(stream_, *serializer_,
                      [self = this->shared_from_this(), keep_alive, complete](beast::error_code ec, size_t) {
                        self->inline_steps_ = 0;
                        self->OnWritten(ec, keep_alive, complete);
                      });
  }

  void OnWritten(beast::error_code ec, bool keep_alive, bool complete) {
    serializer_.reset();
    response_ = {};
    if (ec) return Close();
    if (keep_alive) return ReadRequest();
    if (!complete) return Linger();
    Close();
  }

  // After an error answer sent before the request was read to its end: stop sending, then read
  // and drop what the client still sends until it closes, so that closing does not reset the
  // connection (and lose the answer) while the client is still writing.
  void Linger() {
    state_ = State::kLingering;
    busy_.store(false, std::memory_order_relaxed);
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
    // close() alone ends the connection as shutdown() + close() would (a FIN, or a reset when
    // unread bytes remain): the descriptor is not shared. (After the client's EOF a shutdown()
    // could only fail.)
    beast::error_code ignored;
    socket().close(ignored);
  }

  Stream stream_;
  Shared& shared_;
  ConnectionSet& set_;
  std::atomic<int>& load_;
  std::optional<ConnectionSet::Entry> entry_;
  std::atomic<Clock::rep> deadline_{Clock::time_point::max().time_since_epoch().count()};
  State state_ = State::kHandshake;
  Phase phase_ = Phase::kIdle;
  std::atomic<bool> busy_{false};  // handling or answering a request (read by ConnectionSet::Add)
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<JsonBody>> parser_;
  bool header_checked_ = false;
  std::optional<http::response<http::empty_body>> continue_;
  http::response<http::string_body> response_;
  std::optional<http::response_serializer<http::string_body>> serializer_;  // of response_
  bool inline_io_ = false;     // plain TCP in non-blocking mode: steps may run inline
  int inline_steps_ = 0;       // steps run inline since the last return to the event loop
  bool more_waiting_ = false;  // the last read filled its buffer (more has likely arrived)
};

}  // namespace

// The event loops: one thread each, each serving its own connections (a connection stays on the
// loop that accepted it), so a request is read, handled and answered on one thread without
// handing it between threads. The listening socket is on the first loop.
class HttpServer::Impl {
 public:
  Impl(Bridge* bridge, metrics::Registry* registry, const ServerOptions& options, std::string prefix,
       int threads, metrics::Counter* dropped)
      : shared_(options.max_inflight_body_bytes),
        connections_(static_cast<size_t>(std::max(1, options.max_connections)),
                     static_cast<size_t>(std::max(1, options.max_connections_per_client))),
        loops_(MakeLoops(threads)),
        acceptor_(loops_.front()->io),
        retry_(loops_.front()->io) {
    shared_.bridge = bridge;
    shared_.registry = registry;
    shared_.options = options;
    shared_.prefix = std::move(prefix);
    shared_.dropped = dropped;
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
    // Volcano opens up to 16 connections at once (Go keeps only 2 idle); an overflowing accept
    // queue resets connections.
    auto port_or = net::ListenTcp(acceptor_, host, port, kListenBacklog);
    if (!port_or.ok()) return port_or;
    // Accepted sockets inherit TCP_NODELAY from the listening socket (Linux copies it on
    // accept): one system call here instead of one per connection.
    beast::error_code ec;
    acceptor_.set_option(tcp::no_delay(true), ec);
    if (ec) return Unavailable("cannot set TCP_NODELAY on the listening socket: " + ec.message());
    return port_or;
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
  size_t inflight_bytes() const { return shared_.budget.held(); }

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
    // The client's address comes with the accept (no getpeername per connection).
    acceptor_.async_accept(accepted_peer_, [this](beast::error_code ec, tcp::socket accepted) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {
        net::RetryAcceptLater(retry_, ec, "accept failed", [this] { Accept(); });
        return;
      }
      beast::error_code ignored;
      const tcp::endpoint remote = accepted_peer_;
      // The loop is chosen now that the connection is here, not when the accept was started:
      // the previous connection (a client that opens one per request) has usually closed by
      // now, and the connection then stays on this loop with no hand-over to another thread.
      Loop& loop = LeastBusy();
      tcp::socket socket = std::move(accepted);
      if (&loop != loops_.front().get()) {
        const tcp::socket::native_handle_type fd = socket.release(ignored);
        socket = tcp::socket(loop.io);
        if (!ignored) socket.assign(remote.protocol(), fd, ignored);
        if (ignored) {
          ::close(fd);
          Accept();
          return;
        }
      }
      // TCP_NODELAY: inherited from the listening socket (Listen).
      if (tls_) {
        Serve(
            std::make_shared<HttpConnection<ssl::stream<tcp::socket>>>(
                ssl::stream<tcp::socket>(std::move(socket), *tls_), shared_, connections_, loop.connections),
            remote.address());
      } else {
        Serve(std::make_shared<HttpConnection<tcp::socket>>(std::move(socket), shared_, connections_,
                                                            loop.connections),
              remote.address());
      }
      Accept();
    });
  }

  template <class C>
  void Serve(std::shared_ptr<C> c, const asio::ip::address& peer) {
    std::vector<std::pair<std::shared_ptr<Connection>, const char*>> evict;
    auto entry = connections_.Add(c, peer, &evict);
    for (auto& [victim, reason] : evict) victim->Evict(reason);
    if (!evict.empty()) LogDropped(evict.front().second, peer);
    if (!entry) {  // stopping, or every connection of the client is busy: closed as `c` goes
      if (!connections_.stopping()) {
        shared_.CountDropped("refused");
        LogDropped("refused", peer);
      }
      return;
    }
    // Inline when the connection is on the listening socket's loop, else queued to its own.
    asio::dispatch(c->executor(), [c, e = *entry] { c->Start(e); });
  }

  // On the listening socket's loop only.
  void LogDropped(const char* reason, const asio::ip::address& peer) {
    const uint64_t closed = drops_.Add();
    if (closed == 0) return;
    HA_LOG(kWarn, "closed connections of clients over a connection limit")
        .kv("reason", reason)
        .kv("client", peer.to_string())
        .kv("closed", closed);
  }

  // Declaration order is destruction order reversed: the connections (owned by handlers queued
  // in the loops) go before the state they use.
  Shared shared_;
  ConnectionSet connections_;
  std::optional<ssl::context> tls_;
  std::vector<std::unique_ptr<Loop>> loops_;
  tcp::acceptor acceptor_;
  tcp::endpoint accepted_peer_;  // filled by the pending accept (one at a time)
  asio::steady_timer retry_;
  net::ThrottledCount drops_{kDropLogInterval};
};

HttpServer::HttpServer(Bridge* bridge, metrics::Registry* registry, ServerOptions options)
    : bridge_(bridge), registry_(registry), options_(std::move(options)) {
  if (registry_ == nullptr) return;
  dropped_ = &registry_->AddCounter(
      "hyperaccel_bridge_connections_dropped_total",
      "Connections closed by the server to make room for a newer one (a connection limit) or at a deadline",
      {"reason"});
  inflight_ = &registry_->AddGauge("hyperaccel_bridge_inflight_body_bytes",
                                   "Request body bytes being read or handled (--max-inflight-body-bytes)");
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  auto address = ParseListenAddress(options_.listen);
  if (!address.ok()) return address.status();
  if (options_.max_inflight_body_bytes < options_.max_body_bytes) {
    return InvalidArgument("--max-inflight-body-bytes (" + std::to_string(options_.max_inflight_body_bytes) +
                           ") is below --max-body-bytes (" + std::to_string(options_.max_body_bytes) +
                           "): a body of the largest allowed size could never be read");
  }
  std::string prefix = options_.path_prefix;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (!prefix.empty() && prefix.front() != '/') prefix.insert(prefix.begin(), '/');
  // One event loop per CPU (at least 2: a long request such as a large onSessionOpen does not
  // hold up the others), no more than --threads.
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = std::clamp(cpus, 2, std::max(2, options_.threads));
  auto impl = std::make_unique<Impl>(bridge_, registry_, options_, prefix, threads, dropped_);

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
    auto next_release = Clock::now();
    while (!reaper_cv_.wait_for(lock, kDeadlineTick, [this] { return stopping_; })) {
      lock.unlock();
      impl_->CloseExpired();
      if (inflight_ != nullptr) inflight_->Set(static_cast<double>(impl_->inflight_bytes()));
      if (Clock::now() >= next_release) {
        Housekeeping();
        next_release = Clock::now() + std::chrono::seconds(1);
      }
      lock.lock();
    }
  });
  HA_LOG(kInfo, "extender listening")
      .kv("address", host + ":" + std::to_string(port_))
      .kv("tls", tls)
      .kv("prefix", prefix.empty() ? "/" : prefix)
      .kv("threads", threads)
      .kv("max_connections", options_.max_connections)
      .kv("max_connections_per_client", options_.max_connections_per_client)
      .kv("max_body_bytes", options_.max_body_bytes)
      .kv("max_inflight_body_bytes", options_.max_inflight_body_bytes);
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
  const auto unused_since = Clock::now() - std::chrono::seconds(options_.idle_release_seconds);
  impl_->shared().buffers.Release(unused_since);
  bridge_->ReleaseIdleMemory(unused_since);
}

}  // namespace hyperaccel::bridge
