#include "hyperaccel/common/admin_server.h"

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <list>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "hyperaccel/common/log.h"
#include "hyperaccel/common/tcp_listener.h"

namespace hyperaccel {

Result<std::pair<std::string, int>> ParseListenAddress(const std::string& address) {
  std::string host = "0.0.0.0";
  std::string port_text = address;
  auto colon = address.rfind(':');
  if (colon != std::string::npos) {
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
    if (host.empty()) host = "0.0.0.0";
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  }
  int port = -1;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port < 0 || port > 65535) {
    return InvalidArgument("listen address '" + address + "': expected host:port with a port in 0..65535");
  }
  return std::make_pair(host, port);
}

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

constexpr int kListenBacklog = 256;

}  // namespace

// Everything below runs on the one event-loop thread, so nothing here needs a lock.
class AdminServer::Impl {
 public:
  Impl(const AdminServer& owner, const AdminLimits& limits)
      : owner_(owner), limits_(limits), acceptor_(io_), retry_(io_) {}

  Status Listen(const std::string& host, int port) {
    auto bound = net::ListenTcp(acceptor_, host, port, kListenBacklog);
    return bound.ok() ? Status::Ok() : bound.status();
  }

  int port() const { return acceptor_.local_endpoint().port(); }

  void Run() {
    Accept();
    io_.run();
  }

  // Called from another thread: closes everything, and Run() returns.
  void Stop() {
    asio::post(io_, [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
      retry_.cancel();
      while (!open_.empty()) open_.front()->Close();
      work_.reset();
    });
  }

 private:
  class Connection;
  using Entry = std::list<std::shared_ptr<Connection>>::iterator;

  // One accepted connection: reads a request (whole within request_timeout), answers it, and
  // reads the next if the client keeps the connection alive.
  class Connection : public std::enable_shared_from_this<Connection> {
   public:
    Connection(Impl& server, tcp::socket socket, asio::ip::address peer)
        : server_(server), stream_(std::move(socket)), peer_(std::move(peer)) {}

    const asio::ip::address& peer() const { return peer_; }

    void Start(Entry entry) {
      entry_ = entry;
      ReadRequest();
    }

    // Closes the socket (pending reads and writes end with an error and release the connection)
    // and stops counting the connection against the limits. Idempotent.
    void Close() {
      if (closed_) return;
      closed_ = true;
      const auto keep = shared_from_this();  // Forget() drops the server's reference
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream_.socket().close(ignored);
      server_.Forget(entry_, peer_);
    }

   private:
    void ReadRequest() {
      parser_.emplace();
      parser_->header_limit(server_.limits_.max_header_bytes);
      parser_->body_limit(server_.limits_.max_body_bytes);
      stream_.expires_after(server_.limits_.request_timeout);
      http::async_read(
          stream_, buffer_, *parser_,
          [self = shared_from_this()](beast::error_code ec, size_t /*bytes*/) { self->OnRead(ec); });
    }

    void OnRead(beast::error_code ec) {
      if (closed_) return;
      if (ec == http::error::header_limit) return Respond(431, "request header too large\n", false);
      if (ec == http::error::body_limit) return Respond(413, "request body too large\n", false);
      if (ec) {
        // A parse error is answered; the client going away, failing or being too slow is not.
        const bool malformed = ec.category() == beast::error_code(http::error::bad_target).category() &&
                               ec != http::error::end_of_stream && ec != http::error::partial_message;
        if (malformed) return Respond(400, "bad request\n", false);
        return Close();
      }
      const auto& req = parser_->get();
      const std::string_view target = req.target();
      const std::string_view path = target.substr(0, target.find('?'));
      const bool known = path == "/healthz" || path == "/readyz" || path == "/metrics";
      if (!known) return Respond(404, "no such path; try /healthz, /readyz or /metrics\n", req.keep_alive());
      if (req.method() != http::verb::get) return Respond(405, "only GET\n", req.keep_alive());
      if (path == "/metrics") {
        return Respond(200, server_.owner_.registry_ ? server_.owner_.registry_->Render() : std::string(),
                       req.keep_alive(), "text/plain; version=0.0.4; charset=utf-8");
      }
      const Check& check =
          path == "/healthz" || !server_.owner_.readyz_ ? server_.owner_.healthz_ : server_.owner_.readyz_;
      const Status s = check ? check() : Status::Ok();
      if (s.ok()) return Respond(200, "ok\n", req.keep_alive());
      Respond(503, s.message() + "\n", req.keep_alive());
    }

