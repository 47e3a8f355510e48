#include "hyperaccel/sim/engine.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <tuple>
#include <unordered_map>

#include "hyperaccel/sim/dra_policy.h"

namespace hyperaccel::sim {

const char* PolicyName(Policy p) {
  switch (p) {
    case Policy::kRandom: return "random";
    case Policy::kBinpack: return "binpack";
    case Policy::kTiers: return "tiers";
    case Policy::kFgd: return "fgd";
    case Policy::kHyperaccel: return "hyperaccel";
    case Policy::kExtender: return "extender";
    case Policy::kDraAligned: return "dra-aligned";
    case Policy::kDraAll: return "dra-all";
  }
  return "?";
}

Result<Policy> ParsePolicy(std::string_view name) {
  for (Policy p : AllPolicies())
    if (name == PolicyName(p)) return p;
  for (Policy p : {Policy::kDraAligned, Policy::kDraAll})
    if (name == PolicyName(p)) return p;
  return InvalidArgument("unknown policy \"" + std::string(name) +
                         "\" (random, binpack, tiers, fgd, extender, hyperaccel, dra-aligned, dra-all)");
}

std::vector<Policy> AllPolicies() {
  return {Policy::kRandom, Policy::kBinpack,  Policy::kTiers,
          Policy::kFgd,    Policy::kExtender, Policy::kHyperaccel};
}

int NodesToFind(int nodes, int percentage, int min_nodes) {
  if (nodes <= min_nodes || percentage >= 100) return nodes;
  int adaptive = percentage;
  if (adaptive <= 0) adaptive = std::max(5, 50 - nodes / 125);
  return std::min(nodes, std::max(min_nodes, nodes * adaptive / 100));
}

namespace {

using Clock = std::chrono::steady_clock;

int Count(Mask m) { return std::popcount(m); }

// The kubelet's choice without a preferred allocation from the plugin: the first free cards.
Mask FirstFit(Mask free, int k) {
  Mask out = 0;
  for (int i = 0; i < k && free != 0; ++i) {
    const Mask low = free & (~free + 1);
    out |= low;
    free &= ~low;
  }
  return out;
}

struct PendingKey {
  int64_t priority;
  double arrival;
  int index;
  bool operator<(const PendingKey& o) const {
    if (priority != o.priority) return priority > o.priority;
    if (arrival != o.arrival) return arrival < o.arrival;
    return index < o.index;
  }
};

class Engine {
 public:
  Engine(const Cluster& cluster, const std::vector<JobSpec>& jobs, const SimOptions& options)
      : cluster_(cluster),
        graph_(cluster.graph()),
        jobs_(jobs),
        options_(options),
        rng_(options.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(options.policy)),
        to_find_(NodesToFind(cluster.size(), options.percentage_of_nodes, options.min_nodes_to_find)),
        expected_frag_(PodSizeShares(jobs), cluster.cards_per_node()) {
    const size_t n = static_cast<size_t>(cluster.size());
    if (options.policy == Policy::kDraAligned || options.policy == Policy::kDraAll) {
      dra_.emplace(graph_, options.policy == Policy::kDraAll ? placement::ArcAlignment::kAll
                                                             : placement::ArcAlignment::kAligned);
    }
    free_.assign(n, cluster.all_cards());
    free_count_.assign(n, Count(cluster.all_cards()));
    hist_.assign(static_cast<size_t>(cluster.cards_per_node()) + 1, 0);
    hist_.back() = cluster.size();
    free_cards_ = cluster.total_cards();
    stranded_ = cluster.size() * FragmentationOf(cluster.all_cards()).stranded_cards;
    node_cards_.reserve(n);
    for (const auto& node : cluster.nodes()) {
      bridge::NodeCards nc;
      nc.name = node.name;
      nc.link_domain = node.domain;
      nc.rack = node.rack;
      nc.idc = node.idc;
      nc.topology = cluster.topology();
      nc.free = cluster.all_cards();
      nc.free_count = Count(nc.free);
      nc.capacity = nc.free_count;
      node_cards_.push_back(std::move(nc));
    }
    domain_nodes_.resize(static_cast<size_t>(cluster.domains()));
    rack_nodes_.resize(static_cast<size_t>(cluster.racks()));
    idc_nodes_.resize(static_cast<size_t>(cluster.idcs()));
    for (int i = 0; i < cluster.size(); ++i) {
      const SimNode& node = cluster.nodes()[static_cast<size_t>(i)];
      domain_nodes_[static_cast<size_t>(node.domain_id)].push_back(i);
      rack_nodes_[static_cast<size_t>(node.rack_id)].push_back(i);
      idc_nodes_[static_cast<size_t>(node.idc_id)].push_back(i);
    }
  }

