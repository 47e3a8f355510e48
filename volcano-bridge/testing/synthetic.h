// Synthetic Volcano request bodies shaped like Volcano v1.15 sends them (compact JSON, full Pod
// and Node objects, five copies of every job pod in a snapshot), for clusters of any size. Used by
// the bridge's tests and benchmarks; not part of the service.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hyperaccel/placement/placement.h"

namespace hyperaccel::bridge::synthetic {

struct TaskSpec {
  std::string uid;
  std::string job;  // JobID "<ns>/<podgroup>"; "" for a daemonset pod
  std::string name;
  std::string ns = "ml-team";
  std::string node;  // "" while pending
  int cards = 4;
  int status = 1;  // 1 Pending, 2 Allocated, 32 Running
  int64_t priority = 0;
  bool require_linked = false;
  bool spot = false;
  std::string domain_wait;  // annotation hyperaccel.ai/link-domain-wait ("" none)
};

struct NodeSpec {
  std::string name;
  std::string domain;  // hyperaccel.ai/link.domain label ("" = none)
  std::string rack;
  std::string idc;
  int cards = 8;             // cards cabled as a ring
  placement::Mask busy = 0;  // cards the annotation reports allocated
  placement::Mask unhealthy = 0;
  bool annotate = true;                       // false: no topology annotation (counts only)
  std::string topology;                       // the annotation to send; "" = generated from the fields above
  std::map<std::string, std::string> labels;  // extra node labels (e.g. the agent's real labels)
  int idle = -1;                              // Idle cards Volcano reports; -1 = cards - busy - unhealthy
};

// The `hyperaccel.ai/topology` annotation of a ring of `spec.cards` cards.
std::string TopologyAnnotation(const NodeSpec& spec);

std::string TaskInfoJson(const TaskSpec& task);
std::string NodeInfoJson(const NodeSpec& node, const std::vector<TaskSpec>& tasks_on_node);

std::string PredicateBody(const TaskSpec& task, const NodeSpec& node,
                          const std::vector<TaskSpec>& node_tasks);
// `node_tasks[i]` are the tasks on `nodes[i]` (may be shorter than nodes).
std::string PrioritizeBody(const TaskSpec& task, const std::vector<NodeSpec>& nodes,
                           const std::vector<std::vector<TaskSpec>>& node_tasks);
std::string TaskEventBody(const TaskSpec& task);
std::string EvictBody(const TaskSpec& evictor, const std::vector<TaskSpec>& evictees);

struct JobSpec {
  std::string uid;  // "<ns>/<podgroup>"
  int min_available = 1;
  bool require_linked = false;
  std::string domain_wait;  // PodGroup annotation hyperaccel.ai/link-domain-wait ("" none)
  std::vector<TaskSpec> tasks;
};
// A gang whose PodGroup asks for linked cards: `tasks` pending pods of `cards` cards, all needed
// (minAvailable = tasks); pod i has UID `task_uid_prefix`+i and name `task_name_prefix`+i, and
// carries the require-linked annotation itself when `pods_require_linked`.
JobSpec LinkedGang(const std::string& uid, int tasks, int cards, const std::string& task_uid_prefix,
                   const std::string& task_name_prefix, bool pods_require_linked = true);
std::string SnapshotBody(const std::vector<NodeSpec>& nodes, const std::vector<JobSpec>& jobs);

// A cluster: `nodes` nodes of 8 cards in link domains of 4 nodes, racks of 16, IDCs of 256, with
// `pods_per_node` 1-card... tasks bound to each node (one daemonset pod without cards first).
struct Cluster {
  std::vector<NodeSpec> nodes;
  std::vector<std::vector<TaskSpec>> node_tasks;
  std::vector<JobSpec> jobs;
};
Cluster MakeCluster(int nodes, int pods_per_node, uint32_t seed = 1);

}  // namespace hyperaccel::bridge::synthetic
