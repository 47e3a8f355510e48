// Discovery: one function of injectable inputs (sysfs root, XRT, cabling file, clock) that
// returns the node's Inventory, and a rescan loop that reports changes to the daemons.
//
// Sources, in order: the sysfs scan (cards, PCI facts, QSFP modules), the XRT probe (serial,
// sensors, xclbin, last hardware error; off unless the sysfs root is the real /sys), or XRT
// software emulation when `emulate` > 0; then the health tracker (temperature limit, grace period
// for vanished cards, recovery hysteresis); then links (cabling file, link-IP probe, QSFP pairing).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "hyperaccel/common/status.h"
#include "hyperaccel/xrt/model.h"

namespace CLI {
class App;
}

namespace hyperaccel::hw {

class XrtProbe;

struct DiscoveryOptions {
  std::string sysfs_root = "/sys";
  std::string cabling_file;       // cluster-wide cabling YAML; empty = none
  std::string register_map_file;  // link-IP register maps per xclbin UUID; empty = none
  int emulate = 0;                // > 0: that many U55C cards through XRT software emulation
  std::string node_name;          // empty = $NODE_NAME, then the hostname
  std::string xrt_mode = "auto";  // auto | off
  // Deadline of one run of the XRT probe helper (kDefaultXrtProbeTimeout in xrt_probe.h).
  std::chrono::milliseconds xrt_probe_timeout{5000};
  double temp_limit_c = 95.0;
  std::chrono::seconds vanish_grace{60};
  int recovery_probes = 3;
};

// Adds the discovery flags every binary shares: --sysfs-root, --cabling, --link-register-map,
// --emulate, --node-name, --xrt, --xrt-probe-timeout, --temp-limit, --vanish-grace, --recovery-probes (each
// with an HYPERACCEL_* environment variable and a config-file key).
void AddDiscoveryFlags(CLI::App& app, DiscoveryOptions& options);

// flag value, else $NODE_NAME, else the hostname.
std::string ResolveNodeName(const std::string& flag_value);

// Everything discovery touches, injectable for tests.
struct DiscoveryDeps {
  std::shared_ptr<XrtProbe> xrt;  // null = the real libxrt_coreutil probe when enabled
  std::function<std::chrono::steady_clock::time_point()> clock;  // null = steady_clock
};

class Discovery {
 public:
  // Validates options (loads the cabling file, prepares XRT emulation) and returns a ready
  // discoverer. Errors are user errors (bad cabling file, --emulate out of range, ...).
  static Result<std::unique_ptr<Discovery>> Create(DiscoveryOptions options, DiscoveryDeps deps = {});
  ~Discovery();
  Discovery(const Discovery&) = delete;
  Discovery& operator=(const Discovery&) = delete;

  // One full scan. Never fails because of a card: bad cards come back unhealthy with a reason.
  // Fails only when the whole source is unusable (sysfs root missing).
  Result<Inventory> Scan();

  const DiscoveryOptions& options() const;

 private:
  struct Impl;
  explicit Discovery(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// True when two inventories differ in anything a daemon publishes (cards, health, links, facts);
// sensor readings alone do not count.
bool InventoryChanged(const Inventory& before, const Inventory& after);

// Calls Scan() every `interval` in a background thread and `on_change(inventory)` whenever
// InventoryChanged says so (and once after the first scan). Stop() or the destructor ends it.
class Rescanner {
 public:
  using OnChange = std::function<void(const Inventory&)>;
  Rescanner(Discovery* discovery, std::chrono::milliseconds interval, OnChange on_change);
  ~Rescanner();
  Rescanner(const Rescanner&) = delete;
  Rescanner& operator=(const Rescanner&) = delete;

  void Start();
  void Stop();
  // Runs a scan now (synchronously, in the caller's thread) and notifies on change.
  void ScanNow();
  Inventory Current() const;

 private:
  void Loop();
  Discovery* discovery_;
  std::chrono::milliseconds interval_;
  OnChange on_change_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool have_ = false;
  Inventory current_;
  std::thread thread_;
  std::mutex scan_mu_;  // one scan at a time
};

}  // namespace hyperaccel::hw
