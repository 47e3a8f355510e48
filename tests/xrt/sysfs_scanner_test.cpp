#include "hyperaccel/xrt/sysfs_scanner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "fake_sysfs.h"

namespace hyperaccel::hw {
namespace {

using ::hyperaccel::testing::FakeCardSpec;
using ::hyperaccel::testing::FakeSysfs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Pf = FakeSysfs::Pf;

const Card* Find(const SysfsScan& scan, const std::string& id) {
  for (const auto& c : scan.cards) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

bool AnyWarningHas(const SysfsScan& scan, const std::string& text) {
  for (const auto& w : scan.warnings) {
    if (w.find(text) != std::string::npos) return true;
  }
  return false;
}

std::string Warnings(const SysfsScan& scan) {
  std::string out;
  for (const auto& w : scan.warnings) out += w + "\n";
  return out;
}

// 4 cards: two behind one PCIe switch on NUMA 0, two under their own root ports on NUMA 1.
class FourU55C : public ::testing::Test {
 protected:
  void SetUp() override {
    fs_.SetDriverVersion("2.13.466");
    FakeCardSpec a;
    a.bus = 0x19;
    a.switch_path = {"0000:16:00.0", "0000:17:00.0", "0000:18:00.0"};
    a.serial = "XFL1ABCDEF01";
    a.render = 129;
    a.xclbin_uuid = "5B7E0A2C-1D3F-4E5A-9B8C-7D6E5F4A3B2C";
    a.fpga_temp = 52;
    a.hbm_temp = 48;
    a.se98_temp[1] = 41;
    a.cage_temp[0] = 33;
    a.cage_temp[1] = 0;
    a.power_uw = 23500000;
    a.vccint_mv = 851;
    a.qsfp_diag[0] = FakeSysfs::QsfpImage("Amphenol", "NDAQGF-F305", "APF2242004", 0x00);
    a.qsfp_diag[1] = FakeSysfs::QsfpImage("Amphenol", "NDAQGF-F305", "APF2242009", 0x03);
    ids_.push_back(fs_.AddU55C(a));

    FakeCardSpec b = a;
    b.bus = 0x1a;
    b.switch_path = {"0000:16:00.0", "0000:17:00.0", "0000:18:01.0"};
    b.serial = "XFL1ABCDEF02";
    b.render = 128;
    b.xclbin_uuid = "00000000-0000-0000-0000-000000000000";
    b.qsfp_diag[0].clear();
    b.qsfp_diag[1].clear();
    ids_.push_back(fs_.AddU55C(b));

    FakeCardSpec c;
    c.bus = 0xaf;
    c.switch_path = {"0000:ae:00.0"};
    c.numa = 1;
    c.cpulist = "16-31,48-63";
    c.serial = "XFL1ABCDEF03";
    c.render = 130;
    ids_.push_back(fs_.AddU55C(c));

    FakeCardSpec d = c;
    d.bus = 0xd8;
    d.switch_path = {"0000:d7:00.0"};
    d.serial = "XFL1ABCDEF04";
    d.render = 131;
    ids_.push_back(fs_.AddU55C(d));
  }

  FakeSysfs fs_;
  std::vector<std::string> ids_;
};

TEST_F(FourU55C, EveryFieldOfAHealthyCard) {
  const SysfsScan scan = ScanSysfs(fs_.root());
  EXPECT_TRUE(scan.warnings.empty()) << Warnings(scan);
  ASSERT_EQ(scan.cards.size(), 4u);
  EXPECT_EQ(scan.cards[0].id, "0000:19:00.1");
  EXPECT_EQ(scan.cards[1].id, "0000:1a:00.1");
  EXPECT_EQ(scan.cards[2].id, "0000:af:00.1");
  EXPECT_EQ(scan.cards[3].id, "0000:d8:00.1");

  const Card& a = scan.cards[0];
  EXPECT_EQ(a.health, Health::kHealthy);
  EXPECT_EQ(a.health_reason, "");
  EXPECT_EQ(a.serial, "XFL1ABCDEF01");
  EXPECT_EQ(a.shell, "xilinx_u55c_gen3x16_xdma_base_3");
  EXPECT_EQ(a.product, "ALVEO-U55C");
  EXPECT_EQ(a.vendor_id, 0x10ee);
  EXPECT_EQ(a.device_id, 0x505d);
  EXPECT_EQ(a.numa_node, std::optional<int>(0));
  EXPECT_EQ(a.local_cpulist, "0-15,32-47");
  EXPECT_THAT(a.pcie_path, ElementsAre("pci0000:16", "0000:16:00.0", "0000:17:00.0", "0000:18:00.0"));
  EXPECT_EQ(a.render_node, "/dev/dri/renderD129");
  EXPECT_EQ(a.mgmt_id, "0000:19:00.0");
  EXPECT_EQ(a.mgmt_instance, std::optional<uint32_t>(0x1900));  // (bus << 8) | (dev << 3) | fn 0
  EXPECT_EQ(a.mgmt_node, "/dev/xclmgmt6400");
  EXPECT_EQ(a.xclbin_uuid, "5b7e0a2c-1d3f-4e5a-9b8c-7d6e5f4a3b2c");
  EXPECT_EQ(a.driver_version, "2.13.466");
  EXPECT_FALSE(a.emulated);

  EXPECT_EQ(a.sensors.fpga_temp_c, std::optional<double>(52));
  EXPECT_EQ(a.sensors.hbm_temp_c, std::optional<double>(48));
  EXPECT_EQ(a.sensors.board_temp_c, std::optional<double>(41));  // hottest se98 sensor
  ASSERT_EQ(a.sensors.cage_temp_c.size(), 2u);
  EXPECT_EQ(a.sensors.cage_temp_c[0], std::optional<double>(33));
  EXPECT_FALSE(a.sensors.cage_temp_c[1].has_value());  // 0 = empty cage
  ASSERT_TRUE(a.sensors.power_w.has_value());
  EXPECT_DOUBLE_EQ(*a.sensors.power_w, 23.5);
  ASSERT_TRUE(a.sensors.vccint_v.has_value());
  EXPECT_DOUBLE_EQ(*a.sensors.vccint_v, 0.851);

  ASSERT_EQ(a.ports.size(), 2u);
  EXPECT_EQ(a.ports[0].index, 0);
  EXPECT_TRUE(a.ports[0].module_info_read);
  EXPECT_TRUE(a.ports[0].module_present);
  EXPECT_EQ(a.ports[0].loss_of_signal, std::optional<bool>(false));
  EXPECT_EQ(a.ports[0].vendor, "Amphenol");
  EXPECT_EQ(a.ports[0].part_number, "NDAQGF-F305");
  EXPECT_EQ(a.ports[0].cable_serial, "APF2242004");
  EXPECT_EQ(a.ports[1].index, 1);
  EXPECT_TRUE(a.ports[1].module_present);
  EXPECT_EQ(a.ports[1].loss_of_signal, std::optional<bool>(true));
  EXPECT_EQ(a.ports[1].cable_serial, "APF2242009");
}

TEST_F(FourU55C, SwitchSharingNumaAndDefaults) {
  const SysfsScan scan = ScanSysfs(fs_.root());
  ASSERT_EQ(scan.cards.size(), 4u);
  const Card& a = scan.cards[0];
  const Card& b = scan.cards[1];
  const Card& c = scan.cards[2];
  const Card& d = scan.cards[3];
  // a and b share the switch upstream port 0000:17:00.0 (a component after the root port).
  EXPECT_THAT(b.pcie_path, ElementsAre("pci0000:16", "0000:16:00.0", "0000:17:00.0", "0000:18:01.0"));
  EXPECT_EQ(a.pcie_path[2], b.pcie_path[2]);
  EXPECT_NE(a.pcie_path[3], b.pcie_path[3]);
  EXPECT_THAT(c.pcie_path, ElementsAre("pci0000:ae", "0000:ae:00.0"));
  EXPECT_THAT(d.pcie_path, ElementsAre("pci0000:d7", "0000:d7:00.0"));
  EXPECT_EQ(c.numa_node, std::optional<int>(1));
  EXPECT_EQ(c.local_cpulist, "16-31,48-63");
  // All-zero xclbin uuid: nothing loaded.
  EXPECT_EQ(b.xclbin_uuid, "");
  // Empty diag files: two ports, module state unknown.
  ASSERT_EQ(b.ports.size(), 2u);
  for (const Port& p : b.ports) {
    EXPECT_FALSE(p.module_info_read);
    EXPECT_FALSE(p.module_present);
    EXPECT_FALSE(p.loss_of_signal.has_value());
    EXPECT_EQ(p.cable_serial, "");
  }
  for (const Card& card : scan.cards) EXPECT_EQ(card.health, Health::kHealthy) << card.id;
  EXPECT_EQ(d.serial, "XFL1ABCDEF04");
  EXPECT_EQ(d.render_node, "/dev/dri/renderD131");
}

TEST_F(FourU55C, ReadUserPfReadsOneCardAndPairsTheMgmtPf) {
  std::vector<std::string> warnings;
  const auto card = ReadUserPf(fs_.root(), "0000:AF:00.1", &warnings);
  ASSERT_TRUE(card.ok()) << card.status().ToString();
  EXPECT_EQ(card->id, "0000:af:00.1");
  EXPECT_EQ(card->mgmt_id, "0000:af:00.0");
  EXPECT_EQ(card->mgmt_node, "/dev/xclmgmt44800");
  EXPECT_EQ(card->serial, "XFL1ABCDEF03");
  EXPECT_EQ(card->driver_version, "2.13.466");
  EXPECT_TRUE(warnings.empty());

  const auto bad = ReadUserPf(fs_.root(), "3b:00.1");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  const auto missing = ReadUserPf(fs_.root(), "0000:3b:00.1");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("0000:3b:00.1"));
}

TEST(SysfsScanner, VmWithUserPfsOnly) {
  FakeSysfs fs;
  FakeCardSpec spec;
  spec.with_mgmt = false;
  const std::string id = fs.AddU55C(spec);
  FakeCardSpec no_xmc = spec;
  no_xmc.bus = 0x5e;
  no_xmc.with_user_xmc = false;
  const std::string id2 = fs.AddU55C(no_xmc);

  const SysfsScan scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 2u);
  const Card& c = *Find(scan, id);
  EXPECT_EQ(c.health, Health::kHealthy) << c.health_reason;
  EXPECT_EQ(c.serial, "XFL1ABCDEF01");  // from the user PF's xmc
  EXPECT_EQ(c.mgmt_id, "");
  EXPECT_EQ(c.mgmt_node, "");
  EXPECT_FALSE(c.mgmt_instance.has_value());
  EXPECT_EQ(c.render_node, "/dev/dri/renderD128");
  EXPECT_EQ(c.sensors.fpga_temp_c, std::optional<double>(45));
  ASSERT_EQ(c.ports.size(), 2u);  // U55C always has two cages
  EXPECT_FALSE(c.ports[0].module_present);
  EXPECT_FALSE(c.ports[1].loss_of_signal.has_value());

