// A fake Linux sysfs tree with Alveo cards, written to a temporary directory, for tests and
// benchmarks of anything that reads sysfs (pass `root()` where production passes "/sys").
//
// The tree has the shape a real host has:
//   devices/pci0000:3a/0000:3a:00.0/0000:3b:00.1/          real directory of the user PF
//   devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/          real directory of the mgmt PF
//   bus/pci/devices/0000:3b:00.1 -> ../../../devices/...   relative symlinks
//   bus/pci/drivers/xocl/0000:3b:00.1 -> ../../../../devices/...
//   bus/pci/drivers/xclmgmt/0000:3b:00.0 -> ...
//   bus/pci/drivers/xocl/module/version
// User PF: vendor, device, numa_node, local_cpulist, ready, dev_offline, xclbinuuid, user_pf,
// drm/renderD<N>, drm/card<M>, rom.u.<n>/VBNV, xmc.u.<n>/{serial_num, sensors},
// firewall.u.<n>/{detected_status, detected_level}. Mgmt PF: the same PCI files, instance,
// mgmt_pf, rom.m.<n>, xmc.m.<n>/{serial_num, sensors, qsfp0_diag, qsfp1_diag}, firewall.m.<n>.
// Sub-device numbers <n> come from a global counter, as on a real host.
//
// Cards are named by their user-PF address ("0000:3b:00.1"). Helpers throw std::runtime_error on
// I/O failure (test code only). Not thread-safe. The destructor deletes the tree.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hyperaccel::testing {

// One U55C card. Every field has a realistic default; tests change what they care about.
struct FakeCardSpec {
  // Fields are in the order designated initializers must use:
  //   fs.AddU55C({.bus = 0x3b, .serial = "XFL1ABCDEF01", .numa = 0, .render = 128});
  // Location. The user PF is <domain>:<bus>:<dev>.1, the mgmt PF <domain>:<bus>:<dev>.0.
  int domain = 0;
  int bus = 0x3b;
  int dev = 0;
  std::string serial = "XFL1ABCDEF01";
  int numa = 0;      // -1 = unknown
  int render = 128;  // drm/renderD<render>; -1 = no render node
  // PCIe bridges from the root port down to the card, e.g. {"0000:3a:00.0"} (card directly under
  // a root port) or {"0000:16:00.0", "0000:17:00.0", "0000:18:08.0"} (behind a switch). The root
  // complex "pci<domain>:<bus>" is taken from the first one. Empty: {"<domain>:<bus-1>:00.0"}.
  std::vector<std::string> switch_path = {};
  std::string cpulist = "0-15,32-47";

  std::string vbnv = "xilinx_u55c_gen3x16_xdma_base_3";
  uint16_t vendor_id = 0x10ee;
  uint16_t user_device_id = 0x505d;
  uint16_t mgmt_device_id = 0x505c;
  std::string xclbin_uuid = "00000000-0000-0000-0000-000000000000";

  bool with_mgmt = true;  // false: a VM that only sees the user PF
  bool with_rom = true;   // false: an unflashed card (no rom.* sub-device on either PF)
  bool with_user_xmc = true;
  int ready = 1;
  int offline = 0;
  uint32_t firewall_status = 0;  // non-zero: tripped
  int firewall_level = 0;

  // Sensors, as the CMC reports them (°C, µW, mV). Written to the user and mgmt xmc.
  int fpga_temp = 45;
  int hbm_temp = 40;
  int se98_temp[3] = {35, 36, 37};
  int cage_temp[4] = {30, 31, 0, 0};
  int64_t power_uw = 23500000;
  int vccint_mv = 850;

  // Contents of xmc.m.<n>/qsfp{0,1}_diag (empty file when empty).
  std::vector<uint8_t> qsfp_diag[2] = {};
};

class FakeSysfs {
 public:
  enum class Pf { kUser, kMgmt };

  // Creates an empty tree (bus/pci/drivers/{xocl,xclmgmt} exist but hold no card).
  FakeSysfs();
  ~FakeSysfs();
  FakeSysfs(const FakeSysfs&) = delete;
  FakeSysfs& operator=(const FakeSysfs&) = delete;

  // The directory to pass as the sysfs root.
  const std::string& root() const { return root_; }

  // Adds a U55C; returns its id (the user-PF address, lower case).
  std::string AddU55C(const FakeCardSpec& spec);

  // Adds n U55C cards: groups of 4 behind one PCIe switch (each group under its own root
  // port), NUMA node 0 for the first group, 1 for the second, 0 for the third... Serial of card i:
  // "XFL1" + 8 hex digits of i; render node 128 + i; each card gets a QSFP28 DAC in both cages.
  // Returns the ids in order.
  std::vector<std::string> Generate(int n);

  // Removes a card: driver entries, bus/pci/devices links and the device directories.
  void RemoveCard(const std::string& id);
  // Removes only the device directories, leaving dangling symlinks (a device mid-reset).
  void RemoveDeviceDirs(const std::string& id);

  // Absolute directory of a card's function.
  std::string PfDir(const std::string& id, Pf pf = Pf::kUser) const;
  // Absolute directory of sub-device `name` ("rom", "xmc", "firewall") of a function; empty
  // when the function has none.
  std::string SubdevDir(const std::string& id, Pf pf, std::string_view name) const;

  // Writes (creating or replacing) a file relative to the function directory, e.g.
  // Write(id, Pf::kUser, "numa_node", "abc\n") to corrupt it.
  void Write(const std::string& id, Pf pf, const std::string& relative, std::string_view content);
  // Writes a file of sub-device `name` ("xmc", "firewall", "rom").
  void WriteSubdev(const std::string& id, Pf pf, std::string_view name, const std::string& file,
                   std::string_view content);
  // Removes a file or directory (recursively) relative to the function directory.
  void Remove(const std::string& id, Pf pf, const std::string& relative);

  // Shortcuts for what tests change most.
  void SetReady(const std::string& id, int ready);
  void SetOffline(const std::string& id, int offline);
  void SetFpgaTemp(const std::string& id, int celsius);  // user and mgmt xmc
  void SetFirewall(const std::string& id, uint32_t status, int level);
  void SetQsfpDiag(const std::string& id, int port, const std::vector<uint8_t>& image);
  void SetDriverVersion(std::string_view version);  // bus/pci/drivers/xocl/module/version

  // A 256-byte SFF-8636 lower+upper page 0 image of a QSFP28 module. `rx_los` goes to byte 3
  // (bits 0..3 = RX lanes 1..4); strings are space padded to 16 bytes.
  static std::vector<uint8_t> QsfpImage(std::string_view vendor, std::string_view part_number,
                                        std::string_view serial, uint8_t rx_los = 0,
                                        uint8_t identifier = 0x11);

 private:
  struct CardDirs {
    std::string id;
    std::string user_bdf;
    std::string mgmt_bdf;  // empty without a mgmt PF
    std::string user_dir;  // relative to root
    std::string mgmt_dir;
  };
  const CardDirs& Find(const std::string& id) const;
  std::string Bdf(int domain, int bus, int dev, int fn) const;
  void WriteAbs(const std::string& path, std::string_view content) const;
  void Symlink(const std::string& target_rel_to_root, const std::string& link_rel_to_root) const;
  std::string NewSubdev(const std::string& pf_dir, std::string_view name, char side);

  std::string root_;
  int subdev_counter_ = 3;
  std::vector<CardDirs> cards_;
};

}  // namespace hyperaccel::testing
