// The machine's own cost of a round trip, measured next to a server's: a bare server in a forked
// child process that answers every request of a known size with fixed bytes, and a client loop
// that times round trips to it. On a virtualized machine most of a small request's latency is
// waking the peer and being woken; these "floor" rows show what that costs on the machine at hand,
// so that a daemon's percentiles can be read against it (bench/README.md, "Floor rows").
//
// The child blocks in epoll_wait as a real server does and, because it is forked from a process
// that may run other threads, uses only system calls (epoll, accept4, recv, send, close, _exit):
// no allocation, no locks. It holds none of the parent's other descriptors, resets inherited
// signal handlers, and is killed (SIGKILL) and reaped when its FloorServer is destroyed, or by the
// kernel when the thread that started it ends (PR_SET_PDEATHSIG: start it from a thread that
// outlives it, e.g. main).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hyperaccel/common/status.h"

namespace hyperaccel::bench {

// ---- HTTP/1.1 message framing ----------------------------------------------------------------

// The length of the HTTP/1.1 message at the start of `data`: its start line and header fields up
// to and including the blank line, plus a body of Content-Length bytes (none without the field).
// 0 while the message is incomplete; bytes after it (a next message) are not looked at.
// Errors (InvalidArgument): a header of more than 64 KiB, an empty start line, a field without a
// colon, a Content-Length that is not a decimal number or overflows, two different
// Content-Length values, and Transfer-Encoding (chunked bodies are not read here).
inline Result<size_t> HttpMessageLength(std::string_view data) {
  constexpr size_t kMaxHeader = size_t{64} << 10;
  const size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (data.size() > kMaxHeader) return InvalidArgument("HTTP header longer than 64 KiB");
    return size_t{0};
  }
  if (end + 4 > kMaxHeader) return InvalidArgument("HTTP header longer than 64 KiB");
  size_t line_end = data.find("\r\n");
  if (line_end == 0) return InvalidArgument("HTTP message with an empty start line");
  auto equals_lower = [](std::string_view s, std::string_view lower) {
    if (s.size() != lower.size()) return false;
    for (size_t i = 0; i < s.size(); ++i) {
      const char c = s[i] >= 'A' && s[i] <= 'Z' ? static_cast<char>(s[i] - 'A' + 'a') : s[i];
      if (c != lower[i]) return false;
    }
    return true;
  };
  bool have_length = false;
  size_t body = 0;
  while (line_end < end) {
    const size_t start = line_end + 2;
    line_end = data.find("\r\n", start);
    const std::string_view line = data.substr(start, line_end - start);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return InvalidArgument("HTTP header field without a name and colon: \"" + std::string(line) + "\"");
    }
    const std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (equals_lower(name, "transfer-encoding")) {
      return InvalidArgument("HTTP message with Transfer-Encoding: " + std::string(value) +
                             " (only Content-Length bodies are read)");
    }
    if (!equals_lower(name, "content-length")) continue;
    size_t n = 0;
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || ec != std::errc() || ptr != value.data() + value.size()) {
      return InvalidArgument("HTTP Content-Length is not a decimal number: \"" + std::string(value) + "\"");
    }
    if (have_length && n != body)
      return InvalidArgument("HTTP message with two different Content-Length values");
    have_length = true;
    body = n;
  }
  const size_t header = end + 4;
  if (body > SIZE_MAX - header) return InvalidArgument("HTTP Content-Length too large");
  return data.size() - header >= body ? header + body : size_t{0};
}

// ---- sockets -----------------------------------------------------------------------------------

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = o.Release();
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { return std::exchange(fd_, -1); }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct LoopbackListener {
  UniqueFd fd;
  int port = 0;
};

// A TCP socket listening on 127.0.0.1 on a port the kernel picks.
inline Result<LoopbackListener> ListenOnLoopback() {
  LoopbackListener l;
  l.fd = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!l.fd.valid()) return Unavailable("socket: " + ErrnoMessage(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(l.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(l.fd.get(), 128) != 0 ||
      ::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Unavailable("listening on 127.0.0.1: " + ErrnoMessage(errno));
  }
  l.port = ntohs(addr.sin_port);
  return l;
}

// A blocking TCP connection to 127.0.0.1:port with TCP_NODELAY (as HTTP clients set it) and a
// receive timeout of `timeout`, so that a client never waits for ever on a server that went wrong.
inline Result<UniqueFd> ConnectToLoopback(int port, std::chrono::milliseconds timeout) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Unavailable("socket: " + ErrnoMessage(errno));
  const int one = 1;
  const timeval tv{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return Unavailable("connect to 127.0.0.1:" + std::to_string(port) + ": " + ErrnoMessage(errno));
  }
  return fd;
}

