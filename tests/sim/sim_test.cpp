#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "hyperaccel/sim/cluster.h"
#include "hyperaccel/sim/engine.h"
#include "hyperaccel/sim/report.h"
#include "hyperaccel/sim/workload.h"
#include "process.h"

namespace hyperaccel::sim {
namespace {

constexpr const char* kHeader = "job_id,arrival_s,duration_s,tasks,cards_per_task,priority,preemptable\n";

Result<std::vector<JobSpec>> Parse(const std::string& text) {
  std::istringstream in(text);
  return ParseTrace(in, "t.csv");
}

std::string ErrorOf(const std::string& text) {
  auto r = Parse(text);
  EXPECT_FALSE(r.ok()) << text;
  return r.ok() ? "" : r.status().message();
}

// ---- trace ------------------------------------------------------------------------------------

TEST(Trace, ParsesSortsAndAcceptsAnyColumnOrder) {
  auto jobs = Parse(
      "# a comment\n"
      "preemptable,cards_per_task,tasks,extra,duration_s,arrival_s,priority,job_id\n"
      "\n"
      "false,8,4,x,7200,30,5,train-1\n"
      "true,1,1,y,60.5,0,1,serve-1\n"
      "0,2,1,z,10,30,10,serve-2\n");
  ASSERT_TRUE(jobs.ok()) << jobs.status().message();
  ASSERT_EQ(jobs->size(), 3U);
  EXPECT_EQ((*jobs)[0].id, "serve-1");  // earliest arrival first
  EXPECT_TRUE((*jobs)[0].preemptable);
  EXPECT_DOUBLE_EQ((*jobs)[0].duration_s, 60.5);
  EXPECT_EQ((*jobs)[1].id, "train-1");  // equal arrivals keep file order
  EXPECT_EQ((*jobs)[1].tasks, 4);
  EXPECT_EQ((*jobs)[1].cards_per_task, 8);
  EXPECT_EQ((*jobs)[1].priority, 5);
  EXPECT_EQ((*jobs)[2].id, "serve-2");
  EXPECT_FALSE((*jobs)[2].preemptable);
}

TEST(Trace, ErrorsNameTheLineAndTheField) {
  const std::string h = kHeader;
  EXPECT_EQ(ErrorOf(""), "t.csv: empty trace (no header)");
  EXPECT_NE(ErrorOf("job_id,arrival_s\na,1\n").find("t.csv:1: header lacks column duration_s"),
            std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,0,10,1,1,0,false\na,1,10,1,1,0,false\n").find("t.csv:3: job_id: duplicate \"a\""),
            std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,-1,10,1,1,0,false\n").find("t.csv:2: arrival_s"), std::string::npos);
  EXPECT_NE(
      ErrorOf(h + "a,x,10,1,1,0,false\n").find("t.csv:2: arrival_s: expected a number 0..1e12, got \"x\""),
      std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,0,1e300,1,1,0,false\n").find("t.csv:2: duration_s"), std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,0,0,1,1,0,false\n").find("t.csv:2: duration_s"), std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,0,nan,1,1,0,false\n").find("t.csv:2: duration_s"), std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,0,10,0,1,0,false\n").find("t.csv:2: tasks"), std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,0,10,1.5,1,0,false\n").find("t.csv:2: tasks"), std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,0,10,1,65,0,false\n").find("t.csv:2: cards_per_task"), std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,0,10,1,1,high,false\n").find("t.csv:2: priority"), std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,0,10,1,1,0,maybe\n").find("t.csv:2: preemptable"), std::string::npos);
  EXPECT_NE(ErrorOf(h + "a,0,10\n").find("t.csv:2: expected at least 7 fields, got 3"), std::string::npos);
  EXPECT_NE(ErrorOf(h + ",0,10,1,1,0,false\n").find("t.csv:2: job_id: empty"), std::string::npos);
  EXPECT_NE(ErrorOf("job_id,job_id\n").find("appears twice"), std::string::npos);
}

TEST(Trace, FormatRoundTrips) {
  SyntheticConfig c;
  c.jobs = 200;
  c.cluster_cards = 64;
  const auto jobs = Synthesize(c);
  auto back = Parse(FormatTrace(jobs));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->size(), jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ((*back)[i].id, jobs[i].id);
    EXPECT_NEAR((*back)[i].arrival_s, jobs[i].arrival_s, 1e-3);
    EXPECT_EQ((*back)[i].tasks, jobs[i].tasks);
    EXPECT_EQ((*back)[i].cards_per_task, jobs[i].cards_per_task);
    EXPECT_EQ((*back)[i].preemptable, jobs[i].preemptable);
  }
}

// ---- synthetic mix ----------------------------------------------------------------------------

TEST(Synthetic, SameSeedSameJobsAndTheOfferedLoadIsAsAsked) {
  SyntheticConfig c;
  c.seed = 7;
  c.jobs = 20000;
  c.load = 0.8;
  c.cluster_cards = 800;
  const auto a = Synthesize(c);
  const auto b = Synthesize(c);
  ASSERT_EQ(a.size(), 20000U);
  EXPECT_EQ(FormatTrace(a), FormatTrace(b));
  c.seed = 8;
  EXPECT_NE(FormatTrace(Synthesize(c)), FormatTrace(a));

  double work = 0;
  int gangs = 0, spot = 0;
  for (const auto& j : a) {
    work += j.duration_s * j.tasks * j.cards_per_task;
    EXPECT_GE(j.tasks, 1);
    EXPECT_LE(j.tasks, 8);
    EXPECT_TRUE(j.cards_per_task == 1 || j.cards_per_task == 2 || j.cards_per_task == 4 ||
                j.cards_per_task == 8);
    EXPECT_GE(j.duration_s, 1.0);
    EXPECT_LE(j.duration_s, 7 * 24 * 3600.0);
    gangs += j.tasks > 1;
    spot += j.preemptable;
  }
  // Offered load over the arrival window: work / (window x cards).
  const double window = a.back().arrival_s - a.front().arrival_s;
  EXPECT_NEAR(work / (window * c.cluster_cards), 0.8, 0.04);
  EXPECT_NEAR(gangs / 20000.0, 0.30, 0.02);
  EXPECT_NEAR(spot / 20000.0, 0.10, 0.02);  // a fifth of the 50 % 1- and 2-card serving pods
}

