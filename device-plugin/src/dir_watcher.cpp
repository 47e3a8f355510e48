#include "dir_watcher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "hyperaccel/common/log.h"
#include "hyperaccel/common/status.h"

namespace hyperaccel::device_plugin {

DirWatcher::DirWatcher(std::string dir, std::function<void()> on_event)
    : dir_(std::move(dir)), on_event_(std::move(on_event)) {}

DirWatcher::~DirWatcher() { Stop(); }

void DirWatcher::Start() {
  if (thread_.joinable()) return;
  if (::pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    HA_LOG(kWarn, "cannot create a pipe; relying on polling").kv("error", ErrnoMessage(errno));
    return;
  }
  thread_ = std::thread([this] { Loop(); });
}

void DirWatcher::Stop() {
  if (thread_.joinable()) {
    char b = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_pipe_[1], &b, 1);
    thread_.join();
  }
  for (int& fd : stop_pipe_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

void DirWatcher::Loop() {
  constexpr uint32_t kMask =
      IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
  int fd = -1;
  bool warned = false;
  bool first = true;
  while (true) {
    if (fd < 0) {
      fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
      if (fd >= 0 && ::inotify_add_watch(fd, dir_.c_str(), kMask) < 0) {
        if (!warned) {
          HA_LOG(kWarn, "inotify unavailable; relying on stat() polling")
              .kv("dir", dir_)
              .kv("error", ErrnoMessage(errno));
          warned = true;
        }
        ::close(fd);
        fd = -1;
      } else if (fd < 0 && !warned) {
        HA_LOG(kWarn, "inotify unavailable; relying on stat() polling").kv("error", ErrnoMessage(errno));
        warned = true;
      }
      if (fd >= 0) {
        warned = false;
        active_.store(true);
        if (!first) on_event_();  // the directory may have changed while no watch was in place
      }
      first = false;
    }
    pollfd fds[2] = {{stop_pipe_[0], POLLIN, 0}, {fd, POLLIN, 0}};
    int n = ::poll(fds, fd >= 0 ? 2 : 1, fd >= 0 ? -1 : 1000);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;
    if (fd < 0 || fds[1].revents == 0) continue;
    alignas(inotify_event) char buf[4096];
    bool relevant = false;
    bool lost_watch = false;
    while (true) {
      ssize_t len = ::read(fd, buf, sizeof buf);
      if (len <= 0) break;
      for (ssize_t off = 0; off < len;) {
        inotify_event ev;
        std::memcpy(&ev, buf + off, sizeof ev);
        std::string name = ev.len > 0 ? std::string(buf + off + sizeof(inotify_event)) : std::string();
        if (ev.mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW)) lost_watch = true;
        if (name.empty() || name.ends_with(".sock")) relevant = true;
        off += static_cast<ssize_t>(sizeof(inotify_event) + ev.len);
      }
    }
    if (lost_watch) {
      ::close(fd);
      fd = -1;
      active_.store(false);
    }
    if (relevant || lost_watch) on_event_();
  }
  if (fd >= 0) ::close(fd);
  active_.store(false);
}

}  // namespace hyperaccel::device_plugin
