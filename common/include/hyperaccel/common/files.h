// Whole-file writes that readers never see half done: write "<path>.tmp", then rename over
// `path`. How much reaches the disk before the rename is the caller's choice.
#pragma once

#include <sys/types.h>

#include <string>

#include "hyperaccel/common/status.h"

namespace hyperaccel::files {

enum class Sync {
  kNone,              // atomic for readers; lost on power failure (tmpfs contents, caches)
  kFile,              // the file's data is on disk before it replaces the old one
  kFileAndDirectory,  // and the rename itself survives a crash (checkpoints)
};

// Creates the parent directory when missing. Errors (Unavailable) name the file and the errno.
Status WriteAtomic(const std::string& path, const std::string& content, Sync sync);

// fsync of a directory, so that a rename or unlink in it is durable.
Status SyncDirectory(const std::string& dir);

// Identity of a file (lstat: links are not followed): its device and inode. Tells a socket we
// created from one another process put at the same path.
struct FileId {
  bool exists = false;
  bool is_socket = false;
  dev_t dev = 0;
  ino_t ino = 0;
  // The same existing file.
  bool Same(const FileId& o) const { return exists && o.exists && dev == o.dev && ino == o.ino; }
  // The same file, or both absent.
  friend bool operator==(const FileId& a, const FileId& b) {
    return a.exists == b.exists && (!a.exists || (a.dev == b.dev && a.ino == b.ino));
  }
};
FileId StatFile(const std::string& path);

}  // namespace hyperaccel::files