TEST(Synthetic, ShapesAreCappedAtTheNodeSize) {
  SyntheticConfig c;
  c.jobs = 2000;
  c.max_cards_per_task = 4;
  for (const auto& j : Synthesize(c)) EXPECT_LE(j.cards_per_task, 4);
}

// ---- cluster ----------------------------------------------------------------------------------

TEST(ClusterModel, TiersNestAndRingsAreLinked) {
  ClusterConfig cfg;
  cfg.nodes = 10;
  cfg.nodes_per_domain = 2;
  cfg.nodes_per_rack = 4;
  cfg.racks_per_idc = 2;
  auto c = Cluster::Create(cfg);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->domains(), 5);
  EXPECT_EQ(c->racks(), 3);
  EXPECT_EQ(c->idcs(), 2);
  EXPECT_EQ(c->nodes()[9].name, "node-0010");
  EXPECT_EQ(c->nodes()[9].domain, "ld-0005");
  EXPECT_EQ(c->nodes()[9].rack, "rack-003");
  EXPECT_EQ(c->nodes()[9].idc, "idc-02");
  const auto& g = c->graph();
  EXPECT_TRUE(IsLinked(g, 0b10000001));  // 7 - 0 closes the ring
  EXPECT_TRUE(IsLinked(g, 0b00111000));
  EXPECT_FALSE(IsLinked(g, 0b00100100));
  EXPECT_FALSE(IsLinked(g, 0));
  EXPECT_TRUE(IsLinked(g, 0b1));

  cfg.intra = "line";
  auto line = Cluster::Create(cfg);
  ASSERT_TRUE(line.ok());
  EXPECT_FALSE(IsLinked(line->graph(), 0b10000001));
}

TEST(ClusterModel, ValidationNamesTheFlag) {
  ClusterConfig cfg;
  cfg.nodes_per_rack = 15;
  cfg.nodes_per_domain = 2;
  EXPECT_NE(Validate(cfg).message().find("--nodes-per-rack"), std::string::npos);
  cfg = {};
  cfg.cards_per_node = 65;
  EXPECT_NE(Validate(cfg).message().find("--cards-per-node"), std::string::npos);
  cfg = {};
  cfg.intra = "torus";
  EXPECT_NE(Validate(cfg).message().find("--intra"), std::string::npos);
  EXPECT_TRUE(Validate(ClusterConfig{}).ok());
}

TEST(Engine, NodesToFindFollowsVolcano) {
  EXPECT_EQ(NodesToFind(50, 0, 100), 50);
  EXPECT_EQ(NodesToFind(100, 0, 100), 100);
  EXPECT_EQ(NodesToFind(1000, 0, 100), 420);     // 50 - 1000/125 = 42 %
  EXPECT_EQ(NodesToFind(10000, 0, 100), 500);    // floor at 5 %
  EXPECT_EQ(NodesToFind(1000, 100, 100), 1000);  // --percentage-nodes-to-find=100
  EXPECT_EQ(NodesToFind(150, 0, 100), 100);      // at least the minimum
}

// ---- engine -----------------------------------------------------------------------------------

Cluster MakeCluster(int nodes, int per_domain = 1, int per_rack = 1, const std::string& intra = "ring") {
  ClusterConfig cfg;
  cfg.nodes = nodes;
  cfg.nodes_per_domain = per_domain;
  cfg.nodes_per_rack = per_rack;
  cfg.intra = intra;
  auto c = Cluster::Create(cfg);
  EXPECT_TRUE(c.ok()) << c.status().message();
  return std::move(c).value();
}

std::vector<JobSpec> Jobs(const std::string& rows) {
  auto j = Parse(kHeader + rows);
  EXPECT_TRUE(j.ok()) << j.status().message();
  return j.ok() ? std::move(j).value() : std::vector<JobSpec>{};
}

PolicyResult RunPolicy(const Cluster& c, const std::vector<JobSpec>& jobs, Policy p,
                       bool require_linked = false, double unlinked_slowdown = 1) {
  SimOptions o;
  o.policy = p;
  o.require_linked = require_linked;
  o.unlinked_slowdown = unlinked_slowdown;
  return Simulate(c, jobs, o);
}

// Two 1-card jobs of 100 s, 100 s apart, on 2 cards: 200 card-seconds over 100 s x 2 cards = 1.0.
// Halving the load doubles the gaps between arrivals and keeps the durations.
TEST(Trace, ArrivalsScaleToAnOfferedLoad) {
  auto jobs = Jobs("a,50,100,1,1,5,false\nb,150,100,1,1,5,false\n");
  EXPECT_DOUBLE_EQ(OfferedLoad(jobs, 2), 1.0);
  ASSERT_TRUE(ScaleArrivalsToLoad(jobs, 2, 0.5).ok());
  EXPECT_DOUBLE_EQ(jobs[0].arrival_s, 50);
  EXPECT_DOUBLE_EQ(jobs[1].arrival_s, 250);
  EXPECT_DOUBLE_EQ(jobs[1].duration_s, 100);
  EXPECT_DOUBLE_EQ(OfferedLoad(jobs, 2), 0.5);
  auto burst = Jobs("a,0,100,1,1,5,false\nb,0,100,1,1,5,false\n");
  EXPECT_NE(ScaleArrivalsToLoad(burst, 2, 1.0).message().find("all at once"), std::string::npos);
  EXPECT_FALSE(ScaleArrivalsToLoad(jobs, 2, 0).ok());
}

