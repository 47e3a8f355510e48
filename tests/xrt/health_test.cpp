#include "hyperaccel/xrt/health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

#include "fake_sysfs.h"
#include "hyperaccel/xrt/sysfs_scanner.h"
#include "hyperaccel/xrt/xrt_probe.h"

namespace hyperaccel::hw {
namespace {

using ::hyperaccel::testing::FakeCardSpec;
using ::hyperaccel::testing::FakeSysfs;
using Pf = ::hyperaccel::testing::FakeSysfs::Pf;
using std::chrono::seconds;

class FakeClock {
 public:
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  HealthTracker::Clock fn() {
    return [this] { return now; };
  }
};

Card HealthyCard(const std::string& id) {
  Card c;
  c.id = id;
  c.serial = "S-" + id;
  return c;
}

TEST(HealthTracker, CardGoingOfflineAndBackNeedsThreeGoodProbes) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  FakeClock clock;
  HealthTracker tracker({}, clock.fn());

  auto cards = tracker.Update(ScanSysfs(fs.root()).cards);
  ASSERT_EQ(cards.size(), 1u);
  EXPECT_EQ(cards[0].health, Health::kHealthy);

  fs.SetOffline(id, 1);
  cards = tracker.Update(ScanSysfs(fs.root()).cards);
  EXPECT_EQ(cards.at(0).health, Health::kUnhealthy);
  EXPECT_THAT(cards.at(0).health_reason, ::testing::StartsWith("offline (dev_offline=1"));

  fs.SetOffline(id, 0);
  const std::string offline_reason = cards.at(0).health_reason;
  for (int i = 1; i <= 2; ++i) {
    clock.now += seconds(5);
    cards = tracker.Update(ScanSysfs(fs.root()).cards);
    EXPECT_EQ(cards.at(0).health, Health::kUnhealthy);
    EXPECT_EQ(cards.at(0).health_reason,
              "recovering: " + std::to_string(i) + "/3 good probes after: " + offline_reason);
  }
  cards = tracker.Update(ScanSysfs(fs.root()).cards);
  EXPECT_EQ(cards.at(0).health, Health::kHealthy);
  EXPECT_EQ(cards.at(0).health_reason, "");
}

TEST(HealthTracker, AFlapDuringRecoveryRestartsTheCount) {
  FakeClock clock;
  HealthTracker tracker({}, clock.fn());
  Card bad = HealthyCard("0000:3b:00.1");
  bad.health = Health::kUnhealthy;
  bad.health_reason = "not ready";
  const Card good = HealthyCard("0000:3b:00.1");

  EXPECT_EQ(tracker.Update({bad}).at(0).health_reason, "not ready");
  EXPECT_EQ(tracker.Update({good}).at(0).health_reason, "recovering: 1/3 good probes after: not ready");
  EXPECT_EQ(tracker.Update({good}).at(0).health_reason, "recovering: 2/3 good probes after: not ready");
  EXPECT_EQ(tracker.Update({bad}).at(0).health, Health::kUnhealthy);
  EXPECT_EQ(tracker.Update({good}).at(0).health_reason, "recovering: 1/3 good probes after: not ready");
  EXPECT_EQ(tracker.Update({good}).at(0).health, Health::kUnhealthy);
  EXPECT_EQ(tracker.Update({good}).at(0).health, Health::kHealthy);
  EXPECT_EQ(tracker.Update({good}).at(0).health, Health::kHealthy);
}

TEST(HealthTracker, RecoveryProbesOfOneRecoversOnTheFirstGoodScan) {
  FakeClock clock;
  HealthOptions opts;
  opts.recovery_probes = 0;  // treated as 1
  HealthTracker tracker(opts, clock.fn());
  Card bad = HealthyCard("a");
  bad.health = Health::kUnhealthy;
  bad.health_reason = "x";
  EXPECT_EQ(tracker.Update({bad}).at(0).health, Health::kUnhealthy);
  EXPECT_EQ(tracker.Update({HealthyCard("a")}).at(0).health, Health::kHealthy);
}

TEST(HealthTracker, OverTemperature) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  fs.SetFpgaTemp(id, 101);
  // The scanner reports the reading but does not judge it.
  const SysfsScan scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  EXPECT_EQ(scan.cards[0].health, Health::kHealthy);
  EXPECT_EQ(scan.cards[0].sensors.fpga_temp_c, std::optional<double>(101));

