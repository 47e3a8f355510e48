// Process-wide memory settings for the long-running daemons (device plugin, topology agent, bridge,
// DRA driver). Daemon binaries get them before main() through hyperaccel_daemon_link_options()
// (cmake/DaemonLink.cmake); other programs may call ConfigureDaemonMemory() before any thread
// starts.
#pragma once

namespace hyperaccel {

struct DaemonMemoryOptions {
  // glibc malloc arenas. glibc creates up to 8 per core, one per thread that allocates while
  // another holds the main arena; each keeps its own free pages. Two are enough for daemons
  // whose threads mostly wait; 0 keeps glibc's default.
  int malloc_arenas = 2;
};

// Applies `options` unless the operator already chose (MALLOC_ARENA_MAX or GLIBC_TUNABLES set in
// the environment win). Never fails; a setting glibc refuses is left at its default.
void ConfigureDaemonMemory(const DaemonMemoryOptions& options = {});

}  // namespace hyperaccel