// Writes all of `data` to `fd`.
inline Status SendAllBytes(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Unavailable("send: " + ErrnoMessage(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Waits up to `timeout` for a connection on `listen_fd` and accepts it.
inline Result<UniqueFd> AcceptOne(int listen_fd, std::chrono::milliseconds timeout) {
  pollfd p{listen_fd, POLLIN, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) return Unavailable(ready == 0 ? "no connection in time" : "poll: " + ErrnoMessage(errno));
  UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
  if (!fd.valid()) return Unavailable("accept: " + ErrnoMessage(errno));
  return fd;
}

// Reads one whole HTTP/1.1 message (HttpMessageLength) from `fd`, waiting up to `timeout` for each
// read. Errors when the peer closes first, on a timeout, and when more than the message arrives.
inline Result<std::string> ReadHttpMessage(int fd, std::chrono::milliseconds timeout) {
  std::string data;
  char buf[16384];
  for (;;) {
    auto length = HttpMessageLength(data);
    if (!length.ok()) return length.status();
    if (*length > 0) {
      if (data.size() != *length) return InvalidArgument("more than one HTTP message arrived");
      return data;
    }
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (ready <= 0)
      return Unavailable("no complete HTTP message in time (" + std::to_string(data.size()) + " bytes)");
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return Unavailable("connection closed after " + std::to_string(data.size()) +
                         " bytes of an HTTP message");
    }
    data.append(buf, static_cast<size_t>(n));
  }
}

// ---- the floor server ----------------------------------------------------------------------------

namespace detail {

// The forked child: serves on `fd` (a connected socket, or with `listening` a listening one) until
// it is killed. Each connection's requests are exactly `request_bytes` long; each is answered with
// the `answer_size` bytes at `answer`, after which the connection is closed when `close_after`.
// A connection that sends more than one request's bytes before its answer is closed. Without
// `listening` the child exits when its one connection ends. Only system calls from here on.
[[noreturn]] inline void ServeFloor(int fd, bool listening, size_t request_bytes, const char* answer,
                                    size_t answer_size, bool close_after, char* buf, size_t buf_size,
                                    pid_t parent) noexcept {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(0);  // the parent ended before the line above
  ::prctl(PR_SET_NAME, "floor-server");
  // Inherited handlers belong to the parent's code; default dispositions from here on.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
  // Only `fd` stays open, as descriptor 3 (not the parent's sockets and files), so that the
  // child's descriptors are numbered low whatever the parent had open.
  if (fd != 3 && ::dup2(fd, 3) < 0) ::_exit(3);
  fd = 3;
  ::close_range(4, ~0U, 0);

  constexpr int kMaxFd = 256;  // connections beyond this are refused (one client is expected)
  size_t got[kMaxFd] = {};     // bytes of the current request received, by connection
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) ::_exit(3);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) ::_exit(3);
  auto drop = [&](int c) {
    ::close(c);
    if (!listening) ::_exit(0);
  };
  for (;;) {
    epoll_event events[16];
    const int n = ::epoll_wait(ep, events, 16, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ::_exit(4);
    for (int i = 0; i < n; ++i) {
      const int c = events[i].data.fd;
      if (listening && c == fd) {
        const int conn = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) continue;
        epoll_event cev{};
        cev.events = EPOLLIN;
        cev.data.fd = conn;
        if (conn >= kMaxFd || ::epoll_ctl(ep, EPOLL_CTL_ADD, conn, &cev) != 0) {
          ::close(conn);
          continue;
        }
        got[conn] = 0;
        continue;
      }
      // Read what has arrived; answer once the request is complete.
      for (;;) {
        const ssize_t r = ::recv(c, buf, buf_size, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r <= 0 || got[c] + static_cast<size_t>(r) > request_bytes) {
          drop(c);
          break;
        }
        got[c] += static_cast<size_t>(r);
        if (got[c] < request_bytes) continue;
        got[c] = 0;
        size_t sent = 0;
        while (sent < answer_size) {
          const ssize_t w = ::send(c, answer + sent, answer_size - sent, MSG_NOSIGNAL);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) break;
          sent += static_cast<size_t>(w);
        }
        if (sent < answer_size || close_after) drop(c);
        break;
      }
    }
  }
}

}  // namespace detail

// A bare server in a child process (see the top of this file). Not thread-safe.
class FloorServer {
 public:
  struct Options {
    size_t request_bytes = 0;  // every request is exactly this long (> 0)
    std::string answer;        // sent back whole after each request (not empty)
    // The server closes each connection after its answer; the client opens one per request.
    // Only for Tcp().
    bool close_after_answer = false;
  };

