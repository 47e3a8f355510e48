#include "hyperaccel/topology_agent/reconcilers.h"

#include <algorithm>

#include "hyperaccel/common/json_fields.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/placement/names.h"
#include "hyperaccel/placement/placement.h"

namespace hyperaccel::agent {
namespace {

using kube::Json;

std::string Fingerprint(const Publication& p) {
  std::string f = p.annotation;
  for (const auto& [k, v] : p.labels) {
    f += '\n';
    f += k;
    f += '=';
    f += v;
  }
  return f;
}

std::optional<std::string> AnnotationOf(const Json& object) {
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return std::nullopt;
  auto a = md->find("annotations");
  if (a == md->end() || !a->is_object()) return std::nullopt;
  auto v = a->find(names::kAnnotationTopology);
  if (v == a->end() || !v->is_string()) return std::nullopt;
  return v->get<std::string>();
}

std::string NameOf(const Json& object) {
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return "";
  return md->value("name", "");
}

// The HyperNode fields we manage, read back from the server.
struct Observed {
  std::string name;
  std::string rv;
  int tier = -1;
  std::optional<std::string> tier_name;  // absent on CRDs older than v1.14 (field pruned)
  std::string member_type;
  std::vector<std::string> members;
  bool ours = false;
};

Observed Observe(const Json& o) {
  Observed ob;
  ob.name = NameOf(o);
  ob.rv = kube::ResourceVersionOf(o);
  auto labels = LabelsOf(o);
  auto it = labels.find(names::kManagedByLabel);
  ob.ours = it != labels.end() && it->second == names::kManagedByValue;
  if (!o.contains("spec") || !o["spec"].is_object()) return ob;
  const Json& spec = o["spec"];
  if (spec.contains("tier") && spec["tier"].is_number_integer()) ob.tier = spec["tier"].get<int>();
  if (spec.contains("tierName") && spec["tierName"].is_string())
    ob.tier_name = spec["tierName"].get<std::string>();
  if (spec.contains("members") && spec["members"].is_array()) {
    for (const auto& m : spec["members"]) {
      if (!m.is_object()) continue;
      std::string type = json_fields::String(m, "type");
      if (ob.member_type.empty()) ob.member_type = type;
      if (type != ob.member_type) ob.member_type = "mixed";
      const Json* name = nullptr;
      if (m.contains("selector") && m["selector"].is_object() && m["selector"].contains("exactMatch") &&
          m["selector"]["exactMatch"].is_object() && m["selector"]["exactMatch"].contains("name")) {
        name = &m["selector"]["exactMatch"]["name"];
      }
      if (name && name->is_string()) {
        ob.members.push_back(name->get<std::string>());
      } else {
        ob.member_type = "mixed";  // a selector we do not write: rewrite it
      }
    }
  }
  std::sort(ob.members.begin(), ob.members.end());
  return ob;
}

bool Same(const Observed& ob, const HyperNodeSpec& want) {
  return ob.ours && ob.tier == want.tier && ob.member_type == want.member_type &&
         ob.members == want.members && (!ob.tier_name || *ob.tier_name == want.tier_name);
}

Json SpecJson(const HyperNodeSpec& spec) { return Json::parse(HyperNodeJson(spec)); }

}  // namespace

std::string LeasesPath(const std::string& ns) {
  return "/apis/coordination.k8s.io/v1/namespaces/" + ns + "/leases";
}

AgentMetrics::AgentMetrics(metrics::Registry& r)
    : reconciles(r.AddCounter("hyperaccel_agent_reconciles_total", "Node reconciles by result", {"result"})),
      node_patches(
          r.AddCounter("hyperaccel_agent_node_patches_total", "Merge patches sent for this node's labels")),
      hypernode_writes(
          r.AddCounter("hyperaccel_agent_hypernode_writes_total", "HyperNode writes by operation", {"op"})),
      leader(r.AddGauge("hyperaccel_agent_leader", "1 while this agent holds the HyperNode writer Lease")),
      last_success(r.AddGauge("hyperaccel_agent_last_success_timestamp_seconds",
                              "Unix time of the last successful node reconcile")),
      cards_allocated(
          r.AddGauge("hyperaccel_agent_cards_allocated", "Cards the kubelet reports as allocated")),
      cards_free(r.AddGauge("hyperaccel_agent_cards_free", "Healthy cards not allocated")),
      largest_free_linked(r.AddGauge("hyperaccel_agent_largest_free_linked_cards",
                                     "Cards in the largest set of free cards linked to each other")),
      cards_stranded(r.AddGauge("hyperaccel_agent_cards_stranded",
                                "Free cards with no free linked neighbour (usable by 1-card pods only)")) {}

std::map<std::string, std::string> LabelsOf(const Json& object) {
  std::map<std::string, std::string> out;
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return out;
  auto l = md->find("labels");
  if (l == md->end() || !l->is_object()) return out;
  for (auto it = l->begin(); it != l->end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

// ---- NodePublisher -------------------------------------------------------------------------------

NodePublisher::NodePublisher(kube::Client* client, TierConfig tiers, const LinkDomains* domains,
                             AgentMetrics* metrics)
    : client_(client), tiers_(std::move(tiers)), domains_(domains), metrics_(metrics) {}

Result<bool> NodePublisher::Reconcile(const hw::Inventory& inventory, const std::set<std::string>& allocated,
                                      bool force) {
  DomainLookup lookup;
  if (domains_)
    lookup = [this](const std::string& n, const std::string& s) { return domains_->DomainOf(n, s); };
  PublishInput in;
  in.inventory = &inventory;
  in.allocated = allocated;
  in.domain = NodeDomain(inventory, lookup);
  // What the node itself contributes; rack/IDC need the API and are re-read on forced reconciles.
  auto local = ComputePublication(in);
  if (!local.ok()) return local.status();
  std::string fingerprint = Fingerprint(*local);
  if (!force && fingerprint == last_fingerprint_) {
    if (metrics_) metrics_->reconciles.Inc({"unchanged"});
    return false;
  }
  std::string path = std::string(kNodesPath) + "/" + inventory.node_name;
  auto node = client_->Get(path);
  if (!node.ok()) return node.status().WithContext("reading node " + inventory.node_name);
  auto labels = LabelsOf(*node);
  in.location = LocationFromLabels(labels, tiers_);
  bool from_labels = !tiers_.rack_label.empty() || !tiers_.idc_label.empty();
  if (!in.domain.empty() && from_labels && domains_) {
    for (const auto& peer : domains_->NodesOf(in.domain)) {
      if (peer == inventory.node_name) continue;
      auto p = client_->Get(std::string(kNodesPath) + "/" + peer);
      if (!p.ok() && p.status().code() == StatusCode::kNotFound) continue;  // not (yet) in the cluster
      if (!p.ok()) return p.status().WithContext("reading link-domain peer " + peer);
      in.domain_peers[peer] = LocationFromLabels(LabelsOf(*p), tiers_);
    }
  }
  auto pub = ComputePublication(in);
  if (!pub.ok()) return pub.status();
  std::set<std::string> keep;
  if (!tiers_.rack_label.empty()) keep.insert(tiers_.rack_label);
  if (!tiers_.idc_label.empty()) keep.insert(tiers_.idc_label);
  std::string patch = NodePatch(*pub, labels, AnnotationOf(*node), keep);
  bool wrote = false;
  if (!patch.empty()) {
    auto r = client_->MergePatch(path, Json::parse(patch));
    if (!r.ok()) return r.status().WithContext("patching node " + inventory.node_name);
    wrote = true;
    if (metrics_) metrics_->node_patches.Inc();
    HA_LOG(kInfo, "published node labels").kv("node", inventory.node_name).kv("patch_bytes", patch.size());
  }
  last_fingerprint_ = fingerprint;
  last_ = std::move(*pub);
  if (metrics_) {
    metrics_->reconciles.Inc({wrote ? "ok" : "unchanged"});
    metrics_->cards_allocated.Set(static_cast<double>(allocated.size()));
    if (auto graph = placement::GraphFromInventory(inventory); graph.ok()) {
      placement::Mask free = graph->HealthyMask();
      for (int i = 0; i < graph->size(); ++i) {
        if (allocated.count(graph->ids[static_cast<size_t>(i)]) != 0) free &= ~(placement::Mask{1} << i);
      }
      const placement::Fragmentation f = placement::NodeFragmentation(*graph, free);
      metrics_->cards_free.Set(f.free_cards);
      metrics_->largest_free_linked.Set(f.largest_free_linked);
      metrics_->cards_stranded.Set(f.stranded_cards);
    }
    metrics_->last_success.Set(static_cast<double>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count()));
  }
  return wrote;
}

// ---- LeaderElector ---------------------------------------------------------------------------------

LeaderElector::LeaderElector(kube::Client* client, LeaseConfig config,
                             std::function<std::chrono::steady_clock::time_point()> clock)
    : client_(client), config_(std::move(config)), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
}

Result<bool> LeaderElector::TryAcquireOrRenew() {
  auto now = clock_();
  std::string wall = kube::MicroTime(std::chrono::system_clock::now());
  std::string path = LeasesPath(config_.ns) + "/" + config_.name;
  int duration_s = static_cast<int>(std::max<int64_t>(1, (config_.duration.count() + 999) / 1000));
  auto cur = client_->Get(path);
  if (!cur.ok() && cur.status().code() == StatusCode::kNotFound) {
    Json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", config_.name}, {"namespace", config_.ns}}},
                  {"spec",
                   {{"holderIdentity", config_.identity},
                    {"leaseDurationSeconds", duration_s},
                    {"acquireTime", wall},
                    {"renewTime", wall},
                    {"leaseTransitions", 0}}}};
    auto created = client_->Create(LeasesPath(config_.ns), lease);
    if (!created.ok()) {
      leader_ = false;
      if (created.status().code() == StatusCode::kAlreadyExists ||
          created.status().code() == StatusCode::kConflict) {
        return false;
      }
      return created.status();
    }
    leader_ = true;
    last_renew_ = now;
    HA_LOG(kInfo, "acquired lease")
        .kv("lease", config_.ns + "/" + config_.name)
        .kv("identity", config_.identity);
    return true;
  }
  if (!cur.ok()) {
    if (leader_ && now - last_renew_ > config_.duration) leader_ = false;
    return cur.status();
  }
  Json lease = *cur;
  Json spec = lease.contains("spec") && lease["spec"].is_object() ? lease["spec"] : Json::object();
  std::string holder = json_fields::String(spec, "holderIdentity");
  std::string renew =
      spec.contains("renewTime") && spec["renewTime"].is_string() ? spec["renewTime"].get<std::string>() : "";
  int64_t their_duration =
      spec.contains("leaseDurationSeconds") && spec["leaseDurationSeconds"].is_number_integer()
          ? spec["leaseDurationSeconds"].get<int64_t>()
          : duration_s;
  std::string record = holder + "|" + renew + "|" + std::to_string(their_duration);
  if (record != observed_) {
    observed_ = record;
    observed_at_ = now;
  }
  if (!holder.empty() && holder != config_.identity &&
      now < observed_at_ + std::chrono::seconds(their_duration)) {
    if (leader_) HA_LOG(kWarn, "lost lease").kv("holder", holder);
    leader_ = false;
    return false;
  }
  bool renewing = holder == config_.identity;
  int64_t transitions = spec.contains("leaseTransitions") && spec["leaseTransitions"].is_number_integer()
                            ? spec["leaseTransitions"].get<int64_t>()
                            : 0;
  spec["holderIdentity"] = config_.identity;
  spec["leaseDurationSeconds"] = duration_s;
  spec["renewTime"] = wall;
  if (!renewing) {
    spec["acquireTime"] = wall;
    spec["leaseTransitions"] = transitions + 1;
  }
  lease["spec"] = spec;
  auto put = client_->Replace(path, lease);
  if (!put.ok()) {
    if (put.status().code() == StatusCode::kConflict) {
      leader_ = false;
      return false;
    }
    if (leader_ && now - last_renew_ > config_.duration) leader_ = false;
    return put.status();
  }
  if (!leader_) {
    HA_LOG(kInfo, "acquired lease")
        .kv("lease", config_.ns + "/" + config_.name)
        .kv("identity", config_.identity)
        .kv("previous", holder);
  }
  leader_ = true;
  last_renew_ = now;
  observed_ = config_.identity + "|" + wall + "|" + std::to_string(duration_s);
  observed_at_ = now;
  return true;
}

