// The HTTP front end: verbs at their paths, 400 / 413 / 404 with a body, /healthz, /metrics,
// concurrency with keep-alive and with a new connection per request, TLS.
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "hyperaccel/bridge/server.h"
#include "hyperaccel/bridge/service.h"
#include "loopback.h"
#include "synthetic.h"
#include "test_pki.h"

namespace hyperaccel::bridge {
namespace {

using Json = nlohmann::json;

class Http : public ::testing::Test {
 protected:
  void Start(ServerOptions options = {}) {
    options.listen = "127.0.0.1:0";
    server_ = std::make_unique<HttpServer>(&bridge_, &registry_, options);
    ASSERT_TRUE(server_->Start().ok());
  }
  httplib::Client Client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(10, 0);
    return c;
  }
  static std::string PredicateBody(int busy_cards) {
    synthetic::TaskSpec t;
    t.uid = "t1";
    t.cards = 4;
    t.require_linked = true;
    synthetic::NodeSpec n;
    n.name = "n1";
    n.busy = (placement::Mask{1} << busy_cards) - 1;
    return synthetic::PredicateBody(t, n, {});
  }

  // A connection to the server with a small receive window (4 KiB), so that the server's writes
  // fill it quickly when the client does not read; -1 on failure.
  int ConnectWithSmallWindow() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    const int small = 4096;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(server_->port()));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) != 0 ||
        ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  metrics::Registry registry_;
  Bridge bridge_{{}, &registry_};
  std::unique_ptr<HttpServer> server_;
};

