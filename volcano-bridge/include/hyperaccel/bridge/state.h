// What the bridge remembers between calls, all thread-safe:
//  - decoded topology annotations, shared by content (hash of the annotation text), so a node whose
//    annotation did not change is not decoded again in the next session;
//  - the session view from the last onSessionOpen snapshot (nodes, jobs), replaced wholesale by
//    each snapshot and dropped at onSessionClose;
//  - the newest node seen in any request body (so allocate events and preemptable calls, whose
//    bodies carry no node, still know the node's cards when onSessionOpen is not enabled);
//  - tentative allocations inside the session (allocate / deallocate events), keyed by task UID,
//    each with the cards placement predicts for it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hyperaccel/bridge/decide.h"
#include "hyperaccel/bridge/wire.h"

namespace hyperaccel::bridge {

// Decoded annotations by content. Thread-safe. A bad annotation is remembered as "no topology"
// (the node is then judged by counts) and logged once.
//
// Bounded in bytes (the annotation text plus an estimate of its decoded form): an entry that
// would pass the bound first evicts the entries not used since the last Sweep(), then, if that is
// not enough, all the others. An annotation larger than the whole bound is decoded but not kept.
class TopologyCache {
 public:
  static constexpr size_t kDefaultMaxBytes = size_t{64} << 20;
  explicit TopologyCache(size_t max_bytes = kDefaultMaxBytes) : max_bytes_(max_bytes) {}
  std::shared_ptr<const Topology> Get(std::string_view annotation, std::string_view node);
  // Drops every entry not used since the previous call (called once per snapshot).
  void Sweep();
  size_t size() const;
  size_t bytes() const;  // held now, <= max_bytes()
  size_t max_bytes() const { return max_bytes_; }

 private:
  struct Entry {
    std::string text;
    std::shared_ptr<const Topology> topology;  // null when the annotation is invalid
    size_t bytes = 0;
    bool used = true;
  };
  void EvictFor(size_t bytes);  // caller holds mu_

  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::unordered_multimap<uint64_t, Entry> entries_;
  size_t bytes_ = 0;
};

struct StateStats {
  size_t snapshot_nodes = 0;
  size_t snapshot_jobs = 0;
  size_t tentative = 0;
  size_t topologies = 0;
  size_t topology_bytes = 0;
  bool session_open = false;
};

class SessionState {
 public:
  explicit SessionState(size_t topology_cache_bytes = TopologyCache::kDefaultMaxBytes)
      : cache_(topology_cache_bytes) {}

  // onSessionOpen: replaces the session view and clears tentative allocations.
  void OpenSession(Snapshot snapshot);
  // onSessionClose: forgets tentative allocations and the session view.
  void CloseSession();

  // The task's needs: its own annotations plus its job's (snapshot) require-linked / preemptable.
  TaskNeed NeedOf(const Task& task) const;

  // Cards of a node from a request body (Volcano's current view: its Idle already counts the
  // session's allocations). Remembers the node for later calls.
  NodeCards CardsFromBody(const Node& node);
  // Cards of a node known from an earlier body or the snapshot; false when unknown.
  bool CardsOfKnownNode(const std::string& name, NodeCards* out) const;

  // Where the job's other tasks are and how many remain, from the snapshot, tentative
  // allocations and the tasks listed on `body_nodes`.
  GangView GangOf(const Task& task, const std::vector<Node>& body_nodes) const;

  // Sets domain_busy / domain_cards of every labelled node in `cards` (a prioritize request's
  // nodes, as CardsFromBody built them): summed over every node of its link domain, the request's
  // own nodes as given and the others from the session (snapshot or later view, minus tentative
  // allocations). The session keeps each domain's sums as views and allocations change, so this
  // costs O(1) per node of `cards`, whatever the number of nodes and tentative allocations.
  void AddDomainLoad(std::vector<NodeCards>* cards) const;

  // The link-domain wait's inputs for `task` on `node` (a predicate's node, as CardsFromBody built
  // it) at time `now_s` (seconds, any fixed origin): the wait is the pod's annotation, else its
  // PodGroup's, else `default_wait_s`; the age counts from NoteHeld. False, without looking
  // further, when no wait is set, the job is past its wait, or its job is not in the session's
  // snapshot (the hold needs onSessionOpen); `*hold` is then untouched.
  bool DomainHoldOf(const Task& task, const TaskNeed& need, const NodeCards& node, double default_wait_s,
                    double now_s, DomainHold* hold) const;
  // The hold just failed a node for `task`: its job's hold starts now, if it has not started and the
  // cluster had room (counting cards, at the session's snapshot) for all of its unplaced tasks.
  // Kept across sessions while the job has a pending task in the snapshots; lost on restart.
  void NoteHeld(const Task& task, const TaskNeed& need, const DomainHold& hold, double now_s);

