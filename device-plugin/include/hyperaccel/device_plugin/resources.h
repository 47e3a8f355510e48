// Which cards the plugin advertises under which resource name, and the immutable per-resource
// snapshot ("view") that the gRPC service answers from. Pure logic, no I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/placement/placement.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::device_plugin {

// The kubelet's IsExtendedResourceName check: "<dns-subdomain>/<name>", name at most 63 characters
// of [A-Za-z0-9._-] starting and ending alphanumeric, not in a kubernetes.io namespace and not
// starting with "requests.". The error says which rule failed.
Status ValidateResourceName(std::string_view name);

enum class NamingMode {
  kSingle,    // every card under one name (default "hyperaccel.ai/fpga")
  kPerShell,  // one resource per shell, "<domain>/<VBNV>-<timestamp>" like the AMD/Xilinx plugin
};

// Maps a card to its resource name.
using ResourceNamer = std::function<std::string(const hw::Card&)>;

// Reads the shell timestamp of a card (the Xilinx plugin's rom.*/timestamp), "0" when unknown.
using ShellTimestampFn = std::function<std::string(const hw::Card&)>;

// kSingle: always `resource_name`. kPerShell: "<domain>/<shell>-<timestamp>", falling back to
// `resource_name` when the card has no shell or the result is not a valid resource name.
ResourceNamer MakeNamer(NamingMode mode, std::string resource_name, std::string per_shell_domain,
                        ShellTimestampFn timestamp);

// Reads <sysfs_root>/bus/pci/devices/<id>/rom.*/timestamp; "0" for emulated cards and on error.
ShellTimestampFn SysfsShellTimestamp(std::string sysfs_root);

// Socket file name for a resource: `single_socket` for the single-name mode, otherwise
// "hyperaccel-<part after '/'>.sock".
std::string SocketNameFor(NamingMode mode, const std::string& resource, const std::string& single_socket);

// One advertised device.
struct DeviceEntry {
  hw::Card card;        // as last seen (a vanished card keeps its last known values)
  bool present = true;  // in the latest inventory
  bool healthy = true;  // present and reported healthy
  std::string reason;   // why not healthy
};

// Everything one resource advertises at one moment. Immutable once published.
struct ResourceView {
  std::string resource_name;
  uint64_t version = 0;              // grows with every change of any resource
  std::vector<DeviceEntry> devices;  // sorted by card ID
  placement::CardGraph graph;        // for GetPreferredAllocation; empty when graph_error is set
  std::string graph_error;
  // Card IDs whose CDI entry is on disk (only meaningful with CDI on).
  std::set<std::string> cdi_ids;

  const DeviceEntry* Find(std::string_view id) const;
  size_t HealthyCount() const;
};

// Turns successive inventories into views. Cards that vanish stay listed (unhealthy) for the
// life of the process, so a reset or a driver reload never withdraws capacity: the kubelet sees
// the card go unhealthy and come back. Not thread-safe (the plugin serializes calls).
class DeviceTable {
 public:
  explicit DeviceTable(ResourceNamer namer);

  using Views = std::map<std::string, std::shared_ptr<const ResourceView>>;

  // Takes in a new inventory (call Build() next).
  void Observe(const hw::Inventory& inventory);
  // Every card ever seen (present or not), sorted by ID: what a CDI spec must cover.
  std::vector<hw::Card> AllCards() const;
  // A view for every resource that ever had a card; `cdi_ids` are the cards whose CDI entry is on
  // disk. `changed` (when given) gets the names whose advertised content differs from the
  // previous Build().
  Views Build(const std::set<std::string>& cdi_ids, std::set<std::string>* changed = nullptr);
  // Observe + Build, without CDI.
  Views Apply(const hw::Inventory& inventory, std::set<std::string>* changed = nullptr);

 private:
  ResourceNamer namer_;
  std::map<std::string, hw::Card> known_;        // id -> last seen
  std::map<std::string, std::string> resource_;  // id -> resource name
  std::set<std::string> present_;
  hw::Inventory last_;  // links and facts of the latest inventory (cards unused)
  Views views_;
  uint64_t version_ = 0;
};

}  // namespace hyperaccel::device_plugin
