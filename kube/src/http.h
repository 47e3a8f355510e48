// The HTTP/1.1 transport under kube::Client (private to kube/): Boost.Beast on an Asio event loop
// that the calling thread runs, with OpenSSL for https://. One keep-alive connection is reused
// across requests; streams (watches) get a connection of their own.
//
// - Deadlines: the connect timeout covers resolving, connecting and the TLS handshake; the request
//   timeout covers the whole exchange. Expiry closes the connection (DeadlineExceeded).
// - A reused connection that the server closed while idle (the request could not be written, or
//   the connection ended before any byte of a response) is replaced once, at once, as curl does.
// - TLS: peer verification on unless insecure_skip_tls_verify; the CA from ca_data or ca_file
//   (only that CA), else the system's; the server name checked against the certificate (DNS name
//   or IP address); a client certificate and key from *_data or *_file (PEM). TLS 1.2 or later.
//   Certificate problems (verification failed, unreadable CA, certificate or key) are
//   FailedPrecondition with a message starting "TLS: "; other failures are Unavailable.
// - Not supported: proxies (http_proxy/https_proxy are ignored), redirects (not followed, as
//   before), HTTP/2.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "hyperaccel/common/status.h"
#include "hyperaccel/kube/client.h"

namespace hyperaccel::kube {

// Where an API server URL points: "https://[fd00::1]:6443/prefix" -> tls, host "fd00::1",
// port "6443", base path "/prefix".
struct ServerAddress {
  bool tls = false;
  std::string host;  // without brackets
  std::string port;
  std::string base_path;    // "" or "/prefix" (no trailing '/')
  std::string host_header;  // the Host header: host[:port] with brackets for IPv6
};

Result<ServerAddress> ParseServerUrl(std::string_view url);

struct HttpRequest {
  std::string_view method;  // GET, POST, PUT, PATCH, DELETE
  std::string_view target;  // path and query ("/api/v1/nodes?watch=1"), without the base path
  std::string_view body;
  std::string_view content_type;  // sent when the body is not empty
  std::string_view token;         // bearer token; empty = no Authorization header
};

// What a stream ended with: the HTTP status (0 when no response header arrived) and the transport
// error, if any (DeadlineExceeded when the stream's own timeout ended it).
struct StreamEnd {
  long code = 0;
  Status transport;
  bool stopped = false;  // on_data returned false or stop() became true
};

class HttpTransport {
 public:
  // Fails only on a URL that is not http(s)://host[:port][/path].
  static Result<std::unique_ptr<HttpTransport>> Create(const ClusterConfig& config, std::string user_agent);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // One request and its complete response, on the kept-alive connection.
  Result<Response> RoundTrip(const HttpRequest& request, std::chrono::milliseconds connect_timeout,
                             std::chrono::milliseconds timeout);

  // A request whose response body is delivered as it arrives (chunked or not), on a connection of
  // its own that is closed afterwards. For a status >= 300 the body (up to 64 KiB) goes to
  // `error_body` instead of `on_data`. `stop` is polled at least every 100 ms.
  StreamEnd Stream(const HttpRequest& request, std::chrono::milliseconds connect_timeout,
                   std::chrono::milliseconds timeout, const std::function<bool(std::string_view)>& on_data,
                   const std::function<bool()>& stop, std::string* error_body);

 private:
  struct Impl;
  explicit HttpTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hyperaccel::kube
