// bench/floor.h: the HTTP framing the bridge bench's floor rows rely on, and the forked floor
// server: its answers, its connection handling, and that its process is gone afterwards. Nothing
// here is timed.
#include "floor.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace hyperaccel::bench {
namespace {

using namespace std::chrono_literals;

// ---- HttpMessageLength ----

TEST(HttpMessageLengthTest, HeaderPlusContentLength) {
  const std::string header = "POST /predicate HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
  auto n = HttpMessageLength(header + "hello");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, header.size() + 5);
}

TEST(HttpMessageLengthTest, IncompleteIsZero) {
  const std::string header = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
  for (const std::string& partial : {std::string(), std::string("POST / HTTP/1.1\r\nContent-Len"),
                                     header.substr(0, header.size() - 1), header, header + "hell"}) {
    auto n = HttpMessageLength(partial);
    ASSERT_TRUE(n.ok()) << partial;
    EXPECT_EQ(*n, 0U) << partial;
  }
}

TEST(HttpMessageLengthTest, OnlyTheFirstMessageCounts) {
  const std::string one = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
  auto n = HttpMessageLength(one + one);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, one.size());
}

TEST(HttpMessageLengthTest, NoContentLengthMeansNoBody) {
  const std::string get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  auto n = HttpMessageLength(get);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, get.size());
}

TEST(HttpMessageLengthTest, FieldNameAnyCaseValueWithWhitespace) {
  const std::string header = "POST / HTTP/1.1\r\ncOnTeNt-LeNgTh:\t 3 \r\n\r\n";
  auto n = HttpMessageLength(header + "abc");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, header.size() + 3);
}

TEST(HttpMessageLengthTest, IdenticalRepeatedContentLengthIsAccepted) {
  const std::string header = "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
  auto n = HttpMessageLength(header + "x");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, header.size() + 1);
}

TEST(HttpMessageLengthTest, MalformedHeadersAreErrors) {
  for (const std::string& bad : {
           std::string("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx"),
           std::string("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\nno colon here\r\n\r\n"),
           std::string("POST / HTTP/1.1\r\n: empty name\r\n\r\n"),
           std::string("\r\nHost: x\r\n\r\n"),
       }) {
    auto n = HttpMessageLength(bad);
    ASSERT_FALSE(n.ok()) << bad;
    EXPECT_EQ(n.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(HttpMessageLengthTest, EndlessHeaderIsAnError) {
  const std::string endless = "POST / HTTP/1.1\r\nX: " + std::string(70000, 'a');
  EXPECT_FALSE(HttpMessageLength(endless).ok());
  EXPECT_FALSE(HttpMessageLength(endless + "\r\n\r\n").ok());
}

// ---- the floor server ----

// True once `pid` is no child of this process any more (reaped, so no zombie is left either).
bool Reaped(pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) < 0 && errno == ECHILD; }

// True when the child `pid` has exited within `timeout` (left to be reaped by its owner).
bool ExitsWithin(pid_t pid, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      return true;
    }
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

FloorServer::Options Opts(size_t request_bytes, std::string answer, bool close_after = false) {
  FloorServer::Options o;
  o.request_bytes = request_bytes;
  o.answer = std::move(answer);
  o.close_after_answer = close_after;
  return o;
}

TEST(FloorServerTest, UnixPairAnswersEveryRequestAndIsReaped) {
  const std::string answer(300, 'a');
  pid_t pid = -1;
  {
    auto server = FloorServer::UnixPair(Opts(200, answer));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    pid = (*server)->pid();
    ASSERT_GT(pid, 0);
    const std::string request(200, 'r');
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE((*server)->RoundTrip(request).ok()) << i;
      EXPECT_EQ((*server)->last_answer(), answer);
    }
    // The wrong size is refused before anything is sent.
    EXPECT_EQ((*server)->RoundTrip("short").code(), StatusCode::kInvalidArgument);
    ASSERT_TRUE((*server)->RoundTrip(request).ok());
  }
  EXPECT_TRUE(Reaped(pid));
}

TEST(FloorServerTest, TcpKeepAliveUsesOneConnectionAndIsReaped) {
  auto listener = ListenOnLoopback();
  ASSERT_TRUE(listener.ok()) << listener.status().ToString();
  const int port = listener->port;
  const std::string request = "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
  const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
  pid_t pid = -1;
  {
    auto server = FloorServer::Tcp(std::move(*listener), Opts(request.size(), answer));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    pid = (*server)->pid();
    EXPECT_EQ((*server)->port(), port);
    auto us = TimeRoundTrips(**server, request, 3, 20);
    ASSERT_TRUE(us.ok()) << us.status().ToString();
    EXPECT_EQ(us->size(), 20U);
    for (double t : *us) EXPECT_GT(t, 0);
    EXPECT_EQ((*server)->last_answer(), answer);
    // A second client is served too, on its own connection.
    auto c = ConnectToLoopback(port, 5000ms);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(SendAllBytes(c->get(), request).ok());
    auto got = ReadHttpMessage(c->get(), 5000ms);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(*got, answer);
  }
  EXPECT_TRUE(Reaped(pid));
  // Nothing listens on the port any more: the child held the only listening socket.
  EXPECT_FALSE(ConnectToLoopback(port, 1000ms).ok());
}

TEST(FloorServerTest, TcpNewConnectionPerRequestIsClosedAfterTheAnswer) {
  auto listener = ListenOnLoopback();
  ASSERT_TRUE(listener.ok());
  const int port = listener->port;
  const std::string request(1000, 'q');
  const std::string answer(150, 'z');
  auto server = FloorServer::Tcp(std::move(*listener), Opts(request.size(), answer, true));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto us = TimeRoundTrips(**server, request, 0, 10);
  ASSERT_TRUE(us.ok()) << us.status().ToString();
  EXPECT_EQ(us->size(), 10U);
  // The server closes after the answer: EOF follows it.
  auto c = ConnectToLoopback(port, 5000ms);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(SendAllBytes(c->get(), request).ok());
  std::string got(answer.size() + 1, '\0');
  size_t n = 0;
  while (n < got.size()) {
    const ssize_t r = ::recv(c->get(), got.data() + n, got.size() - n, 0);
    if (r <= 0) break;
    n += static_cast<size_t>(r);
  }
  EXPECT_EQ(n, answer.size());
  EXPECT_EQ(got.substr(0, n), answer);
}

TEST(FloorServerTest, TooManyBytesCloseTheConnectionWithoutAnAnswer) {
  auto listener = ListenOnLoopback();
  ASSERT_TRUE(listener.ok());
  const int port = listener->port;
  auto server = FloorServer::Tcp(std::move(*listener), Opts(10, "answer"));
  ASSERT_TRUE(server.ok());
  auto c = ConnectToLoopback(port, 5000ms);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(SendAllBytes(c->get(), std::string(11, 'x')).ok());
  char b[16];
  EXPECT_EQ(::recv(c->get(), b, sizeof b, 0), 0);  // EOF, no answer
  // The server still serves other connections.
  ASSERT_TRUE((*server)->RoundTrip(std::string(10, 'x')).ok());
  EXPECT_EQ((*server)->last_answer(), "answer");
}

TEST(FloorServerTest, ChildHoldsNoneOfTheParentsDescriptors) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);  // not close-on-exec: a fork alone would share it
  auto server = FloorServer::UnixPair(Opts(8, "ok"));
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE((*server)->RoundTrip("12345678").ok());  // the child is past its set-up
  ::close(p[1]);
  // Had the child kept a copy of the write end, this read would block instead of seeing EOF.
  ASSERT_EQ(::fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
  char b;
  EXPECT_EQ(::read(p[0], &b, 1), 0);
  ::close(p[0]);
}

