// Names users and other components see (ARCHITECTURE.md §2). Change only with a migration note.
#pragma once

namespace hyperaccel::names {

inline constexpr const char* kDefaultResource = "hyperaccel.ai/fpga";
inline constexpr const char* kPrefix = "hyperaccel.ai/";

// Node labels written by the topology agent.
inline constexpr const char* kLabelPresent = "hyperaccel.ai/fpga.present";
inline constexpr const char* kLabelCount = "hyperaccel.ai/fpga.count";
inline constexpr const char* kLabelHealthy = "hyperaccel.ai/fpga.healthy";
inline constexpr const char* kLabelProduct = "hyperaccel.ai/fpga.product";
inline constexpr const char* kLabelShell = "hyperaccel.ai/fpga.shell";
inline constexpr const char* kLabelXrtVersion = "hyperaccel.ai/fpga.xrt-version";
inline constexpr const char* kLabelLinkTopology = "hyperaccel.ai/link.topology";  // ring|chain|mesh|none
inline constexpr const char* kLabelLargestDomain = "hyperaccel.ai/link.largest-domain";
// Tier labels (Volcano HyperNode tiers, ARCHITECTURE.md §4). Values are globally unique per key:
// tier 1 = link domain ID, tier 2 = "<idc>.<rack>", tier 3 = "<idc>".
inline constexpr const char* kLabelLinkDomain = "hyperaccel.ai/link.domain";
inline constexpr const char* kLabelRack = "hyperaccel.ai/rack";
inline constexpr const char* kLabelIdc = "hyperaccel.ai/idc";

// Node annotation with cards and links (schema in annotation.h).
inline constexpr const char* kAnnotationTopology = "hyperaccel.ai/topology";

// Pod / job annotation: the task must get a linked set of cards.
inline constexpr const char* kAnnotationRequireLinked = "hyperaccel.ai/require-linked";

// Label on objects the agent owns (HyperNodes in direct mode).
inline constexpr const char* kManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr const char* kManagedByValue = "hyperaccel-topology-agent";

}  // namespace hyperaccel::names
