// The claim preparer: NodePrepareResources / NodeUnprepareResources without the wire. For each
// claim it reads the ResourceClaim from the API server, maps the devices allocated to this node's
// pool (card-<n>, arc<k>-<n>) to their cards in link order, writes one CDI spec per claim and
// records the claim in a two-phase checkpoint (started -> completed) so that restarts neither
// leak nor double-hand a card. docs/dra.md "Claim preparation" has the file formats and rules.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"
#include "hyperaccel/dra_driver/checkpoint.h"
#include "hyperaccel/dra_driver/node_service.h"
#include "hyperaccel/dra_driver/slices.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::kube {
class Client;
}

namespace hyperaccel::dra {

// Reads a ResourceClaim by namespace and name. A claim that does not exist must come back as
// StatusCode::kNotFound (any other error is taken as "API unavailable").
using ClaimGetter = std::function<Result<Json>(const std::string& ns, const std::string& name)>;

// GET /apis/resource.k8s.io/v1/namespaces/<ns>/resourceclaims/<name> with `client` (which must
// outlive the getter); a 404 is kNotFound. Calls through one getter (and its copies) are
// serialized, as a kube::Client is not thread-safe; do not use `client` elsewhere meanwhile.
ClaimGetter KubeClaimGetter(kube::Client& client);

// What the node has right now: the latest inventory the rescanner saw and the slice options the
// publisher uses (so device names map to the same cards the slices describe).
struct PoolSnapshot {
  hw::Inventory inventory;
  SliceOptions slices;
};
// Returns the current snapshot; nullptr while there is none yet (no scan finished).
using PoolProvider = std::function<std::shared_ptr<const PoolSnapshot>()>;

// A thread-safe holder the daemon updates from its rescanner and the preparer reads.
class PoolState {
 public:
  void Set(hw::Inventory inventory, SliceOptions slices);
  std::shared_ptr<const PoolSnapshot> Get() const;
  PoolProvider Provider() const;  // reads this holder, which must outlive it

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const PoolSnapshot> current_;
};

struct PreparerOptions {
  std::string driver_name = kDriverName;
  std::string node_name;  // this node's pool
  std::string cdi_dir = "/var/run/cdi";
  // "<vendor>/<class>" of the claim specs: the k8s.<driver>/<class> pattern of dra-example-driver,
  // kept apart from the device plugin's "hyperaccel.ai/fpga" so the two never share a spec name.
  std::string cdi_kind = "k8s.fpga.hyperaccel.ai/fpga";
  std::string checkpoint_path = "/var/lib/kubelet/plugins/fpga.hyperaccel.ai/checkpoint.json";
  // What the container gets, as the device plugin's AllocateOptions.
  bool expose_mgmt = false;  // also the management node (it can reflash the card)
  bool mount_xrt = false;    // bind the host XRT read-only and set XILINX_XRT
  std::string xrt_host_dir = "/opt/xilinx/xrt";
  std::string xrt_container_dir = "/opt/xilinx/xrt";
  bool mount_icd = false;  // bind the OpenCL ICD file read-only
  std::string icd_file = "/etc/OpenCL/vendors/xilinx.icd";
  // Metrics go here (hyperaccel_dra_*); nullptr: a private registry (tests).
  metrics::Registry* registry = nullptr;
};

// Checks the options (node name, CDI kind and directory, checkpoint path). Errors name the field.
Status ValidatePreparerOptions(const PreparerOptions& options);

// One allocation result of our driver on this node, mapped to cards.
struct MappedDevice {
  std::string request;
  std::string device;                 // "arc4-0"
  std::vector<std::string> card_ids;  // PCI addresses in link order
};

// The pure part of Prepare: checks `claim` (an object from the API server) against `ref` (UID,
// not being deleted, allocated), takes the results whose driver is `driver`, and maps their devices
// through `pool` (PoolDevices of the node). Results of other drivers are ignored; a result of our
// driver for another pool, an unknown device, a card used twice, or no result of ours is an error.
// Health is not checked here.
Result<std::vector<MappedDevice>> MapClaimDevices(const Json& claim, const ClaimRef& ref,
                                                  const std::vector<PoolDevice>& pool,
                                                  const std::string& driver, const std::string& node_name);

// The CDI spec of one claim (JSON text) and the fully qualified CDI device name of each device.
struct ClaimCdiSpec {
  std::string path;                  // <cdi_dir>/<vendor>-<class>_<claim uid>.json
  std::string content;               // the spec, cdiVersion the minimum its features need
  std::vector<std::string> cdi_ids;  // one per device, in order: "<kind>=<uid>-<device>"
};

// Renders the CDI spec of a claim for `devices` from `inventory` with the device plugin's
// allocation rules (device nodes, mounts, HYPERACCEL_* environment). Errors: a card that is
// missing or unhealthy, a card without render node (xocl not bound).
Result<ClaimCdiSpec> RenderClaimSpec(const std::string& claim_uid, const std::vector<MappedDevice>& devices,
                                     const hw::Inventory& inventory, const PreparerOptions& options);

// The smallest cdiVersion that declares every feature `spec` uses (CDI's version rules: mount
// type needs 0.4.0, a device name starting with a non-letter or a deviceNode hostPath 0.5.0, a
// class with a dot or annotations 0.6.0, additionalGids or intelRdt 0.7.0); at least 0.3.0.
std::string MinimumCdiVersion(const Json& spec);

// Prepares claims with CDI specs and a checkpoint. Thread-safe (one mutex around prepare and
// unprepare); never throws.
class CdiClaimPreparer : public ClaimPreparer {
 public:
  // Runs Recover(); its status is recovery_status().
  CdiClaimPreparer(PreparerOptions options, ClaimGetter get_claim, PoolProvider pool);
  ~CdiClaimPreparer() override;
  CdiClaimPreparer(const CdiClaimPreparer&) = delete;
  CdiClaimPreparer& operator=(const CdiClaimPreparer&) = delete;