  PolicyResult Run();
  FillResult Fill(int consecutive_failures);

 private:
  struct Step {
    int node;
    Mask cards;
  };

  // ---- cluster state ----
  void Take(int node, Mask cards) {
    Adjust(node, free_[static_cast<size_t>(node)] & ~cards);
    statement_.push_back({node, cards});
  }
  void Give(int node, Mask cards) { Adjust(node, free_[static_cast<size_t>(node)] | cards); }
  void Adjust(int node, Mask free) {
    const auto i = static_cast<size_t>(node);
    --hist_[static_cast<size_t>(free_count_[i])];
    free_cards_ -= free_count_[i];
    stranded_ += FragmentationOf(free).stranded_cards - FragmentationOf(free_[i]).stranded_cards;
    free_[i] = free;
    free_count_[i] = Count(free);
    ++hist_[static_cast<size_t>(free_count_[i])];
    free_cards_ += free_count_[i];
    node_cards_[i].free = free;
    node_cards_[i].free_count = free_count_[i];
  }
  void Discard() {
    for (auto it = statement_.rbegin(); it != statement_.rend(); ++it) Give(it->node, it->cards);
    statement_.clear();
  }

  // Pods of k cards the cluster could still take, counting cards only (an upper bound for the
  // linked case, exact for count-based predicates).
  int64_t CountSlots(int k) const {
    int64_t slots = 0;
    for (size_t f = static_cast<size_t>(k); f < hist_.size(); ++f)
      slots += static_cast<int64_t>(hist_[f]) * static_cast<int64_t>(f / static_cast<size_t>(k));
    return slots;
  }
  int64_t CountSlots(const std::vector<int>& nodes, int k) const {
    int64_t slots = 0;
    for (int n : nodes) slots += free_count_[static_cast<size_t>(n)] / k;
    return slots;
  }

  bridge::TaskNeed NeedOf(const JobSpec& job) const {
    bridge::TaskNeed need;
    need.cards = job.cards_per_task;
    need.require_linked = options_.require_linked && job.cards_per_task > 1;
    need.spot = job.preemptable;
    return need;
  }

  // The bridge's predicate, memoized: it is a pure function of the free cards (every node shares
  // one card graph) and the task's need.
  bool BridgeFits(const bridge::TaskNeed& need, int node) {
    const auto i = static_cast<size_t>(node);
    // The free mask may use all 64 bits (64-card nodes), so it is a key of its own.
    const uint32_t variant =
        static_cast<uint32_t>(need.cards) * 4 + (need.require_linked ? 2U : 0U) + (need.spot ? 1U : 0U);
    auto [it, fresh] = predicate_memo_[variant].try_emplace(free_[i], false);
    if (fresh) it->second = bridge::DecidePredicate(need, node_cards_[i], "").code == bridge::kPass;
    return it->second;
  }

  // Volcano's predicate scan: from where the previous task stopped, until `to_find_` nodes pass.
  template <typename Pass>
  void FindNodes(Pass&& pass, std::vector<int>* found) {
    found->clear();
    const int n = cluster_.size();
    if (n <= 0) return;
    int scanned = 0;
    for (; scanned < n && static_cast<int>(found->size()) < to_find_; ++scanned) {
      const int node = (scan_offset_ + scanned) % n;
      if (pass(node)) found->push_back(node);
    }
    scan_offset_ = (scan_offset_ + scanned) % n;
  }

  // Index of the best-scoring node among `nodes` (ties broken at random, as Volcano does).
  template <typename ScoreFn>
  int PickBest(const std::vector<int>& nodes, ScoreFn&& score) {
    int best = -1;
    double best_score = 0;
    int ties = 0;
    for (int node : nodes) {
      const double s = score(node);
      if (best < 0 || s > best_score + 1e-9) {
        best = node;
        best_score = s;
        ties = 1;
      } else if (std::abs(s - best_score) <= 1e-9) {
        ++ties;
        if (std::uniform_int_distribution<int>(0, ties - 1)(rng_) == 0) best = node;
      }
    }
    return best;
  }

