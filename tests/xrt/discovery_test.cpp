// Discovery as a whole: sysfs + (fake) XRT + health tracker + links, and the rescan loop.
#include "hyperaccel/xrt/discovery.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>

#include "fake_sysfs.h"
#include "hyperaccel/xrt/xrt_probe.h"

namespace hyperaccel::hw {
namespace {

using testing::FakeCardSpec;
using testing::FakeSysfs;

// An XRT probe that answers from a table, like XRT would for ready cards.
class FakeXrt : public XrtProbe {
 public:
  NodeFacts Facts() override {
    NodeFacts f;
    f.xrt_available = available;
    f.xrt_version = "2.13.0";
    f.xrt_detail = available ? "fake" : "XILINX_XRT not set";
    return f;
  }
  Result<XrtCardInfo> ProbeCard(const std::string& bdf) override {
    std::lock_guard<std::mutex> lock(mu);
    ++probes;
    auto it = cards.find(bdf);
    if (it == cards.end()) return Unavailable("No such device '" + bdf + "'");
    return it->second;
  }
  Result<std::vector<XrtCardInfo>> OpenEmulated() override { return Unavailable("not emulating"); }

  std::mutex mu;
  bool available = true;
  int probes = 0;
  std::map<std::string, XrtCardInfo> cards;
};

struct FakeClock {
  std::chrono::steady_clock::time_point now{std::chrono::seconds(1000)};
  std::function<std::chrono::steady_clock::time_point()> fn() {
    return [this] { return now; };
  }
};

DiscoveryOptions Options(const FakeSysfs& fs) {
  DiscoveryOptions o;
  o.sysfs_root = fs.root();
  o.node_name = "lpu-node-01";
  o.vanish_grace = std::chrono::seconds(30);
  o.recovery_probes = 2;
  return o;
}

TEST(Discovery, MergesXrtSerialAndSensorsIntoSysfsCards) {
  FakeSysfs fs;
  FakeCardSpec spec;
  spec.with_user_xmc = false;  // serial only reachable through XRT
  spec.with_mgmt = false;
  std::string id = fs.AddU55C(spec);
  auto xrt = std::make_shared<FakeXrt>();
  XrtCardInfo info;
  info.bdf = id;
  info.serial = "XFL1FROMXRT1";
  info.sensors.fpga_temp_c = 61;
  info.sensors.power_w = 24.5;
  xrt->cards[id] = info;
  DiscoveryDeps deps;
  deps.xrt = xrt;
  auto d = Discovery::Create(Options(fs), deps);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  auto inv = (*d)->Scan();
  ASSERT_TRUE(inv.ok()) << inv.status().ToString();
  ASSERT_EQ(inv->cards.size(), 1u);
  EXPECT_EQ(inv->cards[0].serial, "XFL1FROMXRT1");
  EXPECT_EQ(inv->cards[0].sensors.fpga_temp_c, 61);
  EXPECT_EQ(inv->cards[0].sensors.power_w, 24.5);
  EXPECT_TRUE(inv->facts.xrt_available);
  EXPECT_EQ(inv->node_name, "lpu-node-01");
}

TEST(Discovery, XrtUnavailableIsANodeFactNotUnhealthyCards) {
  FakeSysfs fs;
  fs.Generate(4);
  auto xrt = std::make_shared<FakeXrt>();
  xrt->available = false;
  DiscoveryDeps deps;
  deps.xrt = xrt;
  auto d = Discovery::Create(Options(fs), deps);
  ASSERT_TRUE(d.ok());
  auto inv = (*d)->Scan();
  ASSERT_TRUE(inv.ok());
  EXPECT_FALSE(inv->facts.xrt_available);
  EXPECT_EQ(inv->facts.xrt_detail, "XILINX_XRT not set");
  ASSERT_EQ(inv->cards.size(), 4u);
  for (const auto& c : inv->cards) EXPECT_EQ(c.health, Health::kHealthy) << c.id << ": " << c.health_reason;
  EXPECT_EQ(xrt->probes, 0) << "an unavailable XRT is not asked about cards";
}

TEST(Discovery, XrtTemperatureOverLimitMakesCardUnhealthy) {
  FakeSysfs fs;
  std::string id = fs.AddU55C(FakeCardSpec{});
  auto xrt = std::make_shared<FakeXrt>();
  XrtCardInfo info;
  info.bdf = id;
  info.sensors.fpga_temp_c = 104;
  xrt->cards[id] = info;
  DiscoveryDeps deps;
  deps.xrt = xrt;
  auto o = Options(fs);
  o.temp_limit_c = 90;
  auto d = Discovery::Create(o, deps);
  ASSERT_TRUE(d.ok());
  auto inv = (*d)->Scan();
  ASSERT_TRUE(inv.ok());
  EXPECT_EQ(inv->cards[0].health, Health::kUnhealthy);
  EXPECT_NE(inv->cards[0].health_reason.find("104"), std::string::npos) << inv->cards[0].health_reason;
}

TEST(Discovery, FakeRootTurnsXrtOffWithoutInjectedProbe) {
  FakeSysfs fs;
  fs.Generate(2);
  auto d = Discovery::Create(Options(fs));
  ASSERT_TRUE(d.ok());
  auto inv = (*d)->Scan();
  ASSERT_TRUE(inv.ok());
  EXPECT_FALSE(inv->facts.xrt_available);
  EXPECT_NE(inv->facts.xrt_detail.find("not /sys"), std::string::npos) << inv->facts.xrt_detail;
  EXPECT_EQ(inv->cards.size(), 2u);
}

TEST(Discovery, VanishedCardStaysUnhealthyForGraceThenDropsAndReturns) {
  FakeSysfs fs;
  auto ids = fs.Generate(4);
  FakeClock clock;
  DiscoveryDeps deps;
  deps.clock = clock.fn();
  auto d = Discovery::Create(Options(fs), deps);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ((*d)->Scan()->HealthyCount(), 4u);

  fs.RemoveDeviceDirs(ids[1]);  // mid-reset: links dangle
  clock.now += std::chrono::seconds(5);
  auto inv = (*d)->Scan();
  ASSERT_TRUE(inv.ok());
  ASSERT_EQ(inv->cards.size(), 4u) << "a vanished card stays listed during the grace period";
  const Card* c = inv->FindById(ids[1]);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->health, Health::kUnhealthy);
  EXPECT_FALSE(c->health_reason.empty());

