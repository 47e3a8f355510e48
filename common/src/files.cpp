#include "hyperaccel/common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace hyperaccel::files {

FileId StatFile(const std::string& path) {
  struct stat st {};
  FileId id;
  if (::lstat(path.c_str(), &st) != 0) return id;
  id.exists = true;
  id.is_socket = S_ISSOCK(st.st_mode);
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  return id;
}

Status SyncDirectory(const std::string& dir) {
  const std::string d = dir.empty() ? "." : dir;
  int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Unavailable("cannot open directory " + d + ": " + ErrnoMessage(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Unavailable("cannot fsync directory " + d + ": " + ErrnoMessage(err));
  return Status::Ok();
}

Status WriteAtomic(const std::string& path, const std::string& content, Sync sync) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(path).parent_path();
  std::error_code ec;
  if (!dir.empty()) fs::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create " + dir.string() + ": " + ec.message());
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Unavailable("cannot write " + tmp + ": " + ErrnoMessage(errno));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Unavailable("cannot write " + tmp + ": " + ErrnoMessage(err));
    }
    done += static_cast<size_t>(n);
  }
  if (sync != Sync::kNone && ::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Unavailable("cannot fsync " + tmp + ": " + ErrnoMessage(err));
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Unavailable("cannot close " + tmp + ": " + ErrnoMessage(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Unavailable("cannot rename " + tmp + " to " + path + ": " + ErrnoMessage(err));
  }
  return sync == Sync::kFileAndDirectory ? SyncDirectory(dir.string()) : Status::Ok();
}

}  // namespace hyperaccel::files