  // Places every task of `job` one by one, on nodes of `within` (a HyperNode's members, all of
  // them examined) or of the whole cluster (Volcano's sampled scan). Count-based policies use
  // the kubelet's first-fit cards; the bridge policies use the bridge's predicate and prioritize
  // and the device plugin's choice.
  bool PlaceTasks(const JobSpec& job, const std::vector<int>* within) {
    const bool bridge = options_.policy == Policy::kHyperaccel || options_.policy == Policy::kExtender;
    const bool dra = dra_.has_value();
    const bridge::TaskNeed need = NeedOf(job);
    const int k = job.cards_per_task;
    bridge::GangView gang;
    std::optional<bridge::DomainHold> hold = bridge ? DomainHoldOf(job) : std::nullopt;
    for (int t = 0; t < job.tasks; ++t) {
      if (hold) {
        hold->unplaced = job.tasks - t;
        hold->gang_domains = gang.domains;
      }
      auto pass = [&](int node) {
        return free_count_[static_cast<size_t>(node)] >= k && (!bridge || BridgeFits(need, node)) &&
               (!hold || HoldPasses(job, *hold, node)) &&
               (!dra || dra_->Allocate(free_[static_cast<size_t>(node)], k) != 0);
      };
      if (within) {
        found_.clear();
        for (int n : *within)
          if (pass(n)) found_.push_back(n);
      } else {
        FindNodes(pass, &found_);
      }
      if (found_.empty()) return false;
      int node = found_.front();
      if (dra) {  // see dra_policy.h: no DRA-aware node scoring, first fitting device
        node = found_[std::uniform_int_distribution<size_t>(0, found_.size() - 1)(rng_)];
        Take(node, dra_->Allocate(free_[static_cast<size_t>(node)], k));
        continue;
      }
      if (!bridge) {
        if (options_.policy == Policy::kRandom) {
          node = found_[std::uniform_int_distribution<size_t>(0, found_.size() - 1)(rng_)];
        } else if (options_.policy == Policy::kFgd) {
          node = PickBest(found_, [&](int n) { return -FgdGrowth(n, k); });
        } else {
          node = PickBest(found_, [&](int n) { return -free_count_[static_cast<size_t>(n)]; });
        }
        Take(node, KubeletCards(free_[static_cast<size_t>(node)], k));
        continue;
      }
      if (found_.size() > 1) {  // Volcano calls prioritize only when more than one node passed
        candidates_.clear();
        for (int n : found_) candidates_.push_back(node_cards_[static_cast<size_t>(n)]);
        if (job.tasks == 1) AddDomainLoad(found_, &candidates_);
        gang.remaining = job.tasks - t;
        const auto scores = bridge::DecidePrioritize(need, candidates_, gang, 1.0);
        score_by_node_.clear();
        for (const auto& s : scores) score_by_node_[s.node] = s.score;
        node = PickBest(found_, [&](int n) {
          auto it = score_by_node_.find(node_cards_[static_cast<size_t>(n)].name);
          return it == score_by_node_.end() ? 0.0 : it->second;
        });
      }
      // The device plugin's GetPreferredAllocation on that node.
      placement::Request request;
      request.available = free_[static_cast<size_t>(node)];
      request.size = k;
      auto choice = placement::Choose(graph_, request);
      if (!choice.ok()) return false;
      Take(node, choice->cards);
      const SimNode& sn = cluster_.nodes()[static_cast<size_t>(node)];
      gang.domains.insert(sn.domain);
      gang.racks.insert(sn.rack);
      gang.idcs.insert(sn.idc);
    }
    return true;
  }

  // What the bridge's SessionState::AddDomainLoad gives a single pod's candidates: busy and all
  // cards of each candidate's link domain (every member node).
  void AddDomainLoad(const std::vector<int>& nodes, std::vector<bridge::NodeCards>* cards) const {
    const int per_node = cluster_.cards_per_node();
    for (size_t i = 0; i < nodes.size(); ++i) {
      const SimNode& sn = cluster_.nodes()[static_cast<size_t>(nodes[i])];
      int busy = 0, all = 0;
      for (int m : domain_nodes_[static_cast<size_t>(sn.domain_id)]) {
        busy += per_node - free_count_[static_cast<size_t>(m)];
        all += per_node;
      }
      (*cards)[i].domain_busy = busy;
      (*cards)[i].domain_cards = all;
    }
  }

  // FGD's score: how much the node's expected fragmentation (free cards a pod drawn from the
  // workload could not use, counting cards) grows when a task of `k` cards lands on it.
  double FgdGrowth(int node, int k) const {
    const int free = free_count_[static_cast<size_t>(node)];
    return expected_frag_.OfCount(free - k) - expected_frag_.OfCount(free);
  }

