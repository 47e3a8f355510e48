// The topology agent daemon (`hyperaccel-topology-agent run`): every poll interval it reads the
// kubelet's allocated cards (pod-resources) and, every rescan interval, the hardware; it publishes
// the node's labels and topology annotation when they change (and re-reads the Node every resync
// interval to repair drift). With --hypernodes=direct it also competes for a Lease, and the holder
// keeps the HyperNodes of all nodes in step with their tier labels.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "hyperaccel/common/metrics.h"
#include "hyperaccel/common/status.h"
#include "hyperaccel/topology_agent/kube_client.h"
#include "hyperaccel/topology_agent/publication.h"
#include "hyperaccel/topology_agent/reconcilers.h"
#include "hyperaccel/topology_agent/sources.h"
#include "hyperaccel/xrt/discovery.h"
#include "hyperaccel/xrt/model.h"

namespace CLI {
class App;
}

namespace hyperaccel::agent {

struct AgentOptions {
  std::string kubeconfig;             // empty: in-cluster, then $KUBECONFIG, then ~/.kube/config
  std::string hypernodes = "labels";  // labels | direct
  std::string pod_resources_socket =
      "/var/lib/kubelet/pod-resources/kubelet.sock";  // "" = no allocation info
  std::string resource = "hyperaccel.ai/fpga";
  double poll_interval_s = 10;     // pod-resources poll (and publish check)
  double rescan_interval_s = 30;   // hardware rescan
  double resync_interval_s = 300;  // re-read the Node even when nothing changed locally
  double request_timeout_s = 10;
  TierConfig tiers;
  std::string lease_namespace;  // "" = $POD_NAMESPACE, else kube-system
  std::string lease_name = "hyperaccel-topology-agent";
  double lease_duration_s = 15;
  double lease_renew_deadline_s = 10;
  double lease_retry_period_s = 2;
  std::string identity;  // "" = $POD_NAME, else <hostname>_<random>
  std::string admin_address = ":9465";
  bool once = false;
};

// Adds the agent's flags (each with an HYPERACCEL_* variable and a config-file key): --kubeconfig,
// --hypernodes, --pod-resources-socket, --resource, --poll-interval, --rescan-interval,
// --resync-interval, --request-timeout, --rack-label, --idc-label, --rack, --idc,
// --lease-namespace, --lease-name, --lease-duration, --lease-renew-deadline, --lease-retry-period,
// --identity, --admin-address, --once. Discovery flags are added separately (hw::AddDiscoveryFlags).
void AddAgentFlags(CLI::App& app, AgentOptions& options);

// Checks option values (mode, intervals > 0, renew deadline < lease duration).
Status ValidateAgentOptions(const AgentOptions& options);

// The daemon: returns the process exit code (0 after a graceful shutdown or a successful --once,
// 1 with the reason logged otherwise, 2 for bad options).
int RunAgent(const AgentOptions& options, const hw::DiscoveryOptions& discovery);

// What `show --dry-run` prints: the publication for `inventory` using the cabling file for the
// link domain, the static rack/IDC of `options.tiers` (no API server is asked) and, when the
// pod-resources socket answers, the allocated cards.
Result<Publication> PreviewPublication(const hw::Inventory& inventory, const AgentOptions& options,
                                       const std::string& cabling_file);

// Everything the agent touches, injectable (tests pass fakes through the same door).
struct AgentDeps {
  std::function<Result<hw::Inventory>()> scan;
  std::unique_ptr<AllocatedDevices> allocated;  // null: no allocation info (all cards free)
  std::unique_ptr<LinkDomains> domains;         // null: no link domains
  kube::ClusterConfig cluster;
  kube::ClientOptions client_options;
  metrics::Registry* registry = nullptr;  // null: a private registry
};

class Agent {
 public:
  static Result<std::unique_ptr<Agent>> Create(AgentOptions options, AgentDeps deps);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // --once: one forced node reconcile and, in direct mode, one leader round (acquire, converge,
  // release). Error when any step failed, with the reason.
  Status RunOnce();
  // Background loops until Stop() (or process shutdown).
  void Start();
  void Stop();

  // /healthz: the loops are alive. /readyz: the last node reconcile succeeded.
  Status Healthy() const;
  Status Ready() const;
  bool leader() const { return leader_.load(); }
  uint64_t successful_reconciles() const { return ok_reconciles_.load(); }
  uint64_t converges() const { return converges_.load(); }
  kube::RequestStats& stats() { return *stats_; }

  // One publish step of the loop (exposed for tests and benchmarks).
  Result<bool> ReconcileNode(bool force);

 private:
  Agent(AgentOptions options, AgentDeps deps);
  void PublishLoop();
  void LeaderLoop();
  void WatchLoop();
  Status LeaderRound(bool once);

  AgentOptions options_;
  AgentDeps deps_;
  std::unique_ptr<metrics::Registry> own_registry_;
  std::unique_ptr<AgentMetrics> metrics_;
  std::shared_ptr<kube::RequestStats> stats_;
  std::unique_ptr<kube::Client> node_client_;
  std::unique_ptr<kube::Client> leader_client_;
  std::unique_ptr<kube::Client> watch_client_;
  std::unique_ptr<NodePublisher> publisher_;
  std::unique_ptr<LeaderElector> elector_;
  std::unique_ptr<NodeTierCache> cache_;
  std::unique_ptr<HyperNodeWriter> writer_;

  hw::Inventory inventory_;
  bool have_inventory_ = false;
  std::set<std::string> allocated_;
  bool have_allocated_ = false;
  std::chrono::steady_clock::time_point last_scan_{};
  std::chrono::steady_clock::time_point last_resync_{};
  bool converged_ = false;  // leader state: what the last converge saw
  uint64_t converged_generation_ = 0;
  std::chrono::steady_clock::time_point converged_at_{};

  std::atomic<bool> stop_{false};
  std::atomic<bool> leader_{false};
  std::atomic<uint64_t> ok_reconciles_{0};
  std::atomic<uint64_t> converges_{0};
  std::atomic<int64_t> heartbeat_ms_{0};
  mutable std::mutex status_mu_;
  Status last_status_ = Unavailable("no reconcile yet");
  std::thread publish_thread_;
  std::thread leader_thread_;
  std::thread watch_thread_;
};

}  // namespace hyperaccel::agent
