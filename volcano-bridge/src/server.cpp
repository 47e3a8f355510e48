#include "hyperaccel/bridge/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <iterator>
#include <nlohmann/json.hpp>
#include <vector>

#include "hyperaccel/common/admin_server.h"
#include "hyperaccel/common/log.h"

namespace hyperaccel::bridge {
namespace {
constexpr int kListenBacklog = 1024;
// Buffers for bodies up to this size are kept for reuse; larger ones are freed after the request.
constexpr size_t kReuseLimit = size_t{1} << 20;
constexpr size_t kMaxIdleBuffers = 16;
// cpp-httplib rejects larger form-encoded bodies (413) when it reads a body itself
// (CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH); the verbs read theirs, so they check it here.
constexpr size_t kFormLimit = 8192;

bool IsFormEncoded(const httplib::Request& req) {
  return req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0;
}

// The announced body length; 0 when absent or unreadable (chunked bodies).
size_t ContentLength(const httplib::Request& req) {
  const std::string text = req.get_header_value("Content-Length");
  size_t n = 0;
  std::from_chars(text.data(), text.data() + text.size(), n);
  return n;
}
}  // namespace

// Request body buffers shared by the worker threads (a buffer per thread would keep one for each
// of the 32 workers). Bodies over kReuseLimit get a buffer of their own, freed after the request.
class HttpServer::BufferPool {
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
    if (buffer.capacity() > kReuseLimit) return;  // freed here
    buffer.Clear();
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdleBuffers) idle_.push_back({std::move(buffer), std::chrono::steady_clock::now()});
  }

  void Release(std::chrono::steady_clock::time_point unused_since) {
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
    std::chrono::steady_clock::time_point last_used;
  };
  std::mutex mu_;
  std::vector<Idle> idle_;
};

