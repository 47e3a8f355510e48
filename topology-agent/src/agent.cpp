#include "hyperaccel/topology_agent/agent.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>

#include "hyperaccel/common/admin_server.h"
#include "hyperaccel/common/cli.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/shutdown.h"

namespace hyperaccel::agent {
namespace {

std::chrono::milliseconds Ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

std::string Env(const char* name) {
  // Agent::Create reads POD_NAME/POD_NAMESPACE; the only setenv calls (xrt/ start-up) run before it.
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): no concurrent setenv
  return v ? v : "";
}

std::string DefaultIdentity() {
  if (auto pod = Env("POD_NAME"); !pod.empty()) return pod;
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "unknown");
  std::mt19937_64 rng(std::random_device{}());
  char suffix[9];
  std::snprintf(suffix, sizeof(suffix), "%08x", static_cast<unsigned>(rng()));
  return std::string(host) + "_" + suffix;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void AddAgentFlags(CLI::App& app, AgentOptions& o) {
  const cli::FlagGroup group(app, "Topology agent");
  auto env = [](const char* flag) { return cli::EnvName("HYPERACCEL_", flag); };
  app.add_option("--kubeconfig", o.kubeconfig, "kubeconfig file (default: in-cluster, then $KUBECONFIG)")
      ->envname(env("kubeconfig"))
      ->group(cli::kGroupKubernetes);
  app.add_option("--hypernodes", o.hypernodes,
                 "labels: publish tier labels for Volcano's label discovery; direct: the Lease holder writes "
                 "HyperNodes")
      ->envname(env("hypernodes"))
      ->check(CLI::IsMember({"labels", "direct"}))
      ->capture_default_str();
  app.add_option("--pod-resources-socket", o.pod_resources_socket,
                 "kubelet pod-resources socket (empty: no allocation info)")
      ->envname(env("pod-resources-socket"))
      ->capture_default_str();
  app.add_option("--resource", o.resource, "extended resource name of the cards")
      ->envname(env("resource"))
      ->capture_default_str();
  app.add_option("--poll-interval", o.poll_interval_s, "seconds between pod-resources polls")
      ->envname(env("poll-interval"))
      ->capture_default_str();
  app.add_option("--rescan-interval", o.rescan_interval_s, "seconds between hardware scans")
      ->envname(env("rescan-interval"))
      ->capture_default_str();
  app.add_option("--resync-interval", o.resync_interval_s, "seconds between forced re-reads of the Node")
      ->envname(env("resync-interval"))
      ->capture_default_str();
  app.add_option("--request-timeout", o.request_timeout_s, "API request timeout in seconds")
      ->envname(env("request-timeout"))
      ->group(cli::kGroupKubernetes)
      ->capture_default_str();
  app.add_option("--rack-label", o.tiers.rack_label, "Node label holding the rack (tier 2)")
      ->envname(env("rack-label"));
  app.add_option("--idc-label", o.tiers.idc_label,
                 "Node label holding the data center (tier 3), e.g. "
                 "topology.kubernetes.io/zone")
      ->envname(env("idc-label"));
  app.add_option("--rack", o.tiers.rack, "rack of this node when no --rack-label value is set")
      ->envname(env("rack"));
  app.add_option("--idc", o.tiers.idc, "data center of this node when no --idc-label value is set")
      ->envname(env("idc"));
  app.add_option("--lease-namespace", o.lease_namespace,
                 "namespace of the writer Lease (default $POD_NAMESPACE)")
      ->envname(env("lease-namespace"));
  app.add_option("--lease-name", o.lease_name, "name of the writer Lease")
      ->envname(env("lease-name"))
      ->capture_default_str();
  app.add_option("--lease-duration", o.lease_duration_s, "seconds a Lease is valid without renewal")
      ->envname(env("lease-duration"))
      ->capture_default_str();
  app.add_option("--lease-renew-deadline", o.lease_renew_deadline_s, "seconds the leader may fail to renew")
      ->envname(env("lease-renew-deadline"))
      ->capture_default_str();
  app.add_option("--lease-retry-period", o.lease_retry_period_s, "seconds between Lease attempts")
      ->envname(env("lease-retry-period"))
      ->capture_default_str();
  app.add_option("--identity", o.identity, "Lease holder identity (default $POD_NAME, else hostname_random)")
      ->envname(env("identity"));
  app.add_option("--admin-address", o.admin_address, "host:port for /metrics and /healthz (empty: off)")
      ->envname(env("admin-address"))
      ->group(cli::kGroupEndpoints)
      ->capture_default_str();
  app.add_flag("--once", o.once, "reconcile once against the API server and exit (0 on success)")
      ->envname(env("once"));
}

Status ValidateAgentOptions(const AgentOptions& o) {
  if (o.hypernodes != "labels" && o.hypernodes != "direct") {
    return InvalidArgument("--hypernodes: want labels or direct, got '" + o.hypernodes + "'");
  }
  for (auto [name, v] : {std::pair<const char*, double>{"--poll-interval", o.poll_interval_s},
                         {"--rescan-interval", o.rescan_interval_s},
                         {"--resync-interval", o.resync_interval_s},
                         {"--request-timeout", o.request_timeout_s},
                         {"--lease-duration", o.lease_duration_s},
                         {"--lease-renew-deadline", o.lease_renew_deadline_s},
                         {"--lease-retry-period", o.lease_retry_period_s}}) {
    if (!(v > 0)) return InvalidArgument(std::string(name) + " must be > 0");
  }
  if (o.lease_renew_deadline_s >= o.lease_duration_s) {
    return InvalidArgument("--lease-renew-deadline must be shorter than --lease-duration");
  }
  if (o.lease_retry_period_s >= o.lease_renew_deadline_s) {
    return InvalidArgument("--lease-retry-period must be shorter than --lease-renew-deadline");
  }
  return Status::Ok();
}

Result<Publication> PreviewPublication(const hw::Inventory& inventory, const AgentOptions& options,
                                       const std::string& cabling_file) {
  auto domains = LoadLinkDomains(cabling_file);
  if (!domains.ok()) return domains.status();
  std::set<std::string> allocated;
  if (!options.pod_resources_socket.empty() && std::filesystem::exists(options.pod_resources_socket)) {
    auto a =
        PodResourcesClient(options.pod_resources_socket, options.resource, std::chrono::seconds(1))->List();
    if (a.ok()) allocated = *a;
  }
  const LinkDomains* d = domains->get();
  return ComputePublication(inventory, allocated, options.tiers, {},
                            [d](const std::string& n, const std::string& s) { return d->DomainOf(n, s); });
}

// ---- Agent --------------------------------------------------------------------------------------

Agent::Agent(AgentOptions options, AgentDeps deps) : options_(std::move(options)), deps_(std::move(deps)) {}

Agent::~Agent() { Stop(); }

Result<std::unique_ptr<Agent>> Agent::Create(AgentOptions options, AgentDeps deps) {
  if (auto s = ValidateAgentOptions(options); !s.ok()) return s;
  if (!deps.scan) return InvalidArgument("agent: no hardware scan");
  if (options.identity.empty()) options.identity = DefaultIdentity();
  if (options.lease_namespace.empty()) options.lease_namespace = Env("POD_NAMESPACE");
  if (options.lease_namespace.empty()) options.lease_namespace = "kube-system";
  std::unique_ptr<Agent> a(new Agent(std::move(options), std::move(deps)));
  if (!a->deps_.registry) {
    a->own_registry_ = std::make_unique<metrics::Registry>();
    a->deps_.registry = a->own_registry_.get();
  }
  a->metrics_ = std::make_unique<AgentMetrics>(*a->deps_.registry);
  a->stats_ = std::make_shared<kube::RequestStats>();
  kube::ClientOptions co = a->deps_.client_options;
  co.request_timeout = Ms(a->options_.request_timeout_s);
  for (auto* slot : {&a->node_client_, &a->leader_client_, &a->watch_client_}) {
    auto c = kube::Client::Create(a->deps_.cluster, co, a->stats_);
    if (!c.ok()) return c.status();
    *slot = std::move(*c);
  }
  a->publisher_ = std::make_unique<NodePublisher>(a->node_client_.get(), a->options_.tiers,
                                                  a->deps_.domains.get(), a->metrics_.get());
  if (a->options_.hypernodes == "direct") {
    LeaseConfig lc;
    lc.ns = a->options_.lease_namespace;
    lc.name = a->options_.lease_name;
    lc.identity = a->options_.identity;
    lc.duration = Ms(a->options_.lease_duration_s);
    a->elector_ = std::make_unique<LeaderElector>(a->leader_client_.get(), lc);
    a->cache_ = std::make_unique<NodeTierCache>(a->watch_client_.get());
    a->writer_ = std::make_unique<HyperNodeWriter>(a->leader_client_.get(), a->metrics_.get());
  }
  return a;
}

Result<bool> Agent::ReconcileNode(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!have_inventory_ || now - last_scan_ >= Ms(options_.rescan_interval_s)) {
    auto inv = deps_.scan();
    last_scan_ = now;
    if (inv.ok()) {
      inventory_ = std::move(*inv);
      have_inventory_ = true;
    } else if (!have_inventory_) {
      return inv.status().WithContext("hardware scan");
    } else {
      HA_LOG(kWarn, "hardware scan failed; keeping the last inventory").kv("error", inv.status().message());
    }
  }
  if (deps_.allocated) {
    auto a = deps_.allocated->List();
    if (a.ok()) {
      allocated_ = std::move(*a);
      have_allocated_ = true;
    } else if (!have_allocated_) {
      return a.status();  // never publish "free" for cards we could not check
    } else {
      HA_LOG(kWarn, "pod-resources unavailable; keeping the last allocation")
          .kv("error", a.status().message());
    }
  }
  bool resync = force || last_resync_ == std::chrono::steady_clock::time_point{} ||
                now - last_resync_ >= Ms(options_.resync_interval_s);
  auto r = publisher_->Reconcile(inventory_, allocated_, resync);
  if (r.ok() && resync) last_resync_ = now;
  return r;
}

