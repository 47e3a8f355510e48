#include "hyperaccel/sim/report.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace hyperaccel::sim {
namespace {

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}
std::string Pct(double v) { return Fmt("%.1f %%", 100.0 * v); }

// Seconds as a short human duration: "42 s", "13.5 min", "2.1 h".
std::string Duration(double s) {
  if (s < 120) return Fmt("%.0f s", s);
  if (s < 7200) return Fmt("%.1f min", s / 60);
  return Fmt("%.1f h", s / 3600);
}

std::string ClusterLine(const ClusterConfig& c) {
  return std::to_string(c.nodes) + " nodes x " + std::to_string(c.cards_per_node) + " cards (" + c.intra +
         " inside a node, " + std::to_string(c.numa_nodes) + " NUMA nodes), link domains of " +
         std::to_string(c.nodes_per_domain) + " nodes, racks of " + std::to_string(c.nodes_per_rack) +
         " nodes, " + std::to_string(c.racks_per_idc) + " racks per IDC";
}

bool WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

// std::system: called only from the main thread once the simulations have finished.
bool HaveGnuplot() {
  return std::system("command -v gnuplot >/dev/null 2>&1") == 0;  // NOLINT(concurrency-mt-unsafe)
}

// How a time-series column is drawn: as is, as a percentage (fractions), in minutes (seconds).
enum class Axis { kPlain, kPercent, kMinutes };

// gnuplot script for one time-series column across policies; NaN cells (nothing to measure in
// the interval) are skipped.
std::string SeriesPlot(const std::vector<PolicyResult>& results, const std::string& png,
                       const std::string& title, const std::string& ylabel, int column, Axis axis) {
  std::string s = "set terminal pngcairo size 900,500 font 'sans,10'\nset output '" + png + "'\n";
  s += "set title '" + title + "'\nset xlabel 'simulated time (h)'\nset ylabel '" + ylabel + "'\n";
  s += "set datafile separator ','\nset key outside right\nset grid\n";
  s += "plot ";
  for (size_t i = 0; i < results.size(); ++i) {
    const std::string name = PolicyName(results[i].policy);
    if (i) s += ", ";
    s += "'series-";
    s += name;
    s += ".csv' using ($1/3600):(";
    s += axis == Axis::kPercent ? "100*$" : "$";
    s += std::to_string(column);
    s += axis == Axis::kMinutes ? "/60" : "";
    s += ") every ::1 with lines lw 2 title '";
    s += name;
    s += "'";
  }
  return s + "\n";
}

std::string Waits(const WaitStats& w) {
  if (w.jobs == 0) return "-";
  return Duration(w.mean_s) + " / " + Duration(w.p95_s) + " / " + Duration(w.p99_s);
}

std::string CsvNumber(double v, const char* format) { return v < 0 ? "NaN" : Fmt(format, v); }

nlohmann::ordered_json WaitJson(const WaitStats& w) {
  return {{"jobs", w.jobs}, {"mean_s", w.mean_s}, {"p95_s", w.p95_s}, {"p99_s", w.p99_s}};
}

}  // namespace

