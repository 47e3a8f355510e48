// Slice generation: every shape and server layout gives slices the API server accepts, pools the
// allocator accepts, and never two simultaneously allocatable devices that share a card.
#include "hyperaccel/dra_driver/slices.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <random>
#include <set>

#include "hyperaccel/testing/dra_validation.h"
#include "inventories.h"

namespace hyperaccel::dra {
namespace {

using hyperaccel::testing::DraGates;
using hyperaccel::testing::ValidatePool;
using hyperaccel::testing::ValidateResourceSlice;
using testing::Chain;
using testing::Inventory;
using testing::Mesh;
using testing::Ring;
using testing::TwoRings;

struct Published {
  std::vector<Json> slices;
  std::map<std::string, Json> devices;  // name -> device
  std::map<std::string, int> capacity;  // "set/counter" -> value
};

Published Check(const hw::Inventory& inv, const SliceOptions& o) {
  Published p;
  auto built = BuildSlices(inv, o);
  EXPECT_TRUE(built.ok()) << built.status().ToString();
  if (!built.ok()) return p;
  DraGates gates;
  gates.minor = o.features.layout == CounterLayout::kSplit ? 35 : 34;
  for (auto s : built->slices) {
    s["spec"]["pool"]["generation"] = 1;
    EXPECT_EQ(ValidateResourceSlice(s, gates), "") << s.dump();
    p.slices.push_back(s);
    for (const auto& d : s["spec"].value("devices", Json::array())) {
      EXPECT_TRUE(p.devices.emplace(d["name"].get<std::string>(), d).second) << "duplicate " << d["name"];
    }
    for (const auto& cs : s["spec"].value("sharedCounters", Json::array())) {
      for (auto& [c, v] : cs["counters"].items()) {
        p.capacity[cs["name"].get<std::string>() + "/" + c] = std::stoi(v["value"].get<std::string>());
      }
    }
  }
  EXPECT_EQ(ValidatePool(p.slices), "");
  return p;
}

// The counters a device consumes ("set/counter" -> amount).
std::map<std::string, int> Consumed(const Json& d) {
  std::map<std::string, int> out;
  for (const auto& cc : d.value("consumesCounters", Json::array())) {
    for (auto& [c, v] : cc["counters"].items()) {
      out[cc["counterSet"].get<std::string>() + "/" + c] += std::stoi(v["value"].get<std::string>());
    }
  }
  return out;
}

// The cards a device stands for, from its counters ("cardN" -> N), or from its name for a card
// device without counters.
std::set<int> CardsOf(const Json& d) {
  std::set<int> cards;
  for (auto& [key, amount] : Consumed(d)) cards.insert(std::stoi(key.substr(key.find("/card") + 5)));
  if (cards.empty()) cards.insert(std::stoi(d["name"].get<std::string>().substr(5)));
  return cards;
}

// Property: every pair of devices sharing a card shares a counter whose capacity cannot cover
// both, so the allocator never gives both out at once; and every device's counters are exactly
// its cards (an arc of k consumes k counters of linked cards).
void CheckNoOverlap(const Published& p, const placement::CardGraph& graph) {
  for (const auto& [name, d] : p.devices) {
    auto cards = CardsOf(d);
    const int k = static_cast<int>(d["attributes"]["cards"]["int"].get<int64_t>());
    EXPECT_EQ(static_cast<int>(cards.size()), k) << name;
    if (name.rfind("card-", 0) == 0) {
      EXPECT_EQ(cards, std::set<int>{std::stoi(name.substr(5))}) << name;
    } else {
      // An arc's cards are linked in a path: walk it through the arc's link order.
      placement::Mask m = 0;
      for (int c : cards) m |= placement::Mask{1} << c;
      auto order = placement::LinkOrder(graph, m);
      for (size_t i = 1; i < order.size(); ++i) {
        EXPECT_TRUE(graph.adj[static_cast<size_t>(order[i - 1])] & (placement::Mask{1} << order[i])) << name;
      }
    }
  }
  std::vector<std::pair<std::string, Json>> all(p.devices.begin(), p.devices.end());
  for (size_t i = 0; i < all.size(); ++i) {
    const auto ci = CardsOf(all[i].second);
    const auto ui = Consumed(all[i].second);
    for (size_t j = i + 1; j < all.size(); ++j) {
      const auto cj = CardsOf(all[j].second);
      bool share = false;
      for (int c : ci) share = share || cj.count(c);
      if (!share) continue;
      const auto uj = Consumed(all[j].second);
      bool blocked = false;
      for (auto& [key, amount] : ui) {
        auto it = uj.find(key);
        if (it != uj.end() && p.capacity.count(key) && amount + it->second > p.capacity.at(key))
          blocked = true;
      }
      EXPECT_TRUE(blocked) << all[i].first << " and " << all[j].first
                           << " share a card but not a full counter";
    }
  }
}

SliceOptions Options(CounterLayout layout, bool taints = true,
                     placement::ArcAlignment a = placement::ArcAlignment::kAligned) {
  SliceOptions o;
  o.node_name = "node-1";
  o.node_uid = "00000000-0000-4000-8000-000000000001";
  o.alignment = a;
  o.features.layout = layout;
  o.features.device_taints = taints;
  return o;
}

int CountKind(const Published& p, const std::string& kind) {
  int n = 0;
  for (const auto& [name, d] : p.devices) n += d["attributes"]["kind"]["string"] == kind;
  return n;
}

TEST(SlicesTest, RingOfEightAlignedAndAll) {
  auto graph = placement::GraphFromInventory(Ring(8));
  ASSERT_TRUE(graph.ok());
  for (auto layout : {CounterLayout::kSplit, CounterLayout::kCombined}) {
    auto aligned = Check(Ring(8), Options(layout));
    EXPECT_EQ(CountKind(aligned, "card"), 8);
    EXPECT_EQ(CountKind(aligned, "arc"), 4 + 2 + 1);
    CheckNoOverlap(aligned, *graph);
    auto all = Check(Ring(8), Options(layout, true, placement::ArcAlignment::kAll));
    EXPECT_EQ(CountKind(all, "arc"), 8 + 8 + 1);  // every rotation of 2 and 4, one ring of 8
    CheckNoOverlap(all, *graph);
  }
  auto split = Check(Ring(8), Options(CounterLayout::kSplit));
  ASSERT_EQ(split.slices.size(), 2u);  // counters, devices
  EXPECT_TRUE(split.slices[0]["spec"].contains("sharedCounters"));
  EXPECT_FALSE(split.slices[0]["spec"].contains("devices"));
  const Json& arc = split.devices.at("arc4-4");
  EXPECT_EQ(arc["attributes"]["position"]["int"], 4);
  EXPECT_EQ(arc["attributes"]["linkDomain"]["string"], "domain-0");
  EXPECT_EQ(CardsOf(arc), (std::set<int>{4, 5, 6, 7}));
  auto combined = Check(Ring(8), Options(CounterLayout::kCombined));
  ASSERT_EQ(combined.slices.size(), 1u);
  EXPECT_TRUE(combined.slices[0]["spec"].contains("sharedCounters"));
  EXPECT_TRUE(combined.slices[0]["spec"].contains("devices"));
}

TEST(SlicesTest, CardAttributesAndOwner) {
  auto p = Check(Ring(4), Options(CounterLayout::kSplit));
  const Json& c = p.devices.at("card-2");
  EXPECT_EQ(c["attributes"]["kind"]["string"], "card");
  EXPECT_EQ(c["attributes"]["serial"]["string"], "XFL1SER102");
  EXPECT_EQ(c["attributes"]["numaNode"]["int"], 0);
  EXPECT_EQ(c["attributes"]["product"]["string"], "ALVEO-U55C");
  EXPECT_EQ(c["attributes"]["resource.kubernetes.io/pciBusID"]["string"], "0000:12:00.1");
  EXPECT_EQ(c["attributes"]["resource.kubernetes.io/pcieRoot"]["string"], "pci0000:10");
  EXPECT_FALSE(c["attributes"].contains("xclbinUUID"));  // none loaded
  for (const auto& s : p.slices) {
    EXPECT_EQ(s["spec"]["driver"], "fpga.hyperaccel.ai");
    EXPECT_EQ(s["spec"]["nodeName"], "node-1");
    EXPECT_EQ(s["spec"]["pool"]["name"], "node-1");
    EXPECT_EQ(s["spec"]["pool"]["resourceSliceCount"], p.slices.size());
    EXPECT_EQ(s["metadata"]["ownerReferences"][0]["kind"], "Node");
    EXPECT_EQ(s["metadata"]["ownerReferences"][0]["uid"], "00000000-0000-4000-8000-000000000001");
  }
}

TEST(SlicesTest, SizesOneFourEightSixteenSixtyFour) {
  for (int n : {1, 4, 8, 16, 64}) {
    for (bool ring : {true, false}) {
      auto inv = ring ? Ring(n) : Chain(n);
      auto graph = placement::GraphFromInventory(inv);
      ASSERT_TRUE(graph.ok());
      for (auto layout : {CounterLayout::kSplit, CounterLayout::kCombined}) {
        for (auto a : {placement::ArcAlignment::kAligned, placement::ArcAlignment::kAll}) {
          SCOPED_TRACE("n=" + std::to_string(n) + " ring=" + std::to_string(ring) +
                       " layout=" + std::to_string(static_cast<int>(layout)) +
                       " all=" + std::to_string(a == placement::ArcAlignment::kAll));
          auto p = Check(inv, Options(layout, true, a));
          EXPECT_EQ(CountKind(p, "card"), n);
          CheckNoOverlap(p, *graph);
          if (n == 1) {
            EXPECT_EQ(CountKind(p, "arc"), 0);
          }
        }
      }
    }
  }
}

TEST(SlicesTest, SixtyFourCardRingSplitsCounterSetsAndSlices) {
  auto p = Check(Ring(64), Options(CounterLayout::kSplit, true, placement::ArcAlignment::kAll));
  // 64 counters do not fit one set of 32: two sets, and arcs crossing the boundary consume both.
  EXPECT_EQ(p.capacity.size(), 64u);
  EXPECT_EQ(p.devices.at("arc8-28")["consumesCounters"].size(), 2u);
  EXPECT_EQ(p.devices.at("arc8-0")["consumesCounters"].size(), 1u);
  EXPECT_EQ(CountKind(p, "arc"), 64 * 3);
  for (const auto& s : p.slices) EXPECT_LE(s["spec"].value("devices", Json::array()).size(), 64u);
  // 1.34 cannot put 64 counters in one slice: the ring is published in segments of 32 and arcs
  // across a segment boundary are left out.
  SliceOptions o = Options(CounterLayout::kCombined, true, placement::ArcAlignment::kAligned);
  auto built = BuildSlices(Ring(64), o);
  ASSERT_TRUE(built.ok());
  auto q = Check(Ring(64), o);
  EXPECT_EQ(CountKind(q, "card"), 64);
  EXPECT_EQ(CountKind(q, "arc") + built->dropped_arcs, 32 + 16 + 8);
}

TEST(SlicesTest, MeshAndTwoDomains) {
  auto mesh = Mesh(8);
  auto mg = placement::GraphFromInventory(mesh);
  ASSERT_TRUE(mg.ok());
  auto p = Check(mesh, Options(CounterLayout::kSplit, true, placement::ArcAlignment::kAll));
  CheckNoOverlap(p, *mg);
  EXPECT_GT(CountKind(p, "arc"), 0);

  auto two = TwoRings(4);
  auto tg = placement::GraphFromInventory(two);
  ASSERT_TRUE(tg.ok());
  for (auto layout : {CounterLayout::kSplit, CounterLayout::kCombined}) {
    auto q = Check(two, Options(layout));
    CheckNoOverlap(q, *tg);
    EXPECT_EQ(q.devices.at("card-0")["attributes"]["linkDomain"]["string"], "domain-0");
    EXPECT_EQ(q.devices.at("card-5")["attributes"]["linkDomain"]["string"], "domain-1");
    EXPECT_EQ(q.devices.at("arc4-4")["attributes"]["linkDomain"]["string"], "domain-1");
    EXPECT_EQ(CountKind(q, "arc"), 2 * (2 + 1));
  }
}

TEST(SlicesTest, UnhealthyCardTaintedOrWithdrawn) {
  auto inv = Ring(8);
  inv.cards[3].health = hw::Health::kUnhealthy;
  inv.cards[3].health_reason = "fpga temperature 101 °C over limit 95 °C";
  auto graph = placement::GraphFromInventory(inv);
  ASSERT_TRUE(graph.ok());
  auto tainted = Check(inv, Options(CounterLayout::kSplit, true));
  ASSERT_TRUE(tainted.devices.at("card-3").contains("taints"));
  const Json& t = tainted.devices.at("card-3")["taints"][0];
  EXPECT_EQ(t["key"], "fpga.hyperaccel.ai/unhealthy");
  EXPECT_EQ(t["effect"], "NoSchedule");
  EXPECT_EQ(t["value"], "fpga-temperature-101-C-over-limit-95-C");
  EXPECT_TRUE(tainted.devices.at("arc2-2").contains("taints"));
  EXPECT_TRUE(tainted.devices.at("arc8-0").contains("taints"));
  EXPECT_FALSE(tainted.devices.at("arc4-4").contains("taints"));
  EXPECT_FALSE(tainted.devices.at("card-4").contains("taints"));
  CheckNoOverlap(tainted, *graph);

  auto withdrawn = Check(inv, Options(CounterLayout::kSplit, false));
  EXPECT_FALSE(withdrawn.devices.count("card-3"));
  EXPECT_FALSE(withdrawn.devices.count("arc2-2"));
  EXPECT_FALSE(withdrawn.devices.count("arc4-0"));
  EXPECT_FALSE(withdrawn.devices.count("arc8-0"));
  EXPECT_TRUE(withdrawn.devices.count("arc4-4"));
  EXPECT_EQ(CountKind(withdrawn, "card"), 7);
  CheckNoOverlap(withdrawn, *graph);
}

TEST(SlicesTest, WithoutPartitionableDevicesCardsOnly) {
  SliceOptions o = Options(CounterLayout::kSplit);
  o.features.partitionable = false;
  auto p = Check(Ring(8), o);
  EXPECT_EQ(CountKind(p, "card"), 8);
  EXPECT_EQ(CountKind(p, "arc"), 0);
  EXPECT_TRUE(p.capacity.empty());
  for (const auto& [n, d] : p.devices) EXPECT_FALSE(d.contains("consumesCounters"));
}

TEST(SlicesTest, DeterministicAndYamlRoundTrips) {
  auto a = BuildSlices(Ring(8), Options(CounterLayout::kSplit));
  auto b = BuildSlices(Ring(8), Options(CounterLayout::kSplit));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Json(a->slices), Json(b->slices));
  std::string yaml = SlicesYaml(a->slices);
  EXPECT_NE(yaml.find("value: \"1\""), std::string::npos);  // quantities stay strings
  EXPECT_NE(yaml.find("\"0000:10:00.1\""), std::string::npos);
  auto docs = YAML::LoadAll(yaml);
  ASSERT_EQ(docs.size(), a->slices.size());
  EXPECT_EQ(docs[1]["spec"]["devices"][0]["name"].as<std::string>(), "card-0");
  EXPECT_EQ(docs[0]["spec"]["sharedCounters"][0]["counters"]["card0"]["value"].as<std::string>(), "1");
}

TEST(SlicesTest, BadOptionsAreErrors) {
  SliceOptions o = Options(CounterLayout::kSplit);
  o.node_name = "Node_1";
  EXPECT_FALSE(BuildSlices(Ring(4), o).ok());
  o = Options(CounterLayout::kSplit);
  o.arc_sizes = {1};
  EXPECT_FALSE(BuildSlices(Ring(4), o).ok());
  o.arc_sizes = {4, 4};
  EXPECT_FALSE(BuildSlices(Ring(4), o).ok());
  o.arc_sizes = {33};
  EXPECT_FALSE(BuildSlices(Ring(4), o).ok());
}

// Random shapes, health and options: every result is valid and overlap-free.
TEST(SlicesTest, RandomShapesProperty) {
  std::mt19937 rng(15);
  for (int iter = 0; iter < 60; ++iter) {
    const int n = 1 + static_cast<int>(rng() % 40);
    std::vector<std::pair<int, int>> links;
    int first = 0;
    while (first < n) {
      const int len = 1 + static_cast<int>(rng() % static_cast<unsigned>(n - first));
      testing::AddRun(links, first, len, rng() % 2 == 0);
      first += len;
    }
    auto inv = Inventory(n, links);
    for (auto& c : inv.cards) {
      if (rng() % 7 == 0) {
        c.health = hw::Health::kUnhealthy;
        c.health_reason = "card vanished (reset or hot-unplug?)";
      }
    }
    auto graph = placement::GraphFromInventory(inv);
    ASSERT_TRUE(graph.ok());
    SliceOptions o = Options(rng() % 2 ? CounterLayout::kSplit : CounterLayout::kCombined, rng() % 2 == 0,
                             rng() % 2 ? placement::ArcAlignment::kAll : placement::ArcAlignment::kAligned);
    o.arc_sizes = rng() % 2 ? std::vector<int>{2, 4, 8} : std::vector<int>{2, 3, 16};
    SCOPED_TRACE("iteration " + std::to_string(iter) + " n=" + std::to_string(n));
    CheckNoOverlap(Check(inv, o), *graph);
  }
}

}  // namespace
}  // namespace hyperaccel::dra