  // Without any xmc the card is still usable; the missing serial is a warning.
  const Card& c2 = *Find(scan, id2);
  EXPECT_EQ(c2.health, Health::kHealthy) << c2.health_reason;
  EXPECT_EQ(c2.serial, "");
  EXPECT_FALSE(c2.sensors.fpga_temp_c.has_value());
  EXPECT_TRUE(AnyWarningHas(scan, "card " + id2 + ": xmc.*/serial_num missing")) << Warnings(scan);
}

TEST(SysfsScanner, UnflashedCardIsUnhealthyWithAnActionableReason) {
  FakeSysfs fs;
  const std::string id =
      fs.AddU55C({.bus = 0x3b, .serial = "XFL1ABCDEF01", .numa = 0, .render = 128, .with_rom = false});
  const SysfsScan scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  EXPECT_EQ(scan.cards[0].id, id);
  EXPECT_EQ(id, "0000:3b:00.1");
  EXPECT_EQ(scan.cards[0].health, Health::kUnhealthy);
  EXPECT_EQ(scan.cards[0].health_reason, "rom.*/VBNV missing (shell not flashed?)");
  EXPECT_EQ(scan.cards[0].shell, "");
  EXPECT_EQ(scan.cards[0].serial, "XFL1ABCDEF01");
}

TEST(SysfsScanner, RomFoundByNameFileAndFromMgmtPf) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  // User rom renamed to something without the prefix but with a `name` file.
  const std::string rom = fs.SubdevDir(id, Pf::kUser, "rom");
  std::filesystem::rename(rom, fs.PfDir(id) + "/subdev7");
  fs.Write(id, Pf::kUser, "subdev7/name", "rom\n");
  fs.Write(id, Pf::kUser, "subdev7/VBNV", "xilinx_u55c_gen3x16_xdma_base_3\n");
  EXPECT_EQ(ScanSysfs(fs.root()).cards.at(0).shell, "xilinx_u55c_gen3x16_xdma_base_3");

