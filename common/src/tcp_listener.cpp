#include "hyperaccel/common/tcp_listener.h"

#include <utility>

#include "hyperaccel/common/log.h"

namespace hyperaccel::net {

namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;

Result<int> ListenTcp(tcp::acceptor& acceptor, const std::string& host, int port, int backlog) {
  boost::system::error_code ec;
  tcp::resolver resolver(acceptor.get_executor());
  auto found = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec || found.empty()) return Unavailable("cannot resolve listen host '" + host + "': " + ec.message());
  const tcp::endpoint endpoint = found.begin()->endpoint();
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(backlog, ec);
  if (ec) return Unavailable(ec.message());
  const tcp::endpoint bound = acceptor.local_endpoint(ec);
  if (ec) return Unavailable(ec.message());
  return static_cast<int>(bound.port());
}

void RetryAcceptLater(asio::steady_timer& timer, const boost::system::error_code& error, const char* what,
                      std::function<void()> accept) {
  HA_LOG(kWarn, what).kv("error", error.message());
  timer.expires_after(std::chrono::milliseconds(100));
  timer.async_wait([accept = std::move(accept)](const boost::system::error_code& wait) {
    if (!wait) accept();
  });
}

}  // namespace hyperaccel::net
