#include "hyperaccel/common/dir_watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <utility>

#include "hyperaccel/common/log.h"

namespace hyperaccel {
namespace {

constexpr uint32_t kMask =
    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
constexpr uint32_t kLostMask = IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW;

// An inotify descriptor watching `dir`, or -1 with errno set.
int WatchDir(const std::string& dir) {
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return -1;
  if (::inotify_add_watch(fd, dir.c_str(), kMask) < 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

}  // namespace

DirWatcher::DirWatcher(DirWatcherOptions options, std::function<void()> on_event)
    : options_(std::move(options)), on_event_(std::move(on_event)) {}

DirWatcher::~DirWatcher() { Stop(); }

Status DirWatcher::Start() {
  if (thread_.joinable()) return Status::Ok();
  if (::pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return Unavailable("cannot create a pipe to stop the watcher of " + options_.dir + ": " +
                       ErrnoMessage(errno));
  }
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void DirWatcher::Stop() {
  if (thread_.joinable()) {
    char b = 1;
    [[maybe_unused]] const ssize_t n = ::write(stop_pipe_[1], &b, 1);
    thread_.join();
  }
  for (int& fd : stop_pipe_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

bool DirWatcher::Drain(int fd, bool* lost) const {
  alignas(inotify_event) char buf[4096];
  bool relevant = false;
  while (true) {
    const ssize_t len = ::read(fd, buf, sizeof buf);
    if (len <= 0) break;
    for (ssize_t off = 0; off + static_cast<ssize_t>(sizeof(inotify_event)) <= len;) {
      inotify_event ev{};
      std::memcpy(&ev, buf + off, sizeof ev);
      const char* name_start = buf + off + sizeof(inotify_event);
      const std::string_view name(name_start, ::strnlen(name_start, ev.len));
      if ((ev.mask & kLostMask) != 0) *lost = true;
      if (name.empty() || name.ends_with(options_.suffix)) relevant = true;
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev.len);
    }
  }
  return relevant;
}

void DirWatcher::Loop() {
  const int interval_ms = static_cast<int>(options_.interval.count());
  int fd = -1;
  bool first = true;    // no watch attempt made yet
  bool lost = false;    // a watch was in place and went away
  bool warned = false;  // the failure to watch was logged (once until a watch works again)
  while (true) {
    if (fd < 0) {
      if (options_.before_watch) options_.before_watch();
      fd = WatchDir(options_.dir);
      if (fd >= 0) {
        warned = false;
        watching_.store(true);
      } else if (!warned) {
        HA_LOG(kWarn, "inotify unavailable; relying on polling")
            .kv("dir", options_.dir)
            .kv("error", ErrnoMessage(errno))
            .kv("retry_ms", interval_ms);
        warned = true;
      }
      // After a lost watch or a failed attempt, the directory may have changed unseen.
      const bool notify = first ? options_.notify_first : (lost || fd >= 0);
      first = false;
      lost = false;
      if (notify) on_event_();
    }
    pollfd fds[2] = {{stop_pipe_[0], POLLIN, 0}, {fd, POLLIN, 0}};
    const int timeout = fd < 0 || options_.periodic ? interval_ms : -1;
    const int n = ::poll(fds, fd >= 0 ? 2 : 1, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      HA_LOG(kError, "directory watcher stopped").kv("dir", options_.dir).kv("error", ErrnoMessage(errno));
      break;
    }
    if (fds[0].revents != 0) break;
    if (n == 0) {
      if (options_.periodic) on_event_();
      continue;
    }
    if (fd < 0 || fds[1].revents == 0) continue;
    const bool relevant = Drain(fd, &lost);
    if (lost) {
      ::close(fd);
      fd = -1;
      watching_.store(false);
      continue;  // set up again at once; on_event runs after that attempt
    }
    if (relevant) on_event_();
  }
  if (fd >= 0) ::close(fd);
  watching_.store(false);
}

}  // namespace hyperaccel
