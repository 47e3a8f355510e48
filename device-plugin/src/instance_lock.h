// One plugin instance per socket: an exclusive flock(2) on "<socket>.lock" next to the socket.
//
// The owner holds the lock for as long as it serves the socket; a second instance that finds it
// taken does not touch the socket and waits (standby), holding "<socket>.standby" so the owner
// knows someone waits to take over. The kernel drops both locks when a process dies, so a crash
// leaves at most a stale socket file and an unlocked lock file, and the next instance takes over
// at once. Lock files are never deleted (deleting a lock file others may have open is a race);
// a kubelet that wipes the directory deletes them, which StillOnDisk() detects.
#pragma once

#include <string>

#include "hyperaccel/common/status.h"

namespace hyperaccel::device_plugin {

class InstanceLock {
 public:
  explicit InstanceLock(const std::string& socket_path);
  ~InstanceLock();
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

  // Takes the lock without blocking. Unavailable when another instance holds it; another error
  // when the lock file cannot be created or locked.
  Status TryAcquire();
  bool held() const { return lock_fd_ >= 0; }
  // True while held and the lock file on disk is still the one locked.
  bool StillOnDisk() const;
  void Release();

  // Standby marker: held while waiting for the owner to go. Best effort (false when it cannot be
  // taken, for example because a third instance already waits).
  bool MarkStandby();
  void ClearStandby();
  // True when another instance waits to take over (holds the standby marker).
  bool StandbyWaiting() const;
  // True when another instance holds the lock (we do not).
  bool HeldByAnother() const;

  const std::string& lock_path() const { return lock_path_; }

 private:
  std::string lock_path_;
  std::string standby_path_;
  int lock_fd_ = -1;
  int standby_fd_ = -1;
};

}  // namespace hyperaccel::device_plugin
