// The agent's API-server side, one class per job, all over an injected kube::Client:
//   NodePublisher   this node's hyperaccel.ai/* labels and topology annotation (merge patch)
//   LeaderElector   the coordination.k8s.io/v1 Lease that makes one agent the HyperNode writer
//   NodeTierCache   list + watch of Nodes: every node's published tier labels (for the writer)
//   HyperNodeWriter creates / updates / deletes the HyperNodes it owns (direct mode)
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"
#include "hyperaccel/topology_agent/kube_client.h"
#include "hyperaccel/topology_agent/publication.h"
#include "hyperaccel/topology_agent/sources.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::agent {

inline constexpr const char* kNodesPath = "/api/v1/nodes";
inline constexpr const char* kHyperNodesPath = "/apis/topology.volcano.sh/v1alpha1/hypernodes";
std::string LeasesPath(const std::string& ns);

// Metrics every part reports to (optional everywhere: null = not counted).
struct AgentMetrics {
  explicit AgentMetrics(metrics::Registry& registry);
  metrics::Counter& reconciles;        // {result=ok|unchanged|skipped|error}
  metrics::Counter& node_patches;      // label/annotation writes
  metrics::Counter& hypernode_writes;  // {op=create|update|delete}
  metrics::Gauge& leader;              // 1 while holding the Lease
  metrics::Gauge& last_success;        // unix time of the last successful node reconcile
  metrics::Gauge& cards_allocated;
  // Fragmentation of this node (placement::NodeFragmentation over healthy, unallocated cards).
  metrics::Gauge& cards_free;
  metrics::Gauge& largest_free_linked;
  metrics::Gauge& cards_stranded;
};

// Labels of a Node object (empty map when none).
std::map<std::string, std::string> LabelsOf(const kube::Json& object);

class NodePublisher {
 public:
  NodePublisher(kube::Client* client, TierConfig tiers, const LinkDomains* domains,
                AgentMetrics* metrics = nullptr);

  // One reconcile. Reads the Node (and, when rack/IDC come from labels, the other nodes of its
  // link domain), computes the publication and sends one merge patch when anything differs.
  // Returns true when it wrote. Any read failure returns the error and writes nothing. With
  // `force` false and the same inputs as the last successful reconcile, it sends no request.
  Result<bool> Reconcile(const hw::Inventory& inventory, const std::set<std::string>& allocated, bool force);
  // The publication of the last successful reconcile.
  const Publication& last() const { return last_; }

 private:
  kube::Client* client_;
  TierConfig tiers_;
  const LinkDomains* domains_;
  AgentMetrics* metrics_;
  std::string last_fingerprint_;
  Publication last_;
};

struct LeaseConfig {
  std::string ns = "kube-system";
  std::string name = "hyperaccel-topology-agent";
  std::string identity;
  std::chrono::milliseconds duration{15000};
};

// client-go's leader-election rules over a Lease: take it when absent, or when its record has not
// changed for `duration` as observed locally (no clock-skew assumptions); renew while holding it;
// a 409 means another agent won the race. Times are RFC 3339 micro time.
class LeaderElector {
 public:
  LeaderElector(kube::Client* client, LeaseConfig config,
                std::function<std::chrono::steady_clock::time_point()> clock = nullptr);
  // One acquire-or-renew attempt; true when this agent holds the Lease afterwards.
  Result<bool> TryAcquireOrRenew();
  // Gives the Lease up (holderIdentity cleared) when held.
  Status Release();
  bool leader() const { return leader_; }
  std::chrono::steady_clock::time_point last_renew() const { return last_renew_; }
  const LeaseConfig& config() const { return config_; }

 private:
  kube::Client* client_;
  LeaseConfig config_;
  std::function<std::chrono::steady_clock::time_point()> clock_;
  bool leader_ = false;
  std::string observed_;  // holder + renewTime + resourceVersion last seen
  std::chrono::steady_clock::time_point observed_at_{};
  std::chrono::steady_clock::time_point last_renew_{};
};

// Tier values of every node, from the hyperaccel.ai/link.domain, rack and idc labels the agents
// publish. Kept current by a list + watch (bookmarks, relist on 410).
class NodeTierCache {
 public:
  explicit NodeTierCache(kube::Client* client);
  // Lists all nodes (replaces the cache).
  Status Relist();
  // Watches from the last resourceVersion until the stream ends or `stop`; relists on 410.
  Status WatchOnce(const std::atomic<bool>* stop, std::chrono::seconds timeout);
  std::vector<NodeTiers> Snapshot() const;
  // Bumped on every change; Wait returns when it differs from `seen` or after `timeout`.
  uint64_t generation() const;
  uint64_t WaitChange(uint64_t seen, std::chrono::milliseconds timeout) const;
  bool synced() const;

 private:
  void Apply(const std::string& type, const kube::Json& node);
  kube::Client* client_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<std::string, TierValues> nodes_;
  std::string rv_;
  uint64_t generation_ = 0;
  bool synced_ = false;
};

struct ConvergeStats {
  int created = 0;
  int updated = 0;
  int deleted = 0;
  int unchanged = 0;
  int foreign = 0;  // desired names held by objects we do not own (left alone)
};

class HyperNodeWriter {
 public:
  explicit HyperNodeWriter(kube::Client* client, AgentMetrics* metrics = nullptr);
  // Makes the HyperNodes labelled managed-by=hyperaccel-topology-agent equal `desired`: shrinks
  // and deletes first, then grows and creates, so no child ever has two parents. Objects without
  // our label are never modified or deleted. Conflicts are retried with a fresh read.
  Result<ConvergeStats> Converge(const std::vector<HyperNodeSpec>& desired);

 private:
  kube::Client* client_;
  AgentMetrics* metrics_;
};

}  // namespace hyperaccel::agent
