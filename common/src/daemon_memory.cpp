#include "hyperaccel/common/daemon_memory.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace hyperaccel {

void ConfigureDaemonMemory(const DaemonMemoryOptions& options) {
  // Read before any thread exists (the contract of this function).
  const char* arena_env = std::getenv("MALLOC_ARENA_MAX");  // NOLINT(concurrency-mt-unsafe)
  const char* tunables = std::getenv("GLIBC_TUNABLES");     // NOLINT(concurrency-mt-unsafe)
  const bool operator_set =
      arena_env != nullptr || (tunables != nullptr && std::strstr(tunables, "arena_max") != nullptr);
  // Before any thread exists (the contract of this function).
  if (options.malloc_arenas > 0 && !operator_set) {
    (void)mallopt(M_ARENA_MAX, options.malloc_arenas);  // NOLINT(concurrency-mt-unsafe)
  }
}

}  // namespace hyperaccel
