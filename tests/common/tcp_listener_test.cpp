// The listening-socket helpers of the HTTP servers: ListenTcp binds and reports the port (and a
// taken port is an error), RetryAcceptLater calls back once unless cancelled, ThrottledCount
// reports the first event at once and then at most once per interval with the count in between.
#include "hyperaccel/common/tcp_listener.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace hyperaccel::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

TEST(ListenTcp, BindsAnyPortAndAcceptsConnections) {
  asio::io_context io;
  tcp::acceptor acceptor(io);
  auto port = ListenTcp(acceptor, "127.0.0.1", 0, 16);
  ASSERT_TRUE(port.ok()) << port.status().message();
  ASSERT_GT(*port, 0);
  EXPECT_EQ(acceptor.local_endpoint().port(), *port);

  tcp::socket client(io);
  boost::system::error_code ec;
  client.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(*port)), ec);
  ASSERT_FALSE(ec) << ec.message();
  tcp::socket served = acceptor.accept(ec);
  EXPECT_FALSE(ec) << ec.message();
}

TEST(ListenTcp, APortInUseIsAnError) {
  asio::io_context io;
  tcp::acceptor first(io);
  auto port = ListenTcp(first, "127.0.0.1", 0, 16);
  ASSERT_TRUE(port.ok());
  tcp::acceptor second(io);
  auto again = ListenTcp(second, "127.0.0.1", *port, 16);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(again.status().message().empty());
}

TEST(RetryAcceptLater, CallsBackOnceUnlessCancelled) {
  asio::io_context io;
  asio::steady_timer timer(io);
  int calls = 0;
  RetryAcceptLater(timer, asio::error::no_descriptors, "accept failed", [&] { ++calls; });
  io.run();  // returns once the timer fired and the callback ran
  EXPECT_EQ(calls, 1);

  io.restart();
  RetryAcceptLater(timer, asio::error::no_descriptors, "accept failed", [&] { ++calls; });
  timer.cancel();  // the server stopping
  io.run();
  EXPECT_EQ(calls, 1);
}

TEST(ThrottledCount, FirstAtOnceThenOncePerIntervalWithTheCount) {
  using Clock = ThrottledCount::Clock;
  ThrottledCount count(std::chrono::seconds(10));
  const Clock::time_point t0{std::chrono::hours(1)};
  EXPECT_EQ(count.Add(t0), 1U);
  EXPECT_EQ(count.Add(t0 + std::chrono::seconds(1)), 0U);
  EXPECT_EQ(count.Add(t0 + std::chrono::seconds(9)), 0U);
  EXPECT_EQ(count.Add(t0 + std::chrono::seconds(10)), 3U) << "the two quiet ones and this one";
  EXPECT_EQ(count.Add(t0 + std::chrono::seconds(11)), 0U);
  EXPECT_EQ(count.Add(t0 + std::chrono::seconds(30)), 2U);
}

}  // namespace
}  // namespace hyperaccel::net
