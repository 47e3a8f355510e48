// The simulated cluster: nodes of identical cards, the cabling inside each node, and the three
// tiers the topology agent publishes (link domain, rack, IDC). One card graph and one decoded
// topology are shared by every node, exactly as the bridge shares a decoded annotation.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "hyperaccel/bridge/decide.h"
#include "hyperaccel/common/status.h"
#include "hyperaccel/placement/placement.h"

namespace hyperaccel::sim {

using placement::Mask;

struct ClusterConfig {
  int nodes = 1000;
  int cards_per_node = 8;
  // Card-to-card cabling inside a node: "ring" (card i to i+1, last to first, as HyperAccel
  // servers ship), "line" (a ring with one cable missing) or "mesh" (every pair linked).
  std::string intra = "ring";
  int numa_nodes = 2;        // cards split evenly over this many NUMA nodes (PCIe switch = NUMA)
  int nodes_per_domain = 2;  // nodes whose cards are cabled together (tier 1); 1 = node-local
  int nodes_per_rack = 16;   // tier 2; a multiple of nodes_per_domain (a domain never spans racks)
  int racks_per_idc = 8;     // tier 3
};

// Checks ranges and the tier nesting; the error names the flag.
Status Validate(const ClusterConfig& config);

struct SimNode {
  std::string name;    // node-0001
  std::string domain;  // ld-0001 (tier 1)
  std::string rack;    // rack-001 (tier 2)
  std::string idc;     // idc-01 (tier 3)
  int domain_id = 0;
  int rack_id = 0;
  int idc_id = 0;
};

class Cluster {
 public:
  static Result<Cluster> Create(const ClusterConfig& config);

  const ClusterConfig& config() const { return config_; }
  const placement::CardGraph& graph() const { return topology_->graph; }
  const std::shared_ptr<const bridge::Topology>& topology() const { return topology_; }
  const std::vector<SimNode>& nodes() const { return nodes_; }
  int size() const { return static_cast<int>(nodes_.size()); }
  int cards_per_node() const { return config_.cards_per_node; }
  int total_cards() const { return size() * cards_per_node(); }
  int domains() const { return domains_; }
  int racks() const { return racks_; }
  int idcs() const { return idcs_; }
  Mask all_cards() const { return topology_->healthy; }

 private:
  ClusterConfig config_;
  std::shared_ptr<const bridge::Topology> topology_;
  std::vector<SimNode> nodes_;
  int domains_ = 0, racks_ = 0, idcs_ = 0;
};

// True when `cards` form one linked (connected) set in `graph`; a single card is linked.
bool IsLinked(const placement::CardGraph& graph, Mask cards);

}  // namespace hyperaccel::sim