TEST_F(Http, VerbsAtDefaultPaths) {
  Start();
  auto c = Client();
  for (Verb v : kAllVerbs) {
    auto res = c.Post(std::string("/") + VerbName(v), "{}", "application/json");
    ASSERT_TRUE(res) << VerbName(v);
    // `{}` is well-formed for the session verbs and malformed (missing task/node/job) for the rest.
    const bool session = v == Verb::kOnSessionOpen || v == Verb::kOnSessionClose;
    EXPECT_EQ(res->status, session ? 200 : 400) << VerbName(v) << " " << res->body;
    EXPECT_TRUE(Json::accept(res->body)) << res->body;
  }
  auto res = c.Post("/predicate", PredicateBody(0), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(Json::parse(res->body), Json::parse(R"({"status":"","code":0})"));
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
}

TEST_F(Http, PathPrefix) {
  ServerOptions o;
  o.path_prefix = "/v1/";
  Start(o);
  auto c = Client();
  auto ok = c.Post("/v1/predicate", PredicateBody(6), "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(Json::parse(ok->body)["code"], 2);
  auto missing = c.Post("/predicate", PredicateBody(6), "application/json");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(Http, MalformedOversizedAndUnknown) {
  ServerOptions o;
  o.max_body_bytes = size_t{64} * 1024;
  Start(o);
  auto c = Client();
  auto bad = c.Post("/predicate", "{\"task\":", "application/json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(Json::parse(bad->body)["error"].get<std::string>().find("body"), std::string::npos);
  auto wrong = c.Post("/prioritize", R"({"task":{"UID":1},"nodes":[]})", "application/json");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 400);
  EXPECT_NE(wrong->body.find("task.UID"), std::string::npos);
  auto big = c.Post("/onSessionOpen", std::string(size_t{100} * 1024, ' '), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_NE(big->body.find("--max-body-bytes"), std::string::npos);
  // Form-encoded bodies (curl -d without a Content-Type) over 8 KiB: 413 with a hint.
  auto form =
      c.Post("/predicate", std::string(9000, ' ') + PredicateBody(0), "application/x-www-form-urlencoded");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 413);
  EXPECT_NE(form->body.find("Content-Type: application/json"), std::string::npos) << form->body;
  auto none = c.Post("/nope", "{}", "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 404);
  // The server still answers after all that.
  auto ok = c.Post("/predicate", PredicateBody(0), "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find(R"(hyperaccel_bridge_errors_total{verb="onSessionOpen",kind="too_large"} 1)"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find(R"(hyperaccel_bridge_errors_total{verb="predicate",kind="too_large"} 1)"),
            std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find(R"(hyperaccel_bridge_requests_total{verb="predicate",code="400"} 1)"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("hyperaccel_bridge_request_seconds_bucket{verb=\"predicate\""),
            std::string::npos);
  auto health = c.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

// Bodies above the reuse limit get a buffer of their own, chunked bodies (no Content-Length) are
// read as they come, and idle parsers and buffers are freed without disturbing later requests.
TEST_F(Http, LargeChunkedAndAfterIdleRelease) {
  ServerOptions o;
  o.idle_release_seconds = 1;
  Start(o);
  auto c = Client();
  synthetic::Cluster cluster = synthetic::MakeCluster(200, 2, 3);
  const std::string open = synthetic::SnapshotBody(cluster.nodes, cluster.jobs);
  ASSERT_GT(open.size(), size_t{1} << 20);
  auto res = c.Post("/onSessionOpen", open, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(bridge_.state().Stats().snapshot_nodes, 200u);
  const std::string body = PredicateBody(0);
  auto chunked = c.Post(
      "/predicate",
      [&](size_t offset, httplib::DataSink& sink) {
        sink.write(body.data() + offset, std::min<size_t>(1000, body.size() - offset));
        if (offset + 1000 >= body.size()) sink.done();
        return true;
      },
      "application/json");
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->status, 200) << chunked->body;
  EXPECT_EQ(Json::parse(chunked->body)["code"], 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // the reaper runs every second
  auto again = c.Post("/predicate", body, "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(Json::parse(again->body)["code"], 0);
}

// 16 clients at once, half keeping connections alive, half opening one per request (as Go's
// client does beyond its 2 idle connections), mixed with allocate/deallocate events.
TEST_F(Http, ConcurrentRequests) {
  Start();
  const std::string fits = PredicateBody(2);
  const std::string full = PredicateBody(6);
  std::atomic<int> failures{0};
  std::mutex mu;
  std::string first_failure;
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    if (failures++ == 0) first_failure = what;
  };
  std::vector<std::thread> threads;
  threads.reserve(16);
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      auto c = Client();
      c.set_keep_alive(i % 2 == 0);
      for (int r = 0; r < 60; ++r) {
        const bool fit = (r + i) % 2 == 0;
        auto res = c.Post("/predicate", fit ? fits : full, "application/json");
        if (!res) {
          fail("predicate: " + httplib::to_string(res.error()) + " client " + std::to_string(i) +
               " request " + std::to_string(r));
        } else if (res->status != 200 || Json::parse(res->body)["code"] != (fit ? 0 : 2)) {
          fail("predicate: " + std::to_string(res->status) + " " + res->body);
        }
        if (r % 10 == 0) {
          synthetic::TaskSpec t;
          t.uid = "ev-" + std::to_string(i);
          t.node = "n2";  // another node: allocations on n1 would change the predicate answers
          auto ev = c.Post(r % 20 == 0 ? "/allocate" : "/deallocate", synthetic::TaskEventBody(t),
                           "application/json");
          if (!ev || ev->status != 200) fail("event: " + (ev ? ev->body : httplib::to_string(ev.error())));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
}

// Bodies larger than the first read are read from the socket straight into their buffer, never
// past their announced length: two pipelined requests in one write are answered in order, each
// from its own body; a body that arrives in pieces, and one after "Expect: 100-continue", whole.
TEST_F(Http, LargeBodiesPipelinedTrickledAndAfterContinue) {
  Start();
  auto request = [](const std::string& body, bool close) {
    return "POST /predicate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
           "application/json\r\nContent-Length: " +
           std::to_string(body.size()) + (close ? "\r\nConnection: close" : "") + "\r\n\r\n" + body;
  };
  const std::string fits = PredicateBody(0) + std::string(150000, ' ');  // 8 free cards
  const std::string full = PredicateBody(6) + std::string(90000, '\n');  // 2 free cards, 4 wanted
  {
    const int fd = ::hyperaccel::testing::ConnectLoopback(server_->port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(::hyperaccel::testing::SendAll(fd, request(fits, false) + request(full, true)));
    const std::string answers = ::hyperaccel::testing::ReadUntilClosed(fd, std::chrono::seconds(10));
    ::close(fd);
    const size_t first = answers.find("HTTP/1.1 200");
    const size_t second = answers.find("HTTP/1.1 200", first + 1);
    ASSERT_NE(second, std::string::npos) << answers;
    EXPECT_NE(answers.substr(first, second - first).find(R"({"status":"","code":0})"), std::string::npos)
        << answers;
    EXPECT_EQ(answers.substr(second).find(R"("code":0)"), std::string::npos)
        << "the second node has no room: " << answers;
  }
  {
    const int fd = ::hyperaccel::testing::ConnectLoopback(server_->port());
    ASSERT_GE(fd, 0);
    const std::string whole = request(fits, true);
    for (size_t at = 0; at < whole.size(); at += 40000) {
      ASSERT_TRUE(::hyperaccel::testing::SendAll(fd, std::string_view(whole).substr(at, 40000)));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const std::string answer = ::hyperaccel::testing::ReadUntilClosed(fd, std::chrono::seconds(10));
    ::close(fd);
    EXPECT_EQ(answer.compare(0, 12, "HTTP/1.1 200"), 0) << answer;
    EXPECT_NE(answer.find(R"({"status":"","code":0})"), std::string::npos) << answer;
  }
  {
    const int fd = ::hyperaccel::testing::ConnectLoopback(server_->port());
    ASSERT_GE(fd, 0);
    const std::string head =
        "POST /predicate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Expect: 100-continue\r\nConnection: close\r\nContent-Length: " +
        std::to_string(fits.size()) + "\r\n\r\n";
    ASSERT_TRUE(::hyperaccel::testing::SendAll(fd, head));
    char buf[64] = {};
    const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).compare(0, 12, "HTTP/1.1 100"), 0) << buf;
    ASSERT_TRUE(::hyperaccel::testing::SendAll(fd, fits));
    const std::string answer = ::hyperaccel::testing::ReadUntilClosed(fd, std::chrono::seconds(10));
    ::close(fd);
    EXPECT_NE(answer.find("HTTP/1.1 200"), std::string::npos) << answer;
    EXPECT_NE(answer.find(R"({"status":"","code":0})"), std::string::npos) << answer;
  }
}

// Answers are written at once on a plain TCP connection, and each step of a request runs on
// the stack that read it, up to a bound. Many requests in one stream (predicates with bodies in
// many small chunks, then /metrics, whose answers add up to megabytes) to a client that reads
// nothing at first (so the answers fill the socket and the rest are written from the event
// loop): every one is answered, in order.
TEST_F(Http, ManyPipelinedRequestsToAClientThatReadsLate) {
  Start();
  const std::string body = PredicateBody(0);
  std::string chunked;
  for (size_t at = 0; at < body.size(); at += 7) {
    const std::string piece = body.substr(at, 7);
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    chunked += size + piece + "\r\n";
  }
  chunked += "0\r\n\r\n";
  const std::string one =
      "POST /predicate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: chunked\r\n\r\n" +
      chunked;
  constexpr int kRequests = 300;
  constexpr int kMetrics = 2000;  // a few KiB each: megabytes of answers in all
  std::string all;
  for (int i = 0; i < kRequests; ++i) all += one;
  for (int i = 0; i < kMetrics; ++i) all += "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  all += "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

  const int fd = ConnectWithSmallWindow();
  ASSERT_GE(fd, 0);
  std::atomic<bool> sent{false};
  std::thread writer([&] { sent = ::hyperaccel::testing::SendAll(fd, all); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server blocks on its writes
  const std::string answers = ::hyperaccel::testing::ReadUntilClosed(fd, std::chrono::seconds(30));
  writer.join();
  ::close(fd);
  EXPECT_TRUE(sent.load());
  int ok = 0;
  for (size_t at = answers.find("HTTP/1.1 200"); at != std::string::npos;
       at = answers.find("HTTP/1.1 200", at + 1)) {
    ++ok;
  }
  EXPECT_EQ(ok, kRequests + kMetrics + 1) << answers.substr(0, 400);
  size_t codes = 0;
  for (size_t at = answers.find(R"({"status":"","code":0})"); at != std::string::npos;
       at = answers.find(R"({"status":"","code":0})", at + 1)) {
    ++codes;
  }
  EXPECT_EQ(codes, static_cast<size_t>(kRequests));
  EXPECT_EQ(answers.substr(answers.size() - 3), "ok\n") << "the last answer is /healthz's";
}

// Clients that stall where the server reads or writes on the spot must not hold an event loop:
// requests whose first read fills the server's read buffer exactly (the rest of the body is
// expected at once but never comes), and a client that never reads a large answer. Other
// connections are still served, and the stalled ones are closed by their deadlines.
TEST_F(Http, StalledClientsDoNotHoldTheEventLoops) {
  ServerOptions options;
  options.threads = 2;
  Start(options);
  std::vector<int> stalled;
  // A header and body bytes adding up to a full first read (4 KiB), of a 20 000-byte body.
  std::string first =
      "POST /predicate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: 20000\r\n\r\n";
  first.append(4096 - first.size(), ' ');
  for (int i = 0; i < 4; ++i) {  // more than one per event loop
    const int fd = ::hyperaccel::testing::ConnectLoopback(server_->port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(::hyperaccel::testing::SendAll(fd, first));
    stalled.push_back(fd);
  }
  // Pipelined /metrics requests from a client with a small receive window that never reads.
  std::string many;
  for (int i = 0; i < 500; ++i) many += "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  for (int i = 0; i < 2; ++i) {
    const int fd = ConnectWithSmallWindow();
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(::hyperaccel::testing::SendAll(fd, many));
    stalled.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server reaches the stalls
  for (int i = 0; i < 8; ++i) {                                 // new connections land on every loop
    auto c = Client();
    c.set_keep_alive(false);
    c.set_read_timeout(5, 0);
    auto r = c.Get("/healthz");
    ASSERT_TRUE(r) << "request " << i << " not answered: an event loop is held";
    EXPECT_EQ(r->status, 200);
  }
  for (int fd : stalled) ::close(fd);
}

// Accepted connections have TCP_NODELAY (set once on the listening socket and inherited), so
// an answer's last segment is never held back waiting for an ACK.
TEST_F(Http, AcceptedConnectionsHaveNoDelay) {
  Start();
  const int fd = ::hyperaccel::testing::ConnectLoopback(server_->port());
  ASSERT_GE(fd, 0);
  auto c = Client();  // one request answered: the connection above has been accepted too
  ASSERT_TRUE(c.Get("/healthz"));
  sockaddr_in mine{};
  socklen_t len = sizeof mine;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&mine), &len), 0);
  // The server runs in this process: find its end of the connection among our descriptors.
  int found = 0;
  for (int other = 0; other < 4096; ++other) {
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    if (other == fd || ::getpeername(other, reinterpret_cast<sockaddr*>(&peer), &plen) != 0) continue;
    if (peer.sin_family != AF_INET || peer.sin_port != mine.sin_port) continue;
    int nodelay = 0;
    socklen_t olen = sizeof nodelay;
    ASSERT_EQ(::getsockopt(other, IPPROTO_TCP, TCP_NODELAY, &nodelay, &olen), 0);
    EXPECT_NE(nodelay, 0);
    ++found;
  }
  ::close(fd);
  EXPECT_EQ(found, 1);
}

TEST_F(Http, Tls) {
  const ::hyperaccel::testing::TestPki pki;  // a CA and a server certificate for 127.0.0.1
  ServerOptions o;
  o.tls_cert = pki.server_cert_file;
  o.tls_key = pki.server_key_file;
  Start(o);
  httplib::SSLClient c("127.0.0.1", server_->port());
  c.set_ca_cert_path(pki.ca_file);
  c.enable_server_certificate_verification(true);
  auto res = c.Post("/predicate", PredicateBody(0), "application/json");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  // A body larger than the first read: the rest is read through TLS straight into its buffer.
  auto large = c.Post("/predicate", PredicateBody(0) + std::string(300000, ' '), "application/json");
  ASSERT_TRUE(large) << httplib::to_string(large.error());
  EXPECT_EQ(large->status, 200);
  EXPECT_EQ(Json::parse(large->body), Json::parse(R"({"status":"","code":0})"));
  server_->Stop();

  ServerOptions half;
  half.tls_cert = pki.server_cert_file;
  HttpServer bad(&bridge_, &registry_, half);
  EXPECT_FALSE(bad.Start().ok());
}

TEST_F(Http, StopFinishesAndFreesThePort) {
  Start();
  const int port = server_->port();
  server_->Stop();
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(1, 0);
  EXPECT_FALSE(c.Get("/healthz"));
}

}  // namespace
}  // namespace hyperaccel::bridge
