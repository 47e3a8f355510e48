// The kubelet device plugin: serves v1beta1.DevicePlugin on a unix socket per resource, registers
// with the kubelet and keeps the registration alive across kubelet restarts, deleted sockets and
// ended ListAndWatch streams. Device facts come from a DeviceSource.
//
//   ManualDeviceSource source(inventory);          // or DiscoverySource in production
//   Plugin plugin(options, &source, &registry);
//   if (auto st = plugin.Start(); !st.ok()) ...
//   ...                                             // plugin.Health() backs /healthz
//   plugin.Stop();                                  // ends streams, removes our sockets
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"
#include "hyperaccel/device_plugin/allocation.h"
#include "hyperaccel/device_plugin/device_source.h"
#include "hyperaccel/device_plugin/resources.h"

namespace CLI {
class App;
}

namespace hyperaccel::device_plugin {

inline constexpr const char* kApiVersion = "v1beta1";
inline constexpr const char* kKubeletSocketName = "kubelet.sock";
inline constexpr const char* kDefaultKubeletDir = "/var/lib/kubelet/device-plugins";
inline constexpr const char* kDefaultSocketName = "hyperaccel-fpga.sock";

struct PluginOptions {
  std::string kubelet_dir = kDefaultKubeletDir;  // holds kubelet.sock and our sockets
  std::string socket_name = kDefaultSocketName;  // single-name mode socket file
  std::string resource_name = "hyperaccel.ai/fpga";
  NamingMode naming = NamingMode::kSingle;
  std::string per_shell_domain = "amd.com";  // kPerShell: "<domain>/<VBNV>-<timestamp>"
  std::string sysfs_root = "/sys";           // kPerShell: where shell timestamps are read
  bool preferred_allocation = true;          // advertise and answer GetPreferredAllocation
  // PreStartContainer hook: run through /bin/sh with the device IDs as arguments before every
  // container start ("$@"); empty = off (pre_start_required is then false).
  std::string prestart_command;
  std::chrono::milliseconds prestart_timeout{25000};  // the kubelet gives 30 s
  AllocateOptions allocate;

  // Liveness of the registration.
  std::chrono::milliseconds poll_interval{1000};  // stat() fallback when inotify misses events
  std::chrono::milliseconds debounce{30};         // quiet time after a file-system event
  std::chrono::milliseconds register_timeout{10000};
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  // Registered but the kubelet opened no ListAndWatch stream for this long: register again.
  std::chrono::milliseconds stream_grace{10000};
  // How long to wait for the first inventory before registering anyway (with what is known).
  std::chrono::milliseconds first_inventory_wait{10000};
  // One instance per socket: while another instance holds "<socket>.lock" this one waits
  // (standby) and checks again this often.
  std::chrono::milliseconds standby_poll{200};
  // Stop() with a successor waiting keeps answering the kubelet until the successor took over,
  // at most this long.
  std::chrono::milliseconds handover_timeout{5000};
};

// Adds the plugin's flags (each with a HYPERACCEL_* environment variable and a config-file key):
// --kubelet-dir, --socket-name, --resource-name, --naming, --per-shell-domain,
// --preferred-allocation, --expose-mgmt, --mount-xrt, --xrt-host-dir, --xrt-container-dir,
// --mount-icd, --icd-file, --cdi, --cdi-dir, --cdi-kind, --prestart-command, --prestart-timeout.
void AddPluginFlags(CLI::App& app, PluginOptions& options);
// Checks names and paths (resource name, socket path length, CDI kind, ...).
Status ValidateOptions(const PluginOptions& options);

// One resource the plugin serves, as seen from outside.
struct EndpointStatus {
  std::string resource_name;
  std::string socket_path;
  bool serving = false;
  bool standby = false;  // another instance serves this socket; this one waits to take over
  bool registered = false;
  int open_streams = 0;
  int registrations = 0;  // successful Register calls so far
  size_t devices = 0;
  size_t healthy = 0;
};

class Plugin {
 public:
  // `source` must outlive the plugin. `registry` may be null (metrics are then kept privately).
  Plugin(PluginOptions options, DeviceSource* source, metrics::Registry* registry);
  ~Plugin();
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  // Starts the device source, the servers (single-name mode: right away) and the registration
  // loop, then returns; registration goes on in the background (waiting for kubelet.sock).
  Status Start();
  // Ends every ListAndWatch stream, stops the servers and removes our sockets. Idempotent. When
  // another instance waits for a socket (standby), it is handed over first: this instance keeps
  // answering until the kubelet registered the successor (at most handover_timeout).
  void Stop();

  // OK when every resource is registered and the kubelet holds its ListAndWatch stream open, or
  // is in standby behind another instance; otherwise says what is missing. Backs /healthz.
  Status Health() const;
  // Health() and no resource in standby. Backs /readyz.
  Status Ready() const;
  std::vector<EndpointStatus> Endpoints() const;
  // Waits until every resource is registered with a stream open (tests, benchmarks).
  bool WaitHealthy(std::chrono::milliseconds timeout) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hyperaccel::device_plugin
