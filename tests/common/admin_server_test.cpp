// The shared admin endpoint (/healthz, /readyz, /metrics) over real sockets on 127.0.0.1: what it
// answers, and that idle, slow (slowloris) and oversized clients cannot starve the probes.
#include "hyperaccel/common/admin_server.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "loopback.h"

namespace hyperaccel {
namespace {

using std::chrono::milliseconds;
using testing::ClosedByPeer;
using testing::ConnectLoopback;
using testing::SendAll;
using testing::TimedRequest;

std::string Get(std::string_view path) {
  return "GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
}

class Admin : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.AddCounter("admin_test_total", "A counter the test renders", {}).Inc({});
  }
  void Start() { ASSERT_TRUE(admin_.Start("127.0.0.1:0").ok()); }
  int Status(std::string_view path, std::string* body = nullptr) {
    std::chrono::microseconds elapsed{};
    return TimedRequest(admin_.port(), Get(path), milliseconds(5000), &elapsed, body);
  }

  metrics::Registry registry_;
  hyperaccel::Status health_ = hyperaccel::Status::Ok();
  AdminServer admin_{&registry_, [this] { return health_; }};
  std::vector<int> held_;

  void TearDown() override {
    for (int fd : held_) close(fd);
  }
};

TEST_F(Admin, AnswersProbesAndMetrics) {
  Start();
  std::string body;
  EXPECT_EQ(Status("/healthz", &body), 200);
  EXPECT_NE(body.find("\r\n\r\nok\n"), std::string::npos) << body;
  EXPECT_EQ(Status("/readyz"), 200);
  EXPECT_EQ(Status("/metrics", &body), 200);
  EXPECT_NE(body.find("admin_test_total 1"), std::string::npos) << body;
  EXPECT_NE(body.find("text/plain; version=0.0.4"), std::string::npos) << body;
  EXPECT_EQ(Status("/nope"), 404);
  health_ = Unavailable("card 0000:3b:00.1 lost");
  EXPECT_EQ(Status("/healthz", &body), 503);
  EXPECT_NE(body.find("card 0000:3b:00.1 lost"), std::string::npos) << body;
  EXPECT_EQ(Status("/readyz"), 503);  // no separate readiness check: same as /healthz
}

TEST_F(Admin, EmptyAddressDisablesAndBadAddressFails) {
  EXPECT_TRUE(admin_.Start("").ok());
  EXPECT_EQ(admin_.port(), 0);
  EXPECT_FALSE(admin_.Start("127.0.0.1:99999").ok());
}

// The attack: connections that send part of a request and then wait. 1000 of them are
// opened (and trickle a byte now and then) while the probes run; every probe must still be
// answered, within 100 ms (tolerating a few slower ones on a loaded machine, never one over a
// second).
void ProbeUnderSlowloris(AdminServer& admin, std::vector<int>& held) {
  ASSERT_GE(testing::RaiseFdLimit(4096), rlim_t{2200}) << "needs 2200 file descriptors";
  for (int i = 0; i < 1000; ++i) {
    const int fd = ConnectLoopback(admin.port());
    ASSERT_GE(fd, 0) << "connection " << i;
    held.push_back(fd);
    // Half send an unfinished request line and header, half send nothing at all.
    if (i % 2 == 0) SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  }
  std::vector<long> micros;
  for (int i = 0; i < 20; ++i) {
    std::chrono::microseconds elapsed{};
    const int status =
        TimedRequest(admin.port(), Get(i % 2 ? "/healthz" : "/readyz"), milliseconds(3000), &elapsed);
    EXPECT_EQ(status, 200) << "probe " << i;
    micros.push_back(static_cast<long>(elapsed.count()));
    // Slow clients keep trickling while the probes run.
    for (size_t k = 0; k < held.size(); k += 50) SendAll(held[k], "a");
  }
  std::sort(micros.begin(), micros.end());
  EXPECT_LT(micros[micros.size() / 2], 100000) << "median probe time (us)";
  EXPECT_LT(micros[micros.size() - 3], 100000) << "18th of 20 probe times (us)";
  EXPECT_LT(micros.back(), 1000000) << "slowest probe (us)";
}

// With the default limits (the attacker's oldest connections make room for its newer ones).
TEST_F(Admin, SlowlorisDoesNotStarveProbes) {
  Start();
  ProbeUnderSlowloris(admin_, held_);
}

// With limits high enough that the server really holds all 1000: the one event loop still
// answers the probes at once.
TEST_F(Admin, ThousandHeldConnectionsDoNotStarveProbes) {
  AdminLimits limits;
  limits.max_connections = 2000;
  limits.max_connections_per_client = 2000;
  limits.request_timeout = std::chrono::minutes(1);  // however slow the machine, none expires
  admin_.SetLimits(limits);
  Start();
  ProbeUnderSlowloris(admin_, held_);
  int open = 0;
  for (int fd : held_) open += ClosedByPeer(fd, milliseconds(0)) ? 0 : 1;
  EXPECT_EQ(open, 1000) << "connections the server closed before their deadline";
}