  // The kubelet's choice of cards when the plugin gives no preference.
  Mask KubeletCards(Mask free, int k) {
    if (!options_.kubelet_random) return FirstFit(free, k);
    Mask out = 0;
    for (int left = Count(free); left > 0 && Count(out) < k; --left) {
      int pick = std::uniform_int_distribution<int>(0, left - 1)(rng_);
      Mask f = free;
      while (pick-- > 0) f &= f - 1;
      const Mask bit = f & (~f + 1);
      out |= bit;
      free &= ~bit;
    }
    return out;
  }

  // Volcano's soft network topology for a gang: HyperNodes of the lowest tier first (link
  // domain, rack, IDC), the fullest one that can hold the whole gang first (HyperNode binpack),
  // the gang dry-run inside it; the cluster root last.
  bool PlaceInTiers(const JobSpec& job) {
    const int k = job.cards_per_task;
    const double per_node = cluster_.cards_per_node();
    for (const auto* tier : {&domain_nodes_, &rack_nodes_, &idc_nodes_}) {
      order_.clear();
      for (size_t h = 0; h < tier->size(); ++h) {
        const auto& members = (*tier)[h];
        if (CountSlots(members, k) < job.tasks) continue;
        int free = 0;
        for (int n : members) free += free_count_[static_cast<size_t>(n)];
        const double cards = static_cast<double>(members.size()) * per_node;
        const double fill = (cards - free + static_cast<double>(job.tasks) * k) / cards;
        order_.push_back({fill, std::uniform_real_distribution<double>(0, 1)(rng_), static_cast<int>(h)});
      }
      std::sort(order_.begin(), order_.end(), std::greater<>());
      for (const auto& [fill, tie, h] : order_) {
        if (PlaceTasks(job, &(*tier)[static_cast<size_t>(h)])) return true;
        Discard();
      }
      // Under the link-domain wait with no domain that has room for the whole gang, the bridge's
      // predicate fails every node for the first task: the dry-runs of the higher tiers would all
      // fail, so they are skipped (the result is the same, only faster).
      if (tier == &domain_nodes_ && DomainHoldOf(job) && !DomainHadRoom(job)) {
        NoteHeld(job, job.tasks);
        return false;
      }
    }
    return PlaceTasks(job, nullptr);
  }

  // The bridge's link-domain wait for `job` now (what its predicate would be given with
  // --link-domain-wait-seconds set to --gang-domain-wait-s), or nullopt when it does not apply.
  // The fill experiment has no time to wait in: no hold there.
  std::optional<bridge::DomainHold> DomainHoldOf(const JobSpec& job) const {
    if (options_.policy != Policy::kHyperaccel || options_.gang_domain_wait_s <= 0 || filling_)
      return std::nullopt;
    bridge::DomainHold hold;
    hold.wait_s = options_.gang_domain_wait_s;
    const double held = first_held_[IndexOf(job)];
    hold.age_s = held < 0 ? 0 : now_ - held;
    hold.gang_tasks = job.tasks;
    hold.unplaced = job.tasks;
    hold.largest_domain_slots =
        cluster_.config().nodes_per_domain * (cluster_.cards_per_node() / job.cards_per_task);
    if (!bridge::HoldApplies(hold)) return std::nullopt;
    return hold;
  }

  // The bridge's predicate under the link-domain wait, for `node`: the node's link domain and the
  // tasks of the job's size it can take now. A failure starts the job's hold, as the bridge's
  // NoteHeld does, when the cluster has room for its unplaced tasks (counting cards).
  bool HoldPasses(const JobSpec& job, bridge::DomainHold& hold, int node) {
    const int k = job.cards_per_task;
    const SimNode& sn = cluster_.nodes()[static_cast<size_t>(node)];
    hold.node_domain = sn.domain;
    hold.node_domain_slots =
        static_cast<int>(CountSlots(domain_nodes_[static_cast<size_t>(sn.domain_id)], k));
    if (bridge::DecideDomainHold(hold).code == bridge::kPass) return true;
    NoteHeld(job, hold.unplaced);
    return false;
  }
  void NoteHeld(const JobSpec& job, int unplaced) {
    double& held = first_held_[IndexOf(job)];
    if (held < 0 && CountSlots(job.cards_per_task) >= unplaced) held = now_;
  }
  size_t IndexOf(const JobSpec& job) const { return static_cast<size_t>(&job - jobs_.data()); }

  bool TryJob(const JobSpec& job) {
    ++result_.scheduling_attempts;
    statement_.clear();
    if (CountSlots(job.cards_per_task) < job.tasks) return false;
    bool ok = false;
    const bool tiered = options_.policy == Policy::kTiers || options_.policy == Policy::kHyperaccel;
    ok = tiered && job.tasks > 1 ? PlaceInTiers(job) : PlaceTasks(job, nullptr);
    if (!ok) Discard();
    return ok;
  }

