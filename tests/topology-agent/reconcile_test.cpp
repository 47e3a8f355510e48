// The agent against the API-server emulator: node labels, Lease, HyperNodes, failures.
#include <gtest/gtest.h>

#include <thread>

#include "hyperaccel/placement/annotation.h"
#include "hyperaccel/placement/names.h"
#include "hyperaccel/testing/apiserver_emulator.h"
#include "hyperaccel/topology_agent/agent.h"
#include "hyperaccel/topology_agent/reconcilers.h"
#include "test_util.h"

namespace hyperaccel::agent {
namespace {

using kube::Json;
using testing::ApiServerEmulator;
using testing::Fault;
using testutil::MakeInventory;

// Link domains from a table: (node, serial) -> domain.
class FakeDomains final : public LinkDomains {
 public:
  std::map<std::string, std::string> by_card;  // "node/serial" -> domain
  std::string DomainOf(const std::string& node, const std::string& serial) const override {
    auto it = by_card.find(node + "/" + serial);
    return it == by_card.end() ? "" : it->second;
  }
  std::vector<std::string> NodesOf(const std::string& domain) const override {
    std::set<std::string> nodes;
    for (const auto& [k, d] : by_card) {
      if (d == domain) nodes.insert(k.substr(0, k.find('/')));
    }
    return {nodes.begin(), nodes.end()};
  }
  void AddNode(const hw::Inventory& inv, const std::string& domain) {
    for (const auto& c : inv.cards) by_card[inv.node_name + "/" + c.serial] = domain;
  }
};

class FakeAllocated final : public AllocatedDevices {
 public:
  explicit FakeAllocated(std::shared_ptr<Result<std::set<std::string>>> v) : v_(std::move(v)) {}
  Result<std::set<std::string>> List() override { return *v_; }

 private:
  std::shared_ptr<Result<std::set<std::string>>> v_;
};

kube::ClientOptions FastClient() {
  kube::ClientOptions o;
  o.max_attempts = 2;
  o.request_timeout = std::chrono::seconds(2);
  o.sleep = [](std::chrono::milliseconds) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return true;
  };
  return o;
}

std::unique_ptr<kube::Client> MakeClient(const ApiServerEmulator& emu, const std::string& token = "") {
  kube::ClusterConfig c;
  c.server = emu.url();
  c.token = token;
  auto r = kube::Client::Create(c, FastClient());
  return std::move(*r);
}

std::map<std::string, std::string> NodeLabels(const ApiServerEmulator& emu, const std::string& node) {
  auto n = emu.Get("nodes", node);
  return n ? LabelsOf(*n) : std::map<std::string, std::string>{};
}

std::string NodeAnnotation(const ApiServerEmulator& emu, const std::string& node) {
  auto n = emu.Get("nodes", node);
  if (!n || !(*n)["metadata"].contains("annotations")) return "";
  return (*n)["metadata"]["annotations"].value(names::kAnnotationTopology, "");
}

template <typename Pred>
bool Eventually(Pred p, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (p()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return p();
}

class ReconcileTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(emu_.Start().ok()); }
  ApiServerEmulator emu_;
};

TEST_F(ReconcileTest, PublishesOnlyOurLabelsAndWritesNothingWhenUnchanged) {
  emu_.PutNode("n1", {{"kubernetes.io/hostname", "n1"}, {"hyperaccel.ai/stale", "x"}, {"rack", "r7"}});
  auto client = MakeClient(emu_);
  FakeDomains domains;
  auto inv = MakeInventory("n1", 8);
  domains.AddNode(inv, "abc123");
  NodePublisher pub(client.get(), TierConfig{"rack", "", "", "dc1"}, &domains);
  auto r = pub.Reconcile(inv, {"0000:3c:00.1"}, true);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(*r);
  auto labels = NodeLabels(emu_, "n1");
  EXPECT_EQ(labels["kubernetes.io/hostname"], "n1");
  EXPECT_EQ(labels["rack"], "r7");
  EXPECT_EQ(labels.count("hyperaccel.ai/stale"), 0u);
  EXPECT_EQ(labels["hyperaccel.ai/fpga.count"], "8");
  EXPECT_EQ(labels["hyperaccel.ai/link.domain"], "abc123");
  EXPECT_EQ(labels["hyperaccel.ai/rack"], "dc1.r7");
  EXPECT_EQ(labels["hyperaccel.ai/idc"], "dc1");
  auto topo = placement::DecodeTopology(NodeAnnotation(emu_, "n1"));
  ASSERT_TRUE(topo.ok());
  EXPECT_TRUE(topo->cards[1].allocated);

  // Nothing changed: a forced reconcile reads once and writes nothing; an unforced one sends nothing.
  client->stats().get = 0;
  uint64_t writes = client->stats().Writes();
  emu_.ClearRequests();
  ASSERT_TRUE(pub.Reconcile(inv, {"0000:3c:00.1"}, true).ok());
  EXPECT_EQ(client->stats().Writes(), writes);
  EXPECT_EQ(client->stats().get, 1u);
  ASSERT_TRUE(pub.Reconcile(inv, {"0000:3c:00.1"}, false).ok());
  EXPECT_EQ(emu_.CountRequests(""), 1u);

  // An allocation change writes exactly one patch.
  auto w = pub.Reconcile(inv, {}, false);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(*w);
  EXPECT_EQ(client->stats().Writes(), writes + 1);
}

