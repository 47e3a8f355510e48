// Pure publication: labels, annotation, tiers, HyperNodes, merge patches. Plain values only.
#include "hyperaccel/topology_agent/publication.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>

#include "hyperaccel/placement/annotation.h"
#include "hyperaccel/placement/names.h"
#include "hyperaccel/xrt/cabling.h"
#include "test_util.h"

namespace hyperaccel::agent {
namespace {

using nlohmann::json;
using testutil::MakeInventory;

DomainLookup AllIn(const std::string& domain) {
  return [domain](const std::string&, const std::string&) { return domain; };
}

bool ValidLabelValue(const std::string& v) {
  static const std::regex re(R"(^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$)");
  return v.size() <= 63 && std::regex_match(v, re);
}

TEST(SanitizeLabelValue, KeepsValidValuesAndFixesOthers) {
  EXPECT_EQ(SanitizeLabelValue("xilinx_u55c_gen3x16_xdma_base_3"), "xilinx_u55c_gen3x16_xdma_base_3");
  EXPECT_EQ(SanitizeLabelValue(""), "");
  for (const std::string& v :
       std::vector<std::string>{"-abc-", "a b/c", std::string(100, 'x'), "__", "DC 1", "rack#7", "é"}) {
    std::string s = SanitizeLabelValue(v);
    EXPECT_TRUE(ValidLabelValue(s)) << v << " -> " << s;
    EXPECT_FALSE(s.empty()) << v;
  }
  EXPECT_NE(SanitizeLabelValue("DC 1"), SanitizeLabelValue("DC/1"));  // altered values stay apart
  EXPECT_NE(SanitizeLabelValue("DC 1"), "DC-1");
}

TEST(LinkTopology, RingChainMeshNone) {
  EXPECT_EQ(LinkTopologyName(MakeInventory("n1", 8)), "ring");
  EXPECT_EQ(LargestLinkedSet(MakeInventory("n1", 8)), 8);
  EXPECT_EQ(LinkTopologyName(MakeInventory("n1", 4, false)), "none");
  EXPECT_EQ(LargestLinkedSet(MakeInventory("n1", 4, false)), 1);
  EXPECT_EQ(LargestLinkedSet(MakeInventory("n1", 0)), 0);
  auto chain = MakeInventory("n1", 4);
  chain.links.pop_back();
  EXPECT_EQ(LinkTopologyName(chain), "chain");
  auto down = MakeInventory("n1", 4);
  down.links[1].state = hw::LinkState::kDown;
  down.links[3].state = hw::LinkState::kDown;
  EXPECT_EQ(LinkTopologyName(down), "chain");
  EXPECT_EQ(LargestLinkedSet(down), 2);
  auto mesh = MakeInventory("n1", 4);
  hw::Link extra;
  extra.a = {"", mesh.cards[0].serial, 0};
  extra.b = {"", mesh.cards[2].serial, 1};
  extra.state = hw::LinkState::kUp;
  mesh.links.push_back(extra);
  EXPECT_EQ(LinkTopologyName(mesh), "mesh");
  EXPECT_EQ(LinkTopologyName(MakeInventory("n1", 2)), "ring");  // two cables between two cards
}

TEST(ComputePublication, EightCardNodeLabels) {
  auto inv = MakeInventory("lpu-node-01", 8);
  inv.cards[3].health = hw::Health::kUnhealthy;
  TierConfig tiers{"", "topology.kubernetes.io/zone", "r07", ""};
  auto p = ComputePublication(inv, {"0000:3b:00.1"}, tiers, {{"topology.kubernetes.io/zone", "seoul-1"}},
                              AllIn("1a2b3c4d5e6f"));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  std::map<std::string, std::string> want = {
      {"hyperaccel.ai/fpga.present", "true"},
      {"hyperaccel.ai/fpga.count", "8"},
      {"hyperaccel.ai/fpga.healthy", "7"},
      {"hyperaccel.ai/fpga.product", "ALVEO-U55C"},
      {"hyperaccel.ai/fpga.shell", "xilinx_u55c_gen3x16_xdma_base_3"},
      {"hyperaccel.ai/fpga.xrt-version", "2.13.0"},
      {"hyperaccel.ai/link.topology", "ring"},
      {"hyperaccel.ai/link.largest-domain", "8"},
      {"hyperaccel.ai/link.domain", "1a2b3c4d5e6f"},
      {"hyperaccel.ai/rack", "seoul-1.r07"},
      {"hyperaccel.ai/idc", "seoul-1"},
  };
  EXPECT_EQ(p->labels, want);
  for (const auto& [k, v] : p->labels) {
    EXPECT_EQ(k.rfind(names::kPrefix, 0), 0u) << k;
    EXPECT_TRUE(ValidLabelValue(v)) << k << "=" << v;
  }
  auto topo = placement::DecodeTopology(p->annotation);
  ASSERT_TRUE(topo.ok()) << topo.status().ToString();
  EXPECT_EQ(topo->version, 1);
  EXPECT_EQ(topo->domain, "1a2b3c4d5e6f");
  ASSERT_EQ(topo->cards.size(), 8u);
  EXPECT_TRUE(topo->cards[0].allocated);
  EXPECT_FALSE(topo->cards[1].allocated);
  EXPECT_FALSE(topo->cards[3].healthy);
  EXPECT_EQ(topo->links.size(), 8u);
  ASSERT_EQ(p->hypernodes.size(), 3u);
  EXPECT_EQ(p->hypernodes[0].name, "hyperaccel-domain-1a2b3c4d5e6f");
  EXPECT_EQ(p->hypernodes[0].tier, 1);
  EXPECT_EQ(p->hypernodes[0].members, std::vector<std::string>{"lpu-node-01"});
  std::string dry = FormatDryRun(*p);
  EXPECT_NE(dry.find("hyperaccel.ai/rack=seoul-1.r07"), std::string::npos);
  EXPECT_NE(dry.find("\"kind\":\"HyperNode\""), std::string::npos);
}

// The HyperNode chain of one node as direct mode writes it: leaf (the node) -> rack -> IDC.
void ExpectChain(const Publication& p, const std::string& domain, const std::string& rack,
                 const std::string& idc) {
  ASSERT_EQ(p.hypernodes.size(), 3u);
  std::map<int, const HyperNodeSpec*> by_tier;
  for (const auto& h : p.hypernodes) by_tier[h.tier] = &h;
  ASSERT_EQ(by_tier.size(), 3u);
  EXPECT_EQ(by_tier[1]->name, HyperNodeName(1, domain));
  EXPECT_EQ(by_tier[1]->member_type, "Node");
  EXPECT_EQ(by_tier[1]->members, std::vector<std::string>{p.node});
  EXPECT_EQ(by_tier[2]->name, HyperNodeName(2, rack));
  EXPECT_EQ(by_tier[2]->members, std::vector<std::string>{by_tier[1]->name});
  EXPECT_EQ(by_tier[3]->name, HyperNodeName(3, idc));
  EXPECT_EQ(by_tier[3]->members, std::vector<std::string>{by_tier[2]->name});
}

TEST(ComputePublication, NodeWithoutCardsStillGetsItsTiers) {
  hw::Inventory inv;
  inv.node_name = "cpu-node";
  auto p = ComputePublication(inv, {}, TierConfig{"", "", "r1", "dc"}, {}, nullptr);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->labels.at("hyperaccel.ai/fpga.present"), "false");
  EXPECT_EQ(p->labels.at("hyperaccel.ai/fpga.count"), "0");
  EXPECT_EQ(p->labels.at("hyperaccel.ai/link.domain"), NodeLocalDomain("cpu-node"));
  EXPECT_EQ(p->labels.at("hyperaccel.ai/rack"), "dc.r1");
  EXPECT_EQ(p->labels.at("hyperaccel.ai/idc"), "dc");
  ExpectChain(*p, NodeLocalDomain("cpu-node"), "dc.r1", "dc");
}

// Cards cabled only among themselves (links from the probes, no cabling-file domain), with the
// rack and IDC from the admin's labels: before, no tier label and no HyperNode at all.
TEST(ComputePublication, NodeCabledOnlyInsideGetsNodeLocalTier1AndRackAndIdc) {
  auto inv = MakeInventory("lpu-node-07", 4);  // a 4-card ring inside the node
  TierConfig tiers{"topology.hyperaccel.ai/rack", "topology.kubernetes.io/zone", "", ""};
  std::map<std::string, std::string> node_labels = {{"topology.hyperaccel.ai/rack", "r12"},
                                                    {"topology.kubernetes.io/zone", "seoul-1"}};
  auto p = ComputePublication(inv, {}, tiers, node_labels, nullptr);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const std::string local = NodeLocalDomain("lpu-node-07");
  EXPECT_EQ(p->labels.at("hyperaccel.ai/link.topology"), "ring");
  EXPECT_EQ(p->labels.at("hyperaccel.ai/link.domain"), local);
  EXPECT_EQ(p->labels.at("hyperaccel.ai/rack"), "seoul-1.r12");
  EXPECT_EQ(p->labels.at("hyperaccel.ai/idc"), "seoul-1");
  for (const auto& [k, v] : p->labels) EXPECT_TRUE(ValidLabelValue(v)) << k << "=" << v;
  ExpectChain(*p, local, "seoul-1.r12", "seoul-1");
  // The annotation names no domain: the bridge keeps gangs inside cabled domains only.
  auto topo = placement::DecodeTopology(p->annotation);
  ASSERT_TRUE(topo.ok());
  EXPECT_EQ(topo->domain, "");
  const std::string dry = FormatDryRun(*p);
  EXPECT_EQ(dry.find("(none"), std::string::npos) << dry;
  EXPECT_NE(dry.find(HyperNodeName(1, local)), std::string::npos) << dry;
  // Fixed values (--rack/--idc) work the same way.
  auto fixed = ComputePublication(inv, {}, TierConfig{"", "", "r12", "seoul-1"}, {}, nullptr);
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->labels, p->labels);
  // Without a rack: tier 1 alone (tiers stay contiguous from 1).
  auto bare = ComputePublication(inv, {}, TierConfig{}, {}, nullptr);
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->labels.at("hyperaccel.ai/link.domain"), local);
  EXPECT_EQ(bare->labels.count("hyperaccel.ai/rack"), 0u);
  ASSERT_EQ(bare->hypernodes.size(), 1u);
  EXPECT_EQ(bare->hypernodes[0].members, std::vector<std::string>{"lpu-node-07"});
}

