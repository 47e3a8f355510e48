// Parsing Volcano bodies: fixtures, tolerance (null, unknown keys, doubles), and clear errors.
#include "hyperaccel/bridge/wire.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "fixtures.h"
#include "synthetic.h"

namespace hyperaccel::bridge {
namespace {

using Json = nlohmann::json;

ParseOptions Opts(bool node_tasks = false) {
  ParseOptions o;
  o.node_tasks = node_tasks;
  return o;
}

TEST(WireFixture, Predicate) {
  BRIDGE_FIXTURE(text, "predicate.request.json");
  auto args = ParsePredicate(JsonBuffer(text), Opts());
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_EQ(args->task.uid, "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d");
  EXPECT_EQ(args->task.job, "ml-team/fpga-infer-9b1d2c3e-4f50-4a61-8b72-c3d4e5f60718");
  EXPECT_EQ(args->task.cards, 4);
  EXPECT_EQ(args->task.status, 1);
  EXPECT_EQ(args->task.priority, 1000);
  EXPECT_FALSE(args->task.require_linked);
  EXPECT_FALSE(args->task.spot);
  EXPECT_EQ(args->node.name, "fpga-node-3");
  EXPECT_EQ(args->node.allocatable_cards, 8);
  EXPECT_EQ(args->node.idle_cards, 8);
  EXPECT_TRUE(args->node.topology.empty());
  EXPECT_TRUE(args->node.tasks.empty());
}

TEST(WireFixture, PrioritizeWithNodeTasks) {
  BRIDGE_FIXTURE(text, "prioritize.request.json");
  auto args = ParsePrioritize(JsonBuffer(text), Opts(true));
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  ASSERT_EQ(args->nodes.size(), 3u);
  EXPECT_EQ(args->nodes[0].name, "fpga-node-1");
  EXPECT_EQ(args->nodes[0].idle_cards, 4);
  ASSERT_EQ(args->nodes[0].tasks.size(), 1u);  // the device-plugin pod holds no cards
  EXPECT_EQ(args->nodes[0].tasks[0].job, "ml-team/fpga-train-3f6c1f0e-8d2a-4b57-9c1e-6a0b5d2e7f11");
  EXPECT_EQ(args->nodes[0].tasks[0].cards, 4);
  EXPECT_EQ(args->nodes[2].idle_cards, 8);
}

TEST(WireFixture, PreemptableEchoesEvicteeText) {
  BRIDGE_FIXTURE(text, "preemptable.request.json");
  const JsonBuffer body(text);  // `raw` points into the body
  auto args = ParseEvict(body, Opts());
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_EQ(args->evictor.priority, 1000);
  ASSERT_EQ(args->evictees.size(), 1u);
  const Task& victim = args->evictees[0];
  EXPECT_EQ(victim.name, "fpga-train-worker-0");
  EXPECT_EQ(victim.node_name, "fpga-node-1");
  EXPECT_EQ(victim.cards, 4);
  EXPECT_EQ(victim.status, 32);
  // `raw` is the evictee exactly as sent: same JSON as the request's evictees[0].
  EXPECT_EQ(Json::parse(victim.raw), Json::parse(text)["evictees"][0]);
  EXPECT_EQ(victim.raw.front(), '{');
  EXPECT_EQ(victim.raw.back(), '}');
}

TEST(WireFixture, AllocateEvent) {
  BRIDGE_FIXTURE(text, "allocateFunc.request.json");
  auto args = ParseTaskEvent(JsonBuffer(text), Opts());
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_EQ(args->task.status, 2);
  EXPECT_EQ(args->task.node_name, "fpga-node-3");
  EXPECT_EQ(args->task.cards, 4);
}

TEST(WireFixture, Snapshot) {
  BRIDGE_FIXTURE(text, "onSessionOpen.request.json");
  auto snap = ParseSnapshot(JsonBuffer(text), Opts());
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  ASSERT_EQ(snap->nodes.size(), 3u);
  ASSERT_EQ(snap->jobs.size(), 2u);
  int pending = 0, placed = 0;
  for (const auto& j : snap->jobs) {
    for (const auto& t : j.tasks) {
      EXPECT_EQ(t.cards, 4);
      (t.node_name.empty() ? pending : placed)++;
    }
    if (j.uid.find("fpga-infer") != std::string::npos) {
      EXPECT_EQ(j.min_available, 3);
    }
  }
  EXPECT_EQ(pending, 3);
  EXPECT_EQ(placed, 2);
}

TEST(WireFixture, EnvelopesAndClose) {
  BRIDGE_FIXTURE(close, "onSessionClose.request.json");
  EXPECT_TRUE(ParseSessionClose(JsonBuffer(close)).ok());
  BRIDGE_FIXTURE(job, "jobEnqueueable.request.json");
  EXPECT_TRUE(ParseEnvelope(JsonBuffer(job), "job").ok());
  BRIDGE_FIXTURE(queue, "queueOverused.request.json");
  EXPECT_TRUE(ParseEnvelope(JsonBuffer(queue), "queue").ok());
  EXPECT_FALSE(ParseEnvelope(JsonBuffer(queue), "job").ok());
}

TEST(WireFixture, EveryTruncationIsAnErrorNotACrash) {
  BRIDGE_FIXTURE(text, "predicate.request.json");
  const std::string compact = Json::parse(text).dump();
  for (size_t n = 0; n < compact.size(); n += 7) {
    auto r = ParsePredicate(JsonBuffer(compact.substr(0, n)), Opts());
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
  }
}

TEST(Wire, NullAcceptedForEveryObjectAndArray) {
  const std::string body =
      R"({"task":{"UID":"u1","Job":null,"Name":null,"Resreq":{"ScalarResources":null},"NodeName":null,)"
      R"("Pod":{"metadata":{"labels":null,"annotations":null},"spec":null},"NumaInfo":null,"LastTransaction":null},)"
      R"("node":{"Name":"n1","Node":{"metadata":null},"Idle":null,"Allocatable":{"ScalarResources":null},"Tasks":null}})";
  auto args = ParsePredicate(JsonBuffer(body), Opts());
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_EQ(args->task.cards, 0);
  EXPECT_FALSE(args->node.idle_cards.has_value());
  auto pr = ParsePrioritize(JsonBuffer(R"({"task":{"UID":"u"},"nodes":null})"), Opts(true));
  ASSERT_TRUE(pr.ok());
  EXPECT_TRUE(pr->nodes.empty());
  auto ev = ParseEvict(JsonBuffer(R"({"evictor":{"UID":"u"},"evictees":null})"), Opts());
  ASSERT_TRUE(ev.ok());
  auto snap =
      ParseSnapshot(JsonBuffer(R"({"Jobs":null,"Nodes":null,"Queues":null,"NodeList":null})"), Opts());
  ASSERT_TRUE(snap.ok());
}

TEST(Wire, UnknownKeysIgnoredAndNumbersAreDoubles) {
  const std::string body =
      R"({"future":[1,{"x":null}],"task":{"UID":"u1","NewField":{"a":[true,false]},"Priority":1e3,)"
      R"("Resreq":{"MilliCPU":4000.5,"ScalarResources":{"hyperaccel.ai/fpga":4000.0,"pods":1}}},)"
      R"("node":{"Name":"n1","UnassignedNumaPods":{"{\"uid\":\"x\"}":1},)"
      R"("Idle":{"ScalarResources":{"hyperaccel.ai/fpga":1.5e3}},"Allocatable":{"ScalarResources":{"hyperaccel.ai/fpga":8e3}}}})";
  auto args = ParsePredicate(JsonBuffer(body), Opts());
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_EQ(args->task.cards, 4);
  EXPECT_EQ(args->task.priority, 1000);
  EXPECT_EQ(args->node.idle_cards, 2);  // 1500 milli-cards round up
  EXPECT_EQ(args->node.allocatable_cards, 8);
}

TEST(Wire, ConfigurableResourceName) {
  ParseOptions o;
  o.resource = "example.com/card";
  auto args = ParsePredicate(
      JsonBuffer(
          R"({"task":{"Resreq":{"ScalarResources":{"example.com/card":2000,"hyperaccel.ai/fpga":8000}}},"node":{"Name":"n"}})"),
      o);
  ASSERT_TRUE(args.ok());
  EXPECT_EQ(args->task.cards, 2);
}

TEST(Wire, WrongTypesNameTheField) {
  struct Case {
    const char* body;
    const char* path;
  };
  const Case cases[] = {
      {R"({"task":{"UID":5},"node":{"Name":"n"}})", "task.UID"},
      {R"({"task":{"Resreq":{"ScalarResources":"4"}},"node":{"Name":"n"}})", "task.Resreq.ScalarResources"},
      {R"({"task":{"Resreq":{"ScalarResources":{"hyperaccel.ai/fpga":"4"}}},"node":{"Name":"n"}})",
       "task.Resreq.ScalarResources.hyperaccel.ai/fpga"},
      {R"({"task":[],"node":{"Name":"n"}})", "task"},
      {R"({"task":{},"node":{"Name":"n","Node":{"metadata":{"labels":[]}}}})", "node.Node.metadata.labels"},
      {R"({"task":{"Status":"Pending"},"node":{"Name":"n"}})", "task.Status"},
  };
  for (const auto& c : cases) {
    auto r = ParsePredicate(JsonBuffer(c.body), Opts());
    ASSERT_FALSE(r.ok()) << c.body;
    EXPECT_NE(r.status().message().find(c.path), std::string::npos) << r.status().message();
  }
}

TEST(Wire, MalformedBodies) {
  for (const char* body :
       {"", "{", "[]", "null", "nul", "{\"task\":", "{\"task\":{}", "\"x\"", "{\"task\":{}}",
        "{\"task\":{\"UID\":\"\\uZZZZ\"},\"node\":{\"Name\":\"n\"}}", "\xff\xfe"}) {
    auto r = ParsePredicate(JsonBuffer(body), Opts());
    EXPECT_FALSE(r.ok()) << "accepted: " << body;
    if (!r.ok()) {
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  EXPECT_FALSE(ParseTaskEvent(JsonBuffer("{}"), Opts()).ok());
  EXPECT_FALSE(ParseEvict(JsonBuffer(R"({"evictor":{},"evictees":[1]})"), Opts()).ok());
}

TEST(Wire, WaitSeconds) {
  const std::vector<std::pair<std::string, double>> good = {
      {"0", 0},        {"600", 600},   {"90.5", 90.5}, {"90s", 90},    {"30m", 1800}, {"1h", 3600},
      {"1h30m", 5400}, {"2m30s", 150}, {"500ms", 0.5}, {"1.5h", 5400}, {"0s", 0},     {"720h", 720 * 3600.0}};
  for (const auto& [text, want] : good) {
    auto got = ParseWaitSeconds(text);
    ASSERT_TRUE(got.has_value()) << text;
    EXPECT_DOUBLE_EQ(*got, want) << text;
  }
  for (const char* bad : {"", "-5", "+5", "-1m", "5d", "1h30", "m", "abc", "1 h", "nan", "inf", "721h",
                          "1e400", " 60", "60 ", "1hh"}) {
    EXPECT_FALSE(ParseWaitSeconds(bad).has_value()) << bad;
  }
}

TEST(Wire, LinkDomainWaitAnnotations) {
  synthetic::NodeSpec n;
  n.name = "lpu-1";
  synthetic::TaskSpec t;
  t.uid = "u1";
  t.job = "ml-team/train";
  t.name = "train-worker-0";
  t.domain_wait = "30m";
  auto args = ParsePredicate(JsonBuffer(synthetic::PredicateBody(t, n, {})), Opts());
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_DOUBLE_EQ(args->task.domain_wait_s, 1800);
  EXPECT_TRUE(args->task.bad_domain_wait.empty());

  // An unreadable value is not a malformed request: the wait stays unset and the value is kept
  // for the bridge's warning.
  t.domain_wait = "soon";
  args = ParsePredicate(JsonBuffer(synthetic::PredicateBody(t, n, {})), Opts());
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_LT(args->task.domain_wait_s, 0);
  EXPECT_EQ(args->task.bad_domain_wait, "soon");

  synthetic::JobSpec job = synthetic::LinkedGang("ml-team/train", 2, 4, "u", "train-worker-");
  job.domain_wait = "1h";
  auto snap = ParseSnapshot(JsonBuffer(synthetic::SnapshotBody({n}, {job})), Opts());
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  ASSERT_EQ(snap->jobs.size(), 1u);
  EXPECT_DOUBLE_EQ(snap->jobs[0].domain_wait_s, 3600);
  job.domain_wait = "1 hour";
  snap = ParseSnapshot(JsonBuffer(synthetic::SnapshotBody({n}, {job})), Opts());
  ASSERT_TRUE(snap.ok()) << snap.status().ToString();
  EXPECT_LT(snap->jobs[0].domain_wait_s, 0);
}

TEST(Wire, TopologyAnnotationArrivesAsJsonString) {
  synthetic::NodeSpec n;
  n.name = "lpu-1";
  n.domain = "ld-7";
  n.rack = "idc1.r2";
  n.idc = "idc1";
  n.busy = 0b11;
  const std::string body = synthetic::PredicateBody(synthetic::TaskSpec{}, n, {});
  auto args = ParsePredicate(JsonBuffer(body), Opts());
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_EQ(args->node.topology, synthetic::TopologyAnnotation(n));
  EXPECT_EQ(args->node.link_domain, "ld-7");
  EXPECT_EQ(args->node.rack, "idc1.r2");
  EXPECT_EQ(args->node.idc, "idc1");
  EXPECT_EQ(args->node.idle_cards, 6);
}

TEST(Wire, EscapedKeysAreUnescaped) {
  // Keys are read in place unless they contain an escape; both spellings must match.
  const std::string body =
      R"({"task":{"U\u0049D":"u1","Resreq":{"ScalarResources":{"hyperaccel.ai\/fpga":2000}}},)"
      R"("node":{"Name":"n1","Node":{"metadata":{"annotations":{"hyperaccel.ai\u002ftopology":"x"}}}}})";
  auto args = ParsePredicate(JsonBuffer(body), Opts());
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_EQ(args->task.uid, "u1");
  EXPECT_EQ(args->task.cards, 2);
  EXPECT_EQ(args->node.topology, "x");
  auto bad = ParsePredicate(JsonBuffer(R"({"task":{"U\uZZZZ":1},"node":{"Name":"n"}})"), Opts());
  EXPECT_FALSE(bad.ok());
}

TEST(Wire, ArrayElementPathsInErrors) {
  auto r =
      ParsePrioritize(JsonBuffer(R"({"task":{},"nodes":[{"Name":"a"},{"Name":"b","Idle":[]}]})"), Opts());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("nodes.[1].Idle: expected object, got array"), std::string::npos)
      << r.status().message();
}

TEST(JsonBuffer, AppendReserveMoveRelease) {
  JsonBuffer b;
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.view(), "");
  b.Append("{\"a\":");
  b.Append("1}");
  EXPECT_EQ(b.view(), "{\"a\":1}");
  EXPECT_GE(b.capacity(), b.size() + 64);
  // Large buffers are mapped; contents survive growth across the threshold.
  const std::string big(3 << 20, 'x');
  b.Reserve(big.size() + 10);
  EXPECT_EQ(b.view(), "{\"a\":1}");
  b.Append(big);
  EXPECT_EQ(b.size(), 7 + big.size());
  EXPECT_EQ(b.view().substr(0, 7), "{\"a\":1}");
  EXPECT_EQ(b.data()[b.size()], '\0');  // padding is zeroed
  JsonBuffer moved(std::move(b));
  EXPECT_EQ(moved.size(), 7 + big.size());
  // NOLINTNEXTLINE(bugprone-use-after-move,clang-analyzer-cplusplus.Move): moved-from state is specified
  EXPECT_EQ(b.size(), 0u);
  b = std::move(moved);
  EXPECT_EQ(b.size(), 7 + big.size());
  b.Release();
  EXPECT_EQ(b.capacity(), 0u);
  b.Assign("{}");
  EXPECT_EQ(b.view(), "{}");
}

TEST(ParserPool, ReusesParsersAndReleasesIdleOnes) {
  ParserPool pool(2);
  ParseOptions o = Opts();
  o.parsers = &pool;
  BRIDGE_FIXTURE(text, "predicate.request.json");
  const JsonBuffer body(text);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ParsePredicate(body, o).ok());
  EXPECT_EQ(pool.idle(), 1u);  // one parser, reused
  // Errors return the parser too.
  EXPECT_FALSE(ParsePredicate(JsonBuffer("{\"task\":"), o).ok());
  EXPECT_EQ(pool.idle(), 1u);
  // An evictee is re-read while the body's parser is busy: two parsers, both kept.
  BRIDGE_FIXTURE(preempt, "preemptable.request.json");
  ASSERT_TRUE(ParseEvict(JsonBuffer(preempt), o).ok());
  EXPECT_EQ(pool.idle(), 2u);
  EXPECT_EQ(pool.Release(std::chrono::steady_clock::now() - std::chrono::hours(1)), 0u);
  EXPECT_EQ(pool.Release(std::chrono::steady_clock::now()), 2u);
  EXPECT_EQ(pool.idle(), 0u);
  ASSERT_TRUE(ParsePredicate(body, o).ok());
  EXPECT_EQ(pool.idle(), 1u);
}