TEST_F(ReconcileTest, ReadFailuresNeverWipeLabels) {
  emu_.PutNode("n1");
  auto client = MakeClient(emu_);
  NodePublisher pub(client.get(), {}, nullptr);
  auto inv = MakeInventory("n1", 4);
  ASSERT_TRUE(pub.Reconcile(inv, {}, true).ok());
  auto before = NodeLabels(emu_, "n1");
  emu_.InjectFault({Fault::Kind::kError500, "GET", "/api/v1/nodes", -1});
  emu_.ClearRequests();
  inv.cards.pop_back();
  auto r = pub.Reconcile(inv, {}, true);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(emu_.CountRequests("PATCH"), 0u);
  EXPECT_EQ(NodeLabels(emu_, "n1"), before);
  emu_.ClearFaults();
  // A node that does not exist is an error too, not a create.
  NodePublisher ghost(client.get(), {}, nullptr);
  EXPECT_EQ(ghost.Reconcile(MakeInventory("ghost", 1), {}, true).status().code(), StatusCode::kNotFound);
}

TEST_F(ReconcileTest, DomainPeersAgreeOnOneRack) {
  // One link domain across two racks: both nodes publish the rack of the smaller node name.
  emu_.PutNode("a-node", {{"rack", "r1"}});
  emu_.PutNode("b-node", {{"rack", "r2"}});
  auto client = MakeClient(emu_);
  FakeDomains domains;
  auto a = MakeInventory("a-node", 2), b = MakeInventory("b-node", 2);
  domains.AddNode(a, "d1");
  domains.AddNode(b, "d1");
  NodePublisher pa(client.get(), TierConfig{"rack", "", "", ""}, &domains);
  NodePublisher pb(client.get(), TierConfig{"rack", "", "", ""}, &domains);
  ASSERT_TRUE(pa.Reconcile(a, {}, true).ok());
  ASSERT_TRUE(pb.Reconcile(b, {}, true).ok());
  EXPECT_EQ(NodeLabels(emu_, "a-node")["hyperaccel.ai/rack"], "r1");
  EXPECT_EQ(NodeLabels(emu_, "b-node")["hyperaccel.ai/rack"], "r1");
}

// Labels mode: a node without any cabling-file domain still publishes all three tier labels, so
// Volcano's label discovery (which stops at the first missing tier label) builds its chain.
TEST_F(ReconcileTest, UncabledNodePublishesAllTierLabels) {
  emu_.PutNode("u1", {{"rack", "r3"}, {"zone", "dc2"}});
  auto client = MakeClient(emu_);
  NodePublisher pub(client.get(), TierConfig{"rack", "zone", "", ""}, nullptr);
  ASSERT_TRUE(pub.Reconcile(MakeInventory("u1", 2), {}, true).ok());
  auto labels = NodeLabels(emu_, "u1");
  EXPECT_EQ(labels["hyperaccel.ai/link.domain"], NodeLocalDomain("u1"));
  EXPECT_EQ(labels["hyperaccel.ai/rack"], "dc2.r3");
  EXPECT_EQ(labels["hyperaccel.ai/idc"], "dc2");
}