TEST(NodeLocalDomain, OnePerNodeAndNeverACablingDomain) {
  const std::string a = NodeLocalDomain("lpu-node-01");
  EXPECT_EQ(a, NodeLocalDomain("lpu-node-01"));
  EXPECT_NE(a, NodeLocalDomain("lpu-node-02"));
  EXPECT_EQ(a.size(), 12u);
  EXPECT_TRUE(ValidLabelValue(a));
  EXPECT_NE(a, hw::DomainId(hw::CardKey{"lpu-node-01", "XFL1ABCDEF01"}));
  EXPECT_TRUE(ValidLabelValue(NodeLocalDomain(std::string(253, 'n'))));
}

TEST(CanonicalTiers, DomainAcrossRacksTakesSmallestNodesRack) {
  std::map<std::string, Location> peers = {{"a-node", {"r1", "dc"}}, {"z-node", {"r9", "dc"}}};
  auto t = CanonicalTiers("m-node", "d1", {"r5", "dc"}, peers);
  EXPECT_EQ(t.rack, "dc.r1");
  EXPECT_EQ(t.idc, "dc");
  // The peer without a rack is skipped.
  auto t2 = CanonicalTiers("m-node", "d1", {"r5", "dc"}, {{"a-node", {"", ""}}});
  EXPECT_EQ(t2.rack, "dc.r5");
  EXPECT_EQ(CanonicalTiers("m", "", {"r", "i"}, {}).rack, "");
  EXPECT_EQ(CanonicalTiers("m", "d", {"r", ""}, {}).rack, "r");
  EXPECT_EQ(CanonicalTiers("m", "d", {"r", ""}, {}).idc, "");
}

