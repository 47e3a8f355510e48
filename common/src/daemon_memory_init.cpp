// Linked into each daemon binary by hyperaccel_daemon_link_options() (cmake/DaemonLink.cmake):
// applies the daemon memory settings before main() runs, while the process has one thread, so no
// main() has to remember to.
#include "hyperaccel/common/daemon_memory.h"

namespace {

__attribute__((constructor)) void ConfigureAtStart() { hyperaccel::ConfigureDaemonMemory(); }

}  // namespace