  bool Infeasible(const JobSpec& job) const {
    const int per_node = cluster_.cards_per_node();
    if (job.cards_per_task > per_node) return true;
    if (static_cast<int64_t>(per_node / job.cards_per_task) * cluster_.size() < job.tasks) return true;
    if (options_.policy == Policy::kHyperaccel || options_.policy == Policy::kExtender) {
      bridge::NodeCards empty = node_cards_.front();
      empty.free = cluster_.all_cards();
      empty.free_count = Count(empty.free);
      return bridge::DecidePredicate(NeedOf(job), empty, "").code == bridge::kUnschedulableForever;
    }
    return false;
  }

  void Commit(int index, double now) {
    const JobSpec& job = jobs_[static_cast<size_t>(index)];
    const double wait = now - job.arrival_s;
    result_.start_s[static_cast<size_t>(index)] = now;
    waits_.push_back(wait);
    const auto size_class = static_cast<size_t>(SizeClass(job.cards_per_task));
    interval_wait_[size_class] += wait;
    ++interval_started_[size_class];
    ++result_.started;
    result_.pods += job.tasks;
    bool one_domain = true, one_rack = true;
    const SimNode& first = cluster_.nodes()[static_cast<size_t>(statement_.front().node)];
    for (const Step& s : statement_) {
      const SimNode& node = cluster_.nodes()[static_cast<size_t>(s.node)];
      one_domain = one_domain && node.domain_id == first.domain_id;
      one_rack = one_rack && node.rack_id == first.rack_id;
      if (job.cards_per_task > 1) {
        ++result_.multi_card_pods;
        if (IsLinked(graph_, s.cards)) ++result_.linked_pods;
      }
    }

    bool split = false;  // some pod got cards that are not one linked set
    if (job.cards_per_task > 1) {
      for (const Step& s : statement_) split = split || !IsLinked(graph_, s.cards);
    }
    if (job.tasks > 1) {
      ++result_.gangs;
      result_.gangs_one_domain += one_domain ? 1 : 0;
      result_.gangs_one_rack += one_rack ? 1 : 0;
      const int per_domain =
          cluster_.config().nodes_per_domain * (cluster_.cards_per_node() / job.cards_per_task);
      if (job.tasks <= per_domain) {
        ++result_.gangs_fit_domain;
        result_.gangs_fit_one_domain += one_domain ? 1 : 0;
        ++interval_fit_domain_;
        interval_fit_one_domain_ += one_domain ? 1 : 0;
        if (!one_domain && !DomainHadRoom(job)) ++result_.gangs_split_no_domain_room;
      }
      const int per_rack =
          cluster_.config().nodes_per_rack * (cluster_.cards_per_node() / job.cards_per_task);
      if (job.tasks <= per_rack) {
        ++result_.gangs_fit_rack;
        result_.gangs_fit_one_rack += one_rack ? 1 : 0;
      }
      gang_waits_.push_back(wait);
    }
    // Optional cost model: pods on unlinked cards and gangs across link domains run longer.
    double factor = 1;
    if (split) factor = std::max(factor, options_.unlinked_slowdown);
    if (!one_domain) factor = std::max(factor, options_.cross_domain_slowdown);
    if (factor > 1) ++result_.slowed_jobs;
    result_.run_s[static_cast<size_t>(index)] = job.duration_s * factor;
    running_.push({now + job.duration_s * factor, index});
    placements_[static_cast<size_t>(index)] = std::move(statement_);
    statement_.clear();
  }

  // FGD's measure over the cluster now: expected free cards a pod drawn from the workload could
  // not use, counting cards or needing a linked set.
  double UnallocatableCards(bool linked) const {
    double sum = 0;
    for (size_t i = 0; i < free_.size(); ++i)
      sum += linked ? expected_frag_.OfLinked(graph_, free_[i]) : expected_frag_.OfCount(free_count_[i]);
    return sum;
  }

  // Whether some link domain had room for the whole of `job` (counting cards) just before the
  // statement in progress took its cards.
  bool DomainHadRoom(const JobSpec& job) const {
    const int k = job.cards_per_task;
    for (const auto& members : domain_nodes_) {
      int64_t slots = 0;
      for (int n : members) {
        int free = free_count_[static_cast<size_t>(n)];
        for (const Step& s : statement_)
          if (s.node == n) free += Count(s.cards);
        slots += free / k;
      }
      if (slots >= job.tasks) return true;
    }
    return false;
  }

