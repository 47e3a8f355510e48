// The back ends of the kubelet plugin: the claim preparer (ResourceClaim lookup, one CDI spec per
// claim, the two-phase checkpoint) and the inventory-fed health source.
#include <memory>

#include "hyperaccel/common/log.h"
#include "hyperaccel/dra_driver/claim_preparer.h"
#include "hyperaccel/dra_driver/health_source.h"
#include "hyperaccel/dra_driver/kubelet_plugin.h"

namespace hyperaccel::dra {

Result<KubeletPlugin> MakeKubeletPlugin(const KubeletPluginContext& context) {
  if (context.driver_name.empty()) return InvalidArgument("kubelet plugin: no driver name");
  if (context.client == nullptr) return InvalidArgument("kubelet plugin: no API client for claim lookups");
  PreparerOptions po;
  po.driver_name = context.driver_name;
  po.node_name = context.node_name;
  po.cdi_dir = context.cdi_dir;
  po.checkpoint_path = context.checkpoint_dir + "/checkpoint.json";
  po.expose_mgmt = context.expose_mgmt;
  po.mount_xrt = context.mount_xrt;
  po.xrt_host_dir = context.xrt_host_dir;
  po.xrt_container_dir = context.xrt_container_dir;
  po.mount_icd = context.mount_icd;
  po.icd_file = context.icd_file;
  po.registry = context.registry;
  if (Status st = ValidatePreparerOptions(po); !st.ok()) return st;

  // The pool the preparer maps device names against: set after each publish, so a claim is read
  // with the slice options its devices were published with.
  auto pool = std::make_shared<PoolState>();
  auto preparer = std::make_unique<CdiClaimPreparer>(po, KubeClaimGetter(*context.client),
                                                     [pool] { return pool->Get(); });
  if (!preparer->recovery_status().ok()) {
    HA_LOG(kError, "checkpoint recovery failed; continuing with what could be read")
        .kv("checkpoint", po.checkpoint_path)
        .kv("error", preparer->recovery_status().message());
  }
  SliceOptions initial;
  initial.node_name = context.node_name;
  auto health = std::make_unique<InventoryHealthSource>(initial);

  KubeletPlugin plugin;
  InventoryHealthSource* health_ptr = health.get();
  CdiClaimPreparer* preparer_ptr = preparer.get();
  plugin.on_inventory = [health_ptr](const hw::Inventory& inventory) { health_ptr->SetInventory(inventory); };
  // Health follows every rescan (on_inventory), whether or not the API server takes the slices;
  // a publish only brings the slice options, which change the device list once (the features
  // learnt from the server), not at every resync.
  plugin.on_published = [health_ptr, pool](const hw::Inventory& inventory, const SliceOptions& options) {
    pool->Set(inventory, options);
    health_ptr->SetOptions(options);
  };
  plugin.maintain = [preparer_ptr] {
    auto cleaned = preparer_ptr->Cleanup();
    if (!cleaned.ok()) {
      HA_LOG(kWarn, "claim cleanup incomplete").kv("error", cleaned.status().message());
    } else if (*cleaned > 0) {
      HA_LOG(kInfo, "forgot claims whose ResourceClaim is gone").kv("claims", *cleaned);
    }
  };
  plugin.preparer = std::move(preparer);
  plugin.health = std::move(health);
  return plugin;
}

}  // namespace hyperaccel::dra