  // Only the mgmt PF has a rom: the shell still comes through.
  fs.Remove(id, Pf::kUser, "subdev7");
  fs.WriteSubdev(id, Pf::kMgmt, "rom", "VBNV", "xilinx_u55c_gen3x16_xdma_base_3\n");
  const SysfsScan scan = ScanSysfs(fs.root());
  EXPECT_EQ(scan.cards.at(0).shell, "xilinx_u55c_gen3x16_xdma_base_3");
  EXPECT_EQ(scan.cards.at(0).health, Health::kHealthy);
}

TEST(SysfsScanner, NotReadyOfflineAndFirewallAreReported) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  fs.SetReady(id, 0);
  SysfsScan scan = ScanSysfs(fs.root());
  EXPECT_EQ(scan.cards.at(0).health, Health::kUnhealthy);
  EXPECT_EQ(scan.cards.at(0).health_reason, "not ready");

  fs.SetReady(id, 1);
  fs.SetOffline(id, 1);
  scan = ScanSysfs(fs.root());
  EXPECT_EQ(scan.cards.at(0).health, Health::kUnhealthy);
  EXPECT_THAT(scan.cards.at(0).health_reason, HasSubstr("offline (dev_offline=1"));

  fs.SetOffline(id, 0);
  fs.SetFirewall(id, 0x40000, 2);
  scan = ScanSysfs(fs.root());
  EXPECT_EQ(scan.cards.at(0).health, Health::kUnhealthy);
  EXPECT_EQ(scan.cards.at(0).health_reason, "AXI firewall tripped (level 2, status 0x40000; reset the card)");

  // Several problems at once are all listed.
  fs.SetReady(id, 0);
  fs.Write(id, Pf::kMgmt, "ready", "0\n");
  scan = ScanSysfs(fs.root());
  EXPECT_EQ(scan.cards.at(0).health_reason,
            "not ready; AXI firewall tripped (level 2, status 0x40000; reset the card); mgmt PF 0000:3b:00.0 "
            "not ready");

  fs.SetReady(id, 1);
  fs.Write(id, Pf::kMgmt, "ready", "0x1\n");
  fs.SetFirewall(id, 0, 0);
  scan = ScanSysfs(fs.root());
  EXPECT_EQ(scan.cards.at(0).health, Health::kHealthy) << scan.cards.at(0).health_reason;
}

