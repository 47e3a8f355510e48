// Generated clusters of 1, 100, 1000 and 5000 nodes through every verb.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "hyperaccel/bridge/service.h"
#include "synthetic.h"

namespace hyperaccel::bridge {
namespace {

using Json = nlohmann::json;

class ClusterSize : public ::testing::TestWithParam<int> {};

TEST_P(ClusterSize, SnapshotPredicatePrioritizeAllocate) {
  const int size = GetParam();
  const int pods = size >= 5000 ? 1 : (size >= 1000 ? 2 : 4);
  synthetic::Cluster c = synthetic::MakeCluster(size, pods, 7);
  Bridge b({}, nullptr);
  Reply open = b.Handle(Verb::kOnSessionOpen, JsonBuffer(synthetic::SnapshotBody(c.nodes, c.jobs)));
  ASSERT_EQ(open.status, 200) << open.error;
  EXPECT_EQ(b.state().Stats().snapshot_nodes, static_cast<size_t>(size));

  synthetic::TaskSpec task;
  task.uid = "pending-0";
  task.job = "ml-team/new-job";
  task.name = "new-job-worker-0";
  task.cards = 6;
  task.require_linked = true;
  int expected_fit = 0;
  for (const auto& n : c.nodes) expected_fit += (n.cards - std::popcount(n.busy)) >= 6 ? 1 : 0;

  // Predicate on a sample of nodes: a ring with a contiguous busy arc keeps its free arc linked.
  for (size_t i = 0; i < c.nodes.size(); i += std::max<size_t>(1, c.nodes.size() / 20)) {
    Reply r =
        b.Handle(Verb::kPredicate, JsonBuffer(synthetic::PredicateBody(task, c.nodes[i], c.node_tasks[i])));
    ASSERT_EQ(r.status, 200) << r.error;
    const int free = c.nodes[i].cards - std::popcount(c.nodes[i].busy);
    EXPECT_EQ(Json::parse(r.body)["code"], free >= 6 ? 0 : 2) << c.nodes[i].name;
  }

  Reply pr = b.Handle(Verb::kPrioritize, JsonBuffer(synthetic::PrioritizeBody(task, c.nodes, c.node_tasks)));
  ASSERT_EQ(pr.status, 200) << pr.error;
  const Json scores = Json::parse(pr.body)["nodeScore"];
  EXPECT_EQ(static_cast<int>(scores.size()), expected_fit);
  for (const auto& [name, score] : scores.items()) {
    EXPECT_GT(score.get<double>(), 0) << name;
    EXPECT_LE(score.get<double>(), 100) << name;
  }

  task.node = c.nodes[0].name;
  EXPECT_EQ(b.Handle(Verb::kAllocate, JsonBuffer(synthetic::TaskEventBody(task))).status, 200);
  EXPECT_EQ(b.state().Stats().tentative, 1u);
  EXPECT_EQ(b.Handle(Verb::kOnSessionClose, JsonBuffer("{}")).status, 200);
  EXPECT_EQ(b.state().Stats().tentative, 0u);
}

INSTANTIATE_TEST_SUITE_P(Nodes, ClusterSize, ::testing::Values(1, 100, 1000, 5000));

TEST(Cluster, RepeatedSessionsReuseDecodedTopologies) {
  synthetic::Cluster c = synthetic::MakeCluster(50, 2, 3);
  const std::string body = synthetic::SnapshotBody(c.nodes, c.jobs);
  Bridge b({}, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(b.Handle(Verb::kOnSessionOpen, JsonBuffer(body)).status, 200);
  // Nodes with the same busy cards and domain share an annotation text; never more than one per node.
  EXPECT_LE(b.state().Stats().topologies, 50u);
  EXPECT_GT(b.state().Stats().topologies, 0u);
}

}  // namespace
}  // namespace hyperaccel::bridge