  // One scheduling cycle over the whole queue, in queue order. Free cards only shrink during a
  // cycle, so once a job of some shape (tasks, cards per task) fails, later jobs of that shape are
  // skipped without being looked at: the queue is kept per shape and merged by key, which keeps a
  // cycle at O(jobs started + shapes) even with a hundred thousand jobs waiting.
  void FullCycle(double now) {
    using Head = std::pair<PendingKey, Shape*>;
    auto later = [](const Head& a, const Head& b) { return b.first < a.first; };
    std::priority_queue<Head, std::vector<Head>, decltype(later)> heads(later);
    for (auto& [key, shape] : shapes_)
      if (!shape.jobs.empty()) heads.push({*shape.jobs.begin(), &shape});
    while (!heads.empty() && free_cards_ > 0) {
      auto [key, shape] = heads.top();
      heads.pop();
      const JobSpec& job = jobs_[static_cast<size_t>(key.index)];
      if (job.cards_per_task > free_cards_ || !TryJob(job)) continue;  // the shape is done
      Commit(key.index, now);
      shape->jobs.erase(shape->jobs.begin());
      --pending_count_;
      if (!shape->jobs.empty()) heads.push({*shape->jobs.begin(), shape});
    }
  }

  // Arrivals alone: only the new jobs can start (the others already failed with at least these
  // free cards).
  void ArrivalCycle(std::vector<PendingKey>& arrived, double now) {
    std::sort(arrived.begin(), arrived.end());
    std::set<std::pair<int, int>> failed;
    for (const PendingKey& key : arrived) {
      if (free_cards_ == 0) break;
      const JobSpec& job = jobs_[static_cast<size_t>(key.index)];
      const std::pair<int, int> shape{job.tasks, job.cards_per_task};
      if (failed.count(shape)) continue;
      if (job.cards_per_task > free_cards_ || !TryJob(job)) {
        failed.insert(shape);
        continue;
      }
      Commit(key.index, now);
      shapes_[shape].jobs.erase(key);
      --pending_count_;
    }
  }

  // NodeFragmentation is a pure function of the free cards (one shared card graph): memoized.
  const placement::Fragmentation& FragmentationOf(Mask free) {
    auto [it, fresh] = frag_memo_.try_emplace(free);
    if (fresh) it->second = placement::NodeFragmentation(graph_, free);
    return it->second;
  }

  // Time integrals of busy, free and stranded cards, for the whole arrival window and for the
  // current sample interval.
  struct Integrals {
    double span = 0, busy = 0, free = 0, stranded = 0;
    void Add(double dt, int busy_cards, int free_cards, int stranded_cards) {
      span += dt;
      busy += dt * busy_cards;
      free += dt * free_cards;
      stranded += dt * stranded_cards;
    }
  };

  // Sample at `t`: averages over the interval since the previous sample (the state at `t` when
  // the interval is empty).
  void TakeSample(double t) {
    Sample s;
    s.t = t;
    const double cards = cluster_.total_cards();
    if (interval_.span > 0) {
      s.utilization = interval_.busy / (interval_.span * cards);
      s.fragmentation = interval_.free > 0 ? interval_.stranded / interval_.free : 0;
    } else {
      s.utilization = 1.0 - free_cards_ / cards;
      s.fragmentation = free_cards_ > 0 ? static_cast<double>(stranded_) / free_cards_ : 0;
    }
    s.pending = pending_count_;
    for (Mask free : free_)
      s.largest_free_linked = std::max(s.largest_free_linked, FragmentationOf(free).largest_free_linked);
    if (interval_fit_domain_ > 0)
      s.gang_fit_domain_rate = static_cast<double>(interval_fit_one_domain_) / interval_fit_domain_;
    for (size_t c = 0; c < s.wait_mean_s.size(); ++c)
      if (interval_started_[c] > 0) s.wait_mean_s[c] = interval_wait_[c] / interval_started_[c];
    result_.series.push_back(s);
    interval_ = {};
    interval_wait_ = {};
    interval_started_ = {};
    interval_fit_domain_ = interval_fit_one_domain_ = 0;
  }

  const Cluster& cluster_;
  const placement::CardGraph& graph_;
  std::optional<DraAllocator> dra_;  // the dra-* policies
  const std::vector<JobSpec>& jobs_;
  std::vector<double> first_held_;  // by job: when its link-domain hold started (< 0: not held yet)
  bool filling_ = false;            // in the fill experiment
  SimOptions options_;
  std::mt19937_64 rng_;
  int to_find_;
  int scan_offset_ = 0;
  double now_ = 0;