TEST(SysfsScanner, GarbageAndTruncatedFilesBecomeWarnings) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  fs.Write(id, Pf::kUser, "numa_node", "abc\n");
  fs.Write(id, Pf::kMgmt, "numa_node", "abc\n");
  fs.Write(id, Pf::kUser, "local_cpulist", "0-1\x01\x02");
  fs.Write(id, Pf::kUser, "xclbinuuid", "5b7e0a2c-1d3f");  // truncated
  fs.Write(id, Pf::kUser, "device", "0x50");               // truncated
  fs.Write(id, Pf::kMgmt, "instance", "");
  fs.WriteSubdev(id, Pf::kUser, "xmc", "xmc_fpga_temp", "N/A\n");
  fs.WriteSubdev(id, Pf::kUser, "xmc", "xmc_power", "\xff\xfe");
  fs.SetQsfpDiag(id, 0, std::vector<uint8_t>(100, 0x11));  // short read

  const SysfsScan scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  const Card& c = scan.cards[0];
  EXPECT_EQ(c.health, Health::kHealthy) << c.health_reason;
  EXPECT_FALSE(c.numa_node.has_value());
  EXPECT_EQ(c.local_cpulist, "");
  EXPECT_EQ(c.xclbin_uuid, "");
  EXPECT_EQ(c.device_id, 0x50);
  EXPECT_EQ(c.product, "UNKNOWN");
  EXPECT_TRUE(c.ports.empty());  // unknown product: no cage count
  EXPECT_EQ(c.mgmt_node, "");
  EXPECT_FALSE(c.sensors.fpga_temp_c.has_value());
  EXPECT_FALSE(c.sensors.power_w.has_value());
  EXPECT_EQ(c.sensors.hbm_temp_c, std::optional<double>(40));  // the rest still reads
  EXPECT_TRUE(AnyWarningHas(scan, "card 0000:3b:00.1: numa_node: not a number: \"abc\"")) << Warnings(scan);
  EXPECT_TRUE(AnyWarningHas(scan, "local_cpulist: not a CPU list")) << Warnings(scan);
  EXPECT_TRUE(AnyWarningHas(scan, "xclbinuuid: not a UUID")) << Warnings(scan);
  EXPECT_TRUE(AnyWarningHas(scan, "instance: not a number")) << Warnings(scan);
  EXPECT_TRUE(AnyWarningHas(scan, "xmc_fpga_temp: not a number: \"N/A\"")) << Warnings(scan);
  EXPECT_TRUE(AnyWarningHas(scan, "xmc_power: not a number")) << Warnings(scan);
}

