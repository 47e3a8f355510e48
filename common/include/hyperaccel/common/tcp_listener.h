// What the two Boost.Asio HTTP servers (the admin endpoint of every daemon and the Volcano bridge)
// share around their listening socket: opening it, retrying a failed accept, and counting the
// connections they close to stay within their limits for a throttled log line. None of it is on a
// request's path.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "hyperaccel/common/status.h"

namespace hyperaccel::net {

// Resolves `host` (a name or address, for listening), opens `acceptor` on it with SO_REUSEADDR,
// binds `port` (0 = any) and listens with `backlog`. Returns the bound port; Unavailable names
// what failed.
Result<int> ListenTcp(boost::asio::ip::tcp::acceptor& acceptor, const std::string& host, int port,
                      int backlog);

// After a failed accept (out of file descriptors and the like): logs `what` with the error and
// calls `accept` again in 100 ms on `timer`'s executor, rather than spin. A cancelled timer (the
// server stopping) does not call it.
void RetryAcceptLater(boost::asio::steady_timer& timer, const boost::system::error_code& error,
                      const char* what, std::function<void()> accept);

// Counts events (connections closed over a limit) and says when to log them: at most once per
// `interval`, with how many happened since the last line. Not thread-safe.
class ThrottledCount {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ThrottledCount(Clock::duration interval = std::chrono::seconds(10)) : interval_(interval) {}

  // Counts one event at `now`. Returns the events to report (this one included) when a line is
  // due, else 0.
  uint64_t Add(Clock::time_point now = Clock::now()) {
    ++count_;
    if (logged_ && now - last_ < interval_) return 0;
    logged_ = true;
    last_ = now;
    const uint64_t n = count_;
    count_ = 0;
    return n;
  }

 private:
  Clock::duration interval_;
  uint64_t count_ = 0;
  bool logged_ = false;
  Clock::time_point last_{};
};

}  // namespace hyperaccel::net
