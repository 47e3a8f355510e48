#include "hyperaccel/bridge/state.h"

#include <algorithm>
#include <bit>
#include <functional>
#include <unordered_set>

#include "hyperaccel/common/log.h"

namespace hyperaccel::bridge {

// ---- TopologyCache ----------------------------------------------------------------------------

namespace {

// What an entry costs: its text, the decoded graph's vectors and strings, and the map's overhead.
size_t EntryBytes(std::string_view annotation, const Topology* t) {
  constexpr size_t kOverhead = 128;  // map node, Entry, shared_ptr control block
  size_t bytes = kOverhead + annotation.size();
  if (t != nullptr) {
    const auto& g = t->graph;
    bytes += sizeof(Topology);
    for (const auto& id : g.ids) bytes += sizeof(std::string) + id.capacity();
    for (const auto& serial : g.serials) bytes += sizeof(std::string) + serial.capacity();
    bytes += (g.numa.capacity() + g.pcie_switch.capacity()) * sizeof(int) + g.adj.capacity() * sizeof(Mask) +
             g.healthy.capacity() / 8;
  }
  return bytes;
}

}  // namespace

std::shared_ptr<const Topology> TopologyCache::Get(std::string_view annotation, std::string_view node) {
  const uint64_t key = std::hash<std::string_view>{}(annotation);
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [lo, hi] = entries_.equal_range(key);
    for (auto it = lo; it != hi; ++it) {
      if (it->second.text == annotation) {
        it->second.used = true;
        return it->second.topology;
      }
    }
  }
  std::shared_ptr<const Topology> topology;
  auto decoded = placement::DecodeTopology(annotation);
  Status error = decoded.status();
  if (decoded.ok()) {
    auto graph = placement::GraphFromTopology(*decoded);
    if (graph.ok()) {
      auto t = std::make_shared<Topology>();
      t->free = placement::FreeMask(*graph, *decoded);
      t->graph = std::move(graph.value());
      t->healthy = t->graph.HealthyMask();
      t->shape = ShapeOf(t->graph);
      topology = std::move(t);
    } else {
      error = graph.status();
    }
  }
  if (!topology) {
    HA_LOG(kWarn, "ignoring node topology annotation, judging the node by card counts")
        .kv("node", node)
        .kv("error", error.message());
  }
  const size_t bytes = EntryBytes(annotation, topology.get());
  if (bytes > max_bytes_) return topology;  // larger than the whole cache: not kept
  std::lock_guard<std::mutex> lock(mu_);
  auto [lo, hi] = entries_.equal_range(key);
  for (auto it = lo; it != hi; ++it) {
    if (it->second.text == annotation) return it->second.topology;  // another thread decoded it too
  }
  EvictFor(bytes);
  entries_.emplace(key, Entry{std::string(annotation), topology, bytes, true});
  bytes_ += bytes;
  return topology;
}

void TopologyCache::EvictFor(size_t bytes) {
  if (bytes_ + bytes <= max_bytes_) return;
  for (auto it = entries_.begin(); it != entries_.end() && bytes_ + bytes > max_bytes_;) {
    if (!it->second.used) {
      bytes_ -= it->second.bytes;
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  if (bytes_ + bytes <= max_bytes_) return;
  // Everything is in use by the current snapshot: start again (the nodes keep their decoded
  // topologies through their own references; only sharing with later requests is lost).
  entries_.clear();
  bytes_ = 0;
}

void TopologyCache::Sweep() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (!it->second.used) {
      bytes_ -= it->second.bytes;
      it = entries_.erase(it);
    } else {
      it->second.used = false;
      ++it;
    }
  }
}

size_t TopologyCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

size_t TopologyCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

// ---- SessionState -----------------------------------------------------------------------------

namespace {
// Tentative allocations are dropped wholesale beyond this (no session events for a long time).
constexpr size_t kMaxTentative = 200000;
}  // namespace

SessionState::NodeInfo SessionState::InfoFromNode(const Node& node) {
  NodeInfo info;
  info.name = node.name;
  info.link_domain = node.link_domain;
  info.rack = node.rack;
  info.idc = node.idc;
  if (!node.topology.empty()) info.topology = cache_.Get(node.topology, node.name);
  info.allocatable = node.allocatable_cards;
  info.idle = node.idle_cards;
  return info;
}