// One 8-card ring. Two 1-card pods take cards 0 and 1 (first-fit); the one on card 0 ends. A
// 4-card pod then sees cards 0, 2..7 free: first-fit gives 0,2,3,4 (not linked: 0's neighbours
// are 1 and 7); the device plugin gives a linked four.
TEST(Engine, FirstFitSplitsWhereThePluginGivesALinkedSet) {
  const Cluster c = MakeCluster(1);
  const auto jobs = Jobs(
      "a,0,10,1,1,5,false\n"
      "b,0,100,1,1,5,false\n"
      "c,20,50,1,4,5,false\n");
  for (Policy p : {Policy::kRandom, Policy::kBinpack, Policy::kTiers}) {
    const auto r = RunPolicy(c, jobs, p);
    EXPECT_EQ(r.started, 3) << PolicyName(p);
    EXPECT_EQ(r.multi_card_pods, 1);
    EXPECT_EQ(r.linked_pods, 0) << PolicyName(p);
  }
  for (Policy p : {Policy::kExtender, Policy::kHyperaccel}) {
    const auto r = RunPolicy(c, jobs, p);
    EXPECT_EQ(r.started, 3) << PolicyName(p);
    EXPECT_EQ(r.linked_pods, 1) << PolicyName(p);
    EXPECT_DOUBLE_EQ(r.linked_rate, 1.0);
  }
}

// The optional cost model: the split 4-card pod of the scenario above runs twice as long under
// the baselines, so an 8-card pod waiting for the whole node starts at 120 instead of 100.
TEST(Engine, UnlinkedSlowdownLengthensSplitPodsOnly) {
  const Cluster c = MakeCluster(1);
  const auto jobs = Jobs(
      "a,0,10,1,1,5,false\n"
      "b,0,100,1,1,5,false\n"
      "c,20,50,1,4,5,false\n"
      "d,21,10,1,8,5,false\n");
  const auto plain = RunPolicy(c, jobs, Policy::kBinpack);
  EXPECT_DOUBLE_EQ(plain.start_s[3], 100);
  EXPECT_EQ(plain.slowed_jobs, 0);
  const auto slowed = RunPolicy(c, jobs, Policy::kBinpack, false, 2.0);
  EXPECT_DOUBLE_EQ(slowed.start_s[3], 120);
  EXPECT_EQ(slowed.slowed_jobs, 1);
  const auto ours = RunPolicy(c, jobs, Policy::kHyperaccel, false, 2.0);
  EXPECT_DOUBLE_EQ(ours.start_s[3], 100);
  EXPECT_EQ(ours.slowed_jobs, 0);
}

// Two nodes (one domain, one rack). An 8-card pod holds one node until t=100; a 2 x 8 gang arriving
// at t=1 cannot start on one node (all or nothing), so a lower-priority 8-card pod arriving at t=2
// takes the idle node. At t=100 the gang (higher priority) is tried first but still finds one node;
// `late` backfills it (Volcano reserves nothing for a waiting gang). The gang starts when both are
// free, at t=110.
Cluster GangQueueCluster() { return MakeCluster(2, 2, 2); }
std::vector<JobSpec> GangQueueJobs() {
  return Jobs(
      "hold,0,100,1,8,5,false\n"
      "gang,1,50,2,8,9,false\n"
      "fill,2,100,1,8,1,false\n"
      "late,3,10,1,8,1,false\n");
}

TEST(Engine, GangsStartAllOrNothingAndPriorityOrdersTheQueue) {
  const Cluster c = GangQueueCluster();
  const auto jobs = GangQueueJobs();
  for (Policy p : AllPolicies()) {
    const auto r = RunPolicy(c, jobs, p);
    ASSERT_EQ(r.start_s.size(), 4U);
    EXPECT_DOUBLE_EQ(r.start_s[0], 0) << PolicyName(p);
    EXPECT_DOUBLE_EQ(r.start_s[2], 2) << PolicyName(p);
    EXPECT_DOUBLE_EQ(r.start_s[3], 100) << PolicyName(p);
    EXPECT_DOUBLE_EQ(r.start_s[1], 110) << PolicyName(p);
    EXPECT_EQ(r.gangs, 1);
    EXPECT_EQ(r.gangs_one_domain, 1);
    EXPECT_EQ(r.never_started, 0);
    EXPECT_NEAR(r.wait_mean_s, (0 + 109 + 0 + 97) / 4.0, 1e-9);
    EXPECT_NEAR(r.gang_wait_mean_s, 109, 1e-9);
  }
}

// When the queue is ordered by priority, the higher-priority job gets freed cards first.
TEST(Engine, HigherPriorityStartsFirst) {
  const Cluster c = MakeCluster(1);
  const auto jobs = Jobs(
      "hold,0,10,1,8,5,false\n"
      "low,1,10,1,8,1,false\n"
      "high,2,10,1,8,9,false\n");
  for (Policy p : AllPolicies()) {
    const auto r = RunPolicy(c, jobs, p);
    EXPECT_DOUBLE_EQ(r.start_s[2], 10) << PolicyName(p);
    EXPECT_DOUBLE_EQ(r.start_s[1], 20) << PolicyName(p);
  }
}

TEST(Engine, JobsThatCanNeverFitAreCountedNotStuck) {
  const Cluster c = MakeCluster(2);
  const auto jobs = Jobs(
      "too-wide,0,10,1,16,5,false\n"
      "too-many,0,10,3,8,5,false\n"
      "ok,1,10,2,8,5,false\n");
  for (Policy p : AllPolicies()) {
    const auto r = RunPolicy(c, jobs, p);
    EXPECT_EQ(r.infeasible, 2) << PolicyName(p);
    EXPECT_EQ(r.gangs_fit_domain, 0);  // a 2 x 8 gang does not fit a one-node link domain
    EXPECT_EQ(r.never_started, 2);
    EXPECT_EQ(r.started, 1);
    EXPECT_DOUBLE_EQ(r.start_s[2], 1);
  }
}