  // A connected unix stream socket pair: the child answers on one end, RoundTrip() uses the other.
  static Result<std::unique_ptr<FloorServer>> UnixPair(Options o) {
    if (auto s = Check(o); !s.ok()) return s;
    if (o.close_after_answer) return InvalidArgument("close_after_answer needs a listening server (Tcp)");
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      return Unavailable("socketpair: " + ErrnoMessage(errno));
    }
    UniqueFd server_end(fds[1]);
    std::unique_ptr<FloorServer> s(new FloorServer(std::move(o), 0));
    s->conn_ = UniqueFd(fds[0]);
    SetReceiveTimeout(s->conn_.get());
    if (auto st = s->Fork(server_end.get(), false); !st.ok()) return st;
    return s;
  }

  // A TCP server on `listener` (listening on 127.0.0.1: ListenOnLoopback), which the child takes
  // over. With Options::close_after_answer each RoundTrip() is a new connection (connect, send,
  // read the answer, close); otherwise all of them share one connection, opened by the first.
  static Result<std::unique_ptr<FloorServer>> Tcp(LoopbackListener listener, Options o) {
    if (auto s = Check(o); !s.ok()) return s;
    if (!listener.fd.valid() || listener.port <= 0) return InvalidArgument("no listening socket");
    std::unique_ptr<FloorServer> s(new FloorServer(std::move(o), listener.port));
    if (auto st = s->Fork(listener.fd.get(), true); !st.ok()) return st;
    return s;  // the parent's copy of the listening socket is closed with `listener`
  }

  // Kills the child and reaps it.
  ~FloorServer() {
    conn_.Reset();
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
  FloorServer(const FloorServer&) = delete;
  FloorServer& operator=(const FloorServer&) = delete;

  pid_t pid() const { return pid_; }
  int port() const { return port_; }  // 0 for a unix pair
  size_t answer_size() const { return o_.answer.size(); }

  // One round trip: sends `request` (Options::request_bytes long) and reads the whole answer.
  Status RoundTrip(std::string_view request) {
    if (request.size() != o_.request_bytes) {
      return InvalidArgument("request of " + std::to_string(request.size()) + " bytes, the server expects " +
                             std::to_string(o_.request_bytes));
    }
    if (!conn_.valid()) {
      if (port_ == 0) return Unavailable("the floor server's unix socket pair is closed");
      auto c = ConnectToLoopback(port_, kTimeout);
      if (!c.ok()) return c.status();
      conn_ = std::move(*c);
    }
    Status s = SendAllBytes(conn_.get(), request);
    size_t got = 0;
    while (s.ok() && got < reply_.size()) {
      const ssize_t n = ::recv(conn_.get(), reply_.data() + got, reply_.size() - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) s = Unavailable("the floor server closed the connection");
      if (n < 0) s = Unavailable("no answer from the floor server: " + ErrnoMessage(errno));
      if (n > 0) got += static_cast<size_t>(n);
    }
    if (o_.close_after_answer || !s.ok()) conn_.Reset();
    return s;
  }

  // The answer read by the last successful RoundTrip().
  std::string_view last_answer() const { return reply_; }

 private:
  static constexpr std::chrono::milliseconds kTimeout{10000};

  FloorServer(Options o, int port) : o_(std::move(o)), port_(port), reply_(o_.answer.size(), '\0') {
    // The child's receive buffer: a whole request (up to 1 MiB) fits in one recv when it has arrived.
    buf_.resize(std::min<size_t>(std::max<size_t>(o_.request_bytes, 65536), size_t{1} << 20));
  }
  static Status Check(const Options& o) {
    if (o.request_bytes == 0) return InvalidArgument("floor server: request_bytes must be > 0");
    if (o.answer.empty()) return InvalidArgument("floor server: empty answer");
    return Status::Ok();
  }
  static void SetReceiveTimeout(int fd) {
    const timeval tv{static_cast<time_t>(kTimeout.count() / 1000), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  Status Fork(int serve_fd, bool listening) {
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return Unavailable("fork: " + ErrnoMessage(errno));
    if (pid == 0) {
      detail::ServeFloor(serve_fd, listening, o_.request_bytes, o_.answer.data(), o_.answer.size(),
                         o_.close_after_answer, buf_.data(), buf_.size(), parent);
    }
    pid_ = pid;
    return Status::Ok();
  }

  Options o_;
  int port_ = 0;
  pid_t pid_ = -1;
  UniqueFd conn_;          // the client's connection (unix pair end, or the keep-alive TCP one)
  std::string reply_;      // the client's answer buffer
  std::vector<char> buf_;  // the child's receive buffer (allocated before the fork)
};

// Times `calls` round trips of `request` to `server`, after `warmup` untimed ones; microseconds,
// one per timed call. Stops at the first failed round trip.
inline Result<std::vector<double>> TimeRoundTrips(FloorServer& server, std::string_view request, int warmup,
                                                  int calls) {
  for (int i = 0; i < warmup; ++i) {
    if (auto s = server.RoundTrip(request); !s.ok()) return s;
  }
  std::vector<double> us;
  us.reserve(static_cast<size_t>(std::max(calls, 0)));
  for (int i = 0; i < calls; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = server.RoundTrip(request); !s.ok()) return s;
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  return us;
}

}  // namespace hyperaccel::bench
