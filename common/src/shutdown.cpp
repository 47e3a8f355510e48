#include "hyperaccel/common/shutdown.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <csignal>

namespace hyperaccel::shutdown {
namespace {

constexpr int kShutdownSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};

std::atomic<bool> g_requested{false};
int g_pipe[2] = {-1, -1};  // self-pipe: a byte is written on request, never read

void Notify() {
  g_requested.store(true);
  if (g_pipe[1] >= 0) {
    char b = 1;
    [[maybe_unused]] ssize_t n = ::write(g_pipe[1], &b, 1);
  }
}

extern "C" void OnSignal(int /*sig*/) { Notify(); }

void EnsurePipe() {
  static std::atomic<bool> made{false};
  bool expected = false;
  if (made.compare_exchange_strong(expected, true)) {
    if (::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
      g_pipe[0] = g_pipe[1] = -1;
    }
  }
}

}  // namespace

void InstallSignalHandlers() {
  EnsurePipe();
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  // SIGHUP and SIGQUIT would otherwise end the process without cleanup (sockets left behind,
  // streams cut): every one of them asks for the same graceful shutdown.
  for (const int sig : kShutdownSignals) sigaction(sig, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

bool Requested() { return g_requested.load(); }

void Request() {
  EnsurePipe();
  Notify();
}

bool WaitFor(std::chrono::milliseconds timeout) {
  EnsurePipe();
  if (g_requested.load()) return true;
  if (g_pipe[0] < 0) {
    ::usleep(static_cast<useconds_t>(timeout.count() * 1000));
    return g_requested.load();
  }
  struct pollfd pfd {
    g_pipe[0], POLLIN, 0
  };
  ::poll(&pfd, 1, static_cast<int>(timeout.count()));
  return g_requested.load();
}

void ResetForTest() {
  g_requested.store(false);
  if (g_pipe[0] >= 0) {
    char buf[64];
    while (::read(g_pipe[0], buf, sizeof buf) > 0) {
    }
  }
}

}  // namespace hyperaccel::shutdown