// Two link domains of two nodes. Two 2 x 8 gangs on the empty cluster: the tier-aware policies
// and the bridge's gang locality give each gang a whole link domain.
TEST(Engine, TierAwarePoliciesKeepGangsInOneLinkDomain) {
  const Cluster c = MakeCluster(4, 2, 4);
  const auto jobs = Jobs("g1,0,10,2,8,5,false\ng2,0,10,2,8,5,false\n");
  for (Policy p : {Policy::kTiers, Policy::kExtender, Policy::kHyperaccel}) {
    const auto r = RunPolicy(c, jobs, p);
    EXPECT_EQ(r.gangs, 2);
    EXPECT_EQ(r.gangs_one_domain, 2) << PolicyName(p);
    EXPECT_EQ(r.gangs_fit_domain, 2);
    EXPECT_DOUBLE_EQ(r.gang_fit_domain_rate, 1.0);
    EXPECT_DOUBLE_EQ(r.start_s[1], 0) << PolicyName(p);
  }
}

// A line of 8 cards (no 7-0 cable) with card 3 busy: a 4-card pod that requires linked cards
// gets 4..7; with card 5 busy too no linked four is free and it waits instead of splitting.
TEST(Engine, RequireLinkedWaitsRatherThanSplits) {
  const Cluster c = MakeCluster(1, 1, 1, "line");
  // Pods with durations chosen so first-fit fills cards 0..3 and then frees 0..2 and 4.. later.
  const auto jobs = Jobs(
      "a,0,5,1,3,5,false\n"      // cards 0-2 until 5
      "b,0,100,1,1,5,false\n"    // card 3 until 100
      "c,0,5,1,1,5,false\n"      // card 4 until 5
      "d,0,100,1,1,5,false\n"    // card 5 until 100
      "e,10,10,1,4,5,false\n");  // free at 10: 0,1,2,4,6,7 -> no linked four
  const auto relaxed = RunPolicy(c, jobs, Policy::kHyperaccel, false);
  EXPECT_DOUBLE_EQ(relaxed.start_s[4], 10);
  EXPECT_EQ(relaxed.linked_pods, 1);  // a (3 cards) linked; e split
  const auto strict = RunPolicy(c, jobs, Policy::kHyperaccel, true);
  EXPECT_DOUBLE_EQ(strict.start_s[4], 100);  // waits for b and d
  EXPECT_EQ(strict.linked_pods, 2);
}

TEST(Engine, DeterministicForASeedAndSeriesStayInRange) {
  const Cluster c = MakeCluster(40, 2, 8);
  SyntheticConfig sc;
  sc.jobs = 1500;
  sc.load = 1.1;
  sc.cluster_cards = c.total_cards();
  const auto jobs = Synthesize(sc);
  for (Policy p : AllPolicies()) {
    const auto a = RunPolicy(c, jobs, p);
    const auto b = RunPolicy(c, jobs, p);
    EXPECT_EQ(a.start_s, b.start_s) << PolicyName(p);
    EXPECT_EQ(a.started + a.never_started, a.jobs);
    EXPECT_EQ(a.series.size(), 200U);
    for (const auto& s : a.series) {
      EXPECT_GE(s.utilization, 0);
      EXPECT_LE(s.utilization, 1);
      EXPECT_GE(s.fragmentation, 0);
      EXPECT_LE(s.fragmentation, 1);
      EXPECT_LE(s.largest_free_linked, 8);
    }
    EXPECT_GT(a.utilization, 0.5) << PolicyName(p);
    EXPECT_LE(a.utilization, 1.0);
    for (size_t i = 0; i < jobs.size(); ++i)
      if (a.start_s[i] >= 0) {
        EXPECT_GE(a.start_s[i], jobs[i].arrival_s);
      }
  }
}

// Every job at t=0 (a backlog): the window becomes the time the work needs at full use, and a
// cycle stays cheap with thousands of jobs waiting.
TEST(Engine, BurstTraceHasAWindowAndFinishes) {
  const Cluster c = MakeCluster(16, 2, 8);
  std::string rows;
  for (int i = 0; i < 5000; ++i)
    rows += "j" + std::to_string(i) + ",0," + std::to_string(60 + i % 7 * 30) + "," +
            std::to_string(1 + i % 3) + "," + std::to_string(1 << (i % 4)) + "," + std::to_string(i % 5) +
            ",false\n";
  const auto jobs = Jobs(rows);
  for (Policy p : AllPolicies()) {
    const auto r = RunPolicy(c, jobs, p);
    EXPECT_EQ(r.started, 5000) << PolicyName(p);
    EXPECT_GT(r.utilization, 0.5) << PolicyName(p);
    EXPECT_GT(r.series.back().t, 0);
  }
}

// hyperaccel with the bridge's link-domain wait set to `wait` seconds.
PolicyResult SimulateWithDomainWait(const Cluster& c, const std::vector<JobSpec>& jobs, double wait) {
  SimOptions o;
  o.policy = Policy::kHyperaccel;
  o.gang_domain_wait_s = wait;
  return Simulate(c, jobs, o);
}

// Two one-node link domains in one rack. Pods of 6 cards leave 2 free on each node (b ends at 50);
// a 2 x 2 gang arriving at 1 fits one empty domain but no domain has room for it then. Without a
// wait it splits at once; waiting up to 1000 s it starts at 50 on the node b freed; waiting up to
// 20 s it gives up at the first cycle after that (c ends at 35) and splits. The wait is the
// bridge's link-domain wait, called through its predicate; here the cluster has room for the gang
// from its arrival, so the wait counts from then.
TEST(Engine, GangDomainWaitHoldsAGangForADomainThenFallsBack) {
  const Cluster c = MakeCluster(2, 1, 2);
  const auto jobs = Jobs(
      "a,0,100,1,6,5,false\n"
      "b,0,50,1,6,5,false\n"
      "g,1,10,2,2,5,false\n"
      "c,30,5,1,1,5,false\n");
  auto run = [&](double wait) { return SimulateWithDomainWait(c, jobs, wait); };
  const auto now = run(0);
  EXPECT_DOUBLE_EQ(now.start_s[2], 1);
  EXPECT_EQ(now.gangs_fit_domain, 1);
  EXPECT_EQ(now.gangs_fit_one_domain, 0);
  EXPECT_EQ(now.gangs_split_no_domain_room, 1);
  const auto held = run(1000);
  EXPECT_DOUBLE_EQ(held.start_s[2], 50);
  EXPECT_EQ(held.gangs_fit_one_domain, 1);
  const auto bounded = run(20);
  EXPECT_DOUBLE_EQ(bounded.start_s[2], 35);
  EXPECT_EQ(bounded.gangs_fit_one_domain, 0);
  // Only hyperaccel has the option; tiers stays soft.
  SimOptions tiers;
  tiers.policy = Policy::kTiers;
  tiers.gang_domain_wait_s = 1000;
  EXPECT_DOUBLE_EQ(Simulate(c, jobs, tiers).start_s[2], 1);
}