  std::vector<Mask> free_;
  std::vector<int> free_count_;
  std::vector<int> hist_;  // nodes by number of free cards
  int free_cards_ = 0;
  std::vector<bridge::NodeCards> node_cards_;
  std::vector<std::vector<int>> domain_nodes_, rack_nodes_, idc_nodes_;

  std::vector<Step> statement_;
  std::vector<std::vector<Step>> placements_;
  struct Shape {
    std::set<PendingKey> jobs;  // waiting jobs of one (tasks, cards per task), in queue order
  };
  std::map<std::pair<int, int>, Shape> shapes_;
  int pending_count_ = 0;
  using Running = std::pair<double, int>;  // end time, job index
  std::priority_queue<Running, std::vector<Running>, std::greater<>> running_;

  std::vector<int> found_;
  std::vector<std::tuple<double, double, int>> order_;  // HyperNode candidates: fill, tie, index
  std::vector<bridge::NodeCards> candidates_;
  std::unordered_map<std::string, double> score_by_node_;
  std::unordered_map<uint32_t, std::unordered_map<Mask, bool>> predicate_memo_;  // need -> free -> fits
  std::unordered_map<Mask, placement::Fragmentation> frag_memo_;
  ExpectedFragmentation expected_frag_;  // FGD's measure against this workload's pod sizes
  int stranded_ = 0;                     // free cards in no free linked pair, over all nodes
  Integrals window_, interval_;
  std::array<double, kSizeClasses> interval_wait_{};  // jobs started in the sample interval
  std::array<int, kSizeClasses> interval_started_{};
  int interval_fit_domain_ = 0, interval_fit_one_domain_ = 0;
  std::vector<double> waits_, gang_waits_;
  PolicyResult result_;
};

PolicyResult Engine::Run() {
  const auto wall0 = Clock::now();
  result_.policy = options_.policy;
  result_.jobs = static_cast<int>(jobs_.size());
  first_held_.assign(jobs_.size(), -1.0);
  placements_.resize(jobs_.size());
  result_.start_s.assign(jobs_.size(), -1.0);
  result_.run_s.assign(jobs_.size(), -1.0);
  const double t0 = jobs_.empty() ? 0 : jobs_.front().arrival_s;
  // The measurement window: the arrival window, or, when every job arrives at once, the time the
  // cluster would need to run all the work at full utilization.
  double t1 = jobs_.empty() ? 0 : jobs_.back().arrival_s;
  if (t1 <= t0 && !jobs_.empty()) {
    double work = 0;
    for (const JobSpec& j : jobs_) work += j.duration_s * j.tasks * j.cards_per_task;
    t1 = t0 + work / cluster_.total_cards();
  }
  const int samples = std::max(2, options_.samples);
  const double step = (t1 - t0) / (samples - 1);
  int next_sample = 0;
  double last_t = t0;
  size_t next_arrival = 0;
  std::vector<PendingKey> arrived;
  double now = t0;

  auto integrate = [&](double a, double b) {  // the state is constant on [a, b)
    const int busy = cluster_.total_cards() - free_cards_;
    interval_.Add(b - a, busy, free_cards_, stranded_);
    window_.Add(std::clamp(b, t0, t1) - std::clamp(a, t0, t1), busy, free_cards_, stranded_);
  };
  auto advance = [&](double t) {
    while (next_sample < samples && t0 + step * next_sample < t) {
      const double at = t0 + step * next_sample++;
      integrate(last_t, at);
      last_t = at;
      TakeSample(at);
    }
    integrate(last_t, t);
    last_t = t;
  };

  while (next_arrival < jobs_.size() || !running_.empty()) {
    const double next_end = running_.empty() ? INFINITY : running_.top().first;
    const double next_in = next_arrival < jobs_.size() ? jobs_[next_arrival].arrival_s : INFINITY;
    now = std::min(next_end, next_in);
    if (options_.horizon_s > 0 && now > options_.horizon_s) {
      now = options_.horizon_s;
      break;
    }
    advance(now);
    bool freed = false;
    while (!running_.empty() && running_.top().first <= now) {
      const int index = running_.top().second;
      running_.pop();
      for (const Step& s : placements_[static_cast<size_t>(index)]) Give(s.node, s.cards);
      placements_[static_cast<size_t>(index)].clear();
      freed = true;
    }
    arrived.clear();
    while (next_arrival < jobs_.size() && jobs_[next_arrival].arrival_s <= now) {
      const int index = static_cast<int>(next_arrival++);
      const JobSpec& job = jobs_[static_cast<size_t>(index)];
      if (Infeasible(job)) {
        ++result_.infeasible;
        continue;
      }
      const PendingKey key{job.priority, job.arrival_s, index};
      shapes_[{job.tasks, job.cards_per_task}].jobs.insert(key);
      ++pending_count_;
      arrived.push_back(key);
    }
    now_ = now;
    if (freed) {
      FullCycle(now);
    } else {
      ArrivalCycle(arrived, now);
    }
  }
  advance(std::max(now, t1) + (step > 0 ? step : 1));
  result_.end_s = now;
  result_.never_started = pending_count_ + result_.infeasible;

  auto rate = [](int a, int b) { return b > 0 ? static_cast<double>(a) / b : 0.0; };
  result_.linked_rate = rate(result_.linked_pods, result_.multi_card_pods);
  result_.gang_domain_rate = rate(result_.gangs_one_domain, result_.gangs);
  result_.gang_fit_domain_rate = rate(result_.gangs_fit_one_domain, result_.gangs_fit_domain);
  result_.gang_rack_rate = rate(result_.gangs_one_rack, result_.gangs);
  result_.gang_fit_rack_rate = rate(result_.gangs_fit_one_rack, result_.gangs_fit_rack);
  result_.user = ComputeUserMetrics(jobs_, result_.start_s, result_.run_s);
  double sum = 0;
  for (double w : waits_) sum += w;
  result_.wait_mean_s = waits_.empty() ? 0 : sum / static_cast<double>(waits_.size());
  result_.wait_p50_s = Percentile(waits_, 0.5);
  result_.wait_p95_s = Percentile(waits_, 0.95);
  sum = 0;
  for (double w : gang_waits_) sum += w;
  result_.gang_wait_mean_s = gang_waits_.empty() ? 0 : sum / static_cast<double>(gang_waits_.size());
  result_.utilization = window_.span > 0 ? window_.busy / (window_.span * cluster_.total_cards()) : 0;
  result_.fragmentation_mean = window_.free > 0 ? window_.stranded / window_.free : 0;
  result_.runtime_s = std::chrono::duration<double>(Clock::now() - wall0).count();
  return result_;
}

FillResult Engine::Fill(int consecutive_failures) {
  FillResult f;
  f.ran = true;
  filling_ = true;
  f.consecutive_failures = consecutive_failures;
  std::vector<int> drawable;
  for (size_t i = 0; i < jobs_.size(); ++i)
    if (!Infeasible(jobs_[i])) drawable.push_back(static_cast<int>(i));
  // Seeded by the seed alone: every policy sees the same sequence of draws.
  std::mt19937_64 draw(options_.seed * 0xD1B54A32D192ED03ULL + 0x632BE59BD9B4E019ULL);
  // Every success takes at least one card, so at most total_cards successes happen, each after
  // fewer than `consecutive_failures` failures: the loop ends.
  for (int streak = 0; !drawable.empty() && streak < consecutive_failures && free_cards_ > 0;) {
    const int index = drawable[std::uniform_int_distribution<size_t>(0, drawable.size() - 1)(draw)];
    const JobSpec& job = jobs_[static_cast<size_t>(index)];
    ++f.draws;
    if (job.cards_per_task > free_cards_ || !TryJob(job)) {
      if (f.draws - 1 == f.placed) {  // the first failure
        const double total = cluster_.total_cards();
        f.first_failure_allocated_rate = 1.0 - free_cards_ / total;
        f.first_failure_unallocatable_rate = UnallocatableCards(false) / total;
        f.first_failure_unallocatable_linked_rate = UnallocatableCards(true) / total;
      }
      ++streak;
      continue;
    }
    streak = 0;
    ++f.placed;
    statement_.clear();  // placed for good: fill jobs never leave
  }
  const int total = cluster_.total_cards();
  f.free_cards = free_cards_;
  f.allocated_cards = total - free_cards_;
  f.unallocatable_cards = UnallocatableCards(false);
  f.unallocatable_linked_cards = UnallocatableCards(true);
  if (total > 0) {
    f.allocated_rate = static_cast<double>(f.allocated_cards) / total;
    f.unallocatable_rate = f.unallocatable_cards / total;
    f.unallocatable_linked_rate = f.unallocatable_linked_cards / total;
  }
  return f;
}

}  // namespace

PolicyResult Simulate(const Cluster& cluster, const std::vector<JobSpec>& jobs, const SimOptions& options) {
  return Engine(cluster, jobs, options).Run();
}

FillResult SimulateFill(const Cluster& cluster, const std::vector<JobSpec>& jobs, const SimOptions& options,
                        int consecutive_failures) {
  return Engine(cluster, jobs, options).Fill(std::max(1, consecutive_failures));
}

}  // namespace hyperaccel::sim