TEST(BuildHyperNodes, EveryChildHasExactlyOneParent) {
  std::vector<NodeTiers> nodes = {
      {"n1", {"d1", "dc.r1", "dc"}},       {"n2", {"d1", "dc.r2", "dc"}},  // d1 spans two racks
      {"n3", {"d2", "dc.r2", "dc"}},       {"n4", {"d3", "", ""}},         // d3 has no rack
      {"n5", {"", "dc.r1", "dc"}},                                         // no domain: no HyperNode
      {"n6", {"d4", "other.r1", "other"}},
  };
  auto hns = BuildHyperNodes(nodes);
  std::map<std::string, int> parents;
  std::set<std::string> node_members;
  for (const auto& h : hns) {
    EXPECT_GE(h.tier, 1);
    EXPECT_FALSE(h.members.empty());
    for (const auto& m : h.members) {
      if (h.member_type == "Node") {
        EXPECT_TRUE(node_members.insert(m).second) << m << " in two leaves";
      } else {
        ++parents[m];
      }
    }
  }
  for (const auto& [child, n] : parents) EXPECT_EQ(n, 1) << child;
  EXPECT_EQ(node_members, (std::set<std::string>{"n1", "n2", "n3", "n4", "n6"}));
  auto find = [&](const std::string& name) -> const HyperNodeSpec* {
    for (const auto& h : hns) {
      if (h.name == name) return &h;
    }
    return nullptr;
  };
  const HyperNodeSpec* r1 = find(HyperNodeName(2, "dc.r1"));
  ASSERT_NE(r1, nullptr);
  EXPECT_EQ(r1->members, std::vector<std::string>{HyperNodeName(1, "d1")});
  ASSERT_NE(find(HyperNodeName(3, "dc")), nullptr);
  EXPECT_EQ(find(HyperNodeName(3, "dc"))->members.size(), 2u);
  // Stable: the same input in another order gives the same tree.
  std::reverse(nodes.begin(), nodes.end());
  EXPECT_EQ(BuildHyperNodes(nodes), hns);
}

