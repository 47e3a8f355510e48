#include "http.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cctype>
#include <limits>
#include <optional>
#include <utility>

namespace hyperaccel::kube {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr uint32_t kHeaderLimit = 64 * 1024;
// List responses of large clusters are tens of MiB; the API server is trusted, but a bound keeps a
// broken one from exhausting memory.
constexpr uint64_t kBodyLimit = uint64_t{1} << 30;
constexpr size_t kErrorBodyLimit = size_t{64} * 1024;
constexpr size_t kStreamBuffer = size_t{16} * 1024;
constexpr auto kStopPoll = std::chrono::milliseconds(100);

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown error";
  std::array<char, 256> buf{};
  ERR_error_string_n(e, buf.data(), buf.size());
  ERR_clear_error();
  return buf.data();
}

bool IsIpAddress(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Errors by which a kept-alive connection tells that the server closed it while it was idle.
bool StaleConnection(const error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::ssl::error::stream_truncated;
}

}  // namespace

Result<ServerAddress> ParseServerUrl(std::string_view url) {
  ServerAddress a;
  std::string_view rest;
  if (url.rfind("https://", 0) == 0) {
    a.tls = true;
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else {
    return InvalidArgument("API server '" + std::string(url) + "': want an http:// or https:// URL");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) a.base_path = std::string(rest.substr(slash));
  while (!a.base_path.empty() && a.base_path.back() == '/') a.base_path.pop_back();
  if (authority.find('@') != std::string_view::npos || authority.find('?') != std::string_view::npos ||
      authority.find('#') != std::string_view::npos) {
    return InvalidArgument("API server '" + std::string(url) +
                           "': user info, query or fragment not supported");
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return InvalidArgument("API server '" + std::string(url) + "': bad IPv6 host");
    a.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgument("API server '" + std::string(url) + "': bad host");
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    a.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (a.host.empty()) return InvalidArgument("API server '" + std::string(url) + "': no host");
  if (!port.empty()) {
    bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) {
                    return std::isdigit(static_cast<unsigned char>(c)) != 0;
                  });
    if (!digits || std::stoi(std::string(port)) == 0 || std::stoi(std::string(port)) > 65535) {
      return InvalidArgument("API server '" + std::string(url) + "': bad port '" + std::string(port) + "'");
    }
    a.port = std::string(port);
  } else {
    a.port = a.tls ? "443" : "80";
  }
  const bool v6 = a.host.find(':') != std::string::npos;
  a.host_header = v6 ? "[" + a.host + "]" : a.host;
  if (!port.empty()) a.host_header += ":" + a.port;
  return a;
}

// One connection: plain TCP or TLS over TCP, with its read buffer.
struct Connection {
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;

  beast::tcp_stream& tcp() { return tls ? tls->next_layer() : *plain; }
  template <class F>
  auto With(F&& f) {
    return tls ? f(*tls) : f(*plain);
  }
  void Close() {
    error_code ignored;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp().close();
  }
};

struct HttpTransport::Impl {
  ClusterConfig config;
  ServerAddress address;
  std::string user_agent;
  asio::io_context ioc{1};
  std::optional<ssl::context> tls_context;
  Status tls_context_error;          // why tls_context could not be built (once)
  std::unique_ptr<Connection> kept;  // the kept-alive connection, when open

  // Runs the event loop until `done`; when `stop` is given it is polled every kStopPoll and a
  // true answer closes `conn` (pending operations then complete with operation_aborted).
  void RunUntil(const bool& done, Connection* conn = nullptr, const std::function<bool()>* stop = nullptr,
                bool* stopped = nullptr) {
    ioc.restart();
    bool closed = false;
    while (!done) {
      if (stop != nullptr && *stop) {
        ioc.run_one_for(kStopPoll);
        if (!done && !closed && (*stop)()) {
          if (stopped != nullptr) *stopped = true;
          conn->Close();  // the pending operation completes with operation_aborted
          closed = true;
        }
      } else if (ioc.run_one() == 0) {
        break;  // nothing left to run (cannot happen while an operation is pending)
      }
    }
  }

