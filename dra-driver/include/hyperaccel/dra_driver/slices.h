// What the DRA driver publishes: the ResourceSlices of one node's pool, built from an Inventory.
// Pure (no I/O): the same inventory and options give the same slices, byte for byte.
//
// Model (docs/dra.md has the pictures): one device per card (`card-<n>`, n = the card's index in
// the node's card list, sorted by PCI address) and one device per linked arc (`arc<k>-<n>`: k
// cards contiguous in a link domain's link order, the first of them card n). Each link domain
// that has arcs gets a counter set with one counter per card (`card<n>`, value 1); a card device
// consumes its own counter and an arc the counters of its k members, so the scheduler can never
// allocate two devices that share a card. A domain with more than 32 cards is split into counter
// sets of 32 positions (an arc then consumes from at most two sets, the API's limit).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/placement/placement.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::dra {

using Json = nlohmann::json;

inline constexpr char kDriverName[] = "fpga.hyperaccel.ai";
// The taint key put on devices whose card is unhealthy (when the server supports device taints).
inline constexpr char kUnhealthyTaintKey[] = "fpga.hyperaccel.ai/unhealthy";

// API limits of resource.k8s.io/v1 (1.35+; see reference dra.md §3).
inline constexpr int kMaxDevicesPerSlice = 128;
inline constexpr int kMaxDevicesPerSliceWithCounters = 64;  // any device with counters or taints
inline constexpr int kMaxCounterSetsPerSlice = 8;
inline constexpr int kMaxCountersPerSet = 32;
inline constexpr int kMaxAttributeStringLength = 64;
// 1.34 (alpha partitionable devices): all shared counters of one slice together.
inline constexpr int kMaxSharedCountersPerSlice134 = 32;

// Where counter sets go: 1.34 wants them in the slice of the devices that consume them, 1.35+
// in slices of their own (same pool, same generation). The two are not compatible.
enum class CounterLayout { kCombined, kSplit };

// What the API server accepts.
struct ServerFeatures {
  bool partitionable = true;   // DRAPartitionableDevices: counters and arc devices
  bool device_taints = false;  // DRADeviceTaints: NoSchedule taints on unhealthy cards
  CounterLayout layout = CounterLayout::kSplit;
  friend bool operator==(const ServerFeatures&, const ServerFeatures&) = default;
};

struct SliceOptions {
  std::string node_name;  // pool name and spec.nodeName
  std::string node_uid;   // owner reference to the Node; empty = none (dry run)
  std::vector<int> arc_sizes{2, 4, 8};
  placement::ArcAlignment alignment = placement::ArcAlignment::kAligned;
  ServerFeatures features;
  friend bool operator==(const SliceOptions&, const SliceOptions&) = default;
};

// Checks --arc-sizes: each in 2..kMaxCountersPerSet, no duplicates.
Status ValidateArcSizes(const std::vector<int>& sizes);

struct SliceSet {
  // Complete ResourceSlice objects (apiVersion, kind, metadata.name/labels/ownerReferences, spec),
  // pool.generation 0 and pool.resourceSliceCount = slices.size(); the publisher sets the
  // generation. Counter slices first (split layout), then device slices.
  std::vector<Json> slices;
  int card_devices = 0;
  int arc_devices = 0;
  int tainted_devices = 0;
  int withdrawn_devices = 0;  // unhealthy cards (and their arcs) left out: no taint support
  int dropped_arcs = 0;       // arcs that do not fit one 1.34 slice (combined layout only)
};

// Builds the slices of `inventory` for `options`. Errors: invalid options (bad node name, arc
// sizes) or a graph the placement library rejects (more than 64 cards).
Result<SliceSet> BuildSlices(const hw::Inventory& inventory, const SliceOptions& options);

// The metadata.name of slice `index` of a node's pool: "<node>-fpga-<index>", with the node part
// shortened when the name would exceed 253 characters.
std::string SliceName(const std::string& node_name, int index);

// Device names of the pool: "card-<n>" for card index n (the card's place in the node's card
// list, sorted by PCI address) and "arc<k>-<n>" for the arc of k cards whose first card is n.
std::string CardDeviceName(int card_index);
std::string ArcDeviceName(int size, int first_card_index);

// One device of the pool as BuildSlices names it, whatever its health (the caller decides).
struct PoolDevice {
  std::string name;  // "card-3", "arc4-0"
  bool arc = false;
  std::vector<int> cards;             // card indices, in link order (one for a card device)
  std::vector<std::string> card_ids;  // the same cards by PCI address, same order
};

// Every card device and (with options.features.partitionable) every arc device of the pool, cards
// first then arcs in LinkedArcs order: the names BuildSlices gives, from the same inventory and
// options. Errors: a graph the placement library rejects (more than 64 cards), bad arc sizes.
Result<std::vector<PoolDevice>> PoolDevices(const hw::Inventory& inventory, const SliceOptions& options);

// Renders slices as a multi-document YAML stream ("---" between objects).
std::string SlicesYaml(const std::vector<Json>& slices);

}  // namespace hyperaccel::dra
