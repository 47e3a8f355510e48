// The first command users run, for real: `hyperaccel-topology-agent show` and `plan` on XRT
// software emulation (real libxrt_coreutil) and on hand-made sysfs trees.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "fake_sysfs.h"
#include "process.h"

namespace hyperaccel::testing {
namespace {

using nlohmann::json;

json ShowJson(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"show", "--format=json", "--node-name=lpu-test"};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = RunBinary("hyperaccel-topology-agent", args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(r.out);
}

// Checks that the up links form exactly one ring through all n cards.
void ExpectRing(const json& j, size_t n) {
  std::map<std::string, std::set<std::string>> adj;
  for (const auto& l : j["links"]) {
    ASSERT_EQ(l["state"], "up") << l.dump();
    adj[l["a"]["serial"]].insert(l["b"]["serial"].get<std::string>());
    adj[l["b"]["serial"]].insert(l["a"]["serial"].get<std::string>());
  }
  ASSERT_EQ(adj.size(), n);
  for (const auto& [serial, peers] : adj) EXPECT_EQ(peers.size(), n == 2 ? 1u : 2u) << serial;
  // Walk the ring.
  std::string start = adj.begin()->first;
  std::string prev;
  std::string cur = start;
  size_t steps = 0;
  do {
    std::string next;
    for (const auto& p : adj[cur]) {
      if (p != prev || adj[cur].size() == 1) {
        next = p;
        break;
      }
    }
    prev = cur;
    cur = next;
    ++steps;
  } while (cur != start && steps <= n);
  EXPECT_EQ(steps, n);
}

class EmulatedShow : public ::testing::TestWithParam<int> {};

TEST_P(EmulatedShow, ReportsHealthyCardsAndRing) {
  const int n = GetParam();
  json j = ShowJson({"--emulate=" + std::to_string(n)});
  EXPECT_EQ(j["schema"], "hyperaccel.ai/show/v1");
  EXPECT_EQ(j["node"], "lpu-test");
  EXPECT_TRUE(j["facts"]["emulation"].get<bool>());
  EXPECT_TRUE(j["facts"]["xrt"]["available"].get<bool>()) << j["facts"].dump();
  ASSERT_EQ(j["cards"].size(), static_cast<size_t>(n));
  std::set<std::string> serials;
  for (const auto& c : j["cards"]) {
    EXPECT_EQ(c["health"], "healthy") << c.dump();
    EXPECT_EQ(c["product"], "ALVEO-U55C");
    EXPECT_TRUE(c["emulated"].get<bool>());
    EXPECT_EQ(c["shell"], "xilinx_u55c_gen3x16_xdma_3_202210_1");
    EXPECT_TRUE(c["numaNode"].is_null());
    serials.insert(c["serial"].get<std::string>());
  }
  EXPECT_EQ(serials.size(), static_cast<size_t>(n)) << "serials must be distinct";
  EXPECT_EQ(j["summary"]["healthy"], n);
  if (n == 1) {
    EXPECT_TRUE(j["links"].empty());
  } else {
    EXPECT_EQ(j["summary"]["linksUp"], j["links"].size());
    ExpectRing(j, static_cast<size_t>(n));
  }
  if (n == 8) {
    EXPECT_EQ(j["links"].size(), 8u);
  }
}

INSTANTIATE_TEST_SUITE_P(Cards, EmulatedShow, ::testing::Values(1, 4, 8));

TEST(EmulatedShow, SerialsAreDeterministicAcrossRuns) {
  json a = ShowJson({"--emulate=4"});
  json b = ShowJson({"--emulate=4"});
  EXPECT_EQ(a["cards"], b["cards"]);
}

TEST(EmulatedShow, TableShowsLinkMatrix) {
  auto r = RunBinary("hyperaccel-topology-agent", {"show", "--emulate=4", "--node-name=lpu-test"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("4/4 cards healthy, 4/4 links up"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("C0    X    UP   .    UP"), std::string::npos) << r.out;
}

TEST(SysfsShow, ReadsHandMadeU55cTree) {
  FakeSysfs fs;
  FakeCardSpec a;
  a.bus = 0x3b;
  a.serial = "XFL1AAAAAAAA";
  a.numa = 0;
  a.render = 128;
  a.xclbin_uuid = "7B3C5A1E-0000-4000-8000-0123456789AB";
  FakeCardSpec b = a;
  b.bus = 0x5e;
  b.serial = "XFL1BBBBBBBB";
  b.numa = 1;
  b.render = 129;
  b.with_mgmt = false;  // as a VM would see it
  FakeCardSpec c = a;
  c.bus = 0x86;
  c.serial = "XFL1CCCCCCCC";
  c.render = 130;
  c.with_rom = false;  // unflashed
  fs.AddU55C(a);
  fs.AddU55C(b);
  fs.AddU55C(c);
  // A cabling file linking a and b.
  std::string cabling = fs.root() + "/../cabling-test.yaml";
  {
    std::ofstream f(cabling);
    f << "version: 1\nlinks:\n"
         "  - a: {node: lpu-test, serial: XFL1AAAAAAAA, port: 1}\n"
         "    b: {node: lpu-test, serial: XFL1BBBBBBBB, port: 0}\n";
  }
  json j = ShowJson({"--sysfs-root=" + fs.root(), "--cabling=" + cabling});
  std::remove(cabling.c_str());
  EXPECT_FALSE(j["facts"]["emulation"].get<bool>());
  EXPECT_FALSE(j["facts"]["xrt"]["available"].get<bool>()) << "XRT must stay off for a fake sysfs root";
  ASSERT_EQ(j["cards"].size(), 3u);
  const auto& ca = j["cards"][0];
  EXPECT_EQ(ca["id"], "0000:3b:00.1");
  EXPECT_EQ(ca["serial"], "XFL1AAAAAAAA");
  EXPECT_EQ(ca["health"], "healthy");
  EXPECT_EQ(ca["numaNode"], 0);
  EXPECT_EQ(ca["renderNode"], "/dev/dri/renderD128");
  EXPECT_EQ(ca["mgmt"]["id"], "0000:3b:00.0");
  EXPECT_EQ(ca["mgmt"]["node"], "/dev/xclmgmt15104");
  EXPECT_EQ(ca["xclbinUuid"], "7b3c5a1e-0000-4000-8000-0123456789ab");
  EXPECT_EQ(ca["sensors"]["fpgaTempC"], 45);
  const auto& cb = j["cards"][1];
  EXPECT_EQ(cb["id"], "0000:5e:00.1");
  EXPECT_EQ(cb["health"], "healthy");
  EXPECT_TRUE(cb["mgmt"].is_null());
  EXPECT_EQ(cb["numaNode"], 1);
  const auto& cc = j["cards"][2];
  EXPECT_EQ(cc["health"], "unhealthy");
  EXPECT_NE(cc["reason"].get<std::string>().find("VBNV"), std::string::npos) << cc["reason"];
  ASSERT_EQ(j["links"].size(), 1u);
  EXPECT_EQ(j["links"][0]["a"]["serial"], "XFL1AAAAAAAA");
  EXPECT_EQ(j["links"][0]["source"].get<std::string>().rfind("cabling", 0), 0u);
}

TEST(SysfsShow, MissingRootIsAClearError) {
  auto r = RunBinary("hyperaccel-topology-agent", {"show", "--sysfs-root=/nonexistent/sys"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent/sys"), std::string::npos) << r.err;
}

TEST(SysfsShow, BadCablingFileNamesTheLine) {
  FakeSysfs fs;
  std::string cabling = fs.root() + "/../cabling-bad.yaml";
  {
    std::ofstream f(cabling);
    f << "version: 1\nlinks:\n  - a: {node: n, serial: S1, port: 7}\n    b: {node: n, serial: S2, port: 0}\n";
  }
  auto r =
      RunBinary("hyperaccel-topology-agent", {"show", "--sysfs-root=" + fs.root(), "--cabling=" + cabling});
  std::remove(cabling.c_str());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(":3:"), std::string::npos) << r.err;
}

TEST(Plan, PicksContiguousArcOnEmulatedRing) {
  // Ring of 8, cards 2 and 5 busy, k = 4: the only free 4-arc is 6-7-0-1.
  auto r = RunBinary("hyperaccel-topology-agent", {"plan", "--emulate=8", "--size=4",
                                                   "--busy=0000:00:02.0,0000:00:05.0", "--format=json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_TRUE(j["ok"].get<bool>());
  std::set<std::string> ids;
  for (const auto& c : j["cards"]) ids.insert(c["id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{"0000:00:06.0", "0000:00:07.0", "0000:00:00.0", "0000:00:01.0"}));
  EXPECT_TRUE(j["score"]["connected"].get<bool>());
}

TEST(Plan, SaysWhichDraArcAClaimWouldGet) {
  // Same ring and busy cards: of every 4-arc only 6-7-0-1 is free (the DRA driver's arc4-6); the
  // aligned arcs 0-3 and 4-7 both hold a busy card.
  auto all = RunBinary("hyperaccel-topology-agent",
                       {"plan", "--emulate=8", "--size=4", "--busy=0000:00:02.0,0000:00:05.0",
                        "--format=json", "--dra-arcs=all"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  json j = json::parse(all.out);
  EXPECT_EQ(j["dra_arc"]["device"], "arc4-6");
  EXPECT_EQ(j["dra_arc"]["ids"], "0000:00:06.0,0000:00:07.0,0000:00:00.0,0000:00:01.0");
  auto aligned = RunBinary(
      "hyperaccel-topology-agent",
      {"plan", "--emulate=8", "--size=4", "--busy=0000:00:02.0,0000:00:05.0", "--dra-arcs=aligned"});
  ASSERT_EQ(aligned.exit_code, 0) << aligned.err;
  EXPECT_NE(aligned.out.find("no free arc of 4 cards"), std::string::npos) << aligned.out;
}

TEST(Plan, ImpossibleRequestExitsNonZero) {
  auto r = RunBinary("hyperaccel-topology-agent", {"plan", "--emulate=2", "--size=4"});
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace hyperaccel::testing
