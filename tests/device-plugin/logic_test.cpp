// The plugin's pure logic: resource names, the device table, Allocate answers, preferred
// allocation and the CDI spec.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "hyperaccel/device_plugin/allocation.h"
#include "hyperaccel/device_plugin/resources.h"
#include "test_inventory.h"

namespace hyperaccel::device_plugin {
namespace {

using testing::CardId;
using testing::RingInventory;

std::shared_ptr<const ResourceView> ViewOf(const hw::Inventory& inv,
                                           const std::string& name = "hyperaccel.ai/fpga") {
  DeviceTable table(MakeNamer(NamingMode::kSingle, name, "", nullptr));
  auto views = table.Apply(inv);
  return views.at(name);
}

TEST(ResourceName, AcceptsValidNames) {
  EXPECT_TRUE(ValidateResourceName("hyperaccel.ai/fpga").ok());
  EXPECT_TRUE(ValidateResourceName("amd.com/xilinx_u55c_gen3x16_xdma_base_3-0").ok());
}

TEST(ResourceName, RejectsWhatTheKubeletRejects) {
  EXPECT_FALSE(ValidateResourceName("fpga").ok());
  EXPECT_FALSE(ValidateResourceName("kubernetes.io/fpga").ok());
  EXPECT_FALSE(ValidateResourceName("foo.kubernetes.io/fpga").ok());
  EXPECT_FALSE(ValidateResourceName("requests.x.com/fpga").ok());
  EXPECT_FALSE(ValidateResourceName("Upper.com/fpga").ok());
  EXPECT_FALSE(ValidateResourceName("x.com/-fpga").ok());
  EXPECT_FALSE(ValidateResourceName("x.com/a/b").ok());
  EXPECT_FALSE(ValidateResourceName("x.com/" + std::string(64, 'a')).ok());
  EXPECT_TRUE(ValidateResourceName("x.com/" + std::string(63, 'a')).ok());
}

TEST(Naming, PerShellFollowsTheXilinxScheme) {
  auto namer = MakeNamer(NamingMode::kPerShell, "hyperaccel.ai/fpga", "amd.com",
                         [](const hw::Card&) { return std::string("0"); });
  hw::Card c;
  c.shell = "xilinx_u55c_gen3x16_xdma_base_3";
  EXPECT_EQ(namer(c), "amd.com/xilinx_u55c_gen3x16_xdma_base_3-0");
  c.shell.clear();
  EXPECT_EQ(namer(c), "hyperaccel.ai/fpga");  // no shell: the fallback name
  c.shell = std::string(70, 'x');
  EXPECT_EQ(namer(c), "hyperaccel.ai/fpga");  // too long for a resource name
  EXPECT_EQ(SocketNameFor(NamingMode::kPerShell, "amd.com/xilinx_u55c-0", "x.sock"),
            "hyperaccel-xilinx_u55c-0.sock");
  EXPECT_EQ(SocketNameFor(NamingMode::kSingle, "hyperaccel.ai/fpga", "hyperaccel-fpga.sock"),
            "hyperaccel-fpga.sock");
}

TEST(Naming, ReadsTheShellTimestampFromSysfs) {
  char tmpl[] = "/tmp/hdpts-XXXXXX";
  std::filesystem::path root = ::mkdtemp(tmpl);
  std::filesystem::create_directories(root / "bus/pci/devices/0000:3b:00.1/rom.u.4");
  std::ofstream(root / "bus/pci/devices/0000:3b:00.1/rom.u.4/timestamp") << "1654843519\n";
  auto ts = SysfsShellTimestamp(root.string());
  hw::Card c;
  c.id = "0000:3b:00.1";
  EXPECT_EQ(ts(c), "1654843519");
  c.id = "0000:3c:00.1";
  EXPECT_EQ(ts(c), "0");
  std::filesystem::remove_all(root);
}

TEST(DeviceTable, VanishedCardStaysUnhealthyAndComesBack) {
  DeviceTable table(MakeNamer(NamingMode::kSingle, "r.io/x", "", nullptr));
  auto inv = RingInventory(4);
  table.Apply(inv);
  auto missing = inv;
  missing.cards.erase(missing.cards.begin() + 2);
  std::set<std::string> changed;
  auto views = table.Apply(missing, &changed);
  EXPECT_EQ(changed, std::set<std::string>{"r.io/x"});
  const auto& view = *views.at("r.io/x");
  ASSERT_EQ(view.devices.size(), 4u);
  const DeviceEntry* gone = view.Find(CardId(2));
  ASSERT_NE(gone, nullptr);
  EXPECT_FALSE(gone->present);
  EXPECT_FALSE(gone->healthy);
  EXPECT_NE(gone->reason.find("not found"), std::string::npos);
  EXPECT_EQ(view.HealthyCount(), 3u);

  // A driver reload: nothing found at all. Still four devices, all unhealthy.
  views = table.Apply(hw::Inventory{});
  EXPECT_EQ(views.at("r.io/x")->devices.size(), 4u);
  EXPECT_EQ(views.at("r.io/x")->HealthyCount(), 0u);

  changed.clear();
  views = table.Apply(inv, &changed);
  EXPECT_EQ(views.at("r.io/x")->HealthyCount(), 4u);
  EXPECT_EQ(changed.size(), 1u);
  changed.clear();
  table.Apply(inv, &changed);
  EXPECT_TRUE(changed.empty()) << "the same inventory twice is no change";
}

TEST(Allocation, GivesRenderNodesAndEnvironment) {
  auto view = ViewOf(RingInventory(8));
  std::vector<std::string> ids = {CardId(3), CardId(2)};
  AllocateOptions opts;
  auto a = BuildAllocation(*view, ids, opts);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_EQ(a->devices.size(), 2u);
  EXPECT_EQ(a->devices[0].host_path, "/dev/dri/renderD130");
  EXPECT_EQ(a->devices[0].container_path, "/dev/dri/renderD130");
  EXPECT_EQ(a->devices[0].permissions, "rw");
  EXPECT_EQ(a->devices[1].host_path, "/dev/dri/renderD131");
  EXPECT_EQ(a->envs.at(kEnvVisibleDevices), CardId(2) + "," + CardId(3));
  EXPECT_EQ(a->envs.at(kEnvDeviceSerials), "XFL1SER102,XFL1SER103");
  EXPECT_EQ(a->envs.at(kEnvRingOrder), CardId(2) + "," + CardId(3));
  EXPECT_EQ(a->envs.count(kEnvXilinxXrt), 0u);
  EXPECT_TRUE(a->mounts.empty());
  EXPECT_TRUE(a->cdi_devices.empty());
}

TEST(Allocation, RingOrderFollowsTheLinks) {
  auto view = ViewOf(RingInventory(8));
  // Cards 7, 0, 1 form an arc across the wrap-around: link order is 7-0-1 or 1-0-7, never sorted.
  std::vector<std::string> ids = {CardId(0), CardId(1), CardId(7)};
  auto a = BuildAllocation(*view, ids, {});
  ASSERT_TRUE(a.ok());
  const std::string& ring = a->envs.at(kEnvRingOrder);
  EXPECT_TRUE(ring == CardId(7) + "," + CardId(0) + "," + CardId(1) ||
              ring == CardId(1) + "," + CardId(0) + "," + CardId(7))
      << ring;
}

TEST(Allocation, IsIdempotentWhateverTheRequestOrder) {
  auto view = ViewOf(RingInventory(8));
  AllocateOptions opts;
  opts.mount_xrt = true;
  std::vector<std::string> a_ids = {CardId(5), CardId(4), CardId(6)};
  std::vector<std::string> b_ids = {CardId(6), CardId(5), CardId(4), CardId(5)};
  auto a = BuildAllocation(*view, a_ids, opts);
  auto b = BuildAllocation(*view, b_ids, opts);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
}

TEST(Allocation, MgmtNodeOnlyWhenExposed) {
  auto view = ViewOf(RingInventory(2));
  std::vector<std::string> ids = {CardId(1)};
  AllocateOptions opts;
  auto plain = BuildAllocation(*view, ids, opts);
  ASSERT_TRUE(plain.ok());
  for (const auto& d : plain->devices) EXPECT_EQ(d.host_path.find("xclmgmt"), std::string::npos);
  opts.expose_mgmt = true;
  auto mgmt = BuildAllocation(*view, ids, opts);
  ASSERT_TRUE(mgmt.ok());
  ASSERT_EQ(mgmt->devices.size(), 2u);
  EXPECT_EQ(mgmt->devices[1].host_path, "/dev/xclmgmt4097");
}

TEST(Allocation, MountsXrtAndIcdReadOnly) {
  auto view = ViewOf(RingInventory(2));
  std::vector<std::string> ids = {CardId(0)};
  AllocateOptions opts;
  opts.mount_xrt = true;
  opts.xrt_host_dir = "/opt/xilinx/xrt";
  opts.xrt_container_dir = "/usr/local/xrt";
  opts.mount_icd = true;
  auto a = BuildAllocation(*view, ids, opts);
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->mounts.size(), 2u);
  EXPECT_EQ(a->mounts[0].host_path, "/opt/xilinx/xrt");
  EXPECT_EQ(a->mounts[0].container_path, "/usr/local/xrt");
  EXPECT_TRUE(a->mounts[0].read_only);
  EXPECT_EQ(a->mounts[1].host_path, "/etc/OpenCL/vendors/xilinx.icd");
  EXPECT_TRUE(a->mounts[1].read_only);
  EXPECT_EQ(a->envs.at(kEnvXilinxXrt), "/usr/local/xrt");
}

TEST(Allocation, UnknownIdIsAClearError) {
  auto view = ViewOf(RingInventory(2));
  std::vector<std::string> ids = {CardId(0), "0000:ff:00.1"};
  auto a = BuildAllocation(*view, ids, {});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("0000:ff:00.1"), std::string::npos);
  EXPECT_NE(a.status().message().find(CardId(0)), std::string::npos) << "lists the known IDs";
  std::vector<std::string> none;
  EXPECT_FALSE(BuildAllocation(*view, none, {}).ok());
}

