// kubectl-hyperaccel against the API-server emulator: a multi-node cluster whose Nodes carry the
// labels and topology annotation written by the topology agent's own publisher (NodePublisher),
// queried through the plugin's commands exactly as the binary runs them.
#include <gtest/gtest.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "hyperaccel/kubectl_plugin/cli.h"
#include "hyperaccel/kubectl_plugin/cluster.h"
#include "hyperaccel/kubectl_plugin/kubeconfig.h"
#include "hyperaccel/placement/names.h"
#include "hyperaccel/testing/apiserver_emulator.h"
#include "hyperaccel/topology_agent/reconcilers.h"
#include "hyperaccel/topology_agent/sources.h"

namespace hyperaccel::kubectl {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ApiServerEmulator;

constexpr const char* kToken = "kubectl-test-token";
constexpr const char* kRackLabel = "topology.hyperaccel.ai/rack";
constexpr const char* kZoneLabel = "topology.kubernetes.io/zone";

std::string Serial(const std::string& node, int i) {
  return "XFL1" + node.substr(node.size() - 2) + "C" + std::to_string(i);
}

std::string CardId(int i) {
  char id[32];
  std::snprintf(id, sizeof id, "0000:%02x:00.1", 0x3b + i);
  return id;
}

hw::Link MakeLink(const hw::PortRef& a, const hw::PortRef& b, hw::LinkState state) {
  hw::Link l;
  l.a = a;
  l.b = b;
  l.state = state;
  l.source = "cabling";
  return l;
}

// 8 cards; local links i:1 -> i+1:0 for i < 7, and 7 -> 0 too when `ring`.
hw::Inventory Node8(const std::string& node, bool ring, int unhealthy = -1) {
  hw::Inventory inv;
  inv.node_name = node;
  inv.facts.xrt_available = true;
  inv.facts.xrt_version = "2.13.0";
  for (int i = 0; i < 8; ++i) {
    hw::Card c;
    c.id = CardId(i);
    c.serial = Serial(node, i);
    c.shell = "xilinx_u55c_gen3x16_xdma_base_3";
    c.product = "ALVEO-U55C";
    c.numa_node = i < 4 ? 0 : 1;
    if (i == unhealthy) {
      c.health = hw::Health::kUnhealthy;
      c.health_reason = "FPGA temperature 101C over the limit 95C";
    }
    inv.cards.push_back(c);
  }
  for (int i = 0; i < (ring ? 8 : 7); ++i) {
    inv.links.push_back(
        MakeLink({"", Serial(node, i), 1}, {"", Serial(node, (i + 1) % 8), 0}, hw::LinkState::kUp));
  }
  return inv;
}

// The cluster:
//   lpu-node-01 + lpu-node-02: one 16-card ring cabled across both nodes (link domain A), rack r07;
//   lpu-node-03: its own ring (domain B), rack r08, cards C0 and C2 allocated;
//   lpu-node-04: its own ring (domain C), rack r08, card C3 unhealthy;
//   lpu-node-05: FPGA label, allocatable cards, but no agent (no annotation), rack r08;
//   cpu-node-01: no FPGA at all.
class KubectlPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kubectl-plugin-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    emu_.AddToken(kToken);
    ASSERT_TRUE(emu_.Start().ok());

    // Cabling file: the rings above, written in the agent's format; its domains come from the
    // agent's own loader.
    std::ostringstream cabling;
    cabling << "version: 1\nlinks:\n";
    auto link = [&](const std::string& na, int a, const std::string& nb, int b) {
      cabling << "  - a: {node: " << na << ", serial: " << Serial(na, a) << ", port: 1}\n"
              << "    b: {node: " << nb << ", serial: " << Serial(nb, b) << ", port: 0}\n";
    };
    for (int i = 0; i < 7; ++i) link("lpu-node-01", i, "lpu-node-01", i + 1);
    link("lpu-node-01", 7, "lpu-node-02", 0);
    for (int i = 0; i < 7; ++i) link("lpu-node-02", i, "lpu-node-02", i + 1);
    link("lpu-node-02", 7, "lpu-node-01", 0);
    for (const char* n : {"lpu-node-03", "lpu-node-04"}) {
      for (int i = 0; i < 8; ++i) link(n, i, n, (i + 1) % 8);
    }
    const std::string cabling_path = dir_ + "/cabling.yaml";
    std::ofstream(cabling_path) << cabling.str();
    auto domains = agent::LoadLinkDomains(cabling_path);
    ASSERT_TRUE(domains.ok()) << domains.status().message();