// The wait counts from when the cluster first had room for the gang. a and b (6 cards each) run
// to 100, x (2 cards) to 40: until 40 the cluster has one free slot of 2 cards, so the 2 x 2 gang
// waits for cards, not for a domain. At 40 it could start split: with a 20 s wait it is held from
// then and starts split at 70 (c's end, the first cycle after 60), not at 40 as a wait counted
// from its arrival would let it; with 1000 s it starts at 100 in one domain.
TEST(Engine, GangDomainWaitCountsFromWhenTheClusterHadRoom) {
  const Cluster c = MakeCluster(2, 1, 2);
  const auto jobs = Jobs(
      "a,0,100,1,6,5,false\n"
      "b,0,100,1,6,5,false\n"
      "x,0,40,1,2,5,false\n"
      "g,1,10,2,2,5,false\n"
      "c,65,5,1,1,5,false\n");
  auto run = [&](double wait) { return SimulateWithDomainWait(c, jobs, wait); };
  const auto now = run(0);
  EXPECT_DOUBLE_EQ(now.start_s[3], 40);
  EXPECT_EQ(now.gangs_fit_one_domain, 0);
  const auto bounded = run(20);
  EXPECT_DOUBLE_EQ(bounded.start_s[3], 70);
  EXPECT_EQ(bounded.gangs_fit_one_domain, 0);
  const auto held = run(1000);
  EXPECT_DOUBLE_EQ(held.start_s[3], 100);
  EXPECT_EQ(held.gangs_fit_one_domain, 1);
}

// ---- metrics users feel (hand-worked values) ----------------------------------------------------

// Five jobs: a (1 x 1 card) waits 0 and runs 10; b (1 x 2) waits 30, runs 30; c (2 x 4, a gang)
// waits 60, runs 60; d (1 x 8) waits 100, runs 100; e (1 x 1) never starts.
TEST(UserMetrics, WaitsBySizeGangsCardsAndSlowdownByHand) {
  const auto jobs = Jobs(
      "a,0,10,1,1,5,false\n"
      "b,0,30,1,2,5,false\n"
      "c,10,60,2,4,5,false\n"
      "d,0,100,1,8,5,false\n"
      "e,0,10,1,1,5,false\n");
  ASSERT_EQ(jobs.size(), 5U);
  // Parsed in arrival order: a, b, d, e (t=0, file order), then c (t=10).
  ASSERT_EQ(jobs[2].id, "d");
  ASSERT_EQ(jobs[4].id, "c");
  const std::vector<double> start = {0, 30, 100, -1, 70};
  const std::vector<double> run = {10, 30, 100, -1, 60};
  const UserMetrics m = ComputeUserMetrics(jobs, start, run);
  EXPECT_EQ(m.by_size[0].jobs, 1);  // a (e never started)
  EXPECT_DOUBLE_EQ(m.by_size[0].mean_s, 0);
  EXPECT_EQ(m.by_size[1].jobs, 1);
  EXPECT_DOUBLE_EQ(m.by_size[1].mean_s, 30);
  EXPECT_EQ(m.by_size[2].jobs, 1);
  EXPECT_DOUBLE_EQ(m.by_size[2].mean_s, 60);
  EXPECT_EQ(m.by_size[3].jobs, 1);
  EXPECT_DOUBLE_EQ(m.by_size[3].p99_s, 100);
  EXPECT_EQ(m.by_size[4].jobs, 0);
  // Single pods a, b, d wait 0, 30, 100: p95 at rank 1.9 = 30 + 0.9 x 70, p99 at 1.98.
  EXPECT_EQ(m.single.jobs, 3);
  EXPECT_NEAR(m.single.mean_s, 130.0 / 3, 1e-9);
  EXPECT_NEAR(m.single.p95_s, 93, 1e-9);
  EXPECT_NEAR(m.single.p99_s, 98.6, 1e-9);
  EXPECT_EQ(m.gang.jobs, 1);
  EXPECT_DOUBLE_EQ(m.gang.mean_s, 60);
  // Cards 1, 2, 8, 8: (0 + 60 + 480 + 800) / 19; cumulative weights 1, 3, 11, 19 put the
  // card-weighted p95 (18.05) and p99 at 100 s.
  EXPECT_NEAR(m.card_weighted.mean_s, 1340.0 / 19, 1e-9);
  EXPECT_DOUBLE_EQ(m.card_weighted.p95_s, 100);
  EXPECT_DOUBLE_EQ(m.card_weighted.p99_s, 100);
  // Slowdowns 1, 2, 2, 2.
  EXPECT_DOUBLE_EQ(m.slowdown_mean, 1.75);
  EXPECT_DOUBLE_EQ(m.slowdown_p95, 2);
}