// A request that is not finished within the deadline is dropped, however slowly it trickles in;
// an idle keep-alive connection too.
TEST_F(Admin, RequestDeadline) {
  AdminLimits limits;
  limits.request_timeout = milliseconds(300);
  admin_.SetLimits(limits);
  Start();
  const int trickle = ConnectLoopback(admin_.port());
  const int idle = ConnectLoopback(admin_.port());
  ASSERT_GE(trickle, 0);
  ASSERT_GE(idle, 0);
  held_ = {trickle, idle};
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 40 && !closed; ++i) {  // a byte every 50 ms: progress, never an end
    SendAll(trickle, "G");
    closed = ClosedByPeer(trickle, milliseconds(50));
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(closed) << "a trickling request was never dropped";
  EXPECT_LT(took, milliseconds(1500));
  EXPECT_TRUE(ClosedByPeer(idle, milliseconds(1500))) << "an idle connection was never dropped";
  EXPECT_EQ(Status("/healthz"), 200);
}

// Connections over the per-client limit close that client's oldest first; the newest, which
// carries the probe, is answered.
TEST_F(Admin, PerClientLimitClosesTheOldest) {
  AdminLimits limits;
  limits.max_connections_per_client = 8;
  admin_.SetLimits(limits);
  Start();
  for (int i = 0; i < 20; ++i) {
    const int fd = ConnectLoopback(admin_.port());
    ASSERT_GE(fd, 0);
    held_.push_back(fd);
  }
  for (int i = 0; i < 12; ++i)
    EXPECT_TRUE(ClosedByPeer(held_[static_cast<size_t>(i)], milliseconds(2000))) << i;
  // The 8 newest are still open: a request on one of them is answered.
  ASSERT_TRUE(SendAll(held_.back(), Get("/healthz")));
  const std::string answer = testing::ReadUntilClosed(held_.back(), milliseconds(2000));
  EXPECT_EQ(answer.compare(0, 12, "HTTP/1.1 200"), 0) << answer;
  EXPECT_EQ(Status("/readyz"), 200);
}

// The total limit closes connections of the client holding the most.
TEST_F(Admin, TotalLimit) {
  AdminLimits limits;
  limits.max_connections = 10;
  limits.max_connections_per_client = 100;
  admin_.SetLimits(limits);
  Start();
  for (int i = 0; i < 30; ++i) {
    const int fd = ConnectLoopback(admin_.port());
    ASSERT_GE(fd, 0);
    held_.push_back(fd);
  }
  int closed = 0;
  for (int fd : held_) closed += ClosedByPeer(fd, milliseconds(closed < 20 ? 2000 : 100)) ? 1 : 0;
  EXPECT_EQ(closed, 20);
  EXPECT_EQ(Status("/healthz"), 200);
}

// Oversized headers and bodies, other methods and garbage get an answer that says why.
TEST_F(Admin, BadRequests) {
  Start();
  std::chrono::microseconds elapsed{};
  std::string body;
  const std::string huge_header =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  EXPECT_EQ(TimedRequest(admin_.port(), huge_header, milliseconds(3000), &elapsed), 431);
  const std::string big_body = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
  EXPECT_EQ(TimedRequest(admin_.port(), big_body, milliseconds(3000), &elapsed), 413);
  const std::string post =
      "POST /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
  EXPECT_EQ(TimedRequest(admin_.port(), post, milliseconds(3000), &elapsed, &body), 405);
  EXPECT_NE(body.find("Allow: GET"), std::string::npos) << body;
  EXPECT_EQ(TimedRequest(admin_.port(), "\x16\x03\x01 not http\r\n\r\n", milliseconds(3000), &elapsed), 400);
  // Keep-alive: two requests on one connection.
  const int fd = ConnectLoopback(admin_.port());
  ASSERT_GE(fd, 0);
  held_.push_back(fd);
  ASSERT_TRUE(SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + Get("/metrics")));
  const std::string both = testing::ReadUntilClosed(fd, milliseconds(3000));
  EXPECT_NE(both.find("HTTP/1.1 200"), both.rfind("HTTP/1.1 200")) << both;
  EXPECT_EQ(Status("/healthz"), 200);
}

// Stop() closes held connections and frees the port; Start() may follow again.
TEST_F(Admin, StopClosesConnections) {
  Start();
  const int fd = ConnectLoopback(admin_.port());
  ASSERT_GE(fd, 0);
  held_.push_back(fd);
  SendAll(fd, "GET /heal");
  admin_.Stop();
  EXPECT_TRUE(ClosedByPeer(fd, milliseconds(1000)));
  ASSERT_TRUE(admin_.Start("127.0.0.1:0").ok());
  EXPECT_EQ(Status("/healthz"), 200);
}

}  // namespace
}  // namespace hyperaccel
