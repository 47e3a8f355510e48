// Graceful shutdown: SIGTERM, SIGINT, SIGHUP and SIGQUIT set a flag and wake every waiter. Daemons loop on
// `WaitFor(interval)` instead of sleeping, so they stop within one wake-up.
#pragma once

#include <chrono>

namespace hyperaccel::shutdown {

// Installs the handlers (idempotent). Call once, early in main.
void InstallSignalHandlers();
// True once a signal arrived or Request() was called.
bool Requested();
// Asks every waiter to stop (tests and fatal errors use this too).
void Request();
// Waits up to `timeout`; returns true when shutdown was requested.
bool WaitFor(std::chrono::milliseconds timeout);
// Clears the flag (tests only).
void ResetForTest();

}  // namespace hyperaccel::shutdown