TEST(Allocation, UnhealthyIdIsRefusedWithTheReason) {
  auto inv = RingInventory(2);
  inv.cards[1].health = hw::Health::kUnhealthy;
  inv.cards[1].health_reason = "firewall tripped";
  auto view = ViewOf(inv);
  std::vector<std::string> ids = {CardId(1)};
  auto a = BuildAllocation(*view, ids, {});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(a.status().message().find("firewall tripped"), std::string::npos);
}

TEST(Allocation, EmulatedCardKeepsItsFakeRenderNode) {
  auto inv = RingInventory(1);
  inv.cards[0].emulated = true;
  inv.cards[0].render_node = "/dev/dri/renderD-emu0";
  auto view = ViewOf(inv);
  std::vector<std::string> ids = {CardId(0)};
  auto a = BuildAllocation(*view, ids, {});
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->devices.size(), 1u);
  EXPECT_EQ(a->devices[0].host_path, "/dev/dri/renderD-emu0");
}

TEST(Allocation, CdiNamesOnlyForCardsInTheWrittenSpec) {
  DeviceTable table(MakeNamer(NamingMode::kSingle, "hyperaccel.ai/fpga", "", nullptr));
  table.Observe(RingInventory(2));
  auto views = table.Build({CardId(0)});
  AllocateOptions opts;
  opts.cdi = true;
  std::vector<std::string> ok_ids = {CardId(0)};
  auto a = BuildAllocation(*views.at("hyperaccel.ai/fpga"), ok_ids, opts);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->cdi_devices, std::vector<std::string>{"hyperaccel.ai/fpga=" + CardId(0)});
  EXPECT_EQ(a->devices.size(), 1u) << "device specs stay for kubelets without CDI";
  std::vector<std::string> bad_ids = {CardId(1)};
  auto b = BuildAllocation(*views.at("hyperaccel.ai/fpga"), bad_ids, opts);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("CDI"), std::string::npos);
}