Status Agent::LeaderRound(bool once) {
  auto acquired = elector_->TryAcquireOrRenew();
  leader_ = elector_->leader();
  metrics_->leader.Set(leader_ ? 1 : 0);
  if (!acquired.ok()) return acquired.status().WithContext("lease");
  if (!*acquired) {
    converged_ = false;
    if (once) HA_LOG(kInfo, "another agent holds the writer lease; HyperNodes left to it");
    return Status::Ok();
  }
  if (once) {
    if (auto s = cache_->Relist(); !s.ok()) return s.WithContext("listing nodes");
  } else if (!cache_->synced()) {
    return Status::Ok();  // the watch thread lists the nodes first (one client per thread)
  }
  // Converge when the nodes' tiers changed, after gaining the Lease, and every resync interval.
  uint64_t gen = cache_->generation();
  auto now = std::chrono::steady_clock::now();
  if (!once && converged_ && gen == converged_generation_ &&
      now - converged_at_ < Ms(options_.resync_interval_s)) {
    return Status::Ok();
  }
  auto stats = writer_->Converge(BuildHyperNodes(cache_->Snapshot()));
  if (!stats.ok()) return stats.status();
  ++converges_;
  converged_ = true;
  converged_generation_ = gen;
  converged_at_ = now;
  if (stats->created + stats->updated + stats->deleted > 0) {
    HA_LOG(kInfo, "converged HyperNodes")
        .kv("created", stats->created)
        .kv("updated", stats->updated)
        .kv("deleted", stats->deleted)
        .kv("unchanged", stats->unchanged);
  }
  if (once) return elector_->Release();
  return Status::Ok();
}