  std::map<std::string, ClaimPrepareResult> Prepare(const std::vector<ClaimRef>& claims) override;
  std::map<std::string, std::string> Unprepare(const std::vector<ClaimRef>& claims) override;

  // Reloads the checkpoint and rolls back every half-done (started) claim: its CDI spec is removed
  // and its entry dropped. A checkpoint that cannot be parsed is renamed to
  // "<path>.corrupt-<unix seconds>", logged, and the preparer continues with no claims; the
  // returned error says so. A missing checkpoint is an empty one.
  Status Recover();
  const Status& recovery_status() const { return recovery_; }

  // Unprepares every completed claim whose ResourceClaim is gone (NotFound) or now has another
  // UID. Any other API error keeps the claim. Returns how many claims were removed.
  Result<int> Cleanup();

  // The claims currently recorded (a copy), for tests and diagnostics.
  Checkpoint Snapshot() const;

 private:
  struct Metrics;
  ClaimPrepareResult PrepareOne(const ClaimRef& ref, const PoolSnapshot* pool,
                                const std::vector<PoolDevice>* devices, std::string* reason);
  ClaimPrepareResult Replay(const ClaimRef& ref, const CheckpointEntry& entry, const PoolSnapshot* pool,
                            std::string* reason);
  Status UnprepareLocked(const std::string& uid);
  Status Save();
  std::string SpecPath(const std::string& uid) const;
  void UpdateGauge();

  PreparerOptions options_;
  ClaimGetter get_claim_;
  PoolProvider pool_;
  std::unique_ptr<metrics::Registry> own_registry_;
  std::unique_ptr<Metrics> metrics_;
  mutable std::mutex mu_;
  Checkpoint checkpoint_;
  Status recovery_;
};

}  // namespace hyperaccel::dra
