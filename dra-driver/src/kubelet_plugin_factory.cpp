// The back ends of the kubelet plugin. Until the claim preparer (API lookup, CDI specs,
// checkpoint) and the inventory-fed health source are part of the library, this file answers
// every claim with an error and reports no devices on the health stream (the kubelet then shows
// the devices' health as Unknown, as for a driver without the health service).
//
// To link the real back ends: construct them in MakeKubeletPlugin from `context`, set
// `on_inventory` to the health source's (and preparer's) inventory update, make
// ClaimPreparationBuilt() return true, and delete the two placeholder classes below.
#include <mutex>
#include <thread>

#include "hyperaccel/common/log.h"
#include "hyperaccel/dra_driver/kubelet_plugin.h"

namespace hyperaccel::dra {
namespace {

constexpr const char* kNotBuilt =
    "claim preparation is not part of this build of hyperaccel-dra-driver (no claim preparer linked)";

class NotBuiltPreparer final : public ClaimPreparer {
 public:
  std::map<std::string, ClaimPrepareResult> Prepare(const std::vector<ClaimRef>& claims) override {
    std::map<std::string, ClaimPrepareResult> out;
    for (const ClaimRef& c : claims) out[c.uid].error = kNotBuilt;
    return out;
  }
  // Nothing was ever prepared, so every claim is unknown: a success by contract.
  std::map<std::string, std::string> Unprepare(const std::vector<ClaimRef>& claims) override {
    std::map<std::string, std::string> out;
    for (const ClaimRef& c : claims) out[c.uid] = "";
    return out;
  }
};

class NoDevicesHealth final : public HealthSource {
 public:
  std::vector<DeviceHealth> Snapshot(uint64_t* generation) override {
    if (generation) *generation = 0;
    return {};
  }
  uint64_t WaitForChange(uint64_t /*seen*/, std::chrono::milliseconds timeout) override {
    std::this_thread::sleep_for(timeout);
    return 0;
  }
};

}  // namespace

bool ClaimPreparationBuilt() { return false; }

Result<KubeletPlugin> MakeKubeletPlugin(const KubeletPluginContext& context) {
  if (context.driver_name.empty()) return InvalidArgument("kubelet plugin: no driver name");
  HA_LOG(kWarn, "claim preparation is not part of this build; every NodePrepareResources claim fails")
      .kv("driver", context.driver_name);
  KubeletPlugin plugin;
  plugin.preparer = std::make_unique<NotBuiltPreparer>();
  plugin.health = std::make_unique<NoDevicesHealth>();
  plugin.on_inventory = [](const hw::Inventory& /*inventory*/) {};
  return plugin;
}

}  // namespace hyperaccel::dra