// Cabled and uncabled nodes in the same racks: every node sits in exactly one leaf, every
// HyperNode has exactly one parent, and uncabled nodes reach their rack through their own leaf.
TEST(BuildHyperNodes, UncabledNodesJoinTheirRackThroughTheirOwnLeaf) {
  std::vector<NodeTiers> nodes = {
      {"c1", {"d1", "dc.r1", "dc"}},
      {"c2", {"d1", "dc.r1", "dc"}},
      {"u1", {NodeLocalDomain("u1"), "dc.r1", "dc"}},
      {"u2", {NodeLocalDomain("u2"), "dc.r1", "dc"}},
      {"u3", {NodeLocalDomain("u3"), "dc.r2", "dc"}},
  };
  auto hns = BuildHyperNodes(nodes);
  std::map<std::string, int> parents;
  std::map<std::string, int> leaves;
  for (const auto& h : hns) {
    for (const auto& m : h.members) ++(h.member_type == "Node" ? leaves : parents)[m];
  }
  for (const auto& [child, n] : parents) EXPECT_EQ(n, 1) << child << " has " << n << " parents";
  EXPECT_EQ(leaves.size(), 5u);
  for (const auto& [node, n] : leaves) EXPECT_EQ(n, 1) << node;
  for (const auto& h : hns) {
    if (h.tier < 3) {
      EXPECT_EQ(parents.count(h.name), 1u) << h.name << " has no parent";
    }
  }
  auto find = [&](const std::string& name) -> const HyperNodeSpec* {
    for (const auto& h : hns) {
      if (h.name == name) return &h;
    }
    return nullptr;
  };
  const HyperNodeSpec* r1 = find(HyperNodeName(2, "dc.r1"));
  ASSERT_NE(r1, nullptr);
  std::vector<std::string> want = {HyperNodeName(1, "d1"), HyperNodeName(1, NodeLocalDomain("u1")),
                                   HyperNodeName(1, NodeLocalDomain("u2"))};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(r1->members, want);
  ASSERT_NE(find(HyperNodeName(3, "dc")), nullptr);
  EXPECT_EQ(find(HyperNodeName(3, "dc"))->members.size(), 2u);
}

TEST(HyperNodeName, DnsSubdomainAndDistinct) {
  static const std::regex dns(R"(^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$)");
  for (std::string v : {"1a2b3c4d5e6f", "DC1.R07", "dc1.r07", "a_b", "x-"}) {
    std::string n = HyperNodeName(2, v);
    EXPECT_TRUE(std::regex_match(n, dns)) << n;
  }
  EXPECT_NE(HyperNodeName(2, "DC1.R07"), HyperNodeName(2, "dc1.r07"));
  EXPECT_NE(HyperNodeName(2, "dc1.r07"), HyperNodeName(2, "dc1-r07"));
  EXPECT_EQ(HyperNodeName(1, "abc"), "hyperaccel-domain-abc");
}