  clock.now += std::chrono::seconds(60);
  inv = (*d)->Scan();
  EXPECT_EQ(inv->cards.size(), 3u) << "dropped after the grace period";
}

TEST(Discovery, CablingFileErrorsFailCreate) {
  FakeSysfs fs;
  std::string path = fs.root() + "/../cabling-discovery-test.yaml";
  {
    std::ofstream f(path);
    f << "version: 1\nlinks: [\n";
  }
  auto o = Options(fs);
  o.cabling_file = path;
  auto d = Discovery::Create(o);
  std::remove(path.c_str());
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("cabling-discovery-test.yaml"), std::string::npos)
      << d.status().message();
}

TEST(Discovery, MissingSysfsRootIsAnError) {
  DiscoveryOptions o;
  o.sysfs_root = "/nonexistent-sysfs-root";
  o.node_name = "n";
  auto d = Discovery::Create(o);
  ASSERT_TRUE(d.ok());
  auto inv = (*d)->Scan();
  ASSERT_FALSE(inv.ok());
  EXPECT_NE(inv.status().message().find("/nonexistent-sysfs-root"), std::string::npos);
}

TEST(InventoryChanged, IgnoresSensorsButNotHealthOrLinks) {
  Inventory a;
  a.node_name = "n";
  Card c;
  c.id = "0000:3b:00.1";
  c.serial = "S1";
  a.cards.push_back(c);
  Inventory b = a;
  b.cards[0].sensors.fpga_temp_c = 70;
  EXPECT_FALSE(InventoryChanged(a, b));
  b.cards[0].health = Health::kUnhealthy;
  EXPECT_TRUE(InventoryChanged(a, b));
  Inventory l = a;
  Link link;
  link.a = {"", "S1", 0};
  link.b = {"", "S2", 1};
  l.links.push_back(link);
  EXPECT_TRUE(InventoryChanged(a, l));
  Inventory l2 = l;
  l2.links[0].state = LinkState::kUp;
  EXPECT_TRUE(InventoryChanged(l, l2));
}