    // Nodes as the admin and the kubelet made them.
    AddNode("lpu-node-01", "r07", 8);
    AddNode("lpu-node-02", "r07", 8);
    AddNode("lpu-node-03", "r08", 8);
    AddNode("lpu-node-04", "r08", 7);
    AddNode("lpu-node-05", "r08", 8, {{names::kLabelPresent, "true"}});
    AddNode("cpu-node-01", "r08", -1);

    // Inventories as discovery reports them (cross-node links seen from both ends: node 01
    // observes its end of 01/C7 -> 02/C0 up, node 02 does not observe it).
    hw::Inventory n1 = Node8("lpu-node-01", false);
    n1.links.push_back(MakeLink({"", Serial("lpu-node-01", 7), 1},
                                {"lpu-node-02", Serial("lpu-node-02", 0), 0}, hw::LinkState::kUp));
    n1.links.push_back(MakeLink({"lpu-node-02", Serial("lpu-node-02", 7), 1},
                                {"", Serial("lpu-node-01", 0), 0}, hw::LinkState::kUp));
    hw::Inventory n2 = Node8("lpu-node-02", false);
    n2.links.push_back(MakeLink({"lpu-node-01", Serial("lpu-node-01", 7), 1},
                                {"", Serial("lpu-node-02", 0), 0}, hw::LinkState::kUnknown));
    n2.links.push_back(MakeLink({"", Serial("lpu-node-02", 7), 1},
                                {"lpu-node-01", Serial("lpu-node-01", 0), 0}, hw::LinkState::kUp));
    Publish(*domains.value(), n1, {CardId(0), CardId(1)});
    Publish(*domains.value(), n2, {});
    Publish(*domains.value(), Node8("lpu-node-03", true), {CardId(0), CardId(2)});
    Publish(*domains.value(), Node8("lpu-node-04", true, /*unhealthy=*/3), {});