TEST_F(ReconcileTest, LeaseRaceHasOneWinnerAndTakeoverAfterExpiry) {
  auto c1 = MakeClient(emu_), c2 = MakeClient(emu_);
  auto now = std::chrono::steady_clock::now();
  auto clock = [&now] { return now; };
  LeaseConfig l1{"kube-system", "writer", "agent-1", std::chrono::seconds(15)};
  LeaseConfig l2{"kube-system", "writer", "agent-2", std::chrono::seconds(15)};
  LeaderElector e1(c1.get(), l1, clock), e2(c2.get(), l2, clock);
  // Both race from "no Lease": exactly one wins.
  Result<bool> r1 = false, r2 = false;
  std::thread t1([&] { r1 = e1.TryAcquireOrRenew(); });
  std::thread t2([&] { r2 = e2.TryAcquireOrRenew(); });
  t1.join();
  t2.join();
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_NE(*r1, *r2);
  LeaderElector& winner = *r1 ? e1 : e2;
  LeaderElector& loser = *r1 ? e2 : e1;
  auto lease = emu_.Get("leases", "writer", "kube-system");
  ASSERT_TRUE(lease);
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], winner.config().identity);
  EXPECT_EQ((*lease)["spec"]["leaseDurationSeconds"], 15);
  EXPECT_EQ((*lease)["spec"]["leaseTransitions"], 0);
  EXPECT_TRUE(kube::ParseMicroTime((*lease)["spec"]["renewTime"].get<std::string>()).ok());
  EXPECT_TRUE(kube::ParseMicroTime((*lease)["spec"]["acquireTime"].get<std::string>()).ok());
  // Renewals keep it; the loser keeps losing while renewals are observed.
  for (int i = 0; i < 3; ++i) {
    now += std::chrono::seconds(5);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a new renewTime
    EXPECT_TRUE(*winner.TryAcquireOrRenew());
    EXPECT_FALSE(*loser.TryAcquireOrRenew());
  }
  // The winner dies: after a full duration without change the loser takes over.
  now += std::chrono::seconds(10);
  EXPECT_FALSE(*loser.TryAcquireOrRenew());
  now += std::chrono::seconds(6);
  EXPECT_TRUE(*loser.TryAcquireOrRenew());
  lease = emu_.Get("leases", "writer", "kube-system");
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], loser.config().identity);
  EXPECT_EQ((*lease)["spec"]["leaseTransitions"], 1);
  // The old winner comes back and must not write.
  EXPECT_FALSE(*winner.TryAcquireOrRenew());
  // Release hands it over at once.
  EXPECT_TRUE(loser.Release().ok());
  EXPECT_EQ((*emu_.Get("leases", "writer", "kube-system"))["spec"]["holderIdentity"], "");
  EXPECT_TRUE(*winner.TryAcquireOrRenew());
}

TEST_F(ReconcileTest, WriterConvergesAndCollectsOnlyItsOwnGarbage) {
  auto client = MakeClient(emu_);
  HyperNodeWriter writer(client.get());
  // A foreign HyperNode (Volcano's label discovery) and one of ours that is no longer wanted.
  emu_.Upsert("hypernodes", Json::parse(R"({"metadata":{"name":"volcano-tor-1","labels":
      {"volcano.sh/network-topology-source":"label"}},"spec":{"tier":1,"members":[{"type":"Node",
      "selector":{"exactMatch":{"name":"x"}}}]}})"));
  emu_.Upsert("hypernodes", Json::parse(R"({"metadata":{"name":"hyperaccel-domain-old","labels":
      {"app.kubernetes.io/managed-by":"hyperaccel-topology-agent"}},"spec":{"tier":1,"members":[{"type":"Node",
      "selector":{"exactMatch":{"name":"y"}}}]}})"));
  std::vector<NodeTiers> nodes = {
      {"n1", {"d1", "r1", "dc"}}, {"n2", {"d1", "r1", "dc"}}, {"n3", {"d2", "r2", "dc"}}};
  auto want = BuildHyperNodes(nodes);
  auto s = writer.Converge(want);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->created, 5);
  EXPECT_EQ(s->deleted, 1);
  EXPECT_TRUE(emu_.Get("hypernodes", "volcano-tor-1"));
  EXPECT_FALSE(emu_.Get("hypernodes", "hyperaccel-domain-old"));
  // Converged: the next round only lists.
  client->stats().create = client->stats().update = client->stats().del = 0;
  auto again = writer.Converge(want);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->unchanged, 5);
  EXPECT_EQ(client->stats().Writes(), 0u);
  // d1 moves from r1 to r2: r1 disappears, r2 grows; never two parents at any time.
  nodes[0].tiers.rack = nodes[1].tiers.rack = "r2";
  auto moved = writer.Converge(BuildHyperNodes(nodes));
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  auto r2 = emu_.Get("hypernodes", HyperNodeName(2, "r2"));
  ASSERT_TRUE(r2);
  EXPECT_EQ((*r2)["spec"]["members"].size(), 2u);
  EXPECT_FALSE(emu_.Get("hypernodes", HyperNodeName(2, "r1")));
  // A foreign object under one of our names is left alone.
  emu_.Remove("hypernodes", HyperNodeName(1, "d2"));
  emu_.Upsert(
      "hypernodes",
      Json::parse(
          R"({"metadata":{"name":")" + HyperNodeName(1, "d2") +
          R"("},"spec":{"tier":1,"members":[{"type":"Node","selector":{"exactMatch":{"name":"z"}}}]}})"));
  auto foreign = writer.Converge(BuildHyperNodes(nodes));
  ASSERT_TRUE(foreign.ok());
  EXPECT_EQ(foreign->foreign, 1);
  EXPECT_EQ((*emu_.Get("hypernodes",
                       HyperNodeName(1, "d2")))["spec"]["members"][0]["selector"]["exactMatch"]["name"],
            "z");
}