Status LeaderElector::Release() {
  if (!leader_) return Status::Ok();
  leader_ = false;
  std::string wall = kube::MicroTime(std::chrono::system_clock::now());
  auto r = client_->Update(LeasesPath(config_.ns) + "/" + config_.name, [&](Json& lease) {
    if (!lease.contains("spec") || json_fields::String(lease["spec"], "holderIdentity") != config_.identity)
      return false;
    lease["spec"]["holderIdentity"] = "";
    lease["spec"]["leaseDurationSeconds"] = 1;
    lease["spec"]["renewTime"] = wall;
    lease["spec"]["acquireTime"] = wall;
    return true;
  });
  if (r.ok()) HA_LOG(kInfo, "released lease").kv("lease", config_.ns + "/" + config_.name);
  return r.ok() ? Status::Ok() : r.status();
}

// ---- NodeTierCache ---------------------------------------------------------------------------------

NodeTierCache::NodeTierCache(kube::Client* client) : client_(client) {}

void NodeTierCache::Apply(const std::string& type, const Json& node) {
  std::string name = NameOf(node);
  if (name.empty()) return;
  std::lock_guard<std::mutex> lk(mu_);
  bool changed = false;
  if (type == "DELETED") {
    changed = nodes_.erase(name) > 0;
  } else {
    auto labels = LabelsOf(node);
    TierValues t;
    auto get = [&](const char* k) {
      auto it = labels.find(k);
      return it == labels.end() ? std::string() : it->second;
    };
    t.domain = get(names::kLabelLinkDomain);
    t.rack = get(names::kLabelRack);
    t.idc = get(names::kLabelIdc);
    auto it = nodes_.find(name);
    changed = it == nodes_.end() || it->second.domain != t.domain || it->second.rack != t.rack ||
              it->second.idc != t.idc;
    nodes_[name] = t;
  }
  if (changed) {
    ++generation_;
    cv_.notify_all();
  }
}