std::string FormatMarkdown(const ClusterConfig& cluster, const RunInfo& run,
                           const std::vector<PolicyResult>& results) {
  std::string out = "Cluster: " + ClusterLine(cluster) + ".\n";
  out += "Workload: " + run.workload + ", " + std::to_string(run.jobs) + " jobs" +
         (run.require_linked ? ", multi-card pods require linked cards (extender, hyperaccel)" : "") +
         (run.kubelet_random ? "; without a plugin preference the kubelet picks cards at random (map order)"
                             : "; without a plugin preference the kubelet picks the first free cards") +
         ".\n";
  if (run.unlinked_slowdown > 1 || run.cross_domain_slowdown > 1) {
    out += Fmt("Cost model: jobs with a pod on unlinked cards run %.2fx longer", run.unlinked_slowdown) +
           Fmt(", gangs across link domains %.2fx longer.\n", run.cross_domain_slowdown);
  }
  out +=
      "\n| policy | linked pods | gangs in one link domain (all / of those that fit one) | gangs in one rack "
      "| mean wait | p95 wait | mean gang wait | card utilization | fragmentation | never started | run time "
      "|\n";
  out += "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    out += "| " + std::string(PolicyName(r.policy)) + " | " + Pct(r.linked_rate) + " | " +
           Pct(r.gang_domain_rate) + " / " + Pct(r.gang_fit_domain_rate) + " | " + Pct(r.gang_rack_rate) +
           " | " + Duration(r.wait_mean_s) + " | " + Duration(r.wait_p95_s) + " | " +
           Duration(r.gang_wait_mean_s) + " | " + Pct(r.utilization) + " | " + Pct(r.fragmentation_mean) +
           " | " + std::to_string(r.never_started) + " | " + Fmt("%.1f s", r.runtime_s) + " |\n";
  }
  out +=
      "\nWaits users feel (mean / p95 / p99): every card weighs the same (card-weighted), by pod size "
      "(cards per task), single pods against gangs; slowdown = (wait + run) / run; gangs in one rack of "
      "those that fit one.\n\n| policy | card-weighted | 1 card | 2 cards | 3-4 cards | 5-8 cards | >8 cards "
      "| "
      "single pods | gangs | slowdown mean / p95 | gangs in one rack (of those that fit one) |\n";
  out += "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    const UserMetrics& u = r.user;
    out += "| " + std::string(PolicyName(r.policy)) + " | " + Waits(u.card_weighted);
    for (const auto& w : u.by_size) out += " | " + Waits(w);
    out += " | " + Waits(u.single) + " | " + Waits(u.gang) + " | " + Fmt("%.2f", u.slowdown_mean) + " / " +
           Fmt("%.2f", u.slowdown_p95) + " | " + Pct(r.gang_fit_rack_rate) + " |\n";
  }
  const bool fill =
      std::any_of(results.begin(), results.end(), [](const PolicyResult& r) { return r.fill.ran; });
  if (fill) {
    out +=
        "\nFill experiment (FGD): jobs drawn from the workload arrive on the empty cluster and never leave, "
        "until " +
        std::to_string(results.front().fill.consecutive_failures) +
        " placements in a row fail. Allocated: share of all cards. Unallocatable: expected free cards a pod "
        "drawn from the workload could not use (counting cards / needing a linked set), in cards (a share "
        "rounded to 0.1 % would hide differences of a few cards).\n\n"
        "| policy | jobs placed | at the first failure: allocated / unallocatable cards (counting cards) / "
        "unallocatable cards (linked sets) | at the end: allocated / unallocatable cards (counting cards) / "
        "unallocatable cards (linked sets) |\n"
        "|---|---|---|---|\n";
    for (const auto& r : results) {
      if (!r.fill.ran) continue;
      const double all = r.fill.allocated_cards + r.fill.free_cards;
      out += "| " + std::string(PolicyName(r.policy)) + " | " + std::to_string(r.fill.placed) + " | " +
             Pct(r.fill.first_failure_allocated_rate) + " / " +
             Fmt("%.2f", r.fill.first_failure_unallocatable_rate * all) + " / " +
             Fmt("%.2f", r.fill.first_failure_unallocatable_linked_rate * all) + " | " +
             Pct(r.fill.allocated_rate) + " / " + Fmt("%.2f", r.fill.unallocatable_cards) + " / " +
             Fmt("%.2f", r.fill.unallocatable_linked_cards) + " |\n";
    }
  }
  return out;
}