TEST(Wire, Responses) {
  EXPECT_EQ(EncodePrioritizeResponse({}), R"({"nodeScore":{},"errorMessage":""})");
  EXPECT_EQ(EncodePrioritizeResponse({{"a", 87.5}, {"b\"", 0}}),
            R"({"nodeScore":{"a":87.5,"b\"":0},"errorMessage":""})");
  EXPECT_EQ(EncodePredicateResponse(2, "x\ny"), R"({"status":"x\ny","code":2})");
  EXPECT_EQ(EncodeEvictResponse(0, {}), R"({"status":0,"victims":[]})");
  EXPECT_EQ(EncodeEvictResponse(1, {"{\"UID\":\"a\"}", "{}"}), R"({"status":1,"victims":[{"UID":"a"},{}]})");
  EXPECT_EQ(EncodeEventResponse(), R"({"errorMessage":""})");
  std::string s;
  AppendJsonString(s, std::string("\x01", 1));
  EXPECT_EQ(s, "\"\\u0001\"");
  EXPECT_EQ(CardsFromMilli(4000), 4);
  EXPECT_EQ(CardsFromMilli(1), 1);
  EXPECT_EQ(CardsFromMilli(-5), 0);
  EXPECT_EQ(CardsFromMilli(1e300), 1000000);
}

}  // namespace
}  // namespace hyperaccel::bridge

namespace hyperaccel::bridge {
namespace {

// Filling a buffer in place (the server reads a body from the socket straight into tail()): the
// committed bytes become the contents, padded for simdjson, and parse like an appended body.
TEST(JsonBufferInPlace, CommitTakesWhatWasWrittenAtTheTail) {
  const std::string text = R"({"Task":{},"Node":{}})";
  JsonBuffer b;
  EXPECT_EQ(b.room(), 0u);
  EXPECT_EQ(b.tail(), nullptr);
  b.Reserve(text.size());
  ASSERT_GE(b.room(), text.size());
  std::memcpy(b.tail(), text.data(), 5);
  b.Commit(5);
  std::memcpy(b.tail(), text.data() + 5, text.size() - 5);
  b.Commit(text.size() - 5);
  EXPECT_EQ(b.view(), text);
  EXPECT_EQ(b.data()[b.size()], '\0') << "padding after the contents";
  EXPECT_THROW(b.Commit(b.room() + 1), std::length_error);
  b.Commit(0);
  EXPECT_EQ(b.view(), text);
}

}  // namespace
}  // namespace hyperaccel::bridge