Status NodeTierCache::Relist() {
  auto list = client_->List(kNodesPath);
  if (!list.ok()) return list.status();
  std::map<std::string, TierValues> fresh;
  {
    std::lock_guard<std::mutex> lk(mu_);
    fresh.swap(nodes_);
  }
  for (const auto& item : (*list)["items"]) Apply("ADDED", item);
  std::lock_guard<std::mutex> lk(mu_);
  bool same = fresh.size() == nodes_.size() &&
              std::equal(fresh.begin(), fresh.end(), nodes_.begin(), [](const auto& a, const auto& b) {
                return a.first == b.first && a.second.domain == b.second.domain &&
                       a.second.rack == b.second.rack && a.second.idc == b.second.idc;
              });
  if (!same || !synced_) ++generation_;
  rv_ = kube::ResourceVersionOf(*list);
  synced_ = true;
  cv_.notify_all();
  return Status::Ok();
}

Status NodeTierCache::WatchOnce(const std::atomic<bool>* stop, std::chrono::seconds timeout) {
  std::string rv;
  {
    std::lock_guard<std::mutex> lk(mu_);
    rv = rv_;
  }
  if (rv.empty()) return Relist();
  Status s = client_->Watch(
      kNodesPath, "", rv,
      [this](kube::WatchEvent&& ev) {
        std::string erv = kube::ResourceVersionOf(ev.object);
        if (ev.type != "BOOKMARK") Apply(ev.type, ev.object);
        if (!erv.empty()) {
          std::lock_guard<std::mutex> lk(mu_);
          rv_ = erv;
        }
        return true;
      },
      stop, timeout);
  if (kube::IsGone(s)) {
    HA_LOG(kInfo, "node watch expired, relisting").kv("resource_version", rv);
    return Relist();
  }
  return s;
}