TEST(UserMetrics, PercentilesAndSizeClasses) {
  EXPECT_DOUBLE_EQ(WeightedPercentile({{0, 1}, {30, 2}, {60, 8}, {100, 8}}, 0.5), 60);  // 9.5 of 19
  EXPECT_DOUBLE_EQ(WeightedPercentile({{5, 1}, {1, 1}}, 0.5), 1);
  EXPECT_DOUBLE_EQ(WeightedPercentile({}, 0.5), 0);
  EXPECT_DOUBLE_EQ(Percentile({}, 0.5), 0);
  EXPECT_DOUBLE_EQ(Percentile({4, 0}, 0.5), 2);
  EXPECT_EQ(SizeClass(1), 0);
  EXPECT_EQ(SizeClass(2), 1);
  EXPECT_EQ(SizeClass(3), 2);
  EXPECT_EQ(SizeClass(4), 2);
  EXPECT_EQ(SizeClass(8), 3);
  EXPECT_EQ(SizeClass(9), 4);
  EXPECT_STREQ(SizeClassName(4), ">8");
  const UserMetrics none = ComputeUserMetrics({}, {}, {});
  EXPECT_EQ(none.card_weighted.jobs, 0);
  EXPECT_DOUBLE_EQ(none.slowdown_mean, 0);
}

// The scenario of GangQueueJobs (waits 0, 109, 0, 97; runs 100,
// 50, 100, 10; every pod 8 cards) through Simulate: the metrics are filled from the replay.
TEST(UserMetrics, FilledByTheReplay) {
  const Cluster c = GangQueueCluster();
  const auto jobs = GangQueueJobs();
  for (Policy p : AllPolicies()) {
    const auto r = RunPolicy(c, jobs, p);
    EXPECT_EQ(r.run_s, (std::vector<double>{100, 50, 100, 10})) << PolicyName(p);
    EXPECT_EQ(r.user.by_size[3].jobs, 4);
    EXPECT_DOUBLE_EQ(r.user.by_size[3].mean_s, 51.5);
    EXPECT_NEAR(r.user.single.mean_s, 97.0 / 3, 1e-9);
    EXPECT_DOUBLE_EQ(r.user.gang.mean_s, 109);
    EXPECT_DOUBLE_EQ(r.user.card_weighted.mean_s, (109.0 * 16 + 97 * 8) / 40);  // 63
    EXPECT_NEAR(r.user.slowdown_mean, (1 + 159.0 / 50 + 1 + 10.7) / 4, 1e-9);
    EXPECT_EQ(r.gangs_fit_rack, 1);  // a rack of two 8-card nodes holds the 2 x 8 gang
    EXPECT_EQ(r.gangs_fit_one_rack, 1);
    EXPECT_DOUBLE_EQ(r.gang_fit_rack_rate, 1.0);
    EXPECT_EQ(r.gangs_split_no_domain_room, 0);
  }
}

// The job log of the same scenario: one line per job and policy, in job order, with the starts and
// runs above; a job that never started (an 8-card pod on 4-card nodes is infeasible) logs -1.
TEST(Report, JobLogHasEveryJobUnderEveryPolicy) {
  const Cluster c = GangQueueCluster();
  const auto jobs = GangQueueJobs();
  const std::vector<PolicyResult> results = {RunPolicy(c, jobs, Policy::kRandom),
                                             RunPolicy(c, jobs, Policy::kHyperaccel)};
  EXPECT_EQ(FormatJobLog(jobs, results),
            "policy,job_id,tasks,cards_per_task,priority,arrival_s,start_s,run_s\n"
            "random,hold,1,8,5,0.000,0.000,100.000\n"
            "hyperaccel,hold,1,8,5,0.000,0.000,100.000\n"
            "random,gang,2,8,9,1.000,110.000,50.000\n"
            "hyperaccel,gang,2,8,9,1.000,110.000,50.000\n"
            "random,fill,1,8,1,2.000,2.000,100.000\n"
            "hyperaccel,fill,1,8,1,2.000,2.000,100.000\n"
            "random,late,1,8,1,3.000,100.000,10.000\n"
            "hyperaccel,late,1,8,1,3.000,100.000,10.000\n");
  ClusterConfig small;
  small.nodes = 1;
  small.cards_per_node = 4;
  auto four = Cluster::Create(small);
  ASSERT_TRUE(four.ok()) << four.status().message();
  const auto big = Jobs("big,0,10,1,8,0,false\n");
  const std::vector<PolicyResult> never = {RunPolicy(*four, big, Policy::kBinpack)};
  EXPECT_EQ(FormatJobLog(big, never),
            "policy,job_id,tasks,cards_per_task,priority,arrival_s,start_s,run_s\n"
            "binpack,big,1,8,0,0.000,-1.000,-1.000\n");
}

// Workload pods: one of 1 card, two of 2, one of 4, so shares 1/4, 1/2, 1/4. A node with f free
// cards leaves unusable, in expectation: f=1 -> 0.75 (2- and 4-card pods), f=2 -> 0.25 x 2,
// f=3 -> 0.25 x 3, f >= 4 -> 0.
TEST(Fgd, ExpectedFragmentationByHand) {
  const auto jobs = Jobs("a,0,10,1,1,5,false\nb,0,10,2,2,5,false\nc,0,10,1,4,5,false\n");
  const auto shares = PodSizeShares(jobs);
  EXPECT_DOUBLE_EQ(shares[1], 0.25);
  EXPECT_DOUBLE_EQ(shares[2], 0.5);
  EXPECT_DOUBLE_EQ(shares[4], 0.25);
  const ExpectedFragmentation f(shares, 8);
  EXPECT_DOUBLE_EQ(f.OfCount(0), 0);
  EXPECT_DOUBLE_EQ(f.OfCount(1), 0.75);
  EXPECT_DOUBLE_EQ(f.OfCount(2), 0.5);
  EXPECT_DOUBLE_EQ(f.OfCount(3), 0.75);
  EXPECT_DOUBLE_EQ(f.OfCount(4), 0);
  EXPECT_DOUBLE_EQ(f.OfCount(8), 0);
  // Linked: on an 8-card ring, free 0,1,2,4,6,7 is the arc 6-7-0-1-2 (5 cards) and card 4 alone.
  const Cluster c = MakeCluster(1);
  EXPECT_DOUBLE_EQ(f.OfLinked(c.graph(), 0b11010111), 0.75);
  EXPECT_DOUBLE_EQ(f.OfLinked(c.graph(), 0b01010101), 3.0);  // four lone cards
  EXPECT_DOUBLE_EQ(f.OfLinked(c.graph(), 0b00000110), 0.5);  // 1-2: only 4-card pods miss it
}

