// The publisher against the API-server emulator: create, no-op resync, card failure, slices
// deleted behind its back (seen through the watch), API down and back, Node deleted, feature
// fallbacks and both server layouts.
#include "hyperaccel/dra_driver/publisher.h"

#include <gtest/gtest.h>

#include <thread>

#include "hyperaccel/testing/apiserver_emulator.h"
#include "inventories.h"

namespace hyperaccel::dra {
namespace {

using hyperaccel::testing::ApiServerEmulator;
using hyperaccel::testing::ValidatePool;
using testing::Ring;

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(api_.Start().ok());
    api_.PutNode("node-1");
    client_ = MakeClient();
  }

  std::unique_ptr<kube::Client> MakeClient() {
    kube::ClusterConfig c;
    c.server = api_.url();
    kube::ClientOptions o;
    o.max_attempts = 2;
    o.request_timeout = std::chrono::milliseconds(2000);
    o.connect_timeout = std::chrono::milliseconds(1000);
    o.backoff_base = std::chrono::milliseconds(10);
    o.backoff_max = std::chrono::milliseconds(20);
    o.sleep = [](std::chrono::milliseconds d) {
      std::this_thread::sleep_for(d);
      return true;
    };
    auto client = kube::Client::Create(c, o);
    EXPECT_TRUE(client.ok());
    return std::move(client).value();
  }

  PublisherOptions Options() {
    PublisherOptions o;
    o.node_name = "node-1";
    return o;
  }

  std::vector<Json> Pool() { return api_.Pool(kDriverName, "node-1"); }

  size_t Writes() {
    size_t n = 0;
    for (const auto& r : api_.Requests()) n += r.method != "GET";
    return n;
  }

  static size_t Devices(const std::vector<Json>& pool, const std::string& prefix) {
    size_t n = 0;
    for (const auto& s : pool) {
      for (const auto& d : s["spec"].value("devices", Json::array()))
        n += d["name"].get<std::string>().rfind(prefix, 0) == 0;
    }
    return n;
  }

  static const Json* FindDevice(const std::vector<Json>& pool, const std::string& name) {
    for (const auto& s : pool) {
      if (!s["spec"].contains("devices")) continue;
      for (const auto& d : s["spec"]["devices"]) {
        if (d["name"] == name) return &d;
      }
    }
    return nullptr;
  }

  ApiServerEmulator api_;
  std::unique_ptr<kube::Client> client_;
};

TEST_F(PublisherTest, CreatesValidSlicesOwnedByTheNode) {
  Publisher p(client_.get(), Options());
  ASSERT_TRUE(p.Sync(Ring(8)).ok());
  auto pool = Pool();
  ASSERT_EQ(pool.size(), 2u);
  EXPECT_EQ(ValidatePool(pool), "");
  EXPECT_EQ(Devices(pool, "card-"), 8u);
  EXPECT_EQ(Devices(pool, "arc"), 7u);
  const std::string uid = api_.Get("nodes", "node-1")->at("metadata").at("uid");
  for (const auto& s : pool) {
    EXPECT_EQ(s["metadata"]["ownerReferences"][0]["uid"], uid);
    EXPECT_EQ(s["spec"]["pool"]["generation"], 1);
  }
  EXPECT_EQ(api_.Get("nodes", "node-1")->at("metadata").at("labels").at(kArcsLabel), "true");
  EXPECT_EQ(p.features().layout, CounterLayout::kSplit);
}

TEST_F(PublisherTest, NoOpResyncWritesNothing) {
  Publisher p(client_.get(), Options());
  ASSERT_TRUE(p.Sync(Ring(8)).ok());
  api_.ClearRequests();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(p.Sync(Ring(8)).ok());
  EXPECT_EQ(Writes(), 0u);
  EXPECT_GT(api_.Requests().size(), 0u);  // it did read
  EXPECT_EQ(p.stats().noop_syncs, 3u);
}