    void Respond(int status, std::string body, bool keep_alive,
                 std::string_view content_type = "text/plain; charset=utf-8") {
      response_ = {};
      response_.version(11);
      response_.result(static_cast<unsigned>(status));
      response_.set(http::field::content_type, content_type);
      if (status == 405) response_.set(http::field::allow, "GET");
      response_.body() = std::move(body);
      response_.keep_alive(keep_alive);
      response_.prepare_payload();
      stream_.expires_after(server_.limits_.write_timeout);
      http::async_write(stream_, response_,
                        [self = shared_from_this(), keep_alive](beast::error_code ec, size_t /*bytes*/) {
                          self->response_ = {};
                          if (ec || !keep_alive || self->closed_) return self->Close();
                          self->ReadRequest();
                        });
    }

    Impl& server_;
    beast::tcp_stream stream_;
    asio::ip::address peer_;
    Entry entry_{};
    bool closed_ = false;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    http::response<http::string_body> response_;
  };

  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {
        net::RetryAcceptLater(retry_, ec, "admin endpoint: accept failed", [this] { Accept(); });
        return;
      }
      beast::error_code peer_ec;
      const tcp::endpoint remote = socket.remote_endpoint(peer_ec);
      if (!peer_ec) {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);  // no Nagle wait between header and body
        Admit(std::make_shared<Connection>(*this, std::move(socket), remote.address()));
      }
      Accept();
    });
  }

  // Makes room for a connection from `c->peer()` within the limits, then serves it.
  void Admit(const std::shared_ptr<Connection>& c) {
    const size_t per_client = static_cast<size_t>(std::max(1, limits_.max_connections_per_client));
    const size_t total = static_cast<size_t>(std::max(1, limits_.max_connections));
    if (per_peer_[c->peer()] >= per_client) {
      DropOldest(c->peer(), "per-client limit");
    } else if (open_.size() >= total) {
      auto busiest = std::max_element(per_peer_.begin(), per_peer_.end(),
                                      [](const auto& a, const auto& b) { return a.second < b.second; });
      DropOldest(busiest->first, "connection limit");
    }
    ++per_peer_[c->peer()];
    c->Start(open_.insert(open_.end(), c));
  }

  void DropOldest(const asio::ip::address& peer, const char* why) {
    for (auto& c : open_) {
      if (c->peer() == peer) {
        c->Close();
        break;
      }
    }
    if (const uint64_t closed = drops_.Add(); closed > 0) {
      HA_LOG(kWarn, "admin endpoint: closed the oldest connections of clients over a limit")
          .kv("reason", why)
          .kv("client", peer.to_string())
          .kv("closed", closed);
    }
  }

  void Forget(Entry entry, const asio::ip::address& peer) {
    open_.erase(entry);
    auto it = per_peer_.find(peer);
    if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
  }

  const AdminServer& owner_;
  const AdminLimits limits_;
  // The connections, oldest first, and how many each client address holds. Declared before the
  // event loop: handlers still queued when it is destroyed own connections, which then Forget().
  std::list<std::shared_ptr<Connection>> open_;
  std::map<asio::ip::address, size_t> per_peer_;
  // Connections closed over a limit: logged at most every 10 s (an attack must not flood the log).
  net::ThrottledCount drops_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
};

AdminServer::AdminServer(metrics::Registry* registry, Check healthz, Check readyz)
    : registry_(registry), healthz_(std::move(healthz)), readyz_(std::move(readyz)) {}

AdminServer::~AdminServer() { Stop(); }

Status AdminServer::Start(const std::string& address) {
  if (address.empty()) return Status::Ok();
  auto parsed = ParseListenAddress(address);
  if (!parsed.ok()) return parsed.status();
  Stop();
  const auto& [host, port] = parsed.value();
  auto impl = std::make_unique<Impl>(*this, limits_);
  if (Status s = impl->Listen(host, port); !s.ok()) {
    return Unavailable("cannot listen on " + address + " (port in use?): " + s.message());
  }
  port_ = impl->port();
  impl_ = std::move(impl);
  thread_ = std::thread([impl = impl_.get()] { impl->Run(); });
  HA_LOG(kInfo, "admin endpoint listening").kv("address", host + ":" + std::to_string(port_));
  return Status::Ok();
}

void AdminServer::Stop() {
  if (impl_) impl_->Stop();
  if (thread_.joinable()) thread_.join();
  impl_.reset();
}

}  // namespace hyperaccel