// Two nodes of 8, each its own domain. A 5-card and a 6-card pod leave 3 and 2 free. A 1-card pod
// s (until 11) then two 2-card pods p and q. binpack puts s on the fuller node (2 free -> 1), p
// takes the other (3 -> 1), and q waits for s to end (t=11). FGD puts s where fragmentation grows
// least: on the 3-free node (3 -> 2 keeps a 2-card slot), so p and q both start at once.
TEST(Fgd, KeepsSlotsForTheWorkloadWhereBinpackStrandsThem) {
  const Cluster c = MakeCluster(2);
  const auto jobs = Jobs(
      "big5,0,100,1,5,5,false\n"
      "big6,0,100,1,6,5,false\n"
      "s,1,10,1,1,5,false\n"
      "p,2,100,1,2,5,false\n"
      "q,3,100,1,2,5,false\n");
  const auto binpack = RunPolicy(c, jobs, Policy::kBinpack);
  EXPECT_DOUBLE_EQ(binpack.start_s[4], 11);
  const auto fgd = RunPolicy(c, jobs, Policy::kFgd);
  EXPECT_DOUBLE_EQ(fgd.start_s[3], 2);
  EXPECT_DOUBLE_EQ(fgd.start_s[4], 3);
  EXPECT_EQ(ParsePolicy("fgd").value(), Policy::kFgd);
}

// Two empty 8-card nodes, two long one-card jobs, then an 8-card job. The bridge's score for one
// card is 74 on an empty ring and on a 7-card arc alike; within that point the fuller node wins,
// so the second one-card job joins the first and the 8-card job starts at once, whatever the
// seed (a random tie-break would break the other node in about half of the seeds and make the
// 8-card job wait until 1000).
TEST(Engine, SmallPodsKeepAnEmptyNodeForAWholeNodePod) {
  const Cluster c = MakeCluster(2);
  const auto jobs = Jobs(
      "a,0,1000,1,1,5,false\n"
      "b,1,1000,1,1,5,false\n"
      "w,2,100,1,8,5,false\n");
  for (Policy p : {Policy::kExtender, Policy::kHyperaccel}) {
    for (uint64_t seed = 1; seed <= 16; ++seed) {
      SimOptions o;
      o.policy = p;
      o.seed = seed;
      const auto r = Simulate(c, jobs, o);
      EXPECT_EQ(r.started, 3) << PolicyName(p) << " seed " << seed;
      EXPECT_DOUBLE_EQ(r.start_s[2], 2) << PolicyName(p) << " seed " << seed;
    }
  }
}

// Two link domains of two 8-card nodes. `whole` (8 cards) fills one node; the one-card pod `one`
// then scores 74 on each of the three empty nodes, and within that point the node whose link
// domain is busier wins: the partner of `whole`. The other domain stays empty for the 2 x 8 gang,
// which starts at once inside it, whatever the seed (a random pick among the three nodes would
// put `one` in the other domain two times in three and split the gang across domains).
TEST(Engine, SinglePodsFillTheBusierLinkDomainAndLeaveOneWholeForAGang) {
  const Cluster c = MakeCluster(4, 2, 4);
  const auto jobs = Jobs(
      "whole,0,1000,1,8,5,false\n"
      "one,1,1000,1,1,5,false\n"
      "gang,2,100,2,8,5,false\n");
  for (Policy p : {Policy::kHyperaccel, Policy::kExtender}) {
    for (uint64_t seed = 1; seed <= 12; ++seed) {
      SimOptions o;
      o.policy = p;
      o.seed = seed;
      const auto r = Simulate(c, jobs, o);
      EXPECT_EQ(r.start_s, (std::vector<double>{0, 1, 2})) << PolicyName(p) << " seed " << seed;
      EXPECT_EQ(r.gangs_one_domain, 1) << PolicyName(p) << " seed " << seed;
    }
  }
}

// One 8-card node and one job shape, 1 x 3 cards: two are placed (6 cards), then every draw
// fails; the run stops after 5 failures in a row. The 2 free cards are unusable by 3-card pods.
TEST(Fill, StopsAfterConsecutiveFailuresAndCountsUnallocatableCards) {
  const Cluster c = MakeCluster(1);
  const auto jobs = Jobs("a,0,10,1,3,5,false\nb,0,10,1,3,5,false\n");
  for (Policy p : AllPolicies()) {
    SimOptions o;
    o.policy = p;
    const FillResult f = SimulateFill(c, jobs, o, 5);
    EXPECT_TRUE(f.ran);
    EXPECT_EQ(f.placed, 2) << PolicyName(p);
    EXPECT_EQ(f.draws, 7);
    EXPECT_EQ(f.allocated_cards, 6);
    EXPECT_EQ(f.free_cards, 2);
    EXPECT_DOUBLE_EQ(f.allocated_rate, 0.75);
    EXPECT_DOUBLE_EQ(f.first_failure_allocated_rate, 0.75);
    EXPECT_DOUBLE_EQ(f.first_failure_unallocatable_rate, 0.25);
    EXPECT_DOUBLE_EQ(f.first_failure_unallocatable_linked_rate, 0.25);
    EXPECT_DOUBLE_EQ(f.unallocatable_cards, 2);
    EXPECT_DOUBLE_EQ(f.unallocatable_rate, 0.25);
    EXPECT_DOUBLE_EQ(f.unallocatable_linked_cards, 2);
  }
  // The report gives unallocatable free cards in cards, not as a share rounded away.
  PolicyResult r = RunPolicy(c, jobs, Policy::kBinpack);
  r.fill = SimulateFill(c, jobs, SimOptions{}, 5);
  RunInfo run;
  run.workload = "test";
  const std::string md = FormatMarkdown(c.config(), run, {r});
  EXPECT_NE(md.find("| binpack | 2 | 75.0 % / 2.00 / 2.00 | 75.0 % / 2.00 / 2.00 |"), std::string::npos)
      << md;
  // Jobs that can never fit are not drawn: nothing to place, nothing drawn.
  const FillResult none = SimulateFill(c, Jobs("w,0,10,1,16,5,false\n"), SimOptions{}, 5);
  EXPECT_EQ(none.draws, 0);
  EXPECT_EQ(none.free_cards, 8);
}