TEST_F(ReconcileTest, NodeTierCacheWatchesAndRelistsOnGone) {
  emu_.SetBookmarkInterval(std::chrono::milliseconds(50));
  emu_.PutNode("n1", {{names::kLabelLinkDomain, "d1"}});
  auto client = MakeClient(emu_);
  NodeTierCache cache(client.get());
  ASSERT_TRUE(cache.Relist().ok());
  EXPECT_EQ(cache.Snapshot().size(), 1u);
  std::atomic<bool> stop{false};
  std::thread w([&] {
    while (!stop) {
      Status s = cache.WatchOnce(&stop, std::chrono::seconds(1));
      if (!s.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  emu_.PutNode("n2", {{names::kLabelLinkDomain, "d2"}});
  EXPECT_TRUE(Eventually([&] { return cache.Snapshot().size() == 2; }));
  // History compaction while watching: the next watch gets 410 and the cache relists.
  stop = true;
  w.join();
  emu_.PutNode("n3", {{names::kLabelLinkDomain, "d3"}});
  emu_.CompactHistory();
  stop = false;
  ASSERT_TRUE(cache.WatchOnce(&stop, std::chrono::seconds(1)).ok());
  EXPECT_EQ(cache.Snapshot().size(), 3u);
}

// ---- the whole agent ----------------------------------------------------------------------------

struct World {
  std::shared_ptr<hw::Inventory> inventory;
  std::shared_ptr<Result<std::set<std::string>>> allocated;
  std::shared_ptr<std::atomic<bool>> scan_fails;
};

Result<std::unique_ptr<Agent>> MakeAgent(const ApiServerEmulator& emu, World& w, AgentOptions o,
                                         const FakeDomains& domains) {
  AgentDeps deps;
  auto inv = w.inventory;
  auto fails = w.scan_fails;
  deps.scan = [inv, fails]() -> Result<hw::Inventory> {
    if (*fails) return Unavailable("scan failed");
    return *inv;
  };
  deps.allocated = std::make_unique<FakeAllocated>(w.allocated);
  deps.domains = std::make_unique<FakeDomains>(domains);
  deps.cluster.server = emu.url();
  deps.client_options = FastClient();
  o.poll_interval_s = 0.05;
  o.rescan_interval_s = 0.05;
  o.request_timeout_s = 2;
  return Agent::Create(std::move(o), std::move(deps));
}

World MakeWorld(const hw::Inventory& inv) {
  return {std::make_shared<hw::Inventory>(inv),
          std::make_shared<Result<std::set<std::string>>>(std::set<std::string>{}),
          std::make_shared<std::atomic<bool>>(false)};
}

TEST_F(ReconcileTest, OnceSucceedsAndFailsWithAReason) {
  emu_.PutNode("n1");
  FakeDomains domains;
  World w = MakeWorld(MakeInventory("n1", 4));
  auto a = MakeAgent(emu_, w, {}, domains);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE((*a)->RunOnce().ok());
  EXPECT_EQ(NodeLabels(emu_, "n1")["hyperaccel.ai/fpga.count"], "4");
  // pod-resources down at start: no write, an error naming the cause.
  *w.allocated = Unavailable("pod-resources: connection refused");
  auto b = MakeAgent(emu_, w, {}, domains);
  Status s = (*b)->RunOnce();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("pod-resources"), std::string::npos);
  // API server gone.
  emu_.Stop();
  *w.allocated = std::set<std::string>{};
  auto c = MakeAgent(emu_, w, {}, domains);
  EXPECT_EQ((*c)->RunOnce().code(), StatusCode::kUnavailable);
}

TEST_F(ReconcileTest, AgentRestartWritesNothingNew) {
  emu_.PutNode("n1");
  FakeDomains domains;
  World w = MakeWorld(MakeInventory("n1", 8));
  {
    auto a = MakeAgent(emu_, w, {}, domains);
    (*a)->Start();
    ASSERT_TRUE(Eventually([&] { return (*a)->successful_reconciles() > 2; }));
    (*a)->Stop();
  }
  emu_.ClearRequests();
  auto b = MakeAgent(emu_, w, {}, domains);
  (*b)->Start();
  ASSERT_TRUE(Eventually([&] { return (*b)->successful_reconciles() > 5; }));
  (*b)->Stop();
  EXPECT_EQ(emu_.CountRequests("PATCH"), 0u);
  EXPECT_EQ(emu_.CountRequests("GET"), 1u);  // one read at start, then nothing while unchanged
  EXPECT_TRUE((*b)->Ready().ok());
}

// Direct mode: uncabled nodes get a leaf each under their shared rack and IDC, beside a cabled
// domain in the same rack; no HyperNode has two parents.
TEST_F(ReconcileTest, UncabledNodesGetHyperNodesInDirectMode) {
  emu_.PutNode("c1", {{"rack", "r1"}, {"zone", "dc"}});
  emu_.PutNode("u1", {{"rack", "r1"}, {"zone", "dc"}});
  emu_.PutNode("u2", {{"rack", "r1"}, {"zone", "dc"}});
  FakeDomains domains;
  auto c1 = MakeInventory("c1", 4);
  domains.AddNode(c1, "d1");
  AgentOptions o;
  o.hypernodes = "direct";
  o.tiers.rack_label = "rack";
  o.tiers.idc_label = "zone";
  o.lease_duration_s = 2;
  o.lease_renew_deadline_s = 1.5;
  o.lease_retry_period_s = 0.1;
  World wc = MakeWorld(c1), w1 = MakeWorld(MakeInventory("u1", 2)), w2 = MakeWorld(MakeInventory("u2", 0));
  std::vector<std::unique_ptr<Agent>> agents;
  for (auto* w : {&wc, &w1, &w2}) {
    o.identity = "agent-" + w->inventory->node_name;
    auto a = MakeAgent(emu_, *w, o, domains);
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    agents.push_back(std::move(*a));
    agents.back()->Start();
  }
  auto members = [&](const std::string& name) {
    std::vector<std::string> out;
    auto h = emu_.Get("hypernodes", name);
    if (!h) return out;
    for (const auto& m : (*h)["spec"]["members"]) out.push_back(m["selector"]["exactMatch"]["name"]);
    return out;
  };
  const std::string leaf_u1 = HyperNodeName(1, NodeLocalDomain("u1"));
  const std::string leaf_u2 = HyperNodeName(1, NodeLocalDomain("u2"));
  const std::string leaf_c = HyperNodeName(1, "d1");
  std::vector<std::string> rack_members = {leaf_c, leaf_u1, leaf_u2};
  std::sort(rack_members.begin(), rack_members.end());
  EXPECT_TRUE(Eventually([&] { return members(HyperNodeName(2, "dc.r1")) == rack_members; }))
      << ::testing::PrintToString(members(HyperNodeName(2, "dc.r1")));
  EXPECT_EQ(members(leaf_u1), std::vector<std::string>{"u1"});
  EXPECT_EQ(members(leaf_u2), std::vector<std::string>{"u2"});
  EXPECT_EQ(members(HyperNodeName(3, "dc")), std::vector<std::string>{HyperNodeName(2, "dc.r1")});
  // One parent per HyperNode, one leaf per node, over everything written.
  auto list = emu_.List("hypernodes");
  std::map<std::string, int> parents;
  for (const auto& h : list) {
    for (const auto& m : h["spec"]["members"])
      ++parents[m["selector"]["exactMatch"]["name"].get<std::string>()];
  }
  for (const auto& [child, n] : parents) EXPECT_EQ(n, 1) << child;
  for (auto& a : agents) a->Stop();
}

TEST_F(ReconcileTest, CardLossFollowsIntoLabelsAndHyperNodes) {
  // Two nodes in one domain, both in direct mode; then n2 loses all its linked cards.
  emu_.PutNode("n1", {{"rack", "r1"}});
  emu_.PutNode("n2", {{"rack", "r1"}});
  FakeDomains domains;
  auto i1 = MakeInventory("n1", 4), i2 = MakeInventory("n2", 4);
  domains.AddNode(i1, "d1");
  domains.AddNode(i2, "d1");
  AgentOptions o;
  o.hypernodes = "direct";
  o.tiers.rack_label = "rack";
  o.lease_duration_s = 2;
  o.lease_renew_deadline_s = 1.5;
  o.lease_retry_period_s = 0.1;
  World w1 = MakeWorld(i1), w2 = MakeWorld(i2);
  o.identity = "agent-1";
  auto a1 = MakeAgent(emu_, w1, o, domains);
  o.identity = "agent-2";
  auto a2 = MakeAgent(emu_, w2, o, domains);
  ASSERT_TRUE(a1.ok() && a2.ok());
  (*a1)->Start();
  (*a2)->Start();
  std::string leaf = HyperNodeName(1, "d1");
  auto members = [&](const std::string& name) {
    std::vector<std::string> out;
    auto h = emu_.Get("hypernodes", name);
    if (!h) return out;
    for (const auto& m : (*h)["spec"]["members"]) out.push_back(m["selector"]["exactMatch"]["name"]);
    return out;
  };
  ASSERT_TRUE(Eventually([&] { return members(leaf) == std::vector<std::string>{"n1", "n2"}; }));
  EXPECT_TRUE(Eventually([&] { return members(HyperNodeName(2, "r1")) == std::vector<std::string>{leaf}; }));
  EXPECT_NE((*a1)->leader(), (*a2)->leader());  // one writer
  // n2's cards vanish (the scan now returns none).
  *w2.inventory = MakeInventory("n2", 0);
  EXPECT_TRUE(Eventually([&] { return NodeLabels(emu_, "n2")["hyperaccel.ai/fpga.count"] == "0"; }));
  // Without cards in d1, n2 keeps its rack through its own node-local leaf.
  EXPECT_TRUE(Eventually(
      [&] { return NodeLabels(emu_, "n2")["hyperaccel.ai/link.domain"] == NodeLocalDomain("n2"); }));
  EXPECT_TRUE(Eventually([&] { return members(leaf) == std::vector<std::string>{"n1"}; }));
  (*a1)->Stop();
  (*a2)->Stop();
  // Both released: nobody holds the Lease.
  EXPECT_EQ((*emu_.Get("leases", "hyperaccel-topology-agent", "kube-system"))["spec"]["holderIdentity"], "");
}

TEST_F(ReconcileTest, ApiServerDownForAWhileThenCatchUp) {
  emu_.PutNode("n1");
  int port = emu_.port();
  FakeDomains domains;
  World w = MakeWorld(MakeInventory("n1", 8));
  auto a = MakeAgent(emu_, w, {}, domains);
  (*a)->Start();
  ASSERT_TRUE(Eventually([&] { return NodeLabels(emu_, "n1")["hyperaccel.ai/fpga.count"] == "8"; }));
  emu_.Stop();
  // While it is down: a card is allocated and the hardware scan fails too.
  *w.allocated = std::set<std::string>{"0000:3b:00.1"};
  *w.scan_fails = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_FALSE((*a)->Ready().ok());
  ASSERT_TRUE(emu_.Start(port).ok());
  EXPECT_TRUE(Eventually([&] {
    auto t = placement::DecodeTopology(NodeAnnotation(emu_, "n1"));
    return t.ok() && t->cards[0].allocated;
  }));
  // Nothing wiped: the failed scan kept the last inventory.
  EXPECT_EQ(NodeLabels(emu_, "n1")["hyperaccel.ai/fpga.count"], "8");
  EXPECT_TRUE(Eventually([&] { return (*a)->Ready().ok(); }));
  (*a)->Stop();
}

TEST_F(ReconcileTest, ForbiddenPatchIsReportedNotRetriedForever) {
  emu_.AddToken("ro", {"get nodes"});
  emu_.PutNode("n1");
  FakeDomains domains;
  World w = MakeWorld(MakeInventory("n1", 2));
  AgentDeps deps;
  auto inv = w.inventory;
  deps.scan = [inv]() -> Result<hw::Inventory> { return *inv; };
  deps.cluster.server = emu_.url();
  deps.cluster.token = "ro";
  deps.client_options = FastClient();
  auto a = Agent::Create({}, std::move(deps));
  ASSERT_TRUE(a.ok());
  Status s = (*a)->RunOnce();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("403"), std::string::npos);
  EXPECT_EQ((*a)->stats().patch, 1u);
}

}  // namespace
}  // namespace hyperaccel::agent