// Validates a JSON value against the subset of OpenAPI v3 the CRD uses; unknown fields are
// errors (the API server would prune them silently).
void CheckSchema(const YAML::Node& schema, const json& v, const std::string& where,
                 std::vector<std::string>& errors) {
  std::string type = schema["type"] ? schema["type"].as<std::string>() : "";
  if (type == "object") {
    if (!v.is_object()) return errors.push_back(where + ": not an object");
    if (schema["required"]) {
      for (const auto& r : schema["required"]) {
        if (!v.contains(r.as<std::string>()))
          errors.push_back(where + "." + r.as<std::string>() + ": required");
      }
    }
    if (!schema["properties"]) return;  // free-form (metadata)
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!schema["properties"][it.key()]) {
        errors.push_back(where + "." + it.key() + ": unknown field");
        continue;
      }
      CheckSchema(schema["properties"][it.key()], it.value(), where + "." + it.key(), errors);
    }
  } else if (type == "array") {
    if (!v.is_array()) return errors.push_back(where + ": not an array");
    if (schema["minItems"] && v.size() < schema["minItems"].as<size_t>())
      errors.push_back(where + ": too few items");
    for (size_t i = 0; i < v.size(); ++i)
      CheckSchema(schema["items"], v[i], where + "[" + std::to_string(i) + "]", errors);
  } else if (type == "integer") {
    if (!v.is_number_integer()) return errors.push_back(where + ": not an integer");
    if (schema["minimum"] && v.get<int64_t>() < schema["minimum"].as<int64_t>())
      errors.push_back(where + ": < minimum");
  } else if (type == "string") {
    if (!v.is_string()) return errors.push_back(where + ": not a string");
    std::string s = v.get<std::string>();
    if (schema["maxLength"] && s.size() > schema["maxLength"].as<size_t>())
      errors.push_back(where + ": too long");
    if (schema["minLength"] && s.size() < schema["minLength"].as<size_t>())
      errors.push_back(where + ": too short");
    if (schema["pattern"] && !std::regex_search(s, std::regex(schema["pattern"].as<std::string>()))) {
      errors.push_back(where + ": pattern");
    }
    if (schema["enum"]) {
      bool ok = false;
      for (const auto& e : schema["enum"]) ok = ok || e.as<std::string>() == s;
      if (!ok) errors.push_back(where + ": not in enum");
    }
  }
}

TEST(HyperNodeJson, MatchesTheVolcanoCrdSchema) {
  const char* shared = std::getenv("HYPERACCEL_SHARED_DIR");  // NOLINT(concurrency-mt-unsafe): no setenv here
  if (!shared) GTEST_SKIP() << "HYPERACCEL_SHARED_DIR not set";
  YAML::Node crd;
  try {
    crd = YAML::LoadFile(std::string(shared) + "/reference/volcano-crds/topology.volcano.sh_hypernodes.yaml");
  } catch (const YAML::Exception& e) {
    GTEST_SKIP() << "CRD not readable: " << e.what();
  }
  YAML::Node schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
  ASSERT_TRUE(schema);
  std::vector<NodeTiers> nodes = {{"lpu-node-01", {"1a2b3c4d5e6f", "DC1.R07", "DC1"}},
                                  {"lpu-node-02", {"1a2b3c4d5e6f", "DC1.R07", "DC1"}}};
  auto hns = BuildHyperNodes(nodes);
  ASSERT_EQ(hns.size(), 3u);
  for (const auto& h : hns) {
    json j = json::parse(HyperNodeJson(h));
    std::vector<std::string> errors;
    CheckSchema(schema, j, "HyperNode", errors);
    EXPECT_TRUE(errors.empty()) << h.name << ": " << (errors.empty() ? "" : errors.front());
    EXPECT_EQ(j["metadata"]["labels"][names::kManagedByLabel], names::kManagedByValue);
    EXPECT_LE(h.name.size(), 253u);
    for (const auto& m : j["spec"]["members"]) EXPECT_EQ(m["selector"].size(), 1u);
  }
}

TEST(NodePatch, TouchesOnlyOurPrefixAndRemovesStaleLabels) {
  Publication p;
  p.labels = {{"hyperaccel.ai/fpga.count", "8"}, {"hyperaccel.ai/link.domain", "d1"}};
  p.annotation = R"({"v":1})";
  std::map<std::string, std::string> current = {{"kubernetes.io/hostname", "n1"},
                                                {"hyperaccel.ai/fpga.count", "7"},
                                                {"hyperaccel.ai/old-label", "x"},
                                                {"hyperaccel.ai/admin-rack", "r1"},
                                                {"hyperaccel.ai/link.domain", "d1"}};
  std::string patch = NodePatch(p, current, std::nullopt, {"hyperaccel.ai/admin-rack"});
  json j = json::parse(patch);
  json want = {{"metadata",
                {{"labels", {{"hyperaccel.ai/fpga.count", "8"}, {"hyperaccel.ai/old-label", nullptr}}},
                 {"annotations", {{"hyperaccel.ai/topology", R"({"v":1})"}}}}}};
  EXPECT_EQ(j, want);
  // Applying it leaves nothing to do.
  current["hyperaccel.ai/fpga.count"] = "8";
  current.erase("hyperaccel.ai/old-label");
  EXPECT_EQ(NodePatch(p, current, std::string(R"({"v":1})"), {"hyperaccel.ai/admin-rack"}), "");
}

}  // namespace
}  // namespace hyperaccel::agent