void SessionState::OpenSession(Snapshot snapshot) {
  std::unordered_map<std::string, NodeInfo> nodes;
  nodes.reserve(snapshot.nodes.size());
  for (const auto& n : snapshot.nodes) nodes[n.name] = InfoFromNode(n);
  std::unordered_map<std::string, JobInfo> jobs;
  jobs.reserve(snapshot.jobs.size());
  for (auto& j : snapshot.jobs) {
    JobInfo& info = jobs[j.uid];
    info.min_available = j.min_available;
    info.require_linked = j.require_linked;
    info.spot = j.spot;
    info.domain_wait_s = j.domain_wait_s;
    for (auto& t : j.tasks) {
      info.task_uids.push_back(std::move(t.uid));
      info.task_nodes.push_back(std::move(t.node_name));
    }
  }
  {
    // Holds of jobs that left the snapshot or have nothing pending are over.
    std::lock_guard<std::mutex> held_lock(held_mu_);
    for (auto it = first_held_.begin(); it != first_held_.end();) {
      auto job = jobs.find(it->first);
      const bool pending =
          job != jobs.end() && std::any_of(job->second.task_nodes.begin(), job->second.task_nodes.end(),
                                           [](const std::string& node) { return node.empty(); });
      it = pending ? std::next(it) : first_held_.erase(it);
    }
  }
  cache_.Sweep();
  std::unique_lock lock(mu_);
  snapshot_nodes_.swap(nodes);
  jobs_.swap(jobs);
  tentative_.clear();
  tentative_by_node_.clear();
  tentative_by_job_.clear();
  seq_ = 0;
  open_ = true;
  any_job_wait_.store(
      std::any_of(jobs_.begin(), jobs_.end(), [](const auto& j) { return j.second.domain_wait_s > 0; }),
      std::memory_order_relaxed);
  std::lock_guard<std::mutex> seen_lock(seen_mu_);
  seen_nodes_.clear();
  node_load_.clear();
  domain_load_.clear();
  domain_nodes_.clear();
  // One pass over the nodes: each labelled node's load and its domain's sums (prioritize), the
  // domains' members, and the free and healthy cards the link-domain wait counts slots in.
  std::vector<int> free_cards;
  free_cards.reserve(snapshot_nodes_.size());
  std::unordered_map<std::string, std::vector<int>> domain_capacities;
  int largest_node = 0;
  for (const auto& [name, info] : snapshot_nodes_) {
    const Load l = LoadOf(info);
    free_cards.push_back(l.all - l.busy);
    if (info.link_domain.empty()) continue;
    node_load_[name] = l;
    Load& d = domain_load_[info.link_domain];
    d.busy += l.busy;
    d.all += l.all;
    domain_nodes_[info.link_domain].push_back(name);
    domain_capacities[info.link_domain].push_back(l.all);
    largest_node = std::max(largest_node, std::min(l.all, 1024));
  }
  const auto sizes = static_cast<size_t>(largest_node) + 1;
  cluster_slots_.assign(sizes, 0);
  largest_domain_slots_.assign(sizes, 0);
  for (int k = 1; k <= largest_node; ++k) {
    const auto i = static_cast<size_t>(k);
    for (int f : free_cards) cluster_slots_[i] += f / k;
    for (const auto& [domain, capacities] : domain_capacities) {
      int slots = 0;
      for (int c : capacities) slots += c / k;
      largest_domain_slots_[i] = std::max(largest_domain_slots_[i], slots);
    }
  }
}

void SessionState::CloseSession() {
  std::unique_lock lock(mu_);
  snapshot_nodes_.clear();
  jobs_.clear();
  domain_nodes_.clear();
  largest_domain_slots_.clear();
  cluster_slots_.clear();
  any_job_wait_.store(false, std::memory_order_relaxed);
  tentative_.clear();
  tentative_by_node_.clear();
  tentative_by_job_.clear();
  open_ = false;
  std::lock_guard<std::mutex> seen_lock(seen_mu_);
  seen_nodes_.clear();
  node_load_.clear();
  domain_load_.clear();
}

TaskNeed SessionState::NeedOf(const Task& task) const {
  TaskNeed need;
  need.cards = task.cards;
  need.require_linked = task.require_linked;
  need.spot = task.spot;
  if (!task.job.empty()) {
    std::shared_lock lock(mu_);
    auto it = jobs_.find(task.job);
    if (it != jobs_.end()) {
      need.require_linked = need.require_linked || it->second.require_linked;
      need.spot = need.spot || it->second.spot;
    }
  }
  return need;
}

SessionState::Taken SessionState::TakenOn(const NodeInfo& info) const {
  Taken t;
  auto on_node = tentative_by_node_.find(info.name);
  if (on_node == tentative_by_node_.end()) return t;
  for (const NodeTentative& a : on_node->second) {
    t.mask |= a.mask;
    t.cards += a.cards;
    if (a.seq > info.seen_at) t.newer_cards += a.cards;
  }
  return t;
}

