// The verbs end to end without HTTP: every fixture gets its documented answer; session state.
#include "hyperaccel/bridge/service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "fixtures.h"
#include "synthetic.h"

namespace hyperaccel::bridge {
namespace {

using Json = nlohmann::json;

Json Call(Bridge& b, Verb v, const std::string& body) {
  Reply r = b.Handle(v, JsonBuffer(body));
  EXPECT_EQ(r.status, 200) << VerbName(v) << ": " << r.error;
  return r.status == 200 ? Json::parse(r.body) : Json();
}

TEST(ServiceFixture, EveryFixtureGetsItsDocumentedAnswer) {
  BRIDGE_FIXTURE(open, "onSessionOpen.request.json");
  BRIDGE_FIXTURE(predicate, "predicate.request.json");
  BRIDGE_FIXTURE(pass, "predicate.response.pass.json");
  BRIDGE_FIXTURE(prioritize, "prioritize.request.json");
  BRIDGE_FIXTURE(scores, "prioritize.response.json");
  BRIDGE_FIXTURE(allocate, "allocateFunc.request.json");
  BRIDGE_FIXTURE(allocated, "allocateFunc.response.json");
  BRIDGE_FIXTURE(close, "onSessionClose.request.json");
  BRIDGE_FIXTURE(enqueue, "jobEnqueueable.request.json");
  BRIDGE_FIXTURE(enqueued, "jobEnqueueable.response.json");
  BRIDGE_FIXTURE(ready, "jobReady.response.json");
  BRIDGE_FIXTURE(queue, "queueOverused.request.json");
  BRIDGE_FIXTURE(overused, "queueOverused.response.json");
  Bridge b({}, nullptr);
  EXPECT_EQ(Call(b, Verb::kOnSessionOpen, open), Json::object());
  EXPECT_EQ(Call(b, Verb::kPredicate, predicate), Json::parse(pass));
  // Count-only nodes (the fixtures carry no topology annotation): best fit, 100 × used-after / allocatable.
  EXPECT_EQ(Call(b, Verb::kPrioritize, prioritize), Json::parse(scores));
  EXPECT_EQ(Call(b, Verb::kAllocate, allocate), Json::parse(allocated));
  EXPECT_EQ(Call(b, Verb::kDeallocate, allocate), Json::parse(allocated));
  EXPECT_EQ(Call(b, Verb::kJobEnqueueable, enqueue), Json::parse(enqueued));
  EXPECT_EQ(Call(b, Verb::kJobReady, enqueue), Json::parse(ready));
  EXPECT_EQ(Call(b, Verb::kQueueOverused, queue), Json::parse(overused));
  EXPECT_EQ(Call(b, Verb::kOnSessionClose, close), Json::object());
}

TEST(ServiceFixture, ReleaseIdleMemoryKeepsAnswers) {
  BRIDGE_FIXTURE(predicate, "predicate.request.json");
  BRIDGE_FIXTURE(pass, "predicate.response.pass.json");
  Bridge b({}, nullptr);
  EXPECT_EQ(Call(b, Verb::kPredicate, predicate), Json::parse(pass));
  EXPECT_EQ(b.ReleaseIdleMemory(std::chrono::steady_clock::now() - std::chrono::hours(1)), 0u);
  EXPECT_EQ(b.ReleaseIdleMemory(std::chrono::steady_clock::now()), 1u);
  EXPECT_EQ(Call(b, Verb::kPredicate, predicate), Json::parse(pass));
}

TEST(ServiceFixture, PredicateUnschedulableMatchesFixtureText) {
  BRIDGE_FIXTURE(predicate, "predicate.request.json");
  BRIDGE_FIXTURE(prioritize, "prioritize.request.json");
  BRIDGE_FIXTURE(expected, "predicate.response.unschedulable.json");
  // The task of predicate.request.json against fpga-node-1 with its last 4 cards taken.
  Json body = Json::parse(predicate);
  Json node = Json::parse(prioritize)["nodes"][0];
  node["Idle"]["ScalarResources"]["hyperaccel.ai/fpga"] = 0;
  body["node"] = node;
  Bridge b({}, nullptr);
  EXPECT_EQ(Call(b, Verb::kPredicate, body.dump()), Json::parse(expected));
}

TEST(ServiceFixture, PredicateNeverFitsIsCode3) {
  BRIDGE_FIXTURE(predicate, "predicate.request.json");
  Json body = Json::parse(predicate);
  body["node"]["Allocatable"]["ScalarResources"]["hyperaccel.ai/fpga"] = 2000;
  body["node"]["Idle"]["ScalarResources"]["hyperaccel.ai/fpga"] = 2000;
  Bridge b({}, nullptr);
  Json r = Call(b, Verb::kPredicate, body.dump());
  EXPECT_EQ(r["code"], 3);
  EXPECT_EQ(r["status"], "hyperaccel.ai/fpga: 4 requested, fpga-node-3 has 2");
}

TEST(ServiceFixture, PreemptableAbstainsWhenTheEvictorAlreadyFits) {
  BRIDGE_FIXTURE(open, "onSessionOpen.request.json");
  BRIDGE_FIXTURE(preempt, "preemptable.request.json");
  Bridge b({}, nullptr);
  Call(b, Verb::kOnSessionOpen, open);
  // fpga-node-1 has 4 idle cards in the snapshot: the 4-card evictor fits without evictions.
  EXPECT_EQ(Call(b, Verb::kPreemptable, preempt), Json::parse(R"({"status":0,"victims":[]})"));
}

TEST(ServiceFixture, PreemptableEchoesTheDocumentedVictim) {
  BRIDGE_FIXTURE(open, "onSessionOpen.request.json");
  BRIDGE_FIXTURE(allocate, "allocateFunc.request.json");
  BRIDGE_FIXTURE(preempt, "preemptable.request.json");
  BRIDGE_FIXTURE(expected, "preemptable.response.json");
  Bridge b({}, nullptr);
  Call(b, Verb::kOnSessionOpen, open);
  // Another pending task of the job takes fpga-node-1's last 4 cards in this session...
  Json event = Json::parse(allocate);
  event["task"]["UID"] = "other-task";
  event["task"]["NodeName"] = "fpga-node-1";
  Call(b, Verb::kAllocate, event.dump());
  // ...so the evictor needs fpga-train-worker-0's cards: the victim is echoed verbatim.
  Reply r = b.Handle(Verb::kPreemptable, JsonBuffer(preempt));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Json::parse(r.body), Json::parse(expected));
  // The bytes are copied from the request (its indentation survives), not re-encoded.
  EXPECT_NE(r.body.find("\"UID\": \"6e0f1a2b-3c4d-4e5f-8a6b-7c8d9e0f1a2b\""), std::string::npos);
  // Reclaimable answers the same way.
  EXPECT_EQ(Call(b, Verb::kReclaimable, preempt), Json::parse(expected));
  // Once the tentative allocation is rolled back, the extender is indifferent again.
  Call(b, Verb::kDeallocate, event.dump());
  EXPECT_EQ(Call(b, Verb::kPreemptable, preempt)["status"], 0);
}

TEST(Service, MalformedIsA400WithTheReason) {
  Bridge b({}, nullptr);
  for (Verb v : kAllVerbs) {
    Reply r = b.Handle(v, JsonBuffer("{\"task\": [1,2"));
    EXPECT_EQ(r.status, 400) << VerbName(v);
    EXPECT_FALSE(r.error.empty());
    EXPECT_TRUE(Json::parse(r.body).contains("error"));
  }
  EXPECT_EQ(b.Handle(Verb::kOnSessionClose, JsonBuffer("")).status, 200);  // an empty close is fine
}

TEST(Service, TaskWithoutCardsPassesAndGetsNoScores) {
  synthetic::TaskSpec t;
  t.cards = 0;
  synthetic::NodeSpec n;
  n.name = "n1";
  n.busy = 0xff;
  Bridge b({}, nullptr);
  EXPECT_EQ(Call(b, Verb::kPredicate, synthetic::PredicateBody(t, n, {}))["code"], 0);
  EXPECT_EQ(Call(b, Verb::kPrioritize, synthetic::PrioritizeBody(t, {n, n}, {})),
            Json::parse(R"({"nodeScore":{},"errorMessage":""})"));
}

// Content after the root object is an error (400 naming it), not silently dropped: a body cut
// and pasted from two requests, or smuggled bytes, must not be judged by its first half.
TEST(Service, TrailingGarbageIsA400) {
  synthetic::TaskSpec t;
  synthetic::NodeSpec n;
  n.name = "n1";
  const std::string body = synthetic::PredicateBody(t, n, {});
  Bridge b({}, nullptr);
  EXPECT_EQ(b.Handle(Verb::kPredicate, JsonBuffer(body + " \n\t")).status, 200);  // whitespace is fine
  for (const std::string& tail : {std::string("x"), std::string("{}"), std::string(" 1"), std::string("]")}) {
    for (Verb v : kAllVerbs) {
      const std::string root = v == Verb::kPredicate ? body : "{}";
      Reply r = b.Handle(v, JsonBuffer(root + tail));
      EXPECT_EQ(r.status, 400) << VerbName(v) << " tail '" << tail << "'";
      EXPECT_NE(r.error.find("after the JSON object"), std::string::npos) << r.error;
    }
  }
}

// A task asking for a negative number of cards is refused (code 3, never fits) with a reason that
// says so, rather than passing as a task that needs no cards.
TEST(Service, NegativeCardRequestIsRefused) {
  synthetic::TaskSpec t;
  t.cards = 2;
  synthetic::NodeSpec n;
  n.name = "n1";
  Json body = Json::parse(synthetic::PredicateBody(t, n, {}));
  body["task"]["Resreq"]["ScalarResources"]["hyperaccel.ai/fpga"] = -2000;
  Bridge b({}, nullptr);
  const Json answer = Call(b, Verb::kPredicate, body.dump());
  EXPECT_EQ(answer["code"], kUnschedulableForever);
  EXPECT_NE(answer["status"].get<std::string>().find("negative"), std::string::npos) << answer;
  EXPECT_NE(answer["status"].get<std::string>().find("-2"), std::string::npos) << answer;
  // A fractional negative request (-1 milli-card) is just as negative.
  body["task"]["Resreq"]["ScalarResources"]["hyperaccel.ai/fpga"] = -1;
  EXPECT_EQ(Call(b, Verb::kPredicate, body.dump())["code"], kUnschedulableForever);
  // Prioritize gives such a task no scores; allocate events for it record nothing.
  synthetic::TaskSpec event = t;
  event.uid = "negative";
  event.node = "n1";
  Json alloc = Json::parse(synthetic::TaskEventBody(event));
  alloc["task"]["Resreq"]["ScalarResources"]["hyperaccel.ai/fpga"] = -2000;
  Call(b, Verb::kAllocate, alloc.dump());
  EXPECT_EQ(b.state().Stats().tentative, 0u);
}

TEST(Service, MetricsCountRequestsLatencyAndErrors) {
  metrics::Registry reg;
  Bridge b({}, &reg);
  synthetic::TaskSpec t;
  synthetic::NodeSpec n;
  n.name = "n1";
  b.Handle(Verb::kPredicate, JsonBuffer(synthetic::PredicateBody(t, n, {})));
  b.Handle(Verb::kPredicate, JsonBuffer("nope"));
  const std::string text = reg.Render();
  EXPECT_NE(text.find(R"(hyperaccel_bridge_requests_total{verb="predicate",code="200"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(hyperaccel_bridge_requests_total{verb="predicate",code="400"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(hyperaccel_bridge_errors_total{verb="predicate",kind="malformed"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(hyperaccel_bridge_request_seconds_count{verb="predicate"} 2)"), std::string::npos);
}

}  // namespace
}  // namespace hyperaccel::bridge