Status Agent::RunOnce() {
  auto r = ReconcileNode(true);
  if (!r.ok()) return r.status();
  if (elector_) return LeaderRound(true);
  return Status::Ok();
}

void Agent::Start() {
  stop_ = false;
  heartbeat_ms_ = NowMs();
  publish_thread_ = std::thread([this] { PublishLoop(); });
  if (elector_) {
    leader_thread_ = std::thread([this] { LeaderLoop(); });
    watch_thread_ = std::thread([this] { WatchLoop(); });
  }
}

void Agent::Stop() {
  stop_ = true;
  for (auto* t : {&publish_thread_, &leader_thread_, &watch_thread_}) {
    if (t->joinable()) t->join();
  }
}

namespace {
// Sleeps up to `d`, waking early when `stop` turns true.
void Nap(const std::atomic<bool>& stop, std::chrono::milliseconds d) {
  auto end = std::chrono::steady_clock::now() + d;
  while (!stop && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
        std::chrono::milliseconds(20),
        std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()) +
            std::chrono::milliseconds(1)));
  }
}
}  // namespace

void Agent::PublishLoop() {
  kube::Backoff backoff(std::chrono::milliseconds(500), std::max(Ms(options_.poll_interval_s), Ms(30)));
  while (!stop_) {
    heartbeat_ms_ = NowMs();
    auto r = ReconcileNode(false);
    {
      std::lock_guard<std::mutex> lk(status_mu_);
      last_status_ = r.ok() ? Status::Ok() : r.status();
    }
    std::chrono::milliseconds wait = Ms(options_.poll_interval_s);
    if (r.ok()) {
      ++ok_reconciles_;
      backoff.Reset();
    } else {
      metrics_->reconciles.Inc({"error"});
      wait = std::min(wait, backoff.Next());
      HA_LOG(kWarn, "node reconcile failed; nothing written")
          .kv("error", r.status().message())
          .kv("retry_ms", wait.count());
    }
    Nap(stop_, wait);
  }
}