NodeCards SessionState::Build(const NodeInfo& info, bool fresh_counts) const {
  NodeCards c;
  c.name = info.name;
  c.link_domain = info.link_domain;
  c.rack = info.rack;
  c.idc = info.idc;
  c.topology = info.topology;
  const auto [taken, taken_cards, newer_cards] = TakenOn(info);
  std::optional<int> idle = info.idle;
  if (idle && !fresh_counts) idle = std::max(0, *idle - newer_cards);
  if (c.topology) {
    c.capacity = std::popcount(c.topology->healthy);
    c.free = c.topology->free & ~taken;
    c.free_count = std::popcount(c.free);
    // Volcano counts allocations the node agent has not reported yet (bound, not yet started):
    // give those tasks the cards placement predicts for them.
    if (idle && *idle < c.free_count) TakeCards(c, c.free_count - *idle);
  } else {
    c.capacity = std::max(0, info.allocatable.value_or(info.idle.value_or(0)));
    c.free_count = idle ? std::max(0, *idle) : std::max(0, c.capacity - taken_cards);
  }
  return c;
}

SessionState::Load SessionState::LoadOf(const NodeInfo& info) const {
  // Build() without the card prediction: when Volcano's Idle is below the free cards, TakeCards
  // leaves exactly max(0, Idle) free, whichever cards it takes.
  const auto [taken, taken_cards, newer_cards] = TakenOn(info);
  std::optional<int> idle = info.idle;
  if (idle) idle = std::max(0, *idle - newer_cards);
  int capacity = 0;
  int free_count = 0;
  if (info.topology) {
    capacity = std::popcount(info.topology->healthy);
    free_count = std::popcount(info.topology->free & ~taken);
    if (idle) free_count = std::min(free_count, *idle);
  } else {
    capacity = std::max(0, info.allocatable.value_or(info.idle.value_or(0)));
    free_count = idle ? *idle : std::max(0, capacity - taken_cards);
  }
  return {std::max(0, capacity - free_count), capacity};
}

void SessionState::RefreshLoad(const std::string& name) {
  auto snap = snapshot_nodes_.find(name);
  if (snap == snapshot_nodes_.end() || snap->second.link_domain.empty()) return;
  auto seen = seen_nodes_.find(name);
  const Load now = LoadOf(seen != seen_nodes_.end() ? seen->second : snap->second);
  Load& before = node_load_[name];
  Load& domain = domain_load_[snap->second.link_domain];
  domain.busy += now.busy - before.busy;
  domain.all += now.all - before.all;
  before = now;
}

NodeCards SessionState::CardsFromBody(const Node& node) {
  NodeInfo info = InfoFromNode(node);
  std::shared_lock lock(mu_);
  info.seen_at = seq_;
  NodeCards cards = Build(info, /*fresh_counts=*/true);
  std::lock_guard<std::mutex> seen_lock(seen_mu_);
  seen_nodes_.insert_or_assign(node.name, std::move(info));
  RefreshLoad(node.name);
  return cards;
}

std::optional<SessionState::NodeInfo> SessionState::FindNode(const std::string& name) const {
  {
    std::lock_guard<std::mutex> lock(seen_mu_);
    auto it = seen_nodes_.find(name);
    if (it != seen_nodes_.end()) return it->second;
  }
  auto it = snapshot_nodes_.find(name);
  if (it == snapshot_nodes_.end()) return std::nullopt;
  return it->second;
}

bool SessionState::CardsOfKnownNode(const std::string& name, NodeCards* out) const {
  std::shared_lock lock(mu_);
  auto info = FindNode(name);
  if (!info) return false;
  *out = Build(*info, /*fresh_counts=*/false);
  return true;
}

void SessionState::AddDomainLoad(std::vector<NodeCards>* cards) const {
  std::unordered_map<std::string, Load> load;
  std::unordered_set<std::string> given;
  for (const NodeCards& c : *cards) {
    if (c.link_domain.empty() || !given.insert(c.name).second) continue;
    Load& l = load[c.link_domain];
    l.busy += std::max(0, c.capacity - c.free_count);
    l.all += c.capacity;
  }
  if (load.empty()) return;
  {
    // The session's sums of the request's domains, less the request's own nodes (given above).
    std::shared_lock lock(mu_);
    std::lock_guard<std::mutex> seen_lock(seen_mu_);
    for (auto& [domain, l] : load) {
      auto it = domain_load_.find(domain);
      if (it == domain_load_.end()) continue;
      l.busy += it->second.busy;
      l.all += it->second.all;
    }
    for (const std::string& name : given) {
      auto own = node_load_.find(name);
      if (own == node_load_.end()) continue;
      auto it = load.find(snapshot_nodes_.at(name).link_domain);
      if (it == load.end()) continue;
      it->second.busy -= own->second.busy;
      it->second.all -= own->second.all;
    }
  }
  for (NodeCards& c : *cards) {
    if (c.link_domain.empty()) continue;
    const Load& l = load[c.link_domain];
    c.domain_busy = l.busy;
    c.domain_cards = l.all;
  }
}