std::vector<NodeTiers> NodeTierCache::Snapshot() const {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<NodeTiers> out;
  for (const auto& [n, t] : nodes_) out.push_back({n, t});
  return out;
}

uint64_t NodeTierCache::generation() const {
  std::lock_guard<std::mutex> lk(mu_);
  return generation_;
}

uint64_t NodeTierCache::WaitChange(uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return generation_ != seen; });
  return generation_;
}

bool NodeTierCache::synced() const {
  std::lock_guard<std::mutex> lk(mu_);
  return synced_;
}

// ---- HyperNodeWriter --------------------------------------------------------------------------------

HyperNodeWriter::HyperNodeWriter(kube::Client* client, AgentMetrics* metrics)
    : client_(client), metrics_(metrics) {}

Result<ConvergeStats> HyperNodeWriter::Converge(const std::vector<HyperNodeSpec>& desired) {
  ConvergeStats stats;
  std::string selector = std::string(names::kManagedByLabel) + "=" + names::kManagedByValue;
  auto list = client_->List(kHyperNodesPath, selector);
  if (!list.ok()) return list.status().WithContext("listing our HyperNodes");
  std::map<std::string, Observed> existing;
  for (const auto& item : (*list)["items"]) {
    Observed ob = Observe(item);
    if (ob.ours && !ob.name.empty()) existing[ob.name] = ob;
  }
  std::map<std::string, const HyperNodeSpec*> want;
  for (const auto& d : desired) want[d.name] = &d;
  auto count = [&](const char* op) {
    if (metrics_) metrics_->hypernode_writes.Inc({op});
  };
  std::string base = std::string(kHyperNodesPath) + "/";

  // Writes `spec` over an object we own, conditional on `rv`; on a conflict re-reads and retries
  // as long as the object is still ours.
  auto replace = [&](const HyperNodeSpec& spec, const std::string& rv) -> Result<std::string> {
    Json obj = SpecJson(spec);
    obj["metadata"]["resourceVersion"] = rv;
    auto r = client_->Replace(base + spec.name, obj);
    if (r.ok()) return kube::ResourceVersionOf(*r);
    if (r.status().code() != StatusCode::kConflict) return r.status();
    auto u = client_->Update(base + spec.name, [&](Json& cur) {
      if (!Observe(cur).ours) return false;
      Json fresh = SpecJson(spec);
      cur["spec"] = fresh["spec"];
      cur["metadata"]["labels"][names::kManagedByLabel] = names::kManagedByValue;
      return true;
    });
    if (!u.ok()) return u.status();
    return kube::ResourceVersionOf(*u);
  };

  // Phase 1: delete what is no longer wanted; shrink what loses members (a child moving between
  // parents leaves the old one before it joins the new one).
  std::set<std::string> recreate;
  for (auto& [name, ob] : existing) {
    auto w = want.find(name);
    Status s;
    if (w == want.end()) {
      s = client_->Delete(base + name, ob.rv);
      if (s.ok() || s.code() == StatusCode::kNotFound) {
        ++stats.deleted;
        count("delete");
        s = Status::Ok();
      }
    } else if (!Same(ob, *w->second)) {
      const HyperNodeSpec& spec = *w->second;
      std::vector<std::string> inter;
      if (ob.member_type == spec.member_type) {
        std::set_intersection(ob.members.begin(), ob.members.end(), spec.members.begin(), spec.members.end(),
                              std::back_inserter(inter));
      }
      if (inter.size() == ob.members.size() && ob.member_type == spec.member_type) continue;  // only grows
      if (inter.empty()) {
        s = client_->Delete(base + name, ob.rv);
        if (s.ok() || s.code() == StatusCode::kNotFound) {
          count("delete");
          recreate.insert(name);
          s = Status::Ok();
        }
      } else {
        HyperNodeSpec shrunk = spec;
        shrunk.members = inter;
        auto rv = replace(shrunk, ob.rv);
        if (rv.ok()) {
          ob.rv = *rv;
          ob.members = inter;
          ob.tier = spec.tier;
          ob.tier_name = spec.tier_name;
          count("update");
        } else {
          s = rv.status();
        }
      }
    }
    if (!s.ok()) return s.WithContext("HyperNode " + name);
  }
  for (const auto& name : recreate) existing.erase(name);

  // Phase 2: grow and create.
  for (const auto& spec : desired) {
    auto e = existing.find(spec.name);
    if (e != existing.end()) {
      if (Same(e->second, spec)) {
        ++stats.unchanged;
        continue;
      }
      auto rv = replace(spec, e->second.rv);
      if (!rv.ok()) return rv.status().WithContext("HyperNode " + spec.name);
      ++stats.updated;
      count("update");
      continue;
    }
    auto c = client_->Create(kHyperNodesPath, SpecJson(spec));
    if (c.ok()) {
      ++stats.created;
      count("create");
    } else if (c.status().code() == StatusCode::kAlreadyExists) {
      ++stats.foreign;  // someone else's object under our name: never touched
      HA_LOG(kWarn, "HyperNode exists without our managed-by label; leaving it alone").kv("name", spec.name);
    } else {
      return c.status().WithContext("HyperNode " + spec.name);
    }
  }
  return stats;
}

}  // namespace hyperaccel::agent