TEST(SysfsScanner, TruncatedQsfpDiagIsAWarningAndThePortStays) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  fs.SetQsfpDiag(id, 0, std::vector<uint8_t>(100, 0x11));
  fs.SetQsfpDiag(id, 1, FakeSysfs::QsfpImage("FS", "Q28-PC01", "F2030012345"));
  const SysfsScan scan = ScanSysfs(fs.root());
  const Card& c = scan.cards.at(0);
  ASSERT_EQ(c.ports.size(), 2u);
  EXPECT_FALSE(c.ports[0].module_info_read);
  EXPECT_FALSE(c.ports[0].module_present);
  EXPECT_TRUE(c.ports[1].module_info_read);
  EXPECT_TRUE(c.ports[1].module_present);
  EXPECT_EQ(c.ports[1].cable_serial, "F2030012345");
  EXPECT_TRUE(AnyWarningHas(scan, "qsfp0_diag: SFF-8636 image truncated: 100 bytes")) << Warnings(scan);
}

TEST(SysfsScanner, EmptyCageReadIsKnownAbsentButEmptyFileIsUnknown) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  fs.SetQsfpDiag(id, 0, std::vector<uint8_t>(256, 0x00));  // the CMC answered: no module
  const SysfsScan scan = ScanSysfs(fs.root());
  const Card& c = scan.cards.at(0);
  EXPECT_TRUE(c.ports.at(0).module_info_read);
  EXPECT_FALSE(c.ports.at(0).module_present);
  EXPECT_FALSE(c.ports.at(0).loss_of_signal.has_value());
  EXPECT_FALSE(c.ports.at(1).module_info_read);  // empty file: nothing known
  EXPECT_TRUE(scan.warnings.empty()) << Warnings(scan);
}

TEST(SysfsScanner, MissingOrUnreadableHealthFilesMakeTheCardUnhealthy) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  fs.Write(id, Pf::kUser, "ready", "");
  fs.Write(id, Pf::kUser, "dev_offline", "yes\n");
  SysfsScan scan = ScanSysfs(fs.root());
  EXPECT_EQ(scan.cards.at(0).health_reason, "ready unreadable: \"\"; dev_offline unreadable: \"yes\"");

  fs.Remove(id, Pf::kUser, "ready");
  fs.Remove(id, Pf::kUser, "dev_offline");
  fs.Remove(id, Pf::kUser, "drm");
  scan = ScanSysfs(fs.root());
  EXPECT_EQ(scan.cards.at(0).health_reason,
            "no drm/renderD* render node (xocl DRM device missing); ready missing (driver still probing?)");
}