TEST(Preferred, PicksAContiguousArcAroundBusyCards) {
  auto view = ViewOf(RingInventory(8));
  // Cards 0, 1 and 5 are busy: the only free arc of three is 2-3-4.
  std::vector<std::string> avail = {CardId(2), CardId(3), CardId(4), CardId(6), CardId(7)};
  auto got = PreferredAllocation(*view, avail, {}, 3);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  auto sorted = *got;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<std::string>{CardId(2), CardId(3), CardId(4)}));
}

TEST(Preferred, HonoursMustIncludeAndTheExactSize) {
  auto view = ViewOf(RingInventory(8));
  std::vector<std::string> avail = {CardId(2), CardId(3), CardId(4), CardId(6), CardId(7)};
  std::vector<std::string> must = {CardId(7)};
  auto got = PreferredAllocation(*view, avail, must, 2);
  ASSERT_TRUE(got.ok());
  auto sorted = *got;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<std::string>{CardId(6), CardId(7)}));
  for (int k = 1; k <= 5; ++k) {
    auto n = PreferredAllocation(*view, avail, must, k);
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(static_cast<int>(n->size()), k);
    EXPECT_NE(std::find(n->begin(), n->end(), CardId(7)), n->end());
  }
  EXPECT_FALSE(PreferredAllocation(*view, avail, must, 6).ok());
  EXPECT_FALSE(PreferredAllocation(*view, avail, must, 0).ok());
}

