#include "hyperaccel/xrt/health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_sysfs.h"
#include "hyperaccel/xrt/sysfs_scanner.h"

namespace hyperaccel::hw {
namespace {

using ::hyperaccel::testing::FakeCardSpec;
using ::hyperaccel::testing::FakeSysfs;
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