void Agent::LeaderLoop() {
  auto retry = Ms(options_.lease_retry_period_s);
  while (!stop_) {
    heartbeat_ms_ = NowMs();
    uint64_t gen = cache_->generation();
    Status s = LeaderRound(false);
    bool acting = elector_->leader() && std::chrono::steady_clock::now() - elector_->last_renew() <
                                            Ms(options_.lease_renew_deadline_s);
    leader_ = acting;
    if (!s.ok()) HA_LOG(kWarn, "HyperNode writer round failed").kv("error", s.message());
    if (acting && s.ok()) {
      // Wake on the next node change or for the next renewal, whichever comes first.
      auto until = std::chrono::steady_clock::now() + retry;
      while (!stop_ && std::chrono::steady_clock::now() < until && cache_->generation() == gen) {
        cache_->WaitChange(gen, std::chrono::milliseconds(50));
      }
    } else {
      Nap(stop_, retry);
    }
  }
  if (auto s = elector_->Release(); !s.ok()) HA_LOG(kWarn, "releasing lease failed").kv("error", s.message());
  leader_ = false;
  metrics_->leader.Set(0);
}

void Agent::WatchLoop() {
  kube::Backoff backoff(std::chrono::milliseconds(500), std::chrono::seconds(30));
  while (!stop_) {
    if (!leader_) {
      Nap(stop_, Ms(options_.lease_retry_period_s));
      continue;
    }
    Status s = cache_->synced() ? cache_->WatchOnce(&stop_, std::chrono::seconds(300)) : cache_->Relist();
    if (s.ok()) {
      backoff.Reset();
    } else {
      auto wait = backoff.Next();
      HA_LOG(kWarn, "node watch failed").kv("error", s.message()).kv("retry_ms", wait.count());
      Nap(stop_, wait);
    }
  }
}

Status Agent::Healthy() const {
  int64_t max_gap = std::max<int64_t>(3 * static_cast<int64_t>(options_.poll_interval_s * 1000), 60000) +
                    static_cast<int64_t>(options_.request_timeout_s * 1000) * 8;
  if (NowMs() - heartbeat_ms_.load() > max_gap) return Unavailable("agent loop stalled");
  return Status::Ok();
}

Status Agent::Ready() const {
  std::lock_guard<std::mutex> lk(status_mu_);
  return last_status_;
}

// ---- daemon ---------------------------------------------------------------------------------------

int RunAgent(const AgentOptions& options, const hw::DiscoveryOptions& discovery) {
  if (auto s = ValidateAgentOptions(options); !s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return 2;
  }
  shutdown::InstallSignalHandlers();
  auto cluster = kube::ResolveClusterConfig(options.kubeconfig);
  if (!cluster.ok()) {
    HA_LOG(kError, "no API server configuration").kv("error", cluster.status().message());
    return 1;
  }
  auto disc = hw::Discovery::Create(discovery);
  if (!disc.ok()) {
    HA_LOG(kError, "discovery setup failed").kv("error", disc.status().message());
    return 2;
  }
  auto domains = LoadLinkDomains(discovery.cabling_file);
  if (!domains.ok()) {
    HA_LOG(kError, "cabling file").kv("error", domains.status().message());
    return 2;
  }
  metrics::Registry registry;
  metrics::AddProcessMetrics(registry);
  AgentDeps deps;
  hw::Discovery* d = disc->get();
  deps.scan = [d] { return d->Scan(); };
  if (!options.pod_resources_socket.empty()) {
    deps.allocated = PodResourcesClient(options.pod_resources_socket, options.resource);
  }
  deps.domains = std::move(*domains);
  deps.cluster = std::move(*cluster);
  deps.registry = &registry;
  auto agent = Agent::Create(options, std::move(deps));
  if (!agent.ok()) {
    HA_LOG(kError, "agent setup failed").kv("error", agent.status().message());
    return 2;
  }
  Agent* a = agent->get();
  if (options.once) {
    Status s = a->RunOnce();
    if (!s.ok()) {
      HA_LOG(kError, "reconcile failed").kv("error", s.message());
      std::cerr << "error: " << s.message() << "\n";
      return 1;
    }
    HA_LOG(kInfo, "reconciled once").kv("requests", a->stats().Total()).kv("writes", a->stats().Writes());
    return 0;
  }
  AdminServer admin(
      &registry, [a] { return a->Healthy(); }, [a] { return a->Ready(); });
  if (auto s = admin.Start(options.admin_address); !s.ok()) {
    HA_LOG(kError, "admin server").kv("error", s.message());
    return 1;
  }
  HA_LOG(kInfo, "started").kv("mode", options.hypernodes).kv("admin", options.admin_address);
  a->Start();
  while (!shutdown::WaitFor(std::chrono::seconds(1))) {
  }
  HA_LOG(kInfo, "shutting down");
  a->Stop();
  admin.Stop();
  return 0;
}

}  // namespace hyperaccel::agent
