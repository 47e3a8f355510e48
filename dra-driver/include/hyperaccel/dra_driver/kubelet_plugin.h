// Construction of the kubelet side's two back ends, the ClaimPreparer and the HealthSource
// (node_service.h), for hyperaccel-dra-driver. RunDriver calls MakeKubeletPlugin once at start,
// feeds every rescan to `on_inventory` and every published pool to `on_published`, calls
// `maintain` at start and periodically, and hands preparer and health source to the NodeServer.
//
// This is the single place where the back ends are chosen: src/kubelet_plugin_factory.cpp.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"
#include "hyperaccel/dra_driver/node_service.h"
#include "hyperaccel/dra_driver/slices.h"
#include "hyperaccel/kube/client.h"
#include "hyperaccel/xrt/discovery.h"

namespace hyperaccel::dra {

struct KubeletPluginContext {
  // ResourceClaim lookups: a client of its own (kube::Client is not thread-safe); owned by
  // RunDriver, outlives the plugin.
  kube::Client* client = nullptr;
  std::string node_name;
  std::string driver_name;
  std::string cdi_dir;         // where per-claim CDI specs go (/var/run/cdi)
  std::string checkpoint_dir;  // hostPath directory of the prepare checkpoint
  metrics::Registry* registry = nullptr;
  // What the container gets besides its cards, as the device plugin's flags of the same names.
  bool expose_mgmt = false;
  bool mount_xrt = false;
  std::string xrt_host_dir = "/opt/xilinx/xrt";
  std::string xrt_container_dir = "/opt/xilinx/xrt";
  bool mount_icd = false;
  std::string icd_file = "/etc/OpenCL/vendors/xilinx.icd";
};

struct KubeletPlugin {
  std::unique_ptr<ClaimPreparer> preparer;
  std::unique_ptr<HealthSource> health;
  // Called with the inventory of every rescan that changed something (and the first one).
  std::function<void(const hw::Inventory&)> on_inventory;
  // Called after every successful publish with the inventory and the slice options used, so
  // device names in claims map to the cards of the slices the scheduler allocated from.
  std::function<void(const hw::Inventory&, const SliceOptions&)> on_published;
  // Housekeeping (forgets prepared claims whose ResourceClaim was deleted). Never throws.
  std::function<void()> maintain;
};

Result<KubeletPlugin> MakeKubeletPlugin(const KubeletPluginContext& context);

}  // namespace hyperaccel::dra