  FakeClock clock;
  HealthTracker tracker({}, clock.fn());
  auto cards = tracker.Update(scan.cards);
  EXPECT_EQ(cards.at(0).health, Health::kUnhealthy);
  EXPECT_EQ(cards.at(0).health_reason,
            "fpga temperature 101 \xC2\xB0"
            "C over limit 95 \xC2\xB0"
            "C");

  // Exactly at the limit is fine; HBM is checked too and reasons add up.
  Card c = HealthyCard("b");
  c.sensors.fpga_temp_c = 95;
  c.sensors.hbm_temp_c = 96.5;
  c.health = Health::kUnhealthy;
  c.health_reason = "not ready";
  HealthOptions opts;
  opts.recovery_probes = 1;
  HealthTracker t2(opts, clock.fn());
  EXPECT_EQ(t2.Update({c}).at(0).health_reason,
            "not ready; hbm temperature 96.5 \xC2\xB0"
            "C over limit 95 \xC2\xB0"
            "C");

  // Cooling down recovers after the probes.
  fs.SetFpgaTemp(id, 70);
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(tracker.Update(ScanSysfs(fs.root()).cards).at(0).health, Health::kUnhealthy);
  EXPECT_EQ(tracker.Update(ScanSysfs(fs.root()).cards).at(0).health, Health::kHealthy);
}

TEST(HealthTracker, OverflowedTemperatureIsABadReadingNotUnknown) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  for (const Pf pf : {Pf::kUser, Pf::kMgmt}) {
    fs.WriteSubdev(id, pf, "xmc", "xmc_fpga_temp", "99999999999999999999\n");  // beyond int64
  }
  const SysfsScan scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  EXPECT_FALSE(scan.cards[0].sensors.fpga_temp_c.has_value());
  ASSERT_EQ(scan.cards[0].sensors.bad_readings.size(), 1u);

  FakeClock clock;
  HealthTracker tracker({}, clock.fn());
  auto cards = tracker.Update(scan.cards);
  EXPECT_EQ(cards.at(0).health, Health::kUnhealthy);
  EXPECT_EQ(cards.at(0).health_reason,
            "bad sensor reading: fpga temperature reading out of range: \"99999999999999999999\"");

  // A good reading again: the card recovers after the usual probes, not at once.
  fs.SetFpgaTemp(id, 60);
  for (int i = 0; i < 2; ++i) {
    auto again = tracker.Update(ScanSysfs(fs.root()).cards);
    EXPECT_EQ(again.at(0).health, Health::kUnhealthy);
    EXPECT_NE(again.at(0).health_reason.find("recovering"), std::string::npos) << again.at(0).health_reason;
  }
  EXPECT_EQ(tracker.Update(ScanSysfs(fs.root()).cards).at(0).health, Health::kHealthy);

  // A sensor that says "N/A" is unknown, not bad.
  fs.WriteSubdev(id, Pf::kUser, "xmc", "xmc_fpga_temp", "N/A\n");
  EXPECT_TRUE(ScanSysfs(fs.root()).cards.at(0).sensors.bad_readings.empty());
}

TEST(HealthTracker, ImpossibleTemperatureIsABadReading) {
  FakeClock clock;
  HealthTracker tracker({}, clock.fn());
  Card cold = HealthyCard("a");
  cold.sensors.hbm_temp_c = -300;
  EXPECT_EQ(tracker.Update({cold}).at(0).health_reason,
            "bad sensor reading: hbm temperature -300 \xC2\xB0"
            "C out of range");
  Card nan = HealthyCard("b");
  nan.sensors.fpga_temp_c = std::numeric_limits<double>::quiet_NaN();
  auto cards = tracker.Update({nan});
  ASSERT_EQ(cards.size(), 2u);  // "a" is kept as vanished
  EXPECT_EQ(cards.at(1).health, Health::kUnhealthy);
}

TEST(XrtSensors, OverflowedTemperatureIsABadReading) {
  const Sensors s =
      ParseXrtSensors(R"({"thermals":[{"location_id":"fpga0","is_present":"true","temp_C":"1e999"},)"
                      R"({"location_id":"fpga_hbm","is_present":"true","temp_C":"41"}]})",
                      "{}");
  EXPECT_FALSE(s.fpga_temp_c.has_value());
  EXPECT_EQ(s.hbm_temp_c, std::optional<double>(41));
  ASSERT_EQ(s.bad_readings.size(), 1u);
  EXPECT_EQ(s.bad_readings[0], "fpga temperature reading out of range: \"1e999\"");
}

