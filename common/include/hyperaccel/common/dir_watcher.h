// Watches one directory with inotify on a thread of its own and calls back when something in it
// changes (a socket created or removed, the directory itself removed). Used by the kubelet plugins
// to notice that the kubelet wiped its socket directory or restarted. inotify only shortens the
// reaction time: a failing inotify ("too many open files") or a missed event must cost at most one
// poll interval of whoever relies on it, so callers keep polling (or ask for `periodic` calls).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "hyperaccel/common/status.h"

namespace hyperaccel {

struct DirWatcherOptions {
  // The directory to watch.
  std::string dir;
  // Only entries whose name ends with this report a change ("" = every entry). Events on the
  // directory itself (removed, moved, queue overflow) always do.
  std::string suffix;
  // While no watch can be set up (the directory is missing, inotify fails), it is tried again this
  // often; with `periodic`, also the longest time between two calls of on_event.
  std::chrono::milliseconds interval{1000};
  // Call on_event also after every `interval` without a change (a safety net for missed events).
  bool periodic = false;
  // Call on_event once the first watch attempt is done (changes before it went unseen).
  bool notify_first = false;
  // Runs on the watcher thread before each attempt to set up the watch, e.g. to create the
  // directory again after someone removed it. May be empty.
  std::function<void()> before_watch;
};

class DirWatcher {
 public:
  // `on_event` runs on the watcher thread for each batch of relevant events, after the watch is set
  // up again (once it was lost, the directory may have changed unseen), and as `options` asks.
  // It must not call Stop().
  DirWatcher(DirWatcherOptions options, std::function<void()> on_event);
  ~DirWatcher();
  DirWatcher(const DirWatcher&) = delete;
  DirWatcher& operator=(const DirWatcher&) = delete;

  // Starts the watcher thread. Unavailable when the thread cannot be given its stop pipe; a
  // second call does nothing.
  Status Start();
  // Stops and joins the watcher thread; on_event is not running once this returns. Idempotent.
  void Stop();
  // Whether an inotify watch is currently in place (false while polling instead).
  bool watching() const { return watching_.load(); }

 private:
  void Loop();
  // Drains the inotify queue `fd`. Returns whether a relevant entry changed; sets *lost when the
  // watch is gone (directory removed or moved, events dropped).
  bool Drain(int fd, bool* lost) const;

  const DirWatcherOptions options_;
  const std::function<void()> on_event_;
  int stop_pipe_[2] = {-1, -1};
  std::atomic<bool> watching_{false};
  std::thread thread_;
};

}  // namespace hyperaccel
