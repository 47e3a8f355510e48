// Wakes the registration loop when something happens in the device-plugin directory (kubelet.sock
// created, our socket deleted). inotify only shortens the reaction time: the loop also polls
// stat(), so a failing inotify ("too many open files") or a missed event costs one poll interval.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace hyperaccel::device_plugin {

// Identity of a file: equal only for the same inode on the same device.
struct FileId {
  bool exists = false;
  bool is_socket = false;
  dev_t dev = 0;
  ino_t ino = 0;
  friend bool operator==(const FileId& a, const FileId& b) {
    return a.exists == b.exists && (!a.exists || (a.dev == b.dev && a.ino == b.ino));
  }
};
FileId StatFile(const std::string& path);

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
