// A tiny stand-in for Volcano's allocate action, speaking to a Bridge with real bodies: for each
// task it predicates every node, prioritizes the nodes that pass, takes the best score (first
// node on ties, like a deterministic Volcano), and sends the allocate event. Node Idle and task
// lists follow the session's allocations the way Volcano's session NodeInfo does.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hyperaccel/bridge/service.h"
#include "synthetic.h"

namespace hyperaccel::bridge::testing {

class MiniVolcano {
 public:
  MiniVolcano(Bridge* bridge, std::vector<synthetic::NodeSpec> nodes)
      : bridge_(bridge), nodes_(std::move(nodes)), on_node_(nodes_.size()) {
    for (auto& n : nodes_) n.idle = n.cards - std::popcount(n.busy | n.unhealthy);
  }

  void OpenSession(const std::vector<synthetic::JobSpec>& jobs) {
    ASSERT_EQ(bridge_->Handle(Verb::kOnSessionOpen, JsonBuffer(synthetic::SnapshotBody(nodes_, jobs))).status,
              200);
  }

  // Returns the chosen node's name, "" when no node passes.
  std::string Place(synthetic::TaskSpec task) {
    std::vector<size_t> passing;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].idle < task.cards) continue;  // Volcano's own resource check comes first
      Reply r = bridge_->Handle(Verb::kPredicate,
                                JsonBuffer(synthetic::PredicateBody(task, nodes_[i], on_node_[i])));
      EXPECT_EQ(r.status, 200) << r.error;
      // NOLINTNEXTLINE(readability-container-size-empty): json::empty() is false for every string
      if (nlohmann::json::parse(r.body)["status"] == "") passing.push_back(i);
    }
    if (passing.empty()) return "";
    size_t best = passing[0];
    if (passing.size() > 1) {
      std::vector<synthetic::NodeSpec> candidates;
      std::vector<std::vector<synthetic::TaskSpec>> tasks;
      for (size_t i : passing) {
        candidates.push_back(nodes_[i]);
        tasks.push_back(on_node_[i]);
      }
      Reply r =
          bridge_->Handle(Verb::kPrioritize, JsonBuffer(synthetic::PrioritizeBody(task, candidates, tasks)));
      EXPECT_EQ(r.status, 200) << r.error;
      const auto scores = nlohmann::json::parse(r.body)["nodeScore"];
      double top = -1;
      for (size_t i : passing) {
        const double s = scores.value(nodes_[i].name, 0.0);
        if (s > top) {
          top = s;
          best = i;
        }
      }
    }
    task.node = nodes_[best].name;
    task.status = 2;
    Reply r = bridge_->Handle(Verb::kAllocate, JsonBuffer(synthetic::TaskEventBody(task)));
    EXPECT_EQ(r.status, 200) << r.error;
    nodes_[best].idle -= task.cards;
    on_node_[best].push_back(task);
    return task.node;
  }

  const synthetic::NodeSpec* Find(const std::string& name) const {
    for (const auto& n : nodes_) {
      if (n.name == name) return &n;
    }
    return nullptr;
  }

 private:
  Bridge* bridge_;
  std::vector<synthetic::NodeSpec> nodes_;
  std::vector<std::vector<synthetic::TaskSpec>> on_node_;
};

}  // namespace hyperaccel::bridge::testing