TEST(Report, JsonCarriesEveryPolicyAndMetric) {
  const Cluster c = MakeCluster(4, 2, 4);
  const auto jobs = Jobs("a,0,10,2,4,5,false\nb,1,10,1,2,5,true\n");
  std::vector<PolicyResult> results;
  for (Policy p : AllPolicies()) results.push_back(RunPolicy(c, jobs, p));
  RunInfo run;
  run.workload = "test";
  run.jobs = 2;
  const auto doc = nlohmann::json::parse(FormatJson(c.config(), run, results));
  EXPECT_EQ(doc["schema"], "hyperaccel.ai/sim/v1");
  EXPECT_EQ(doc["cluster"]["nodes"], 4);
  ASSERT_EQ(doc["policies"].size(), AllPolicies().size());
  for (const auto& p : doc["policies"]) {
    for (const char* key : {"policy", "linked_rate", "gang_domain_rate", "gang_rack_rate", "wait_mean_s",
                            "wait_p95_s", "utilization", "fragmentation_mean", "never_started", "series",
                            "gang_fit_rack_rate", "gangs_split_no_domain_room", "user"})
      EXPECT_TRUE(p.contains(key)) << key;
    for (const char* key : {"card_weighted_wait", "wait_by_cards_per_task", "single_pod_wait", "gang_wait",
                            "slowdown_mean", "slowdown_p95"})
      EXPECT_TRUE(p["user"].contains(key)) << key;
    EXPECT_TRUE(p["user"]["wait_by_cards_per_task"].contains("3-4"));
    EXPECT_FALSE(p.contains("fill"));  // only when the fill experiment ran
    EXPECT_EQ(p["started"], 2);
  }
  const std::string md = FormatMarkdown(c.config(), run, results);
  EXPECT_NE(md.find("| hyperaccel | 100.0 % |"), std::string::npos) << md;
  EXPECT_NE(md.find("| card-weighted | 1 card |"), std::string::npos) << md;
  EXPECT_EQ(md.find("Fill experiment"), std::string::npos);
  for (auto& r : results) r.fill = SimulateFill(c, jobs, SimOptions{}, 3);
  EXPECT_NE(FormatMarkdown(c.config(), run, results).find("Fill experiment"), std::string::npos);
  const auto filled = nlohmann::json::parse(FormatJson(c.config(), run, results));
  EXPECT_EQ(filled["policies"][0]["fill"]["consecutive_failures"], 3);
  // Series CSV: a NaN where nothing started in the interval, never an empty cell.
  const std::string csv = FormatSeriesCsv(results.back());
  EXPECT_EQ(
      csv.rfind("time_s,utilization,fragmentation,pending,largest_free_linked,gang_fit_domain_rate,", 0), 0U);
  EXPECT_EQ(csv.find(",,"), std::string::npos);
}

// ---- the binary -------------------------------------------------------------------------------

TEST(SimCli, BadTraceIsAClearErrorWithTheLine) {
  const auto dir = std::filesystem::temp_directory_path() / ("sim-cli-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto trace = (dir / "bad.csv").string();
  std::ofstream(trace) << kHeader << "a,0,10,1,1,0,false\nb,0,-5,1,1,0,false\n";
  const auto r = testing::RunBinary("hyperaccel-sim", {"--trace=" + trace, "--nodes=4"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad.csv:3: duration_s"), std::string::npos) << r.err;
  const auto none = testing::RunBinary("hyperaccel-sim", {"--nodes=4"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("--trace FILE or --synthetic SEED"), std::string::npos);
  const auto help = testing::RunBinary("hyperaccel-sim", {"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--policy"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(SimCli, WritesResultsAndPlots) {
  const auto dir = std::filesystem::temp_directory_path() / ("sim-out-" + std::to_string(::getpid()));
  const auto r =
      testing::RunBinary("hyperaccel-sim", {"--synthetic=3", "--jobs=800", "--nodes=32", "--nodes-per-rack=8",
                                            "--load=1.0", "--format=json", "--results=" + dir.string(),
                                            "--write-trace=" + (dir / "t.csv").string(),
                                            "--job-log=" + (dir / "jobs.csv").string(), "--log-level=warn"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto doc = nlohmann::json::parse(r.out);
  EXPECT_EQ(doc["policies"].size(), AllPolicies().size());
  EXPECT_EQ(doc["run"]["jobs"], 800);
  for (const char* f : {"results.md", "results.json", "series-hyperaccel.csv", "series-random.csv", "t.csv"})
    EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;
  {  // the job log: a header, then every job under each of the six policies
    std::ifstream log(dir / "jobs.csv");
    std::string line;
    int lines = 0;
    while (std::getline(log, line)) ++lines;
    EXPECT_EQ(lines, 1 + 800 * static_cast<int>(AllPolicies().size()));
  }
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {  // NOLINT(concurrency-mt-unsafe)
    for (const char* f : {"utilization.png", "fragmentation.png", "pending.png", "locality.png",
                          "locality-time.png", "wait-1.png", "wait-5-8.png"})
      EXPECT_GT(std::filesystem::file_size(dir / f), 1000U) << f;
  }
  // The written trace replays to the same result.
  const auto again = testing::RunBinary(
      "hyperaccel-sim", {"--trace=" + (dir / "t.csv").string(), "--seed=3", "--nodes=32",
                         "--nodes-per-rack=8", "--policy=hyperaccel", "--format=json", "--log-level=warn"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const auto doc2 = nlohmann::json::parse(again.out);
  EXPECT_EQ(doc2["policies"][0]["started"], doc["policies"][5]["started"]);
  EXPECT_NEAR(doc2["policies"][0]["linked_rate"].get<double>(),
              doc["policies"][5]["linked_rate"].get<double>(), 0.01);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hyperaccel::sim