std::string FormatJson(const ClusterConfig& cluster, const RunInfo& run,
                       const std::vector<PolicyResult>& results) {
  nlohmann::ordered_json doc;
  doc["schema"] = "hyperaccel.ai/sim/v1";
  doc["cluster"] = {{"nodes", cluster.nodes},
                    {"cards_per_node", cluster.cards_per_node},
                    {"intra", cluster.intra},
                    {"numa_nodes", cluster.numa_nodes},
                    {"nodes_per_domain", cluster.nodes_per_domain},
                    {"nodes_per_rack", cluster.nodes_per_rack},
                    {"racks_per_idc", cluster.racks_per_idc}};
  doc["run"] = {{"workload", run.workload},
                {"seed", run.seed},
                {"load", run.load},
                {"jobs", run.jobs},
                {"require_linked", run.require_linked},
                {"kubelet_cards", run.kubelet_random ? "random" : "first-fit"},
                {"unlinked_slowdown", run.unlinked_slowdown},
                {"cross_domain_slowdown", run.cross_domain_slowdown}};
  auto& list = doc["policies"] = nlohmann::ordered_json::array();
  for (const auto& r : results) {
    nlohmann::ordered_json p;
    p["policy"] = PolicyName(r.policy);
    p["jobs"] = r.jobs;
    p["started"] = r.started;
    p["never_started"] = r.never_started;
    p["infeasible"] = r.infeasible;
    p["pods"] = r.pods;
    p["multi_card_pods"] = r.multi_card_pods;
    p["linked_pods"] = r.linked_pods;
    p["linked_rate"] = r.linked_rate;
    p["gangs"] = r.gangs;
    p["gangs_one_domain"] = r.gangs_one_domain;
    p["gangs_one_rack"] = r.gangs_one_rack;
    p["gang_domain_rate"] = r.gang_domain_rate;
    p["gangs_fit_domain"] = r.gangs_fit_domain;
    p["gangs_fit_one_domain"] = r.gangs_fit_one_domain;
    p["gang_fit_domain_rate"] = r.gang_fit_domain_rate;
    p["slowed_jobs"] = r.slowed_jobs;
    p["gang_rack_rate"] = r.gang_rack_rate;
    p["gangs_split_no_domain_room"] = r.gangs_split_no_domain_room;
    p["gangs_fit_rack"] = r.gangs_fit_rack;
    p["gangs_fit_one_rack"] = r.gangs_fit_one_rack;
    p["gang_fit_rack_rate"] = r.gang_fit_rack_rate;
    p["wait_mean_s"] = r.wait_mean_s;
    p["wait_p50_s"] = r.wait_p50_s;
    p["wait_p95_s"] = r.wait_p95_s;
    p["gang_wait_mean_s"] = r.gang_wait_mean_s;
    p["utilization"] = r.utilization;
    p["fragmentation_mean"] = r.fragmentation_mean;
    p["end_s"] = r.end_s;
    p["runtime_s"] = r.runtime_s;
    p["scheduling_attempts"] = r.scheduling_attempts;
    nlohmann::ordered_json user;
    user["card_weighted_wait"] = WaitJson(r.user.card_weighted);
    auto& by_size = user["wait_by_cards_per_task"] = nlohmann::ordered_json::object();
    for (int c = 0; c < kSizeClasses; ++c)
      by_size[SizeClassName(c)] = WaitJson(r.user.by_size[static_cast<size_t>(c)]);
    user["single_pod_wait"] = WaitJson(r.user.single);
    user["gang_wait"] = WaitJson(r.user.gang);
    user["slowdown_mean"] = r.user.slowdown_mean;
    user["slowdown_p95"] = r.user.slowdown_p95;
    p["user"] = std::move(user);
    if (r.fill.ran) {
      p["fill"] = {
          {"consecutive_failures", r.fill.consecutive_failures},
          {"draws", r.fill.draws},
          {"placed", r.fill.placed},
          {"allocated_cards", r.fill.allocated_cards},
          {"free_cards", r.fill.free_cards},
          {"allocated_rate", r.fill.allocated_rate},
          {"first_failure_allocated_rate", r.fill.first_failure_allocated_rate},
          {"first_failure_unallocatable_rate", r.fill.first_failure_unallocatable_rate},
          {"first_failure_unallocatable_linked_rate", r.fill.first_failure_unallocatable_linked_rate},
          {"unallocatable_cards", r.fill.unallocatable_cards},
          {"unallocatable_rate", r.fill.unallocatable_rate},
          {"unallocatable_linked_cards", r.fill.unallocatable_linked_cards},
          {"unallocatable_linked_rate", r.fill.unallocatable_linked_rate}};
    }
    auto& series = p["series"] = nlohmann::ordered_json::array();
    for (const auto& s : r.series) {
      series.push_back({{"t", s.t},
                        {"utilization", s.utilization},
                        {"fragmentation", s.fragmentation},
                        {"pending", s.pending},
                        {"largest_free_linked", s.largest_free_linked},
                        {"gang_fit_domain_rate", s.gang_fit_domain_rate},
                        {"wait_mean_s", s.wait_mean_s}});
    }
    list.push_back(std::move(p));
  }
  return doc.dump(2) + "\n";
}

std::string FormatSeriesCsv(const PolicyResult& result) {
  std::string out =
      "time_s,utilization,fragmentation,pending,largest_free_linked,gang_fit_domain_rate,wait_1_s,wait_2_s,"
      "wait_3_4_s,wait_5_8_s,wait_over_8_s\n";
  char buf[128];
  for (const auto& s : result.series) {
    std::snprintf(buf, sizeof buf, "%.1f,%.5f,%.5f,%d,%d,", s.t, s.utilization, s.fragmentation, s.pending,
                  s.largest_free_linked);
    out += buf;
    out += CsvNumber(s.gang_fit_domain_rate, "%.5f");
    for (double w : s.wait_mean_s) out += "," + CsvNumber(w, "%.1f");
    out += "\n";
  }
  return out;
}

