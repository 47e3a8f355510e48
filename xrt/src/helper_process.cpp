#include "helper_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <thread>

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, not declared by <unistd.h> in C++

namespace hyperaccel::hw {
namespace {

using Clock = std::chrono::steady_clock;

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// A pipe whose both ends are close-on-exec (the child gets its end through a dup2 action, which
// clears the flag on the copy only).
Status MakePipe(Fd& read_end, Fd& write_end) {
  std::array<int, 2> fds{};
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) return Unavailable("pipe: " + ErrnoMessage(errno));
  read_end.Reset(fds[0]);
  write_end.Reset(fds[1]);
  const int flags = ::fcntl(fds[0], F_GETFL);
  if (flags < 0 || ::fcntl(fds[0], F_SETFL, flags | O_NONBLOCK) != 0)
    return Unavailable("fcntl: " + ErrnoMessage(errno));
  return Status::Ok();
}

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawnattr_t attr{};
  posix_spawn_file_actions_t actions{};
  bool attr_ok = false;
  bool actions_ok = false;
  SpawnSetup() = default;
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  ~SpawnSetup() {
    if (attr_ok) posix_spawnattr_destroy(&attr);
    if (actions_ok) posix_spawn_file_actions_destroy(&actions);
  }
};

// Kills the child's process group (and the child, should it have left it) and reaps the child.
void KillAndReap(pid_t pid) {
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// Reads what is available from `fd` into `sink`. Returns false at end of file (or a read error).
bool Drain(int fd, std::string& sink, size_t keep_tail) {
  std::array<char, 16384> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n > 0) {
      sink.append(buf.data(), static_cast<size_t>(n));
      if (keep_tail > 0 && sink.size() > 2 * keep_tail) sink.erase(0, sink.size() - keep_tail);
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

}  // namespace

Result<HelperOutput> RunHelper(const std::vector<std::string>& argv, const HelperLimits& limits) {
  if (argv.empty() || argv[0].empty()) return InvalidArgument("no helper program given");
  const std::string& program = argv[0];
  Fd out_r;
  Fd out_w;
  Fd err_r;
  Fd err_w;
  if (Status st = MakePipe(out_r, out_w); !st.ok()) return st.WithContext(program);
  if (Status st = MakePipe(err_r, err_w); !st.ok()) return st.WithContext(program);

  SpawnSetup setup;
  if (posix_spawnattr_init(&setup.attr) != 0) return Unavailable(program + ": posix_spawnattr_init failed");
  setup.attr_ok = true;
  if (posix_spawn_file_actions_init(&setup.actions) != 0)
    return Unavailable(program + ": posix_spawn_file_actions_init failed");
  setup.actions_ok = true;
  // The child starts with default dispositions (daemons ignore SIGPIPE, which exec would keep)
  // and nothing blocked, in a group of its own so that a kill reaches whatever it started.
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&setup.attr, &none);
  posix_spawnattr_setsigdefault(&setup.attr, &all);
  posix_spawnattr_setpgroup(&setup.attr, 0);
  posix_spawnattr_setflags(&setup.attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  posix_spawn_file_actions_addopen(&setup.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&setup.actions, out_w.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&setup.actions, err_w.get(), STDERR_FILENO);
  // Nothing else of the caller's: descriptors a daemon inherited without close-on-exec included.
  posix_spawn_file_actions_addclosefrom_np(&setup.actions, STDERR_FILENO + 1);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));  // NOLINT: POSIX API
  args.push_back(nullptr);

  const auto start = Clock::now();
  const auto deadline = start + limits.timeout;
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, program.c_str(), &setup.actions, &setup.attr, args.data(), environ);
  if (rc != 0) return Unavailable(program + ": cannot start: " + ErrnoMessage(rc));
  out_w.Reset();
  err_w.Reset();

  HelperOutput result;
  bool out_open = true;
  bool err_open = true;
  bool reaped = false;
  int status = 0;
  struct rusage usage {};
  auto after_exit = Clock::time_point::max();  // when the child was reaped with a pipe still open
  while (out_open || err_open) {
    const auto now = Clock::now();
    if (now >= deadline) {
      KillAndReap(pid);
      return Status(
          StatusCode::kDeadlineExceeded,
          program + ": no answer within " + std::to_string(limits.timeout.count()) + " ms (killed)");
    }
    if (reaped && now >= after_exit) break;  // something the child started still holds a pipe
    std::array<pollfd, 2> fds{};
    nfds_t n = 0;
    if (out_open) fds[n++] = {out_r.get(), POLLIN, 0};
    if (err_open) fds[n++] = {err_r.get(), POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    // Wake up now and then to notice a child that exited while something else holds its pipes.
    const int wait_ms = static_cast<int>(std::min<long long>(left, 50));
    const int ready = ::poll(fds.data(), n, wait_ms);
    if (ready < 0 && errno != EINTR) {
      const int err = errno;
      KillAndReap(pid);
      return Internal(program + ": poll: " + ErrnoMessage(err));
    }
    for (nfds_t i = 0; ready > 0 && i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == out_r.get()) {
        out_open = Drain(out_r.get(), result.out, 0);
        if (result.out.size() > limits.max_stdout) {
          KillAndReap(pid);
          return ResourceExhausted(program + ": answer larger than " + std::to_string(limits.max_stdout) +
                                   " bytes (killed)");
        }
      } else {
        err_open = Drain(err_r.get(), result.err_tail, limits.max_stderr_kept);
      }
    }
    if (!reaped) {
      const pid_t w = ::wait4(pid, &status, WNOHANG, &usage);
      if (w == pid || (w < 0 && errno == ECHILD)) {
        reaped = true;
        if (w < 0) status = -1;
        after_exit = Clock::now() + std::chrono::milliseconds(100);
      }
    }
  }
  if (reaped) {
    ::kill(-pid, SIGKILL);  // anything the child left behind in its group
  } else {
    // Both pipes closed: the child is exiting. Wait for it within the deadline.
    for (;;) {
      const pid_t w = ::wait4(pid, &status, WNOHANG, &usage);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) {
        status = -1;  // ECHILD: someone else reaped it (SIGCHLD ignored); exit status unknown
        break;
      }
      if (Clock::now() >= deadline) {
        KillAndReap(pid);
        return Status(StatusCode::kDeadlineExceeded,
                      program + ": closed its output but did not exit within " +
                          std::to_string(limits.timeout.count()) + " ms (killed)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  if (result.err_tail.size() > limits.max_stderr_kept)
    result.err_tail.erase(0, result.err_tail.size() - limits.max_stderr_kept);
  result.wall = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  result.cpu = std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
               std::chrono::microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
  result.max_rss_kib = usage.ru_maxrss;
  if (status == -1) {
    result.exit_code = -1;
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  return result;
}

std::string DescribeHelperEnd(const HelperOutput& out) {
  std::string what;
  if (out.term_signal != 0) {
    const char* name = sigabbrev_np(out.term_signal);
    what = "killed by signal " + std::to_string(out.term_signal) +
           (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
  } else if (out.exit_code < 0) {
    what = "ended with an unknown status";
  } else {
    what = "exited with status " + std::to_string(out.exit_code);
  }
  // The last non-empty line of stderr says why, when the helper could say it.
  std::string_view err = out.err_tail;
  while (!err.empty() && (err.back() == '\n' || err.back() == '\r' || err.back() == ' '))
    err.remove_suffix(1);
  const size_t nl = err.find_last_of('\n');
  if (nl != std::string_view::npos) err.remove_prefix(nl + 1);
  if (err.size() > 300) err = err.substr(0, 300);
  if (!err.empty()) what += ": " + std::string(err);
  return what;
}

}  // namespace hyperaccel::hw
