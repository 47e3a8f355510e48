// What the topology agent publishes, computed purely from plain values (no I/O): the node labels
// (ARCHITECTURE.md §2, names in placement/names.h), the `hyperaccel.ai/topology` annotation
// (schema in placement/annotation.h) and the Volcano HyperNodes of the tiers (ARCHITECTURE.md §4):
//
//   tier 1  hyperaccel.ai/link.domain  the link domain of the node's largest linked set of cards
//                                      (same ID on every node for the same connected set); for a
//                                      node in no domain of the cabling file (cards linked only
//                                      inside it, or not at all) its node-local domain
//                                      NodeLocalDomain(node): the node alone
//   tier 2  hyperaccel.ai/rack         "<idc>.<rack>" (just "<rack>" when no IDC is known)
//   tier 3  hyperaccel.ai/idc          "<idc>"
//
// Tiers are contiguous from 1: every node has tier 1, so a node without cross-node cabling still
// gets its rack and IDC tiers in both HyperNode modes; no rack means no IDC tier. The annotation's
// domain stays the cabling file's (empty for a node-local domain): the bridge keeps gangs in
// cabled domains only. One parent per HyperNode: a link
// domain spanning nodes in several racks belongs to the rack of its smallest-named member node
// that has one; every member node is labelled with that rack/IDC, so Volcano's label discovery
// builds the same single-parent tree that direct mode writes.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::agent {

// Where rack and IDC come from: a label the admin already sets on Nodes (first choice), else a
// fixed value from agent config.
struct TierConfig {
  std::string rack_label;  // e.g. "topology.hyperaccel.ai/rack"; empty = none
  std::string idc_label;   // e.g. "topology.kubernetes.io/zone"; empty = none
  std::string rack;        // fallback value
  std::string idc;         // fallback value
};

// A node's raw location: rack/IDC values as read from its labels or config (unsanitized).
struct Location {
  std::string rack;
  std::string idc;
};

// Reads a node's location from its labels per `config` (labels first, then the fixed values).
Location LocationFromLabels(const std::map<std::string, std::string>& labels, const TierConfig& config);

// Tier label values for a node: empty when the tier does not apply.
struct TierValues {
  std::string domain;  // tier 1
  std::string rack;    // tier 2, "<idc>.<rack>" sanitized
  std::string idc;     // tier 3, sanitized
};

// The canonical (single-parent) tier values for a node in `domain` whose own location is `own`:
// `peers` are the other member nodes of the domain with their locations; the location of the
// smallest node name (this node included) that has a rack wins.
TierValues CanonicalTiers(const std::string& node_name, const std::string& domain, const Location& own,
                          const std::map<std::string, Location>& peers);

struct HyperNodeSpec {
  std::string name;                  // DNS subdomain
  int tier = 1;                      // >= 1
  std::string tier_name;             // the label key of the tier
  std::string member_type;           // "Node" | "HyperNode"
  std::vector<std::string> members;  // exactMatch names, sorted
  friend bool operator==(const HyperNodeSpec&, const HyperNodeSpec&) = default;
};

// One node's tier values as the direct-mode writer sees them (from the node's published labels).
struct NodeTiers {
  std::string node;
  TierValues tiers;
};

// The HyperNode tree for a set of nodes: one tier-1 HyperNode per link domain (Node members),
// one tier-2 per rack value (its domains), one tier-3 per IDC value (its racks). Each child has
// exactly one parent: a domain whose nodes disagree on the rack goes to the rack of its
// smallest-named node; a rack whose domains disagree on the IDC likewise. Sorted by name.
std::vector<HyperNodeSpec> BuildHyperNodes(const std::vector<NodeTiers>& nodes);

// The tier-1 value of a node in no cabled link domain: 12 hex digits like hw::DomainId, of
// "<node>/" (unique per node, never equal to a cabling-file domain ID).
std::string NodeLocalDomain(const std::string& node_name);

// HyperNode names: "hyperaccel-domain-<id>", "hyperaccel-rack-<value>", "hyperaccel-idc-<value>",
// lower-cased; a hash suffix keeps values that differ only in case or in invalid characters apart.
std::string HyperNodeName(int tier, const std::string& value);

// The HyperNode object (topology.volcano.sh/v1alpha1) for `spec`, labelled
// app.kubernetes.io/managed-by=hyperaccel-topology-agent. JSON text.
std::string HyperNodeJson(const HyperNodeSpec& spec);

// A valid label value (<= 63 characters of [A-Za-z0-9._-], alphanumeric at both ends): invalid
// characters become '-', ends are trimmed, and long or altered values keep uniqueness with an
// 8-hex-digit hash suffix. Empty stays empty.
std::string SanitizeLabelValue(std::string_view value);

// "none" | "chain" | "ring" | "mesh" for the up links between this node's cards (largest linked set).
std::string LinkTopologyName(const hw::Inventory& inventory);

// Cards in the largest set of this node's cards linked by up links (0 without cards).
int LargestLinkedSet(const hw::Inventory& inventory);

// The link domain of a card, by (node, serial); "" when the card is in none.
using DomainLookup = std::function<std::string(const std::string& node, const std::string& serial)>;

// The node's link domain: the domain of its largest linked set of cards (ties: smallest ID).
std::string NodeDomain(const hw::Inventory& inventory, const DomainLookup& lookup);

struct PublishInput {
  const hw::Inventory* inventory = nullptr;
  std::set<std::string> allocated;               // device IDs the kubelet reports as in use
  std::string domain;                            // NodeDomain(...)
  Location location;                             // this node's own location
  std::map<std::string, Location> domain_peers;  // other nodes of the domain and their locations
};

struct Publication {
  std::string node;
  std::map<std::string, std::string> labels;  // every hyperaccel.ai/* label the node should carry
  std::string annotation;                     // hyperaccel.ai/topology value
  std::vector<HyperNodeSpec> hypernodes;      // this node's chain (tier 1..3) as direct mode writes it
  friend bool operator==(const Publication&, const Publication&) = default;
};

Result<Publication> ComputePublication(const PublishInput& input);

// Convenience for `show --dry-run`: no peers (the node's own location decides its rack).
Result<Publication> ComputePublication(const hw::Inventory& inventory, const std::set<std::string>& allocated,
                                       const TierConfig& tiers,
                                       const std::map<std::string, std::string>& node_labels,
                                       const DomainLookup& lookup);

// Human-readable dry run: labels, annotation (pretty-printed), HyperNodes as JSON.
std::string FormatDryRun(const Publication& publication);

// The JSON merge patch that turns `current_labels`/`current_annotation` of the Node into the
// publication: sets changed hyperaccel.ai/* labels, removes hyperaccel.ai/* labels no longer
// produced (except `keep`, e.g. admin-set source labels), sets the annotation. "" when nothing
// differs. Labels outside the prefix are never touched.
std::string NodePatch(const Publication& publication,
                      const std::map<std::string, std::string>& current_labels,
                      const std::optional<std::string>& current_annotation,
                      const std::set<std::string>& keep = {});

}  // namespace hyperaccel::agent
