#include "hyperaccel/sim/metrics.h"

#include <algorithm>
#include <bit>

namespace hyperaccel::sim {

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double pos = std::clamp(p, 0.0, 1.0) * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(pos);
  const size_t hi = std::min(values.size() - 1, lo + 1);
  return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
}

double WeightedPercentile(std::vector<std::pair<double, double>> value_weight, double p) {
  double total = 0;
  for (const auto& [v, w] : value_weight) total += w;
  if (value_weight.empty() || total <= 0) return 0;
  std::sort(value_weight.begin(), value_weight.end());
  const double target = std::clamp(p, 0.0, 1.0) * total;
  double sum = 0;
  for (const auto& [v, w] : value_weight) {
    sum += w;
    if (sum >= target * (1 - 1e-12)) return v;
  }
  return value_weight.back().first;
}

int SizeClass(int cards_per_task) {
  if (cards_per_task <= 1) return 0;
  if (cards_per_task == 2) return 1;
  if (cards_per_task <= 4) return 2;
  if (cards_per_task <= 8) return 3;
  return 4;
}

const char* SizeClassName(int size_class) {
  static constexpr std::array<const char*, kSizeClasses> kNames = {"1", "2", "3-4", "5-8", ">8"};
  return size_class >= 0 && size_class < kSizeClasses ? kNames[static_cast<size_t>(size_class)] : "?";
}

namespace {

WaitStats StatsOf(const std::vector<double>& waits) {
  WaitStats s;
  s.jobs = static_cast<int>(waits.size());
  if (waits.empty()) return s;
  double sum = 0;
  for (double w : waits) sum += w;
  s.mean_s = sum / static_cast<double>(waits.size());
  s.p95_s = Percentile(waits, 0.95);
  s.p99_s = Percentile(waits, 0.99);
  return s;
}

}  // namespace

UserMetrics ComputeUserMetrics(const std::vector<JobSpec>& jobs, std::span<const double> start_s,
                               std::span<const double> run_s) {
  std::array<std::vector<double>, kSizeClasses> by_size;
  std::vector<double> single, gang, slowdown;
  std::vector<std::pair<double, double>> weighted;
  double wait_cards = 0, cards = 0;
  const size_t n = std::min({jobs.size(), start_s.size(), run_s.size()});
  for (size_t i = 0; i < n; ++i) {
    if (start_s[i] < 0) continue;
    const JobSpec& job = jobs[i];
    const double wait = std::max(0.0, start_s[i] - job.arrival_s);
    by_size[static_cast<size_t>(SizeClass(job.cards_per_task))].push_back(wait);
    (job.tasks > 1 ? gang : single).push_back(wait);
    const double c = static_cast<double>(job.tasks) * job.cards_per_task;
    weighted.emplace_back(wait, c);
    wait_cards += wait * c;
    cards += c;
    if (run_s[i] > 0) slowdown.push_back((wait + run_s[i]) / run_s[i]);
  }
  UserMetrics m;
  for (size_t c = 0; c < by_size.size(); ++c) m.by_size[c] = StatsOf(by_size[c]);
  m.single = StatsOf(single);
  m.gang = StatsOf(gang);
  m.card_weighted.jobs = static_cast<int>(weighted.size());
  m.card_weighted.mean_s = cards > 0 ? wait_cards / cards : 0;
  m.card_weighted.p95_s = WeightedPercentile(weighted, 0.95);
  m.card_weighted.p99_s = WeightedPercentile(std::move(weighted), 0.99);
  const WaitStats s = StatsOf(slowdown);
  m.slowdown_mean = s.mean_s;
  m.slowdown_p95 = s.p95_s;
  return m;
}

std::vector<double> PodSizeShares(const std::vector<JobSpec>& jobs) {
  std::vector<double> shares(static_cast<size_t>(placement::kMaxCards) + 1, 0.0);
  double pods = 0;
  for (const JobSpec& j : jobs) {
    if (j.cards_per_task < 1 || j.cards_per_task > placement::kMaxCards) continue;
    shares[static_cast<size_t>(j.cards_per_task)] += j.tasks;
    pods += j.tasks;
  }
  if (pods > 0)
    for (double& s : shares) s /= pods;
  return shares;
}

ExpectedFragmentation::ExpectedFragmentation(std::span<const double> shares, int cards_per_node)
    : shares_(shares.begin(), shares.end()) {
  by_count_.assign(static_cast<size_t>(std::max(0, cards_per_node)) + 1, 0.0);
  for (size_t f = 0; f < by_count_.size(); ++f) {
    double unusable = 0;
    for (size_t k = f + 1; k < shares_.size(); ++k) unusable += shares_[k];
    by_count_[f] = unusable * static_cast<double>(f);
  }
}

double ExpectedFragmentation::OfCount(int free_cards) const {
  if (free_cards < 0 || by_count_.empty()) return 0;
  return by_count_[std::min(static_cast<size_t>(free_cards), by_count_.size() - 1)];
}

double ExpectedFragmentation::OfLinked(const placement::CardGraph& graph, placement::Mask free) const {
  double unusable = 0;
  placement::Mask left = free & graph.HealthyMask();
  while (left != 0) {
    // One free linked set: grow from the lowest free card over links between free cards.
    placement::Mask part = left & (~left + 1);
    for (placement::Mask grown = 0; grown != part;) {
      grown = part;
      for (placement::Mask m = part; m != 0; m &= m - 1)
        part |= graph.adj[static_cast<size_t>(std::countr_zero(m))] & left;
    }
    left &= ~part;
    const int size = std::popcount(part);
    double share = 0;
    for (size_t k = static_cast<size_t>(size) + 1; k < shares_.size(); ++k) share += shares_[k];
    unusable += share * size;
  }
  return unusable;
}

}  // namespace hyperaccel::sim