    // A kubeconfig whose token is in a file next to it (relative path).
    std::ofstream(dir_ + "/token") << kToken;
    WriteKubeconfig(dir_ + "/config", emu_.url(), "tokenFile: token");
  }

  void TearDown() override {
    emu_.Stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void AddNode(const std::string& name, const std::string& rack, int allocatable,
               std::map<std::string, std::string> labels = {}) {
    labels[kRackLabel] = rack;
    labels[kZoneLabel] = "seoul-1";
    labels["kubernetes.io/hostname"] = name;
    emu_.PutNode(name, labels);
    if (allocatable >= 0) {
      auto node = emu_.Get("nodes", name);
      ASSERT_TRUE(node.has_value());
      (*node)["status"]["allocatable"][names::kDefaultResource] = std::to_string(allocatable);
      (*node)["status"]["capacity"][names::kDefaultResource] = "8";
      emu_.Upsert("nodes", *node);
    }
  }

  // Labels and annotation written by the agent's publisher, through the REST client.
  void Publish(const agent::LinkDomains& domains, const hw::Inventory& inv,
               const std::set<std::string>& allocated) {
    kube::ClusterConfig config;
    config.server = emu_.url();
    config.token = kToken;
    auto client = kube::Client::Create(config);
    ASSERT_TRUE(client.ok()) << client.status().message();
    agent::TierConfig tiers;
    tiers.rack_label = kRackLabel;
    tiers.idc_label = kZoneLabel;
    agent::NodePublisher publisher(client->get(), tiers, &domains);
    auto wrote = publisher.Reconcile(inv, allocated, /*force=*/true);
    ASSERT_TRUE(wrote.ok()) << inv.node_name << ": " << wrote.status().message();
  }

  static void WriteKubeconfig(const std::string& path, const std::string& server, const std::string& auth,
                              const std::string& current = "emu", const std::string& context = "emu",
                              const std::string& cluster = "emu") {
    std::ofstream(path) << "apiVersion: v1\nkind: Config\n"
                        << (current.empty() ? "" : "current-context: " + current + "\n")
                        << "clusters:\n- name: " << cluster << "\n  cluster: {server: \"" << server << "\"}\n"
                        << "users:\n- name: " << context << "-user\n  user: {" << auth << "}\n"
                        << "contexts:\n- name: " << context << "\n  context: {cluster: " << cluster
                        << ", user: " << context << "-user}\n";
  }

  // Runs the plugin with KUBECONFIG and HOME as given (nothing from the real environment).
  int Run(const std::vector<std::string>& args, std::string* out, std::string* err = nullptr,
          const std::string& kubeconfig_env = "", const std::string& home = "/nonexistent") {
    KubeconfigEnv env;
    std::string kc = kubeconfig_env.empty() ? dir_ + "/config" : kubeconfig_env;
    env.getenv = [&kc, &home](const char* name) -> std::string {
      if (std::string(name) == "KUBECONFIG") return kc;
      if (std::string(name) == "HOME") return home;
      return "";
    };
    env.in_cluster = [] { return Result<kube::ClusterConfig>(NotFound("not in a cluster")); };
    std::ostringstream o, e;
    const int rc = kubectl::Run(args, o, e, env);
    *out = o.str();
    if (err != nullptr) *err = e.str();
    return rc;
  }

  json RunJson(std::vector<std::string> args, int expect_rc = kExitOk) {
    args.push_back("-o");
    args.push_back("json");
    std::string out, err;
    const int rc = Run(args, &out, &err);
    EXPECT_EQ(rc, expect_rc) << err << out;
    return json::parse(out);
  }

  static const json& Named(const json& list, const std::string& name) {
    for (const auto& item : list) {
      if (item.value("name", item.value("node", "")) == name) return item;
    }
    static const json kNone;
    ADD_FAILURE() << "no entry " << name << " in " << list.dump();
    return kNone;
  }

  std::string dir_;
  ApiServerEmulator emu_;
};

TEST_F(KubectlPluginTest, TopoCountsDomainsRacksIdcsAndNodes) {
  const json topo = RunJson({"topo"});
  EXPECT_EQ(topo["schema"], "hyperaccel.ai/kubectl-topo/v1");
  // The domain of nodes 01 + 02 (the 16-card ring): 2 of its cards are allocated (01/C0, 01/C1).
  // Free: 01/C2..C7 and 02/C0..C7, joined over 01/C7 -> 02/C0 (up at one end, unknown at the
  // other): 14 cards, more than any single node has.
  const json& n1 = Named(topo["nodes"], "lpu-node-01");
  const std::string domain_a = n1["linkDomain"];
  ASSERT_FALSE(domain_a.empty());
  const json& a = Named(topo["linkDomains"], domain_a);
  EXPECT_EQ(a["nodes"], 2);
  EXPECT_EQ(a["cards"], 16);
  EXPECT_EQ(a["free"], 14);
  EXPECT_EQ(a["allocated"], 2);
  EXPECT_EQ(a["unhealthy"], 0);
  EXPECT_EQ(a["largestFreeLinked"], 14);
  EXPECT_EQ(a["rack"], "seoul-1.r07");
  EXPECT_EQ(a["idc"], "seoul-1");
  EXPECT_EQ(n1["largestFreeLinked"], 6);  // C2..C7 (a chain on the node)
  EXPECT_EQ(Named(topo["nodes"], "lpu-node-02")["largestFreeLinked"], 8);
  EXPECT_EQ(Named(topo["nodes"], "lpu-node-02")["linkDomain"], domain_a);

  // Node 03: ring of 8 with C0 and C2 allocated: C1 is stranded, 3..7 is the largest free set.
  const json& n3 = Named(topo["nodes"], "lpu-node-03");
  EXPECT_EQ(n3["free"], 6);
  EXPECT_EQ(n3["allocated"], 2);
  EXPECT_EQ(n3["largestFreeLinked"], 5);
  EXPECT_EQ(n3["stranded"], 1);
  // Node 04: C3 unhealthy, the rest of the ring is a path of 7.
  const json& n4 = Named(topo["nodes"], "lpu-node-04");
  EXPECT_EQ(n4["unhealthy"], 1);
  EXPECT_EQ(n4["free"], 7);
  EXPECT_EQ(n4["largestFreeLinked"], 7);
  EXPECT_EQ(n4["linkTopology"], "ring");
  // Three link domains (one per cabled set) plus "" for the node without an agent.
  EXPECT_EQ(topo["linkDomains"].size(), 4U);
  EXPECT_NE(Named(topo["nodes"], "lpu-node-03")["linkDomain"],
            Named(topo["nodes"], "lpu-node-04")["linkDomain"]);

  // Racks and IDCs.
  const json& r07 = Named(topo["racks"], "seoul-1.r07");
  EXPECT_EQ(r07["cards"], 16);
  EXPECT_EQ(r07["largestFreeLinked"], 14);
  EXPECT_EQ(topo["idcs"].size(), 2U);  // seoul-1, and "" for the node whose agent published nothing
  const json& idc = Named(topo["idcs"], "seoul-1");
  EXPECT_EQ(idc["nodes"], 4);
  EXPECT_EQ(idc["cards"], 32);
  EXPECT_EQ(idc["free"], 14 + 6 + 7);
  EXPECT_EQ(idc["unhealthy"], 1);

  // The node without an agent is listed, not counted; the CPU node is not listed at all.
  const json& n5 = Named(topo["nodes"], "lpu-node-05");
  EXPECT_EQ(n5["nodesWithoutAnnotation"], 1);
  EXPECT_EQ(n5["cards"], 0);
  for (const auto& n : topo["nodes"]) EXPECT_NE(n["name"], "cpu-node-01");
  EXPECT_EQ(topo["cluster"]["nodes"], 5);
  EXPECT_EQ(topo["cluster"]["largestFreeLinked"], 14);
}

