#include "instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "hyperaccel/common/status.h"

namespace hyperaccel::device_plugin {
namespace {

// Opens (creating when needed) a lock file and takes `op` on it without blocking. Returns the fd,
// or -1 with errno set.
int OpenLocked(const std::string& path, int op) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -1;
  if (::flock(fd, op | LOCK_NB) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

bool SameFile(int fd, const std::string& path) {
  struct stat held {};
  struct stat on_disk {};
  if (::fstat(fd, &held) != 0 || ::stat(path.c_str(), &on_disk) != 0) return false;
  return held.st_dev == on_disk.st_dev && held.st_ino == on_disk.st_ino;
}

}  // namespace

InstanceLock::InstanceLock(const std::string& socket_path)
    : lock_path_(socket_path + ".lock"), standby_path_(socket_path + ".standby") {}

InstanceLock::~InstanceLock() {
  ClearStandby();
  Release();
}

Status InstanceLock::TryAcquire() {
  if (held()) return Status::Ok();
  // The file may be deleted (a kubelet wiping the directory) between open and flock, leaving us
  // a lock on a file nobody else can see: check and retry a few times.
  for (int attempt = 0; attempt < 3; ++attempt) {
    const int fd = OpenLocked(lock_path_, LOCK_EX);
    if (fd < 0) {
      if (errno == EWOULDBLOCK) return Unavailable("another instance holds " + lock_path_);
      return Unavailable("cannot lock " + lock_path_ + ": " + ErrnoMessage(errno));
    }
    if (SameFile(fd, lock_path_)) {
      lock_fd_ = fd;
      return Status::Ok();
    }
    ::close(fd);
  }
  return Unavailable("cannot lock " + lock_path_ + ": the file keeps being replaced");
}

bool InstanceLock::StillOnDisk() const { return held() && SameFile(lock_fd_, lock_path_); }

void InstanceLock::Release() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // closing drops the flock
  lock_fd_ = -1;
}

bool InstanceLock::MarkStandby() {
  if (standby_fd_ >= 0) return true;
  standby_fd_ = OpenLocked(standby_path_, LOCK_EX);
  return standby_fd_ >= 0;
}

void InstanceLock::ClearStandby() {
  if (standby_fd_ >= 0) ::close(standby_fd_);
  standby_fd_ = -1;
}

namespace {

// True when someone holds an exclusive lock on `path` (which must exist).
bool LockedByOthers(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  const bool locked = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return locked;
}

}  // namespace

bool InstanceLock::StandbyWaiting() const { return LockedByOthers(standby_path_); }

bool InstanceLock::HeldByAnother() const { return !held() && LockedByOthers(lock_path_); }

}  // namespace hyperaccel::device_plugin