TEST_F(PublisherTest, CardFailureTaintsInPlaceAndRecovers) {
  Publisher p(client_.get(), Options());
  auto inv = Ring(8);
  ASSERT_TRUE(p.Sync(inv).ok());
  inv.cards[3].health = hw::Health::kUnhealthy;
  inv.cards[3].health_reason = "not ready";
  api_.ClearRequests();
  ASSERT_TRUE(p.Sync(inv).ok());
  // Only the device slice changed: one in-place update, same generation.
  EXPECT_EQ(Writes(), 1u);
  EXPECT_EQ(api_.CountRequests("PUT", "/apis/resource.k8s.io/v1/resourceslices/"), 1u);
  auto pool = Pool();
  EXPECT_EQ(ValidatePool(pool), "");
  const Json* card = FindDevice(pool, "card-3");
  ASSERT_NE(card, nullptr);
  ASSERT_TRUE(card->contains("taints"));
  EXPECT_EQ((*card)["taints"][0]["effect"], "NoSchedule");
  EXPECT_TRUE((*card)["taints"][0].contains("timeAdded"));  // stamped by the server
  EXPECT_TRUE(FindDevice(pool, "arc2-2")->contains("taints"));
  // The server's timeAdded does not count as a difference.
  api_.ClearRequests();
  ASSERT_TRUE(p.Sync(inv).ok());
  EXPECT_EQ(Writes(), 0u);
  inv.cards[3].health = hw::Health::kHealthy;
  ASSERT_TRUE(p.Sync(inv).ok());
  EXPECT_FALSE(FindDevice(Pool(), "card-3")->contains("taints"));
}

TEST_F(PublisherTest, WithoutTaintGateUnhealthyCardsAreWithdrawn) {
  api_.SetDraGates(true, false);
  Publisher p(client_.get(), Options());
  auto inv = Ring(8);
  inv.cards[3].health = hw::Health::kUnhealthy;
  ASSERT_TRUE(p.Sync(inv).ok());
  EXPECT_FALSE(p.features().device_taints);  // detected from the dropped field
  auto pool = Pool();
  EXPECT_EQ(ValidatePool(pool), "");
  EXPECT_EQ(FindDevice(pool, "card-3"), nullptr);
  EXPECT_EQ(FindDevice(pool, "arc2-2"), nullptr);
  EXPECT_EQ(FindDevice(pool, "arc8-0"), nullptr);
  EXPECT_NE(FindDevice(pool, "arc4-4"), nullptr);
  for (const auto& s : pool) {
    for (const auto& d : s["spec"].value("devices", Json::array())) EXPECT_FALSE(d.contains("taints"));
  }
}

TEST_F(PublisherTest, WithoutPartitionableGateCardsOnlyAndLabelSaysSo) {
  api_.SetDraGates(false, true);
  Publisher p(client_.get(), Options());
  ASSERT_TRUE(p.Sync(Ring(8)).ok());
  EXPECT_FALSE(p.features().partitionable);
  auto pool = Pool();
  EXPECT_EQ(ValidatePool(pool), "");
  EXPECT_EQ(Devices(pool, "card-"), 8u);
  EXPECT_EQ(Devices(pool, "arc"), 0u);
  EXPECT_EQ(api_.Get("nodes", "node-1")->at("metadata").at("labels").at(kArcsLabel), "false");
  api_.ClearRequests();
  ASSERT_TRUE(p.Sync(Ring(8)).ok());
  EXPECT_EQ(Writes(), 0u);
}

TEST_F(PublisherTest, KubernetesOneThirtyFourUsesCombinedSlices) {
  api_.SetServerVersion(1, 34);
  Publisher p(client_.get(), Options());
  ASSERT_TRUE(p.Sync(Ring(8)).ok());
  EXPECT_EQ(p.features().layout, CounterLayout::kCombined);
  auto pool = Pool();
  ASSERT_EQ(pool.size(), 1u);
  EXPECT_TRUE(pool[0]["spec"].contains("sharedCounters"));
  EXPECT_EQ(ValidatePool(pool), "");
}

TEST_F(PublisherTest, OldServerIsAClearError) {
  api_.SetServerVersion(1, 33);
  Publisher p(client_.get(), Options());
  Status st = p.Sync(Ring(4));
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("1.34"), std::string::npos);
  EXPECT_TRUE(Pool().empty());
}