  // allocateFunc / deallocateFunc. Allocate predicts the task's cards on its node.
  void Allocate(const Task& task, const TaskNeed& need);
  void Deallocate(const Task& task);

  struct TentativeView {
    std::string task_uid;
    std::string node;
    std::string job;
    Mask cards = 0;                     // predicted cards (0 when the node's cards are unknown)
    std::vector<std::string> card_ids;  // the same cards by device ID, in link order
  };
  std::vector<TentativeView> Tentatives() const;

  StateStats Stats() const;
  TopologyCache& topologies() { return cache_; }

 private:
  struct NodeInfo {  // a node without its task list
    std::string name, link_domain, rack, idc;
    std::shared_ptr<const Topology> topology;
    std::optional<int> allocatable, idle;
    uint64_t seen_at = 0;  // tentative sequence number when this view was taken
  };
  struct JobInfo {
    int min_available = 0;
    bool require_linked = false;
    bool spot = false;
    double domain_wait_s = -1;            // PodGroup's link-domain-wait (< 0: none)
    std::vector<std::string> task_uids;   // tasks requesting cards
    std::vector<std::string> task_nodes;  // node of each task ("" when pending)
  };
  struct Tentative {
    std::string node;
    std::string job;
    int cards = 0;
    Mask mask = 0;
    uint64_t seq = 0;
  };
  struct NodeTentative {  // one tentative allocation, indexed by node
    std::string task_uid;
    int cards = 0;
    Mask mask = 0;
    uint64_t seq = 0;
  };
  struct Load {  // cards of a node or a link domain: busy (not free) and all
    int busy = 0;
    int all = 0;
  };

  struct Taken {          // a node's tentative allocations
    Mask mask = 0;        // their cards (when predicted)
    int cards = 0;        // how many cards they hold
    int newer_cards = 0;  // of those, allocated after the view was taken
  };

  NodeInfo InfoFromNode(const Node& node);
  Taken TakenOn(const NodeInfo& info) const;  // caller holds mu_ (any mode)
  // Cards of `info`, minus tentative allocations (all of them, or those newer than the view).
  NodeCards Build(const NodeInfo& info, bool fresh_counts) const;
  // Build()'s capacity and busy cards, from counts alone (no card prediction). Caller holds mu_.
  Load LoadOf(const NodeInfo& info) const;
  std::optional<NodeInfo> FindNode(const std::string& name) const;  // caller holds mu_ (any mode)
  // Recomputes a snapshot node's share of its link domain's load after its view or its tentative
  // allocations changed. Caller holds mu_ (any mode) and seen_mu_.
  void RefreshLoad(const std::string& name);
  void AddTentative(const std::string& uid, Tentative t);  // caller holds mu_ (unique)
  void EraseTentative(const std::string& uid);             // caller holds mu_ (unique)

  TopologyCache cache_;
  mutable std::shared_mutex mu_;
  bool open_ = false;
  std::unordered_map<std::string, NodeInfo> snapshot_nodes_;
  std::unordered_map<std::string, JobInfo> jobs_;
  // Snapshot nodes by link-domain label, and for each task size k (index k, up to the largest
  // node), the most tasks of k cards one domain could hold empty (the link-domain wait's "fits").
  std::unordered_map<std::string, std::vector<std::string>> domain_nodes_;
  std::vector<int> largest_domain_slots_;
  std::vector<int> cluster_slots_;         // by k: tasks of k cards the snapshot's free cards could take
  std::atomic<bool> any_job_wait_{false};  // some PodGroup of the snapshot asks for a link-domain wait
  // When each job's link-domain hold started (NoteHeld). Never locked together with mu_.
  mutable std::mutex held_mu_;
  std::unordered_map<std::string, double> first_held_;
  std::unordered_map<std::string, Tentative> tentative_;                           // by task UID
  std::unordered_map<std::string, std::vector<NodeTentative>> tentative_by_node_;  // the same, by node
  std::unordered_map<std::string, std::vector<std::string>> tentative_by_job_;     // task UIDs, by job
  uint64_t seq_ = 0;
  mutable std::mutex seen_mu_;
  std::unordered_map<std::string, NodeInfo> seen_nodes_;
  // Guarded by seen_mu_ (they follow seen_nodes_ and the tentative allocations): each labelled
  // snapshot node's load as Build() gives it from its newest view, and their sums per link domain
  // (the snapshot's label).
  std::unordered_map<std::string, Load> node_load_;
  std::unordered_map<std::string, Load> domain_load_;
};

}  // namespace hyperaccel::bridge