TEST(Rescanner, NotifiesOnFirstScanAndOnChangesOnly) {
  FakeSysfs fs;
  auto ids = fs.Generate(2);
  auto o = Options(fs);
  o.recovery_probes = 1;
  auto d = Discovery::Create(o);
  ASSERT_TRUE(d.ok());
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Inventory> seen;
  Rescanner r(d->get(), std::chrono::milliseconds(10), [&](const Inventory& inv) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(inv);
    cv.notify_all();
  });
  r.Start();
  auto wait_for = [&](size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5), [&] { return seen.size() >= n; });
  };
  ASSERT_TRUE(wait_for(1));
  // Several scans later with nothing changed there is still exactly one notification.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(seen.size(), 1u);
  }
  fs.SetReady(ids[0], 0);
  ASSERT_TRUE(wait_for(2));
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(seen[1].FindById(ids[0])->health, Health::kUnhealthy);
  }
  fs.SetReady(ids[0], 1);
  ASSERT_TRUE(wait_for(3));
  r.Stop();
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen.back().FindById(ids[0])->health, Health::kHealthy);
  EXPECT_EQ(r.Current().cards.size(), 2u);
}

TEST(XrtSensors, ParsesXrtThermalAndElectricalReports) {
  const std::string thermal = R"({"thermals":[
    {"location_id":"pcb_top_front","description":"PCB Top Front","temp_C":"38","is_present":"true"},
    {"location_id":"pcb_top_rear","description":"PCB Top Rear","temp_C":"41","is_present":"true"},
    {"location_id":"fpga0","description":"FPGA","temp_C":"57","is_present":"true"},
    {"location_id":"fpga_hbm","description":"FPGA HBM","temp_C":"49","is_present":"true"},
    {"location_id":"cage_temp_0","description":"QSFP 0","temp_C":"33","is_present":"true"},
    {"location_id":"cage_temp_1","description":"QSFP 1","temp_C":"0","is_present":"false"},
    {"location_id":"int_vcc","description":"VCCINT","temp_C":"0","is_present":"false","error_msg":"x"}]})";
  const std::string electrical = R"({"power_rails":[
    {"id":"vccint","description":"Internal FPGA Vcc","voltage":{"volts":"0.850","is_present":"true"},
     "current":{"amps":"11.2","is_present":"true"}}],
    "power_consumption_watts":"23.5","power_consumption_max_watts":"225","power_consumption_warning":"false"})";
  Sensors s = ParseXrtSensors(thermal, electrical);
  EXPECT_EQ(s.fpga_temp_c, 57);
  EXPECT_EQ(s.hbm_temp_c, 49);
  EXPECT_EQ(s.board_temp_c, 41);
  ASSERT_GE(s.cage_temp_c.size(), 1u);
  EXPECT_EQ(s.cage_temp_c[0], 33);
  EXPECT_TRUE(s.cage_temp_c.size() < 2 || !s.cage_temp_c[1].has_value());
  EXPECT_EQ(s.power_w, 23.5);
  EXPECT_EQ(s.vccint_v, 0.85);
}

TEST(XrtSensors, EmulationAndGarbageGiveNoReadings) {
  Sensors s = ParseXrtSensors(
      R"({"thermals":[{"location_id":"fpga0","temp_C":"0","is_present":"false","error_msg":"No such query"}]})",
      R"({"power_rails":[],"power_consumption_watts":"N/A"})");
  EXPECT_FALSE(s.fpga_temp_c.has_value());
  EXPECT_FALSE(s.power_w.has_value());
  Sensors g = ParseXrtSensors("not json", "{\"power_consumption_watts\":[1,2]}");
  EXPECT_FALSE(g.fpga_temp_c.has_value());
  EXPECT_FALSE(g.power_w.has_value());
}

}  // namespace
}  // namespace hyperaccel::hw
