// Whole-file writes that readers never see half done: write "<path>.tmp", then rename over
// `path`. How much reaches the disk before the rename is the caller's choice.
#pragma once

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

}  // namespace hyperaccel::files
