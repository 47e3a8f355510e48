// The cluster as `kubectl hyperaccel` sees it, from Node objects only: the labels and the
// `hyperaccel.ai/topology` annotation the topology agent writes, and the node's allocatable cards.
// Everything here is pure (no I/O): tests pass Node JSON, the commands pass what the API returned.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/placement/annotation.h"

namespace hyperaccel::kubectl {

using Json = nlohmann::json;

// One Node.
struct NodeView {
  std::string name;
  std::map<std::string, std::string> labels;        // every label of the Node
  std::string link_domain, rack, idc;               // tier labels ("" when absent)
  std::string annotation;                           // hyperaccel.ai/topology text ("" when absent)
  std::optional<placement::NodeTopology> topology;  // decoded annotation
  std::string topology_error;                       // why the annotation could not be decoded
  std::optional<int> allocatable;                   // status.allocatable[resource]
  bool unschedulable = false;                       // spec.unschedulable (cordoned)

  // Card counts from the annotation (0 without one).
  int Cards() const;
  int Free() const;  // healthy and not allocated
  int Unhealthy() const;
};

// Reads a NodeList (GET /api/v1/nodes). Nodes without FPGA labels, annotation or allocatable
// cards are left out. Errors only when the list itself is malformed; a node with a bad annotation
// is kept with `topology_error` set.
Result<std::vector<NodeView>> NodesFromList(const Json& node_list, const std::string& resource);
// One Node object.
Result<NodeView> NodeFromObject(const Json& node, const std::string& resource);

// Totals of a group of nodes (a link domain, a rack, an IDC, or one node).
struct Totals {
  std::string name;
  int nodes = 0;
  int cards = 0;  // cards listed in topology annotations
  int free = 0;
  int unhealthy = 0;
  int allocated = 0;
  // Largest set of free healthy cards connected by links: inside a node over links that are up;
  // across nodes over links that at least one end reports up and neither reports down or mismatch.
  int largest_free_linked = 0;
  int stranded = 0;                    // free cards in no free linked set of 2 or more (1-card pods only)
  int without_annotation = 0;          // nodes judged by counts only (no or invalid annotation)
  std::string link_domain, rack, idc;  // for a domain: its rack and IDC ("mixed" when nodes disagree)
  std::string topology;                // for a node: the link.topology label
};

struct TopoReport {
  std::vector<Totals> domains;  // by name; nodes without a domain are under ""
  std::vector<Totals> racks;
  std::vector<Totals> idcs;
  std::vector<Totals> nodes;
  Totals cluster;
};

TopoReport BuildTopo(const std::vector<NodeView>& nodes);
std::string FormatTopoTable(const TopoReport& report);
Json TopoJson(const TopoReport& report);

// Where a gang of `tasks` pods of `cards` cards each would go now, decided by the Volcano bridge's
// own code: a session is opened on the nodes (as onSessionOpen), and for each task in turn every
// node is judged by the bridge's predicate, the fitting ones are scored by its prioritize (gang
// locality included), the best is taken (ties: node name), and the placement is recorded as
// Volcano's allocate event does, so the next task sees the cards taken.
struct PlanRequest {
  int tasks = 1;
  int cards = 1;
  bool require_linked = false;
  bool spot = false;
  std::string resource = "hyperaccel.ai/fpga";
};

struct PlannedTask {
  int task = 0;
  std::string node, link_domain, rack, idc;
  double score = 0;                // prioritize score (weight 1)
  std::vector<std::string> cards;  // the cards the device plugin would give, in link order
  bool linked = false;             // they form one linked set
  std::string why;                 // placement's explanation of the node's score
};

struct NodeVerdict {
  std::string node;
  int code = 0;        // predicate code for the first task that did not fit (0 = fits)
  std::string reason;  // the bridge's predicate reason, or why the node was not considered
};

struct PlanResult {
  PlanRequest request;
  bool feasible = false;
  std::vector<PlannedTask> placed;  // all tasks when feasible; the ones that fit before it failed otherwise
  std::string summary;              // one line: where the gang goes, or why it cannot run
  std::vector<NodeVerdict> nodes;   // per node, for the first task that found no node (or skipped nodes)
  int domains_used = 0;
  int racks_used = 0;
};

Result<PlanResult> Plan(const std::vector<NodeView>& nodes, const PlanRequest& request);
std::string FormatPlanTable(const PlanResult& plan);
Json PlanJson(const PlanResult& plan);

// One node, like `hyperaccel-topology-agent show` but from what the node published.
std::string FormatCardsTable(const NodeView& node);
Json CardsJson(const NodeView& node);

}  // namespace hyperaccel::kubectl
