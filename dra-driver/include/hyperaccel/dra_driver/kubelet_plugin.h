// Construction of the kubelet side's two back ends, the ClaimPreparer and the HealthSource
// (node_service.h), for hyperaccel-dra-driver. RunDriver calls MakeKubeletPlugin once at start,
// feeds every rescan to `on_inventory`, and hands preparer and health source to the NodeServer.
//
// This is the single place where the back ends are chosen: src/kubelet_plugin_factory.cpp.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"
#include "hyperaccel/dra_driver/node_service.h"
#include "hyperaccel/kube/client.h"
#include "hyperaccel/xrt/discovery.h"

namespace hyperaccel::dra {

struct KubeletPluginContext {
  kube::Client* client = nullptr;  // ResourceClaim lookups; owned by RunDriver, outlives the plugin
  std::string node_name;
  std::string driver_name;
  std::string cdi_dir;         // where per-claim CDI specs go (/var/run/cdi)
  std::string checkpoint_dir;  // hostPath directory of the prepare checkpoint
  metrics::Registry* registry = nullptr;
};

struct KubeletPlugin {
  std::unique_ptr<ClaimPreparer> preparer;
  std::unique_ptr<HealthSource> health;
  // Called with the inventory of every rescan that changed something (and the first one).
  std::function<void(const hw::Inventory&)> on_inventory;
};

// True when this build prepares claims (CDI specs, checkpoint). False while the claim preparer is
// not linked in: every claim is then answered with an error naming the missing piece, so the
// kubelet retries and nothing is handed to a container. The end-to-end DRA demo skips then.
bool ClaimPreparationBuilt();

Result<KubeletPlugin> MakeKubeletPlugin(const KubeletPluginContext& context);

}  // namespace hyperaccel::dra