  Status TlsContext() {
    if (tls_context || !tls_context_error.ok()) return tls_context_error;
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                    ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression);
    error_code ec;
    auto fail = [&](const std::string& what) {
      tls_context_error = FailedPrecondition("TLS: " + what + ": " + ec.message());
      return tls_context_error;
    };
    if (config.insecure_skip_tls_verify) {
      ctx.set_verify_mode(ssl::verify_none);
    } else {
      ctx.set_verify_mode(ssl::verify_peer);
      if (!config.ca_data.empty()) {
        ctx.add_certificate_authority(asio::buffer(config.ca_data), ec);
        if (ec) return fail("certificate-authority-data");
      } else if (!config.ca_file.empty()) {
        ctx.load_verify_file(config.ca_file, ec);
        if (ec) return fail("CA file " + config.ca_file);
      } else {
        ctx.set_default_verify_paths(ec);
        if (ec) return fail("system CA certificates");
      }
    }
    if (!config.client_cert_data.empty()) {
      ctx.use_certificate_chain(asio::buffer(config.client_cert_data), ec);
      if (ec) return fail("client-certificate-data");
    } else if (!config.client_cert_file.empty()) {
      ctx.use_certificate_chain_file(config.client_cert_file, ec);
      if (ec) return fail("client certificate " + config.client_cert_file);
    }
    if (!config.client_key_data.empty()) {
      ctx.use_private_key(asio::buffer(config.client_key_data), ssl::context::pem, ec);
      if (ec) return fail("client-key-data");
    } else if (!config.client_key_file.empty()) {
      ctx.use_private_key_file(config.client_key_file, ssl::context::pem, ec);
      if (ec) return fail("client key " + config.client_key_file);
    }
    tls_context.emplace(std::move(ctx));
    return Status::Ok();
  }

  // Opens a connection within `connect_timeout` (resolve, connect, TLS handshake).
  Result<std::unique_ptr<Connection>> Connect(std::chrono::milliseconds connect_timeout) {
    auto conn = std::make_unique<Connection>();
    if (address.tls) {
      if (Status s = TlsContext(); !s.ok()) return s;
      conn->tls.emplace(ioc, *tls_context);
    } else {
      conn->plain.emplace(ioc);
    }
    const auto deadline = Clock::now() + connect_timeout;
    error_code ec;
    bool done = false;
    conn->tcp().expires_at(deadline);
    error_code address_ec;
    asio::ip::address ip = asio::ip::make_address(address.host, address_ec);
    if (!address_ec) {
      conn->tcp().async_connect(tcp::endpoint(ip, static_cast<uint16_t>(std::stoi(address.port))),
                                [&](const error_code& e) {
                                  ec = e;
                                  done = true;
                                });
      RunUntil(done);
    } else {
      // Asio's resolver runs getaddrinfo on an internal thread; the wait is bounded like a connect.
      tcp::resolver resolver(ioc);
      tcp::resolver::results_type endpoints;
      bool timer_done = false;
      asio::steady_timer timer(ioc, deadline);
      timer.async_wait([&](const error_code& e) {
        if (!e) resolver.cancel();
        timer_done = true;
      });
      resolver.async_resolve(address.host, address.port,
                             [&](const error_code& e, tcp::resolver::results_type r) {
                               ec = e;
                               endpoints = std::move(r);
                               done = true;
                             });
      RunUntil(done);
      timer.cancel();
      RunUntil(timer_done);
      if (ec == asio::error::operation_aborted) {
        return Status(StatusCode::kDeadlineExceeded, "resolving " + address.host + ": timed out");
      }
      if (ec) return Unavailable("resolving " + address.host + ": " + ec.message());
      done = false;
      conn->tcp().async_connect(endpoints, [&](const error_code& e, const tcp::endpoint&) {
        ec = e;
        done = true;
      });
      RunUntil(done);
    }
    if (ec == beast::error::timeout) {
      return Status(StatusCode::kDeadlineExceeded, "connecting to " + address.host_header + ": timed out");
    }
    if (ec) return Unavailable("connecting to " + address.host_header + ": " + ec.message());
    error_code opt_ec;
    conn->tcp().socket().set_option(tcp::no_delay(true), opt_ec);
    conn->tcp().socket().set_option(asio::socket_base::keep_alive(true), opt_ec);
    if (conn->tls) {
      SSL* ssl_handle = conn->tls->native_handle();
      if (!config.insecure_skip_tls_verify) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int set = IsIpAddress(address.host) ? X509_VERIFY_PARAM_set1_ip_asc(param, address.host.c_str())
                                            : X509_VERIFY_PARAM_set1_host(param, address.host.c_str(), 0);
        if (set != 1) return FailedPrecondition("TLS: cannot check the server name: " + OpenSslError());
      }
      if (!IsIpAddress(address.host)) {  // SNI (SSL_set_tlsext_host_name without its C cast)
        SSL_ctrl(ssl_handle, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(address.host.c_str()));
      }
      done = false;
      conn->tls->async_handshake(ssl::stream_base::client, [&](const error_code& e) {
        ec = e;
        done = true;
      });
      RunUntil(done);
      if (ec == beast::error::timeout) {
        return Status(StatusCode::kDeadlineExceeded,
                      "TLS handshake with " + address.host_header + ": timed out");
      }
      if (ec) {
        long verify = SSL_get_verify_result(ssl_handle);
        if (verify != X509_V_OK) {
          return FailedPrecondition("TLS: certificate of " + address.host_header +
                                    " not verified: " + X509_verify_cert_error_string(verify));
        }
        return Unavailable("TLS handshake with " + address.host_header + ": " + ec.message());
      }
    }
    return conn;
  }

  http::request<http::string_body> Build(const HttpRequest& r) const {
    http::request<http::string_body> req;
    req.method_string(beast::string_view(r.method.data(), r.method.size()));
    std::string target = address.base_path;
    target.append(r.target);
    req.target(target);
    req.version(11);
    req.set(http::field::host, address.host_header);
    req.set(http::field::user_agent, user_agent);
    req.set(http::field::accept, "application/json");
    if (!r.token.empty()) req.set(http::field::authorization, "Bearer " + std::string(r.token));
    if (!r.body.empty()) {
      req.set(http::field::content_type, beast::string_view(r.content_type.data(), r.content_type.size()));
      req.body() = std::string(r.body);
    }
    req.prepare_payload();
    return req;
  }

  // Writes `req` and reads the whole response on `conn` by `deadline`.
  error_code Exchange(Connection& conn, http::request<http::string_body>& req,
                      http::response_parser<http::string_body>& parser, Clock::time_point deadline) {
    error_code ec;
    bool done = false;
    conn.tcp().expires_at(deadline);
    conn.With([&](auto& stream) {
      http::async_write(stream, req, [&](const error_code& e, size_t) {
        ec = e;
        done = true;
      });
    });
    RunUntil(done);
    if (ec) return ec;
    done = false;
    conn.With([&](auto& stream) {
      http::async_read(stream, conn.buffer, parser, [&](const error_code& e, size_t) {
        ec = e;
        done = true;
      });
    });
    RunUntil(done);
    return ec;
  }
};

