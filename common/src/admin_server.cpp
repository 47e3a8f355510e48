#include "hyperaccel/common/admin_server.h"

#include <httplib.h>

#include <charconv>
#include <chrono>

#include "hyperaccel/common/log.h"

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

AdminServer::AdminServer(metrics::Registry* registry, Check healthz, Check readyz)
    : registry_(registry), healthz_(std::move(healthz)), readyz_(std::move(readyz)) {}

AdminServer::~AdminServer() { Stop(); }

Status AdminServer::Start(const std::string& address) {
  if (address.empty()) return Status::Ok();
  auto parsed = ParseListenAddress(address);
  if (!parsed.ok()) return parsed.status();
  server_ = std::make_unique<httplib::Server>();
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server_->set_tcp_nodelay(true);  // no Nagle wait between a response's header and body
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry_ ? registry_->Render() : std::string(),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  auto serve_check = [](const Check& check, httplib::Response& res) {
    Status s = check ? check() : Status::Ok();
    if (s.ok()) {
      res.set_content("ok\n", "text/plain");
    } else {
      res.status = 503;
      res.set_content(s.message() + "\n", "text/plain");
    }
  };
  server_->Get("/healthz", [this, serve_check](const httplib::Request&, httplib::Response& res) {
    serve_check(healthz_, res);
  });
  server_->Get("/readyz", [this, serve_check](const httplib::Request&, httplib::Response& res) {
    serve_check(readyz_ ? readyz_ : healthz_, res);
  });
  const auto& [host, port] = parsed.value();
  if (port == 0) {
    port_ = server_->bind_to_any_port(host);
  } else {
    port_ = server_->bind_to_port(host, port) ? port : -1;
  }
  if (port_ <= 0) {
    server_.reset();
    port_ = 0;
    return Unavailable("cannot listen on " + address + " (port in use?)");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() is a no-op until the accept loop runs, so wait for it before returning.
  for (int i = 0; i < 2000 && !server_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  HA_LOG(kInfo, "admin endpoint listening").kv("address", host + ":" + std::to_string(port_));
  return Status::Ok();
}

void AdminServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace hyperaccel