TEST(HealthTracker, FirewallTrippedCardRecoversAfterReset) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  FakeClock clock;
  HealthTracker tracker({}, clock.fn());
  fs.SetFirewall(id, 0x1, 3);
  auto cards = tracker.Update(ScanSysfs(fs.root()).cards);
  EXPECT_EQ(cards.at(0).health_reason, "AXI firewall tripped (level 3, status 0x1; reset the card)");
  fs.SetFirewall(id, 0, 0);
  cards = tracker.Update(ScanSysfs(fs.root()).cards);
  EXPECT_EQ(cards.at(0).health_reason,
            "recovering: 1/3 good probes after: AXI firewall tripped (level 3, status 0x1; reset the card)");
}

TEST(HealthTracker, CardVanishingDuringAResetAndReturning) {
  FakeSysfs fs;
  FakeCardSpec spec;
  spec.bus = 0x3b;
  spec.serial = "XFL1ABCDEF01";
  const std::string id = fs.AddU55C(spec);
  FakeCardSpec other;
  other.bus = 0x5e;
  other.serial = "XFL1ABCDEF02";
  const std::string other_id = fs.AddU55C(other);

  FakeClock clock;
  HealthTracker tracker({}, clock.fn());
  ASSERT_EQ(tracker.Update(ScanSysfs(fs.root()).cards).size(), 2u);

  fs.RemoveCard(id);  // hot reset: the functions leave the bus
  clock.now += seconds(1);
  auto cards = tracker.Update(ScanSysfs(fs.root()).cards);
  ASSERT_EQ(cards.size(), 2u);
  EXPECT_EQ(cards[0].id, id);
  EXPECT_EQ(cards[0].serial, "XFL1ABCDEF01");  // as last seen
  EXPECT_EQ(cards[0].health, Health::kUnhealthy);
  EXPECT_EQ(cards[0].health_reason, "card vanished (reset or hot-unplug?)");
  EXPECT_EQ(cards[1].health, Health::kHealthy);

  clock.now += seconds(58);  // 59 s after it vanished: still within the grace period
  cards = tracker.Update(ScanSysfs(fs.root()).cards);
  ASSERT_EQ(cards.size(), 2u);
  EXPECT_EQ(cards[0].health_reason, "card vanished (reset or hot-unplug?)");

  fs.AddU55C(spec);  // back
  clock.now += seconds(1);
  cards = tracker.Update(ScanSysfs(fs.root()).cards);
  ASSERT_EQ(cards.size(), 2u);
  EXPECT_EQ(cards[0].health_reason,
            "recovering: 1/3 good probes after: card vanished (reset or hot-unplug?)");
  tracker.Update(ScanSysfs(fs.root()).cards);
  cards = tracker.Update(ScanSysfs(fs.root()).cards);
  EXPECT_EQ(cards[0].health, Health::kHealthy);

  // Gone for longer than the grace period: dropped, and a later return is a new card.
  fs.RemoveCard(other_id);
  cards = tracker.Update(ScanSysfs(fs.root()).cards);
  ASSERT_EQ(cards.size(), 2u);
  clock.now += seconds(60);
  cards = tracker.Update(ScanSysfs(fs.root()).cards);
  ASSERT_EQ(cards.size(), 1u);
  EXPECT_EQ(cards[0].id, id);
  fs.AddU55C(other);
  cards = tracker.Update(ScanSysfs(fs.root()).cards);
  ASSERT_EQ(cards.size(), 2u);
  EXPECT_EQ(cards[1].id, other_id);
  EXPECT_EQ(cards[1].health, Health::kHealthy);
}

TEST(HealthTracker, OutputIsSortedAndDuplicatesCollapse) {
  FakeClock clock;
  HealthTracker tracker({}, clock.fn());
  const auto cards = tracker.Update({HealthyCard("c"), HealthyCard("a"), HealthyCard("b"), HealthyCard("a")});
  ASSERT_EQ(cards.size(), 3u);
  EXPECT_EQ(cards[0].id, "a");
  EXPECT_EQ(cards[1].id, "b");
  EXPECT_EQ(cards[2].id, "c");
}

}  // namespace
}  // namespace hyperaccel::hw