HttpServer::HttpServer(Bridge* bridge, metrics::Registry* registry, ServerOptions options)
    : bridge_(bridge),
      registry_(registry),
      options_(std::move(options)),
      buffers_(std::make_unique<BufferPool>()) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  auto address = ParseListenAddress(options_.listen);
  if (!address.ok()) return address.status();
  const bool tls = !options_.tls_cert.empty() || !options_.tls_key.empty();
  if (tls) {
    if (options_.tls_cert.empty() || options_.tls_key.empty()) {
      return InvalidArgument("TLS needs both --tls-cert and --tls-key");
    }
    auto ssl = std::make_unique<httplib::SSLServer>(options_.tls_cert.c_str(), options_.tls_key.c_str());
    if (!ssl->is_valid()) {
      return InvalidArgument("cannot load TLS certificate '" + options_.tls_cert + "' or key '" +
                             options_.tls_key + "'");
    }
    server_ = std::move(ssl);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  const int threads = std::max(2, options_.threads);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  server_->set_tcp_nodelay(true);
  server_->set_keep_alive_max_count(100000);
  server_->set_keep_alive_timeout(options_.keep_alive_seconds);
  server_->set_read_timeout(10, 0);
  server_->set_write_timeout(10, 0);
  server_->set_payload_max_length(options_.max_body_bytes);

  std::string prefix = options_.path_prefix;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (!prefix.empty() && prefix.front() != '/') prefix.insert(prefix.begin(), '/');
  for (Verb verb : kAllVerbs) {
    const std::string path = prefix + "/" + VerbName(verb);
    // The handler reads the body itself, straight into a JSON buffer: cpp-httplib would first
    // collect it in a growing std::string, a second copy of bodies that reach hundreds of MB.
    server_->Post(path, [this, verb](const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& read) {
      const size_t announced = ContentLength(req);
      JsonBuffer body = buffers_->Take(announced);
      bool ok = false;
      if (req.is_multipart_form_data()) {
        // Not a JSON body: the parts are dropped and the verb sees an empty body.
        ok = read([](const httplib::MultipartFormData&) { return true; }, [](const char*, size_t) { return true; });
      } else {
        if (announced <= options_.max_body_bytes) body.Reserve(announced);
        ok = read([&body](const char* data, size_t n) {
          body.Append(std::string_view(data, n));
          return true;
        });
      }
      if (ok && IsFormEncoded(req) && body.size() > kFormLimit) {
        res.status = 413;
        ok = false;
      }
      if (!ok) {
        // cpp-httplib set 413 (over --max-body-bytes) or 400; the error handler writes the body.
        if (res.status < 400) res.status = 400;
        buffers_->Give(std::move(body));
        return;
      }
      Reply reply = bridge_->Handle(verb, body);
      buffers_->Give(std::move(body));
      res.status = reply.status;
      res.set_content(std::move(reply.body), "application/json");
    });
  }
  server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  // What the bridge predicts for this session: each tentatively allocated task, its node and the
  // cards placement will give it (read-only; for operators and the end-to-end demo).
  server_->Get("/debug/session", [this](const httplib::Request&, httplib::Response& res) {
    nlohmann::json allocations = nlohmann::json::array();
    for (const auto& t : bridge_->state().Tentatives()) {
      allocations.push_back({{"task", t.task_uid}, {"node", t.node}, {"job", t.job}, {"cards", t.card_ids}});
    }
    res.set_content(nlohmann::json{{"allocations", allocations}}.dump(), "application/json");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry_ ? registry_->Render() : std::string(),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  // Requests httplib rejects itself (body over the limit, unknown path, bad framing).
  server_->set_error_handler(httplib::Server::HandlerWithResponse([this, prefix](const httplib::Request& req,
                                                                                 httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // our own 400s
    std::string message;
    if (res.status == 413) {
      message =
          "request body larger than " + std::to_string(options_.max_body_bytes) + " bytes (--max-body-bytes)";
      if (req.get_header_value("Content-Type").find("x-www-form-urlencoded") != std::string::npos) {
        message = "form-encoded body over 8 KiB: send Content-Type: application/json";
      }
    } else if (res.status == 404) {
      message = "no such path " + req.path;
    } else {
      message = "bad request";
    }
    for (Verb verb : kAllVerbs) {
      if (req.path == prefix + "/" + VerbName(verb))
        bridge_->CountRejected(verb, res.status, res.status == 413 ? "too_large" : "http");
    }
    HA_LOG(kWarn, "rejected request").kv("path", req.path).kv("status", res.status).kv("error", message);
    std::string body = "{\"error\":";
    AppendJsonString(body, message);
    body += '}';
    res.set_content(body, "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));

  // cpp-httplib listens with a backlog of 5; Volcano opens up to 16 connections at once (Go keeps
  // only 2 idle), and an overflowing accept queue resets connections. Remember the listening
  // socket and widen its backlog once bound (listen() again only updates the backlog).
  int listen_fd = -1;
  server_->set_socket_options([&listen_fd](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd = fd;
  });
  const auto& [host, port] = address.value();
  port_ = port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (port_ > 0 && listen_fd >= 0) ::listen(listen_fd, kListenBacklog);
  if (port_ <= 0) {
    server_.reset();
    port_ = 0;
    return Unavailable("cannot listen on " + options_.listen + " (address in use?)");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  {
    std::lock_guard<std::mutex> lock(reaper_mu_);
    stopping_ = false;
  }
  reaper_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(reaper_mu_);
    while (!reaper_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; })) {
      lock.unlock();
      ReleaseIdleMemory();
      lock.lock();
    }
  });
  for (int i = 0; i < 2000 && !server_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  HA_LOG(kInfo, "extender listening")
      .kv("address", host + ":" + std::to_string(port_))
      .kv("tls", tls)
      .kv("prefix", prefix.empty() ? "/" : prefix)
      .kv("threads", threads);
  return Status::Ok();
}

void HttpServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(reaper_mu_);
    stopping_ = true;
  }
  reaper_cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

void HttpServer::ReleaseIdleMemory() {
  const auto unused_since =
      std::chrono::steady_clock::now() - std::chrono::seconds(options_.idle_release_seconds);
  buffers_->Release(unused_since);
  bridge_->ReleaseIdleMemory(unused_since);
}

}  // namespace hyperaccel::bridge