GangView SessionState::GangOf(const Task& task, const std::vector<Node>& body_nodes) const {
  GangView gang;
  if (task.job.empty()) return gang;
  std::unordered_set<std::string> placed;
  for (const auto& n : body_nodes) {
    for (const auto& t : n.tasks) {
      if (t.job == task.job && t.uid != task.uid) placed.insert(n.name);
    }
  }
  std::shared_lock lock(mu_);
  std::unordered_set<std::string> tentative_uids;
  if (auto of_job = tentative_by_job_.find(task.job); of_job != tentative_by_job_.end()) {
    for (const std::string& uid : of_job->second) {
      tentative_uids.insert(uid);
      auto t = tentative_.find(uid);
      if (t != tentative_.end() && uid != task.uid) placed.insert(t->second.node);
    }
  }
  auto job = jobs_.find(task.job);
  if (job != jobs_.end()) {
    int pending = 0;
    for (size_t i = 0; i < job->second.task_uids.size(); ++i) {
      const std::string& uid = job->second.task_uids[i];
      const std::string& node = job->second.task_nodes[i];
      if (!node.empty()) {
        if (uid != task.uid) placed.insert(node);
      } else if (!tentative_uids.count(uid)) {
        ++pending;
      }
    }
    gang.remaining = std::max(1, pending);
  }
  for (const auto& name : placed) {
    const std::string *domain = nullptr, *rack = nullptr, *idc = nullptr;
    auto body =
        std::find_if(body_nodes.begin(), body_nodes.end(), [&](const Node& n) { return n.name == name; });
    if (body != body_nodes.end()) {
      domain = &body->link_domain;
      rack = &body->rack;
      idc = &body->idc;
    } else if (auto info = FindNode(name)) {
      if (!info->link_domain.empty()) gang.domains.insert(info->link_domain);
      if (!info->rack.empty()) gang.racks.insert(info->rack);
      if (!info->idc.empty()) gang.idcs.insert(info->idc);
      continue;
    } else {
      continue;
    }
    if (!domain->empty()) gang.domains.insert(*domain);
    if (!rack->empty()) gang.racks.insert(*rack);
    if (!idc->empty()) gang.idcs.insert(*idc);
  }
  return gang;
}

bool SessionState::DomainHoldOf(const Task& task, const TaskNeed& need, const NodeCards& node,
                                double default_wait_s, double now_s, DomainHold* hold) const {
  if (need.cards <= 0 || task.job.empty()) return false;
  // Off unless something asks for it: the common predicate takes no lock here.
  if (task.domain_wait_s == 0 ||
      (task.domain_wait_s < 0 && default_wait_s <= 0 && !any_job_wait_.load(std::memory_order_relaxed)))
    return false;
  DomainHold h;
  {
    std::shared_lock lock(mu_);
    auto job = jobs_.find(task.job);
    if (job == jobs_.end()) return false;
    h.wait_s = task.domain_wait_s >= 0          ? task.domain_wait_s
               : job->second.domain_wait_s >= 0 ? job->second.domain_wait_s
                                                : default_wait_s;
    if (h.wait_s <= 0) return false;
    h.gang_tasks = static_cast<int>(job->second.task_uids.size());
    const auto k = static_cast<size_t>(need.cards);
    h.largest_domain_slots = k < largest_domain_slots_.size() ? largest_domain_slots_[k] : 0;
    if (h.gang_tasks < 2 || h.gang_tasks > h.largest_domain_slots) return false;  // nothing to hold
  }
  {
    std::lock_guard<std::mutex> held_lock(held_mu_);
    auto held = first_held_.find(task.job);
    h.age_s = held == first_held_.end() ? 0 : now_s - held->second;
  }
  h.unplaced = 1;
  if (!HoldApplies(h)) return false;
  GangView gang = GangOf(task, {});
  h.unplaced = gang.remaining;
  h.gang_domains = std::move(gang.domains);
  h.node_domain = node.link_domain;
  if (!h.node_domain.empty()) {
    // The node as the request gives it, and the domain's other snapshot nodes as last seen, less
    // the session's tentative allocations.
    h.node_domain_slots = node.free_count / need.cards;
    std::shared_lock lock(mu_);
    if (auto members = domain_nodes_.find(h.node_domain); members != domain_nodes_.end()) {
      for (const std::string& name : members->second) {
        if (name == node.name) continue;
        if (auto info = FindNode(name))
          h.node_domain_slots += Build(*info, /*fresh_counts=*/false).free_count / need.cards;
      }
    }
  }
  *hold = std::move(h);
  return HoldApplies(*hold);
}