TEST(SysfsScanner, EveryFileMissingStillGivesACard) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  for (const auto& e : std::filesystem::directory_iterator(fs.PfDir(id))) {
    if (e.path().filename() != "driver") std::filesystem::remove_all(e.path());
  }
  fs.Remove(id, Pf::kMgmt, "");  // mgmt PF directory gone too
  const SysfsScan scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  const Card& c = scan.cards[0];
  EXPECT_EQ(c.id, id);
  EXPECT_EQ(c.health, Health::kUnhealthy);
  EXPECT_THAT(c.health_reason, HasSubstr("rom.*/VBNV missing (shell not flashed?)"));
  EXPECT_THAT(c.health_reason, HasSubstr("ready missing"));
  EXPECT_EQ(c.product, "UNKNOWN");
  EXPECT_TRUE(AnyWarningHas(scan, "vendor: No such file or directory")) << Warnings(scan);
}

TEST(SysfsScanner, EmptyOrMissingDriverDirectories) {
  FakeSysfs fs;
  SysfsScan scan = ScanSysfs(fs.root());
  EXPECT_TRUE(scan.cards.empty());
  EXPECT_TRUE(scan.warnings.empty()) << Warnings(scan);

  std::filesystem::remove_all(fs.root() + "/bus/pci/drivers");
  scan = ScanSysfs(fs.root());
  EXPECT_TRUE(scan.cards.empty());
  EXPECT_TRUE(AnyWarningHas(scan, "no xocl or xclmgmt driver")) << Warnings(scan);

  scan = ScanSysfs(fs.root() + "/does-not-exist");
  EXPECT_TRUE(scan.cards.empty());
  EXPECT_EQ(scan.warnings.size(), 1u);
}

TEST(SysfsScanner, DriverDirectoryNoiseIsIgnored) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  const std::string xocl = fs.root() + "/bus/pci/drivers/xocl";
  for (const char* f : {"bind", "unbind", "new_id", "remove_id", "uevent"}) {
    std::ofstream(xocl + "/" + f) << "";
  }
  std::filesystem::create_directories(xocl + "/0000:zz:00.1");
  fs.SetDriverVersion("2.13.466");  // module/ directory
  const SysfsScan scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  EXPECT_EQ(scan.cards[0].id, id);
}

TEST(SysfsScanner, MgmtPfOnlyMeansTheUserPfIsNotUsable) {
  FakeSysfs fs;
  const std::string id = fs.AddU55C({});
  std::filesystem::remove(fs.root() + "/bus/pci/drivers/xocl/" + id);
  const SysfsScan scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  const Card& c = scan.cards[0];
  EXPECT_EQ(c.id, "0000:3b:00.1");
  EXPECT_EQ(c.mgmt_id, "0000:3b:00.0");
  EXPECT_EQ(c.device_id, 0x505c);
  EXPECT_EQ(c.product, "ALVEO-U55C");
  EXPECT_EQ(c.serial, "XFL1ABCDEF01");
  EXPECT_EQ(c.render_node, "");
  EXPECT_EQ(c.health, Health::kUnhealthy);
  EXPECT_THAT(c.health_reason, HasSubstr("user PF 0000:3b:00.1 not bound to xocl"));
}