std::string FormatJobLog(const std::vector<JobSpec>& jobs, const std::vector<PolicyResult>& results) {
  std::string out = "policy,job_id,tasks,cards_per_task,priority,arrival_s,start_s,run_s\n";
  char buf[160];
  for (size_t i = 0; i < jobs.size(); ++i) {
    const JobSpec& j = jobs[i];
    for (const PolicyResult& r : results) {
      const double start = i < r.start_s.size() ? r.start_s[i] : -1.0;
      const double run = i < r.run_s.size() ? r.run_s[i] : -1.0;
      std::snprintf(buf, sizeof buf, ",%d,%d,%lld,%.3f,%.3f,%.3f\n", j.tasks, j.cards_per_task,
                    static_cast<long long>(j.priority), j.arrival_s, start, run);
      out += PolicyName(r.policy);
      out += ',';
      out += j.id;
      out += buf;
    }
  }
  return out;
}

Status WriteResults(const std::string& dir, const ClusterConfig& cluster, const RunInfo& run,
                    const std::vector<PolicyResult>& results, bool* plots) {
  namespace fs = std::filesystem;
  *plots = false;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Unavailable(dir + ": " + ec.message());
  const fs::path base(dir);
  bool ok = WriteFile(base / "results.md", FormatMarkdown(cluster, run, results)) &&
            WriteFile(base / "results.json", FormatJson(cluster, run, results));
  for (const auto& r : results)
    ok = ok && WriteFile(base / ("series-" + std::string(PolicyName(r.policy)) + ".csv"), FormatSeriesCsv(r));
  if (!ok) return Unavailable(dir + ": cannot write results");
  if (!HaveGnuplot()) return Status::Ok();

  std::string script =
      SeriesPlot(results, "utilization.png", "Card utilization", "busy cards (%)", 2, Axis::kPercent);
  script +=
      SeriesPlot(results, "fragmentation.png", "Fragmentation: free cards with no free linked neighbour",
                 "stranded / free cards (%)", 3, Axis::kPercent);
  script += SeriesPlot(results, "pending.png", "Jobs waiting", "pending jobs", 4, Axis::kPlain);
  script += SeriesPlot(results, "locality-time.png",
                       "Gangs in one link domain, of those that fit one (started in each interval)", "%", 6,
                       Axis::kPercent);
  for (int c = 0; c < kSizeClasses; ++c) {
    const bool any = std::any_of(results.begin(), results.end(), [c](const PolicyResult& r) {
      return r.user.by_size[static_cast<size_t>(c)].jobs > 0;
    });
    if (!any) continue;
    const std::string name = c == kSizeClasses - 1 ? "over-8" : std::string(SizeClassName(c));
    script += SeriesPlot(
        results, "wait-" + name + ".png",
        std::string("Mean wait of jobs started in each interval, ") + SizeClassName(c) + " card(s) per task",
        "minutes", 7 + c, Axis::kMinutes);
  }
  // Locality bars: linked pods, gangs in one domain, gangs in one rack.
  std::string bars = "# policy,linked,domain,rack\n";
  for (const auto& r : results) {
    bars += std::string(PolicyName(r.policy)) + "," + Fmt("%.2f", 100 * r.linked_rate) + "," +
            Fmt("%.2f", 100 * r.gang_fit_domain_rate) + "," + Fmt("%.2f", 100 * r.gang_rack_rate) + "\n";
  }
  if (!WriteFile(base / "locality.csv", bars)) return Unavailable(dir + ": cannot write locality.csv");
  script +=
      "set terminal pngcairo size 900,500 font 'sans,10'\nset output 'locality.png'\n"
      "set title 'Locality'\nset ylabel '%'\nset yrange [0:105]\nset style data histograms\n"
      "set style histogram clustered gap 1\nset style fill solid 0.8 border -1\nset key outside right\n"
      "set datafile separator ','\nset xlabel ''\n"
      "plot 'locality.csv' using 2:xtic(1) title 'multi-card pods on linked cards', "
      "'' using 3 title 'gangs in one link domain (of those that fit one)', "
      "'' using 4 title 'gangs in one rack'\n";
  if (!WriteFile(base / "plots.gp", script)) return Unavailable(dir + ": cannot write plots.gp");
  const std::string cmd = "cd '" + dir + "' && gnuplot plots.gp 2>gnuplot.log";
  if (std::system(cmd.c_str()) != 0)  // NOLINT(concurrency-mt-unsafe): main thread only, see HaveGnuplot
    return Internal("gnuplot failed; see " + (base / "gnuplot.log").string());
  fs::remove(base / "gnuplot.log", ec);
  *plots = true;
  return Status::Ok();
}

}  // namespace hyperaccel::sim
