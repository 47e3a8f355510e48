// Raw TCP clients on 127.0.0.1 for the listener tests: hold many connections open, send partial
// requests, time one request from connect to the end of its answer. Blocking POSIX sockets with
// receive/send timeouts, so a test that goes wrong fails instead of hanging.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>

namespace hyperaccel::testing {

// Raises the soft RLIMIT_NOFILE to at least `n` (up to the hard limit); returns the new soft limit.
inline rlim_t RaiseFdLimit(rlim_t n) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return 0;
  if (r.rlim_cur < n) {
    r.rlim_cur = r.rlim_max == RLIM_INFINITY ? n : std::min(n, r.rlim_max);
    setrlimit(RLIMIT_NOFILE, &r);
    getrlimit(RLIMIT_NOFILE, &r);
  }
  return r.rlim_cur;
}

// A connected socket to 127.0.0.1:port (-1 on failure), with 10 s send and receive timeouts.
inline int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until the peer closes or `timeout` passes; returns what arrived.
inline std::string ReadUntilClosed(int fd, std::chrono::milliseconds timeout) {
  std::string out;
  const auto end = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// True when the peer has closed the connection (EOF or reset) within `timeout`; bytes that
// arrive first are read and dropped.
// A zero timeout looks once without waiting.
inline bool ClosedByPeer(int fd, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::max<long>(0, left.count()))) <= 0) return false;
    if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0) return true;
  }
}

// Sends one request on a new connection and reads the answer to its end (the request asks the
// server to close). Returns the status code (0 when there was no answer within `timeout`) and
// stores the time from connect to the last byte in `*elapsed` and the answer in `*response`.
inline int TimedRequest(int port, const std::string& request, std::chrono::milliseconds timeout,
                        std::chrono::microseconds* elapsed, std::string* response = nullptr) {
  const auto start = std::chrono::steady_clock::now();
  const int fd = ConnectLoopback(port);
  if (fd < 0) return 0;
  std::string answer;
  if (SendAll(fd, request)) answer = ReadUntilClosed(fd, timeout);
  close(fd);
  *elapsed = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
  if (response) *response = answer;
  if (answer.compare(0, 9, "HTTP/1.1 ") != 0 || answer.size() < 12) return 0;
  return std::stoi(answer.substr(9, 3));
}

}  // namespace hyperaccel::testing