TEST(FloorServerTest, ServesWhenTheParentHasManyDescriptorsOpen) {
  // The served socket is numbered above 300 in the parent; the child renumbers it.
  std::vector<int> held;
  for (int i = 0; i < 300; ++i) {
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    held.push_back(fd);
  }
  if (held.size() < 300) {
    for (int fd : held) ::close(fd);
    GTEST_SKIP() << "cannot open 300 descriptors (RLIMIT_NOFILE)";
  }
  auto listener = ListenOnLoopback();
  ASSERT_TRUE(listener.ok());
  EXPECT_GT(listener->fd.get(), 300);
  auto server = FloorServer::Tcp(std::move(*listener), Opts(3, "yes"));
  auto pair = FloorServer::UnixPair(Opts(3, "yes"));
  for (int fd : held) ::close(fd);
  ASSERT_TRUE(server.ok());
  ASSERT_TRUE(pair.ok());
  EXPECT_TRUE((*server)->RoundTrip("abc").ok());
  EXPECT_TRUE((*pair)->RoundTrip("abc").ok());
}

TEST(FloorServerTest, ClientGetsAnErrorWhenTheChildDies) {
  auto server = FloorServer::UnixPair(Opts(4, "pong"));
  ASSERT_TRUE(server.ok());
  const pid_t pid = (*server)->pid();
  ASSERT_TRUE((*server)->RoundTrip("ping").ok());
  // Kill it from outside: the client sees an error, not a hang, and the destructor copes.
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_FALSE((*server)->RoundTrip("ping").ok());
  EXPECT_FALSE((*server)->RoundTrip("ping").ok());  // and stays failed
  server->reset();
  EXPECT_TRUE(Reaped(pid));
}

TEST(FloorServerTest, ChildEndsWhenTheThreadThatStartedItEnds) {
  // PR_SET_PDEATHSIG: the kernel kills the child when the starting thread (in a bench: the whole
  // process) ends, so a bench that dies without running destructors leaves no server behind.
  std::unique_ptr<FloorServer> server;
  std::thread starter([&] {
    auto s = FloorServer::UnixPair(Opts(4, "pong"));
    // One answer: the child has set its parent-death signal before this thread ends.
    if (s.ok() && (*s)->RoundTrip("ping").ok()) server = std::move(*s);
  });
  starter.join();
  ASSERT_NE(server, nullptr);
  const pid_t pid = server->pid();
  EXPECT_TRUE(ExitsWithin(pid, 5000ms));
  server.reset();
  EXPECT_TRUE(Reaped(pid));
}

TEST(FloorServerTest, BadOptionsAreRefusedWithoutAChild) {
  EXPECT_EQ(FloorServer::UnixPair(Opts(0, "a")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FloorServer::UnixPair(Opts(4, "")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FloorServer::UnixPair(Opts(4, "a", true)).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(FloorServer::Tcp(LoopbackListener{}, Opts(4, "a")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Reaped(-1));  // no child of this process exists
}

}  // namespace
}  // namespace hyperaccel::bench