TEST_F(KubectlPluginTest, TopoTableNamesEveryTierAndFlagsNodesWithoutAgent) {
  std::string out;
  ASSERT_EQ(Run({"topo"}, &out), kExitOk);
  EXPECT_NE(out.find("LINK-DOMAIN"), std::string::npos) << out;
  EXPECT_NE(out.find("seoul-1.r07"), std::string::npos) << out;
  EXPECT_NE(out.find("seoul-1.r08"), std::string::npos) << out;
  EXPECT_NE(out.find("LARGEST-FREE-LINKED"), std::string::npos) << out;
  EXPECT_NE(out.find("32 cards on 5 nodes: 27 free, 4 allocated, 1 unhealthy; largest free linked set 14"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("1 node(s) shown with ? carry no valid hyperaccel.ai/topology annotation"),
            std::string::npos)
      << out;
}

// Consecutive cards of a task, in the link order the plan prints, are cabled to each other.
bool Contiguous(const std::vector<std::string>& ids, bool ring) {
  std::vector<int> idx;
  for (const auto& id : ids) {
    // "0000:3b:00.1": the bus number (hex) gives the card index.
    int bus = 0;
    if (id.size() != 12 || id.compare(0, 5, "0000:") != 0) return false;
    const auto [end, ec] = std::from_chars(id.data() + 5, id.data() + 7, bus, 16);
    if (ec != std::errc() || end != id.data() + 7) return false;
    idx.push_back(bus - 0x3b);
  }
  for (size_t k = 0; k + 1 < idx.size(); ++k) {
    const int d = std::abs(idx[k] - idx[k + 1]);
    if (d != 1 && !(ring && d == 7)) return false;
  }
  return true;
}

TEST_F(KubectlPluginTest, PlanKeepsTheGangInOneDomainFirstAndGivesLinkedCards) {
  const json plan = RunJson({"plan", "--tasks=4", "--cards=4", "--require-linked"});
  ASSERT_TRUE(plan["feasible"]) << plan.dump(2);
  ASSERT_EQ(plan["placements"].size(), 4U);
  const std::string domain_a = Named(RunJson({"topo"})["nodes"], "lpu-node-01")["linkDomain"];
  // Domain A (nodes 01 + 02) can take 3 of the 4 tasks (01: one arc of 4 in C2..C7, 02: two);
  // the bridge's gang rule sends the first task there and keeps the next ones with it; the
  // fourth goes to the same IDC's other rack, the best level left.
  std::map<std::string, std::set<std::string>> taken;
  int in_a = 0;
  for (const auto& p : plan["placements"]) {
    EXPECT_TRUE(p["linked"]) << p.dump();
    const std::vector<std::string> cards = p["cards"];
    ASSERT_EQ(cards.size(), 4U);
    const std::string node = p["node"];
    EXPECT_TRUE(Contiguous(cards, node == "lpu-node-03" || node == "lpu-node-04")) << p.dump();
    for (const auto& c : cards)
      EXPECT_TRUE(taken[node].insert(c).second) << "card given twice: " << node << " " << c;
    if (p["linkDomain"] == domain_a) ++in_a;
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(plan["placements"][i]["linkDomain"], domain_a) << plan.dump(2);
  EXPECT_EQ(in_a, 3);
  EXPECT_EQ(plan["linkDomainsUsed"], 2);
  EXPECT_EQ(plan["racksUsed"], 2);
  // Node 01 has C0, C1 allocated: its arc is inside C2..C7.
  for (const auto& p : plan["placements"]) {
    if (p["node"] != "lpu-node-01") continue;
    for (const auto& c : p["cards"]) EXPECT_NE(c, CardId(0));
    for (const auto& c : p["cards"]) EXPECT_NE(c, CardId(1));
  }
  // The node without an agent was not considered, and says why.
  bool saw5 = false;
  for (const auto& v : plan["nodes"]) {
    if (v["node"] == "lpu-node-05") {
      saw5 = true;
      EXPECT_NE(v["reason"].get<std::string>().find("no hyperaccel.ai/topology annotation"),
                std::string::npos);
    }
  }
  EXPECT_TRUE(saw5);
}

TEST_F(KubectlPluginTest, PlanSaysWhyAGangCannotRun) {
  // 8 linked free cards exist only on node 02: the second task fits nowhere.
  const json plan = RunJson({"plan", "--tasks=2", "--cards=8", "--require-linked"}, kExitCannotRun);
  EXPECT_FALSE(plan["feasible"]);
  const std::string summary = plan["summary"];
  EXPECT_NE(summary.find("task 2 of 2 fits no node"), std::string::npos) << summary;
  std::map<std::string, json> by_node;
  for (const auto& v : plan["nodes"]) by_node[v["node"]] = v;
  // Node 01: 8 healthy cards, 6 free: evictions could help (code 2).
  EXPECT_EQ(by_node["lpu-node-01"]["code"], 2) << plan.dump(2);
  EXPECT_NE(by_node["lpu-node-01"]["reason"].get<std::string>().find("8 requested, 6 free on lpu-node-01"),
            std::string::npos);
  // Node 02 took the first task; now it has no cards left.
  EXPECT_EQ(by_node["lpu-node-02"]["code"], 2);
  // Node 04 has only 7 healthy cards: never (code 3).
  EXPECT_EQ(by_node["lpu-node-04"]["code"], 3);
  EXPECT_NE(by_node["lpu-node-04"]["reason"].get<std::string>().find("7 healthy"), std::string::npos);
  EXPECT_EQ(plan["placements"].size(), 1U);
  EXPECT_EQ(plan["placements"][0]["node"], "lpu-node-02");

  std::string out;
  EXPECT_EQ(Run({"plan", "--tasks=2", "--cards=8", "--require-linked"}, &out), kExitCannotRun);
  EXPECT_NE(out.find("cannot run now"), std::string::npos) << out;
  EXPECT_NE(out.find("never fits"), std::string::npos) << out;
  EXPECT_NE(out.find("evictions could help"), std::string::npos) << out;
}

TEST_F(KubectlPluginTest, PlanWithoutRequireLinkedStillPrefersLinkedCards) {
  const json plan = RunJson({"plan", "--tasks=1", "--cards=5"});
  ASSERT_TRUE(plan["feasible"]);
  const json& p = plan["placements"][0];
  EXPECT_TRUE(p["linked"]) << p.dump();
  EXPECT_EQ(p["cards"].size(), 5U);
}

TEST_F(KubectlPluginTest, CardsShowsOneNodeLikeShow) {
  std::string out;
  ASSERT_EQ(Run({"cards", "lpu-node-01"}, &out), kExitOk);
  EXPECT_NE(out.find("Node lpu-node-01"), std::string::npos) << out;
  EXPECT_NE(out.find("CARD ID"), std::string::npos) << out;
  EXPECT_NE(out.find(Serial("lpu-node-01", 7)), std::string::npos) << out;
  EXPECT_NE(out.find("allocated"), std::string::npos) << out;
  EXPECT_NE(out.find("Links to other nodes:"), std::string::npos) << out;
  EXPECT_NE(out.find("-> lpu-node-02/" + Serial("lpu-node-02", 0) + " port 0  up"), std::string::npos) << out;
  EXPECT_NE(out.find("8/8 cards healthy, 2 allocated, 6 free (largest free linked set 6), 9/9 links up"),
            std::string::npos)
      << out;

  const json j = RunJson({"cards", "lpu-node-04"});
  EXPECT_EQ(j["schema"], "hyperaccel.ai/kubectl-cards/v1");
  EXPECT_EQ(j["summary"]["unhealthy"], 1);
  EXPECT_EQ(j["labels"][names::kLabelHealthy], "7");
  EXPECT_FALSE(j["topology"]["cards"][3]["healthy"]);

  ASSERT_EQ(Run({"cards", "lpu-node-05"}, &out), kExitOk);
  EXPECT_NE(out.find("No hyperaccel.ai/topology annotation"), std::string::npos) << out;
  EXPECT_NE(out.find("Allocatable cards: 8"), std::string::npos) << out;

  std::string err;
  EXPECT_EQ(Run({"cards", "no-such-node"}, &out, &err), kExitUsage);
  EXPECT_NE(err.find("node no-such-node"), std::string::npos) << err;
}

TEST_F(KubectlPluginTest, InvalidAnnotationIsReportedNotFatal) {
  auto node = emu_.Get("nodes", "lpu-node-05");
  ASSERT_TRUE(node.has_value());
  (*node)["metadata"]["annotations"][names::kAnnotationTopology] = "{\"v\":1,\"cards\":[{\"id\":42}]";
  emu_.Upsert("nodes", *node);
  std::string out;
  ASSERT_EQ(Run({"cards", "lpu-node-05"}, &out), kExitOk);
  EXPECT_NE(out.find("Invalid hyperaccel.ai/topology annotation"), std::string::npos) << out;
  ASSERT_EQ(Run({"topo"}, &out), kExitOk);
  const json plan = RunJson({"plan", "--cards=2"});
  bool saw = false;
  for (const auto& v : plan["nodes"]) {
    if (v["node"] == "lpu-node-05") {
      saw = true;
      EXPECT_NE(v["reason"].get<std::string>().find("invalid hyperaccel.ai/topology annotation"),
                std::string::npos);
    }
  }
  EXPECT_TRUE(saw) << plan.dump(2);
}

TEST_F(KubectlPluginTest, KubeconfigListIsMergedAsKubectlDoes) {
  // $KUBECONFIG = a missing file, the good file, then a file that redefines cluster "emu" with a
  // dead server and sets another current-context: the first definition and the first
  // current-context win, so the plugin talks to the emulator.
  const std::string bad = dir_ + "/other/config";
  fs::create_directories(dir_ + "/other");
  WriteKubeconfig(bad, "http://127.0.0.1:1", "token: nope", "broken", "broken", "emu");
  const std::string list = dir_ + "/missing:" + dir_ + "/config:" + bad;
  std::string out, err;
  EXPECT_EQ(Run({"topo"}, &out, &err, list), kExitOk) << err;

  // --context picks the other file's context (its user, the first "emu" cluster): the token is wrong.
  EXPECT_EQ(Run({"--context", "broken", "topo"}, &out, &err, list), kExitApi);
  EXPECT_NE(err.find("listing nodes"), std::string::npos) << err;

  // --kubeconfig uses that one file only.
  EXPECT_EQ(Run({"--kubeconfig", bad, "--context", "emu", "topo"}, &out, &err, list), kExitUsage);
  EXPECT_NE(err.find("context 'emu' not found"), std::string::npos) << err;
  EXPECT_EQ(Run({"--kubeconfig", dir_ + "/nope", "topo"}, &out, &err), kExitUsage);
  EXPECT_NE(err.find("no such file"), std::string::npos) << err;

  // ~/.kube/config when $KUBECONFIG is unset.
  fs::create_directories(dir_ + "/home/.kube");
  fs::copy_file(dir_ + "/config", dir_ + "/home/.kube/config");
  std::ofstream(dir_ + "/home/.kube/token") << kToken;
  KubeconfigEnv env;
  const std::string home = dir_ + "/home";
  env.getenv = [home](const char* name) -> std::string { return std::string(name) == "HOME" ? home : ""; };
  auto config = ResolveKubeconfig({}, env);
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->server, emu_.url());
  EXPECT_EQ(config->token_file, home + "/.kube/token");  // relative to the file that names it

  // Nothing at all, not in a cluster: a clear error.
  env.getenv = [](const char*) { return std::string(); };
  env.in_cluster = [] { return Result<kube::ClusterConfig>(NotFound("not in a cluster")); };
  auto none = ResolveKubeconfig({}, env);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no kubeconfig"), std::string::npos);
}

TEST(Kubeconfig, MalformedFilesNameTheFile) {
  char tmpl[] = "/tmp/kubectl-kubeconfig-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::ofstream(dir + "/a") << "clusters: [unclosed\n";
  auto r = MergeKubeconfigs({dir + "/a"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(dir + "/a"), std::string::npos) << r.status().message();
  std::ofstream(dir + "/b") << "clusters: {name: x}\n";
  r = MergeKubeconfigs({dir + "/b"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("clusters is not a list"), std::string::npos) << r.status().message();
  std::ofstream(dir + "/c") << "users:\n- user: {token: x}\n";
  r = MergeKubeconfigs({dir + "/c"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("has no name"), std::string::npos) << r.status().message();
  std::ofstream(dir + "/d") << "";  // empty files contribute nothing
  EXPECT_TRUE(MergeKubeconfigs({dir + "/d"}).ok());
  std::error_code ec;
  fs::remove_all(dir, ec);
}

TEST(KubectlCli, UsageErrorsAndHelp) {
  std::ostringstream out, err;
  EXPECT_EQ(kubectl::Run({}, out, err), kExitUsage);
  EXPECT_EQ(kubectl::Run({"plan", "--tasks=0"}, out, err), kExitUsage);
  EXPECT_EQ(kubectl::Run({"-o", "yaml", "topo"}, out, err), kExitUsage);
  EXPECT_EQ(kubectl::Run({"cards"}, out, err), kExitUsage);
  std::ostringstream help;
  EXPECT_EQ(kubectl::Run({"--help"}, help, err), kExitOk);
  EXPECT_NE(help.str().find("topo"), std::string::npos);
  EXPECT_NE(help.str().find("--kubeconfig"), std::string::npos);
}

TEST(NodeViews, MalformedNodeListsAreErrors) {
  EXPECT_FALSE(NodesFromList(json::parse("{}"), "hyperaccel.ai/fpga").ok());
  EXPECT_FALSE(NodesFromList(json::parse(R"({"items":[{"metadata":{}}]})"), "hyperaccel.ai/fpga").ok());
  auto ok = NodesFromList(
      json::parse(
          R"({"items":[{"metadata":{"name":"n"},"status":{"allocatable":{"hyperaccel.ai/fpga":"4"}}}]})"),
      "hyperaccel.ai/fpga");
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->size(), 1U);
  EXPECT_EQ(ok->front().allocatable, 4);
  EXPECT_FALSE(Plan(*ok, {.tasks = 0}).ok());
  EXPECT_FALSE(Plan(*ok, {.tasks = 1, .cards = 65}).ok());
}

}  // namespace
}  // namespace hyperaccel::kubectl