HttpTransport::HttpTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpTransport::~HttpTransport() = default;

Result<std::unique_ptr<HttpTransport>> HttpTransport::Create(const ClusterConfig& config,
                                                             std::string user_agent) {
  auto address = ParseServerUrl(config.server);
  if (!address.ok()) return address.status();
  auto impl = std::make_unique<Impl>();
  impl->config = config;
  impl->address = std::move(*address);
  impl->user_agent = std::move(user_agent);
  return std::unique_ptr<HttpTransport>(new HttpTransport(std::move(impl)));
}

Result<Response> HttpTransport::RoundTrip(const HttpRequest& request,
                                          std::chrono::milliseconds connect_timeout,
                                          std::chrono::milliseconds timeout) {
  Impl& d = *impl_;
  const auto deadline = Clock::now() + timeout;
  auto req = d.Build(request);
  for (int attempt = 0;; ++attempt) {
    const bool reused = d.kept != nullptr;
    if (!reused) {
      auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      auto conn = d.Connect(std::max(std::chrono::milliseconds(1), std::min(connect_timeout, remaining)));
      if (!conn.ok()) {
        // The request timeout also bounds the connect, as curl's total timeout does.
        return conn.status();
      }
      d.kept = std::move(*conn);
    }
    http::response_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    error_code ec = d.Exchange(*d.kept, req, parser, deadline);
    if (ec) {
      const bool nothing_received = !parser.got_some();
      d.kept->Close();
      d.kept.reset();
      if (ec == beast::error::timeout) {
        return Status(StatusCode::kDeadlineExceeded, "request to " + d.address.host_header + " timed out");
      }
      if (reused && attempt == 0 && nothing_received && StaleConnection(ec)) continue;
      return Unavailable("request to " + d.address.host_header + ": " + ec.message());
    }
    Response resp;
    auto& msg = parser.get();
    resp.code = static_cast<long>(msg.result_int());
    for (const auto& field : msg) {
      std::string name(field.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      resp.headers[name] = std::string(field.value());
    }
    resp.body = std::move(msg.body());
    if (!msg.keep_alive()) {
      d.kept->Close();
      d.kept.reset();
    }
    return resp;
  }
}

StreamEnd HttpTransport::Stream(const HttpRequest& request, std::chrono::milliseconds connect_timeout,
                                std::chrono::milliseconds timeout,
                                const std::function<bool(std::string_view)>& on_data,
                                const std::function<bool()>& stop, std::string* error_body) {
  Impl& d = *impl_;
  StreamEnd end;
  const auto deadline = Clock::now() + timeout;
  auto connected = d.Connect(std::min(connect_timeout, timeout));
  if (!connected.ok()) {
    end.transport = connected.status();
    return end;
  }
  std::unique_ptr<Connection> conn = std::move(*connected);
  auto req = d.Build(request);
  error_code ec;
  bool done = false;
  conn->tcp().expires_at(deadline);
  conn->With([&](auto& stream) {
    http::async_write(stream, req, [&](const error_code& e, size_t) {
      ec = e;
      done = true;
    });
  });
  d.RunUntil(done, conn.get(), &stop, &end.stopped);
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(std::numeric_limits<uint64_t>::max());
  if (!ec && !end.stopped) {
    done = false;
    conn->With([&](auto& stream) {
      http::async_read_header(stream, conn->buffer, parser, [&](const error_code& e, size_t) {
        ec = e;
        done = true;
      });
    });
    d.RunUntil(done, conn.get(), &stop, &end.stopped);
  }
  if (!ec && !end.stopped) {
    end.code = static_cast<long>(parser.get().result_int());
    std::array<char, kStreamBuffer> buf{};
    while (!parser.is_done()) {
      parser.get().body().data = buf.data();
      parser.get().body().size = buf.size();
      done = false;
      conn->With([&](auto& stream) {
        http::async_read_some(stream, conn->buffer, parser, [&](const error_code& e, size_t) {
          ec = e;
          done = true;
        });
      });
      d.RunUntil(done, conn.get(), &stop, &end.stopped);
      if (ec == http::error::need_buffer) ec = {};
      const size_t n = buf.size() - parser.get().body().size;
      if (n > 0) {
        if (end.code >= 300) {
          if (error_body != nullptr && error_body->size() < kErrorBodyLimit)
            error_body->append(buf.data(), n);
        } else if (!on_data(std::string_view(buf.data(), n))) {
          end.stopped = true;
          break;
        }
      }
      if (ec || end.stopped) break;
    }
  }
  conn->Close();
  if (end.stopped) return end;
  if (ec == beast::error::timeout) {
    end.transport =
        Status(StatusCode::kDeadlineExceeded, "stream from " + d.address.host_header + " timed out");
  } else if (ec) {
    end.transport = Unavailable("stream from " + d.address.host_header + ": " + ec.message());
  }
  return end;
}

}  // namespace hyperaccel::kube