void SessionState::NoteHeld(const Task& task, const TaskNeed& need, const DomainHold& hold, double now_s) {
  if (task.job.empty() || need.cards <= 0) return;
  {
    std::shared_lock lock(mu_);
    const auto k = static_cast<size_t>(need.cards);
    if (k >= cluster_slots_.size() || cluster_slots_[k] < hold.unplaced) return;
  }
  std::lock_guard<std::mutex> held_lock(held_mu_);
  first_held_.try_emplace(task.job, now_s);
}

void SessionState::AddTentative(const std::string& uid, Tentative t) {
  tentative_by_node_[t.node].push_back({uid, t.cards, t.mask, t.seq});
  if (!t.job.empty()) tentative_by_job_[t.job].push_back(uid);
  tentative_.insert_or_assign(uid, std::move(t));
}

void SessionState::EraseTentative(const std::string& uid) {
  auto it = tentative_.find(uid);
  if (it == tentative_.end()) return;
  auto on_node = tentative_by_node_.find(it->second.node);
  if (on_node != tentative_by_node_.end()) {
    auto& list = on_node->second;
    list.erase(
        std::remove_if(list.begin(), list.end(), [&](const NodeTentative& t) { return t.task_uid == uid; }),
        list.end());
    if (list.empty()) tentative_by_node_.erase(on_node);
  }
  if (auto of_job = tentative_by_job_.find(it->second.job); of_job != tentative_by_job_.end()) {
    auto& uids = of_job->second;
    uids.erase(std::remove(uids.begin(), uids.end(), uid), uids.end());
    if (uids.empty()) tentative_by_job_.erase(of_job);
  }
  const std::string node = it->second.node;
  tentative_.erase(it);
  std::lock_guard<std::mutex> seen_lock(seen_mu_);
  RefreshLoad(node);
}

void SessionState::Allocate(const Task& task, const TaskNeed& need) {
  if (task.node_name.empty() || need.cards <= 0) return;
  std::unique_lock lock(mu_);
  EraseTentative(task.uid);
  if (tentative_.size() >= kMaxTentative) {
    tentative_.clear();
    tentative_by_node_.clear();
    tentative_by_job_.clear();
    std::lock_guard<std::mutex> seen_lock(seen_mu_);
    for (const auto& [name, info] : snapshot_nodes_) RefreshLoad(name);
  }
  Tentative t;
  t.node = task.node_name;
  t.job = task.job;
  t.cards = need.cards;
  if (auto info = FindNode(task.node_name)) {
    t.mask = PredictCards(need, Build(*info, /*fresh_counts=*/false));
  }
  t.seq = ++seq_;
  AddTentative(task.uid, std::move(t));
  std::lock_guard<std::mutex> seen_lock(seen_mu_);
  RefreshLoad(task.node_name);
}

void SessionState::Deallocate(const Task& task) {
  std::unique_lock lock(mu_);
  EraseTentative(task.uid);
}

std::vector<SessionState::TentativeView> SessionState::Tentatives() const {
  std::vector<TentativeView> out;
  std::shared_lock lock(mu_);
  for (const auto& [uid, t] : tentative_) {
    TentativeView v{uid, t.node, t.job, t.mask, {}};
    auto info = FindNode(t.node);
    if (info && info->topology && t.mask != 0) {
      for (int i : placement::LinkOrder(info->topology->graph, t.mask)) {
        v.card_ids.push_back(info->topology->graph.ids[static_cast<size_t>(i)]);
      }
    }
    out.push_back(std::move(v));
  }
  return out;
}

StateStats SessionState::Stats() const {
  StateStats s;
  {
    std::shared_lock lock(mu_);
    s.snapshot_nodes = snapshot_nodes_.size();
    s.snapshot_jobs = jobs_.size();
    s.tentative = tentative_.size();
    s.session_open = open_;
  }
  s.topologies = cache_.size();
  s.topology_bytes = cache_.bytes();
  return s;
}

}  // namespace hyperaccel::bridge