TEST(Preferred, RejectsAMustIncludeIdThatIsNotAvailable) {
  auto view = ViewOf(RingInventory(8));
  std::vector<std::string> avail = {CardId(2), CardId(3), CardId(4)};
  std::vector<std::string> must = {CardId(6)};  // busy: not in the available set
  auto got = PreferredAllocation(*view, avail, must, 2);
  ASSERT_FALSE(got.ok()) << "answered with a card the kubelet cannot give: " << (*got)[0];
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status().message().find(CardId(6)), std::string::npos) << got.status().message();
  std::vector<std::string> unknown = {"0000:ee:00.1"};
  EXPECT_FALSE(PreferredAllocation(*view, avail, unknown, 2).ok());
}

TEST(Preferred, RejectsMoreMustIncludeIdsThanTheSize) {
  auto view = ViewOf(RingInventory(8));
  std::vector<std::string> avail = {CardId(2), CardId(3), CardId(4)};
  std::vector<std::string> must = {CardId(2), CardId(3)};
  auto got = PreferredAllocation(*view, avail, must, 1);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
}

TEST(Preferred, FallsBackWhenPlacementCannotAnswer) {
  auto view = ViewOf(RingInventory(4));
  std::vector<std::string> avail = {CardId(0), "0000:ee:00.1", CardId(1)};
  std::string why;
  auto got = PreferredAllocation(*view, avail, {}, 2, &why);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->size(), 2u);
  EXPECT_FALSE(why.empty());
}

TEST(Cdi, SpecListsEveryCardWithItsNodes) {
  AllocateOptions opts;
  opts.cdi = true;
  opts.mount_xrt = true;
  opts.mount_icd = true;
  auto inv = RingInventory(3);
  auto spec = nlohmann::json::parse(RenderCdiSpec(inv.cards, opts));
  EXPECT_EQ(spec["cdiVersion"], "0.5.0");
  EXPECT_EQ(spec["kind"], "hyperaccel.ai/fpga");
  ASSERT_EQ(spec["devices"].size(), 3u);
  EXPECT_EQ(spec["devices"][1]["name"], CardId(1));
  auto nodes = spec["devices"][1]["containerEdits"]["deviceNodes"];
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0]["path"], "/dev/dri/renderD129");
  EXPECT_EQ(nodes[0]["permissions"], "rw");
  EXPECT_EQ(spec["containerEdits"]["env"][0], "XILINX_XRT=/opt/xilinx/xrt");
  EXPECT_EQ(spec["containerEdits"]["mounts"].size(), 2u);
  EXPECT_EQ(CdiSpecPath(opts), "/var/run/cdi/hyperaccel.ai-fpga.json");
}

TEST(Cdi, WriteIsAtomic) {
  char tmpl[] = "/tmp/hdpcdi-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string path = dir + "/sub/spec.json";
  ASSERT_TRUE(WriteFileAtomic(path, "{}\n").ok());
  std::ifstream in(path);
  std::string body((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(body, "{}\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hyperaccel::device_plugin
