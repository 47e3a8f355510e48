#include "hyperaccel/sim/workload.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <fstream>
#include <random>
#include <unordered_set>

namespace hyperaccel::sim {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> Split(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = line.find(',', start);
    out.push_back(Trim(line.substr(start, comma == std::string_view::npos ? comma : comma - start)));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

bool ParseDouble(std::string_view s, double* out) {
  if (s.empty()) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && std::isfinite(*out);
}

bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// Times beyond ~31 700 years are surely unit mistakes; bounding them keeps every sum finite.
constexpr double kMaxSeconds = 1e12;

constexpr std::array<std::string_view, 7> kColumns = {"job_id",         "arrival_s", "duration_s", "tasks",
                                                      "cards_per_task", "priority",  "preemptable"};

}  // namespace

Result<std::vector<JobSpec>> ParseTrace(std::istream& in, std::string_view source) {
  std::vector<JobSpec> jobs;
  std::array<int, kColumns.size()> column{};
  column.fill(-1);
  bool have_header = false;
  std::unordered_set<std::string> ids;
  std::string line;
  int line_no = 0;
  auto error = [&](std::string_view what) {
    return InvalidArgument(std::string(source) + ":" + std::to_string(line_no) + ": " + std::string(what));
  };
  while (std::getline(in, line)) {
    ++line_no;
    const std::string_view text = Trim(line);
    if (text.empty() || text.front() == '#') continue;
    auto fields = Split(text);
    if (!have_header) {
      for (size_t f = 0; f < fields.size(); ++f) {
        for (size_t c = 0; c < kColumns.size(); ++c) {
          if (fields[f] != kColumns[c]) continue;
          if (column[c] >= 0) return error("column " + std::string(kColumns[c]) + " appears twice");
          column[c] = static_cast<int>(f);
        }
      }
      for (size_t c = 0; c < kColumns.size(); ++c) {
        if (column[c] < 0) {
          return error("header lacks column " + std::string(kColumns[c]) +
                       " (expected job_id,arrival_s,duration_s,tasks,cards_per_task,priority,preemptable)");
        }
      }
      have_header = true;
      continue;
    }
    const int needed = *std::max_element(column.begin(), column.end()) + 1;
    if (static_cast<int>(fields.size()) < needed) {
      return error("expected at least " + std::to_string(needed) + " fields, got " +
                   std::to_string(fields.size()));
    }
    auto field = [&](size_t c) { return fields[static_cast<size_t>(column[c])]; };
    JobSpec job;
    job.id = std::string(field(0));
    if (job.id.empty()) return error("job_id: empty");
    if (!ids.insert(job.id).second) return error("job_id: duplicate \"" + job.id + "\"");
    if (!ParseDouble(field(1), &job.arrival_s) || job.arrival_s < 0 || job.arrival_s > kMaxSeconds)
      return error("arrival_s: expected a number 0..1e12, got \"" + std::string(field(1)) + "\"");
    if (!ParseDouble(field(2), &job.duration_s) || !(job.duration_s > 0) || job.duration_s > kMaxSeconds)
      return error("duration_s: expected a number > 0 and <= 1e12, got \"" + std::string(field(2)) + "\"");
    int64_t n = 0;
    if (!ParseInt(field(3), &n) || n < 1 || n > 100000)
      return error("tasks: expected an integer 1..100000, got \"" + std::string(field(3)) + "\"");
    job.tasks = static_cast<int>(n);
    if (!ParseInt(field(4), &n) || n < 1 || n > 64)
      return error("cards_per_task: expected an integer 1..64, got \"" + std::string(field(4)) + "\"");
    job.cards_per_task = static_cast<int>(n);
    if (!ParseInt(field(5), &job.priority))
      return error("priority: expected an integer, got \"" + std::string(field(5)) + "\"");
    const std::string_view p = field(6);
    if (p == "true" || p == "1") {
      job.preemptable = true;
    } else if (p == "false" || p == "0") {
      job.preemptable = false;
    } else {
      return error("preemptable: expected true, false, 1 or 0, got \"" + std::string(p) + "\"");
    }
    jobs.push_back(std::move(job));
  }
  if (in.bad()) return InvalidArgument(std::string(source) + ": read error");
  if (!have_header) return InvalidArgument(std::string(source) + ": empty trace (no header)");
  std::stable_sort(jobs.begin(), jobs.end(),
                   [](const JobSpec& a, const JobSpec& b) { return a.arrival_s < b.arrival_s; });
  return jobs;
}

Result<std::vector<JobSpec>> ReadTrace(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(path + ": cannot open trace");
  return ParseTrace(in, path);
}

std::string FormatTrace(const std::vector<JobSpec>& jobs) {
  std::string out = "job_id,arrival_s,duration_s,tasks,cards_per_task,priority,preemptable\n";
  char buf[160];
  for (const auto& j : jobs) {
    std::snprintf(buf, sizeof buf, ",%.3f,%.3f,%d,%d,%lld,%s\n", j.arrival_s, j.duration_s, j.tasks,
                  j.cards_per_task, static_cast<long long>(j.priority), j.preemptable ? "true" : "false");
    out += j.id;
    out += buf;
  }
  return out;
}

std::vector<JobSpec> Synthesize(const SyntheticConfig& config) {
  std::mt19937_64 rng(config.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  constexpr double kSigma = 1.2;
  constexpr double kCap = 7 * 24 * 3600.0;
  auto lognormal = [&](double median) { return std::min(kCap, median * std::exp(kSigma * normal(rng))); };
  const int max_cards = std::max(1, config.max_cards_per_task);
  auto clamp_cards = [&](int c) { return std::min(c, max_cards); };

  std::vector<JobSpec> jobs(static_cast<size_t>(std::max(0, config.jobs)));
  double work = 0;  // card-seconds asked for
  for (size_t i = 0; i < jobs.size(); ++i) {
    JobSpec& j = jobs[i];
    const double r = unit(rng);
    if (r < 0.70) {  // serving pod
      const int cards = r < 0.30 ? 1 : r < 0.50 ? 2 : r < 0.65 ? 4 : 8;
      j.id = "serve-" + std::to_string(i);
      j.tasks = 1;
      j.cards_per_task = clamp_cards(cards);
      j.duration_s = lognormal(20 * 60.0);
      j.preemptable = cards <= 2 && unit(rng) < 0.2;
      j.priority = j.preemptable ? 1 : 10;
    } else {  // gang
      const double c = unit(rng);
      j.id = "train-" + std::to_string(i);
      j.tasks = 2 + static_cast<int>(unit(rng) * 7.0);  // 2..8
      j.tasks = std::min(j.tasks, 8);
      j.cards_per_task = clamp_cards(c < 0.2 ? 2 : c < 0.7 ? 4 : 8);
      j.duration_s = lognormal(90 * 60.0);
      j.priority = 5;
    }
    j.duration_s = std::max(1.0, j.duration_s);
    work += j.duration_s * j.tasks * j.cards_per_task;
  }
  if (jobs.empty()) return jobs;
  // Offered load = rate * mean work per job / cluster cards.
  const double mean_work = work / static_cast<double>(jobs.size());
  const double rate = std::max(1e-12, config.load) * std::max(1, config.cluster_cards) / mean_work;
  std::exponential_distribution<double> gap(rate);
  double t = 0;
  for (auto& j : jobs) {
    j.arrival_s = t;
    t += gap(rng);
  }
  return jobs;
}

double OfferedLoad(const std::vector<JobSpec>& jobs, int cluster_cards) {
  if (jobs.size() < 2 || cluster_cards <= 0) return 0;
  const double window = jobs.back().arrival_s - jobs.front().arrival_s;
  if (window <= 0) return 0;
  double work = 0;
  for (const JobSpec& j : jobs) work += j.duration_s * j.tasks * j.cards_per_task;
  return work / (window * cluster_cards);
}

Status ScaleArrivalsToLoad(std::vector<JobSpec>& jobs, int cluster_cards, double load) {
  if (!(load > 0)) return InvalidArgument("load to scale arrivals to must be positive");
  const double now = OfferedLoad(jobs, cluster_cards);
  if (now <= 0)
    return InvalidArgument("cannot scale arrivals: the jobs arrive all at once (no arrival window)");
  const double factor = now / load;
  const double t0 = jobs.front().arrival_s;
  for (JobSpec& j : jobs) j.arrival_s = t0 + (j.arrival_s - t0) * factor;
  return Status::Ok();
}

}  // namespace hyperaccel::sim