TEST(SysfsScanner, DanglingSymlinksAndFallbacks) {
  FakeSysfs fs;
  const auto ids = fs.Generate(2);

  // Device directories gone, symlinks left behind (card mid-reset): the card is not reported.
  fs.RemoveDeviceDirs(ids[0]);
  SysfsScan scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  EXPECT_EQ(scan.cards[0].id, ids[1]);
  EXPECT_TRUE(
      AnyWarningHas(scan, "card " + ids[0] + ": bus/pci/drivers/xocl/" + ids[0] + " does not resolve"))
      << Warnings(scan);

  // The driver entry dangles but bus/pci/devices/<bdf> resolves: read through the fallback.
  const std::string link = fs.root() + "/bus/pci/drivers/xocl/" + ids[1];
  std::filesystem::remove(link);
  std::filesystem::create_directory_symlink("/nonexistent/device", link);
  scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  EXPECT_EQ(scan.cards[0].health, Health::kHealthy) << scan.cards[0].health_reason;
  EXPECT_EQ(scan.cards[0].pcie_path.size(), 4u);

  // A plain directory (a copied tree) instead of a symlink is read too.
  std::filesystem::remove(link);
  std::filesystem::copy(
      fs.PfDir(ids[1]), link,
      std::filesystem::copy_options::recursive | std::filesystem::copy_options::copy_symlinks);
  scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  EXPECT_EQ(scan.cards[0].serial, "XFL100000001");
  EXPECT_EQ(scan.cards[0].health, Health::kHealthy) << scan.cards[0].health_reason;
}

TEST(SysfsScanner, ForeignVendorIsSkipped) {
  FakeSysfs fs;
  FakeCardSpec spec;
  spec.vendor_id = 0x8086;
  fs.AddU55C(spec);
  FakeCardSpec oem;
  oem.bus = 0x5e;
  oem.vendor_id = 0x13fe;  // board partner: kept, product unknown
  const std::string oem_id = fs.AddU55C(oem);
  const SysfsScan scan = ScanSysfs(fs.root());
  ASSERT_EQ(scan.cards.size(), 1u);
  EXPECT_EQ(scan.cards[0].id, oem_id);
  EXPECT_EQ(scan.cards[0].product, "UNKNOWN");
  EXPECT_TRUE(AnyWarningHas(scan, "vendor 0x8086 is not an Alveo vendor")) << Warnings(scan);
}

TEST(SysfsScanner, GeneratedTreeGroupsCardsBehindSwitches) {
  FakeSysfs fs;
  const auto ids = fs.Generate(8);
  const SysfsScan scan = ScanSysfs(fs.root());
  EXPECT_TRUE(scan.warnings.empty()) << Warnings(scan);
  ASSERT_EQ(scan.cards.size(), 8u);
  for (size_t i = 0; i < scan.cards.size(); ++i) {
    const Card& c = scan.cards[i];
    EXPECT_EQ(c.id, ids[i]);
    EXPECT_EQ(c.health, Health::kHealthy) << c.health_reason;
    EXPECT_EQ(c.numa_node, std::optional<int>(static_cast<int>(i / 4 % 2)));
    ASSERT_EQ(c.pcie_path.size(), 4u);
    // Same switch upstream port within a group of 4, different across groups.
    EXPECT_EQ(c.pcie_path[2], scan.cards[i / 4 * 4].pcie_path[2]);
    EXPECT_TRUE(c.ports.at(0).module_present);
  }
  EXPECT_NE(scan.cards[0].pcie_path[2], scan.cards[4].pcie_path[2]);
  EXPECT_EQ(scan.cards[5].serial, "XFL100000005");
}

// A card is removed and re-added while scans run: every scan must finish and report either a
// complete card or none (plus a warning), never a crash.
TEST(SysfsScanner, DeviceDisappearingDuringScans) {
  FakeSysfs fs;
  const auto ids = fs.Generate(2);
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    FakeCardSpec spec;
    spec.bus = 0x50;
    for (int i = 0; i < 200 && !stop; ++i) {
      const std::string id = fs.AddU55C(spec);
      fs.RemoveCard(id);
    }
  });
  int scans = 0;
  while (scans < 300) {
    const SysfsScan scan = ScanSysfs(fs.root());
    ++scans;
    ASSERT_GE(scan.cards.size(), 2u);
    EXPECT_EQ(Find(scan, ids[0])->health, Health::kHealthy);
    EXPECT_EQ(Find(scan, ids[1])->health, Health::kHealthy);
  }
  stop = true;
  churn.join();
}

}  // namespace
}  // namespace hyperaccel::hw