TEST_F(PublisherTest, TopologyChangeBumpsGenerationAndDeletesStaleSlices) {
  Publisher p(client_.get(), Options());
  ASSERT_TRUE(p.Sync(Ring(8)).ok());
  ASSERT_TRUE(p.Sync(testing::TwoRings(4)).ok());  // different counters and devices: both slices change
  auto pool = Pool();
  EXPECT_EQ(ValidatePool(pool), "");
  for (const auto& s : pool) EXPECT_EQ(s["spec"]["pool"]["generation"], 2);
  ASSERT_TRUE(p.Sync(testing::Ring(2)).ok());  // one slice only (no arcs of 4/8, one arc of 2)
  pool = Pool();
  EXPECT_EQ(ValidatePool(pool), "");
  EXPECT_EQ(pool.size(), 2u);
}

TEST_F(PublisherTest, SliceDeletedBehindItsBackIsSeenByTheWatchAndRecreated) {
  Publisher p(client_.get(), Options());
  ASSERT_TRUE(p.Sync(Ring(8)).ok());
  auto watch_client = MakeClient();
  std::atomic<bool> stop{false};
  std::atomic<int> changes{0};
  std::thread watcher([&] {
    Publisher::WatchSlices(
        watch_client.get(), "node-1", &stop, [&](const std::string& rv) { return p.IsOwnWrite(rv); },
        [&] { ++changes; });
  });
  auto wait_for = [&](int n) {
    for (int i = 0; i < 500 && changes.load() < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return changes.load() >= n;
  };
  ASSERT_TRUE(wait_for(1));  // the initial list
  const int before = changes.load();
  ASSERT_TRUE(api_.Remove("resourceslices", "node-1-fpga-1"));  // what the kubelet does on restart
  ASSERT_TRUE(wait_for(before + 1));
  ASSERT_TRUE(p.Sync(Ring(8)).ok());
  auto pool = Pool();
  EXPECT_EQ(pool.size(), 2u);
  EXPECT_EQ(ValidatePool(pool), "");
  stop = true;
  watcher.join();
}

TEST_F(PublisherTest, ApiDownNothingWipedThenConverges) {
  Publisher p(client_.get(), Options());
  auto inv = Ring(8);
  ASSERT_TRUE(p.Sync(inv).ok());
  const auto before = Pool();
  api_.SetDown(true);
  inv.cards[0].health = hw::Health::kUnhealthy;
  EXPECT_FALSE(p.Sync(inv).ok());
  EXPECT_EQ(Pool(), before);  // nothing was deleted or half-written
  api_.SetDown(false);
  ASSERT_TRUE(p.Sync(inv).ok());
  auto pool = Pool();
  EXPECT_EQ(ValidatePool(pool), "");
  EXPECT_TRUE(FindDevice(pool, "card-0")->contains("taints"));
  api_.ClearRequests();
  ASSERT_TRUE(p.Sync(inv).ok());
  EXPECT_EQ(Writes(), 0u);
}

TEST_F(PublisherTest, NodeDeletedSlicesCollectedNothingWrittenUntilItReturns) {
  Publisher p(client_.get(), Options());
  ASSERT_TRUE(p.Sync(Ring(8)).ok());
  ASSERT_TRUE(api_.Remove("nodes", "node-1"));
  EXPECT_TRUE(Pool().empty());  // garbage-collected through the owner reference
  api_.ClearRequests();
  Status st = p.Sync(Ring(8));
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Writes(), 0u);
  api_.PutNode("node-1");
  ASSERT_TRUE(p.Sync(Ring(8)).ok());
  auto pool = Pool();
  EXPECT_EQ(ValidatePool(pool), "");
  const std::string uid = api_.Get("nodes", "node-1")->at("metadata").at("uid");
  for (const auto& s : pool) EXPECT_EQ(s["metadata"]["ownerReferences"][0]["uid"], uid);
}

}  // namespace
}  // namespace hyperaccel::dra
