// The health source: every card and arc of the pool, health from the cards, generations that move
// only on change, and a wait that wakes on change.
#include "hyperaccel/dra_driver/health_source.h"

#include <gtest/gtest.h>

#include <thread>

#include "inventories.h"

namespace hyperaccel::dra {
namespace {

SliceOptions Options() {
  SliceOptions o;
  o.node_name = "node-1";
  return o;
}

const DeviceHealth* Find(const std::vector<DeviceHealth>& list, const std::string& name) {
  for (const auto& d : list) {
    if (d.device_name == name) return &d;
  }
  return nullptr;
}

TEST(InventoryHealthSource, ListsCardsAndArcsWithHealthFromTheirCards) {
  int64_t now = 1000;
  InventoryHealthSource src(Options(), [&] { return now; });
  uint64_t gen = 99;
  EXPECT_TRUE(src.Snapshot(&gen).empty());
  EXPECT_EQ(gen, 0U);

  hw::Inventory inv = testing::Ring(8);
  src.SetInventory(inv);
  auto list = src.Snapshot(&gen);
  EXPECT_EQ(gen, 1U);
  // 8 cards, aligned arcs: 4 of 2, 2 of 4, 1 of 8.
  EXPECT_EQ(list.size(), 8U + 4U + 2U + 1U);
  auto pool = PoolDevices(inv, Options());
  ASSERT_TRUE(pool.ok());
  ASSERT_EQ(list.size(), pool->size());
  for (size_t i = 0; i < list.size(); ++i) {
    EXPECT_EQ(list[i].device_name, (*pool)[i].name);
    EXPECT_EQ(list[i].pool_name, "node-1");
    EXPECT_EQ(list[i].status, DeviceHealthStatus::kHealthy) << list[i].device_name;
    EXPECT_EQ(list[i].last_updated_unix, 1000);
  }

  // The same inventory again: no new generation.
  now = 1005;
  src.SetInventory(inv);
  src.Snapshot(&gen);
  EXPECT_EQ(gen, 1U);

  // Card 2 fails: card-2 and every arc that contains it turn unhealthy, the rest keep their time.
  now = 1010;
  inv.cards[2].health = hw::Health::kUnhealthy;
  inv.cards[2].health_reason = "fpga temperature 101 C above limit 95 C";
  src.SetInventory(inv);
  list = src.Snapshot(&gen);
  EXPECT_EQ(gen, 2U);
  const DeviceHealth* card = Find(list, "card-2");
  ASSERT_NE(card, nullptr);
  EXPECT_EQ(card->status, DeviceHealthStatus::kUnhealthy);
  EXPECT_EQ(card->message, "fpga temperature 101 C above limit 95 C");
  EXPECT_EQ(card->last_updated_unix, 1010);
  for (const char* arc : {"arc2-2", "arc4-0", "arc8-0"}) {
    const DeviceHealth* a = Find(list, arc);
    ASSERT_NE(a, nullptr) << arc;
    EXPECT_EQ(a->status, DeviceHealthStatus::kUnhealthy) << arc;
    EXPECT_EQ(a->message, "card-2: fpga temperature 101 C above limit 95 C");
  }
  for (const char* ok : {"card-1", "arc2-0", "arc4-4"}) {
    const DeviceHealth* d = Find(list, ok);
    ASSERT_NE(d, nullptr) << ok;
    EXPECT_EQ(d->status, DeviceHealthStatus::kHealthy) << ok;
    EXPECT_EQ(d->last_updated_unix, 1000) << ok;
  }
}

TEST(InventoryHealthSource, AVanishedCardLeavesTheList) {
  InventoryHealthSource src(Options());
  src.SetInventory(testing::Chain(3));
  uint64_t gen = 0;
  auto before = src.Snapshot(&gen);
  hw::Inventory smaller = testing::Chain(2);
  src.SetInventory(smaller);
  uint64_t after_gen = 0;
  auto after = src.Snapshot(&after_gen);
  EXPECT_GT(after_gen, gen);
  EXPECT_EQ(Find(after, "card-2"), nullptr);
  EXPECT_NE(Find(before, "card-2"), nullptr);
}

TEST(InventoryHealthSource, NewOptionsListTheLastInventoryAgainAndSameOptionsDoNothing) {
  int clock_reads = 0;
  InventoryHealthSource src(Options(), [&] {
    ++clock_reads;
    return int64_t{1000};
  });
  // Before any inventory, options are only kept: nothing is listed.
  SliceOptions cards_only = Options();
  cards_only.features.partitionable = false;
  src.SetOptions(cards_only);
  uint64_t gen = 0;
  EXPECT_TRUE(src.Snapshot(&gen).empty());
  EXPECT_EQ(gen, 0U);
  EXPECT_EQ(clock_reads, 0);

  hw::Inventory inv = testing::Ring(4);
  inv.cards[1].health = hw::Health::kUnhealthy;
  inv.cards[1].health_reason = "gone from the bus";
  src.SetInventory(inv);
  auto list = src.Snapshot(&gen);
  EXPECT_EQ(gen, 1U);
  EXPECT_EQ(list.size(), 4U) << "the options given before the inventory apply: cards only";
  EXPECT_EQ(clock_reads, 1);

  // The publisher's options, unchanged at every resync: no work, no new generation.
  src.SetOptions(cards_only);
  src.SetOptions(cards_only);
  src.Snapshot(&gen);
  EXPECT_EQ(gen, 1U);
  EXPECT_EQ(clock_reads, 1);

  // Options that bring arcs: the last inventory is listed again, with its unhealthy card.
  src.SetOptions(Options());
  list = src.Snapshot(&gen);
  EXPECT_EQ(gen, 2U);
  EXPECT_EQ(clock_reads, 2);
  auto pool = PoolDevices(inv, Options());
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ(list.size(), pool->size());
  const DeviceHealth* arc = Find(list, "arc2-0");
  ASSERT_NE(arc, nullptr);
  EXPECT_EQ(arc->status, DeviceHealthStatus::kUnhealthy);
  EXPECT_EQ(arc->message, "card-1: gone from the bus");
}

TEST(InventoryHealthSource, WaitForChangeWakesOnAChangeAndTimesOutOtherwise) {
  InventoryHealthSource src(Options());
  src.SetInventory(testing::Ring(4));
  uint64_t gen = 0;
  src.Snapshot(&gen);
  EXPECT_EQ(src.WaitForChange(gen, std::chrono::milliseconds(20)), gen);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    hw::Inventory inv = testing::Ring(4);
    inv.cards[0].health = hw::Health::kUnhealthy;
    src.SetInventory(inv);
  });
  // Generous timeout: the wait returns as soon as the change lands.
  EXPECT_EQ(src.WaitForChange(gen, std::chrono::seconds(30)), gen + 1);
  t.join();
}

}  // namespace
}  // namespace hyperaccel::dra
