// Wakes the registration loop when something happens in the device-plugin directory (kubelet.sock
// created, our socket deleted). inotify only shortens the reaction time: the loop also polls
// stat(), so a failing inotify ("too many open files") or a missed event costs one poll interval.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "hyperaccel/common/files.h"

namespace hyperaccel::device_plugin {

using files::FileId;
using files::StatFile;

class DirWatcher {
 public:
  // `on_event` runs on the watcher thread for every batch of events concerning a socket file or
  // the directory itself.
  DirWatcher(std::string dir, std::function<void()> on_event);
  ~DirWatcher();
  DirWatcher(const DirWatcher&) = delete;
  DirWatcher& operator=(const DirWatcher&) = delete;

  void Start();
  void Stop();
  bool inotify_active() const { return active_.load(); }

 private:
  void Loop();
  std::string dir_;
  std::function<void()> on_event_;
  int stop_pipe_[2] = {-1, -1};
  std::atomic<bool> active_{false};
  std::thread thread_;
};

}  // namespace hyperaccel::device_plugin
