#include "fake_sysfs.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace hyperaccel::testing {
namespace fs = std::filesystem;
namespace {

std::string Hex(unsigned v, int width) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%0*x", width, v);
  return buf;
}

// "../../.." from `link` (relative to root) up to the root.
std::string UpToRoot(const std::string& link_rel) {
  std::string up;
  for (char c : fs::path(link_rel).parent_path().string()) {
    if (c == '/') up += "../";
  }
  return up + "../";
}

}  // namespace

FakeSysfs::FakeSysfs() {
  const char* tmp = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe): tests never setenv TMPDIR
  std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/fake-sysfs-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp " + templ + " failed");
  root_ = templ;
  fs::create_directories(root_ + "/bus/pci/drivers/xocl");
  fs::create_directories(root_ + "/bus/pci/drivers/xclmgmt");
  fs::create_directories(root_ + "/bus/pci/devices");
  fs::create_directories(root_ + "/devices");
}

FakeSysfs::~FakeSysfs() {
  std::error_code ec;
  fs::remove_all(root_, ec);
}

std::string FakeSysfs::Bdf(int domain, int bus, int dev, int fn) const {
  return Hex(static_cast<unsigned>(domain), 4) + ":" + Hex(static_cast<unsigned>(bus), 2) + ":" +
         Hex(static_cast<unsigned>(dev), 2) + "." + std::to_string(fn);
}

void FakeSysfs::WriteAbs(const std::string& path, std::string_view content) const {
  fs::create_directories(fs::path(path).parent_path());
  // A read of a real sysfs attribute never sees half of a value, so the fake replaces files whole
  // (a scanner running in another thread would otherwise read an empty, just-truncated file).
  const std::string tmp = path + ".fake-sysfs-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw std::runtime_error("cannot replace " + path + ": " + ec.message());
}

void FakeSysfs::Symlink(const std::string& target_rel, const std::string& link_rel) const {
  const std::string link = root_ + "/" + link_rel;
  fs::create_directories(fs::path(link).parent_path());
  std::error_code ec;
  fs::remove(link, ec);
  fs::create_directory_symlink(UpToRoot(link_rel) + target_rel, link);
}

std::string FakeSysfs::NewSubdev(const std::string& pf_dir, std::string_view name, char side) {
  std::string dir = pf_dir + "/" + std::string(name) + "." + side + "." + std::to_string(subdev_counter_++);
  fs::create_directories(dir);
  return dir;
}

std::string FakeSysfs::AddU55C(const FakeCardSpec& spec) {
  std::vector<std::string> bridges = spec.switch_path;
  if (bridges.empty()) bridges.push_back(Bdf(spec.domain, spec.bus - 1, 0, 0));
  std::string parent = "devices/pci" + bridges.front().substr(0, bridges.front().rfind(':'));
  for (const auto& b : bridges) parent += "/" + b;

  CardDirs c;
  c.user_bdf = Bdf(spec.domain, spec.bus, spec.dev, 1);
  c.id = c.user_bdf;
  c.user_dir = parent + "/" + c.user_bdf;
  if (spec.with_mgmt) {
    c.mgmt_bdf = Bdf(spec.domain, spec.bus, spec.dev, 0);
    c.mgmt_dir = parent + "/" + c.mgmt_bdf;
  }
  for (const auto& existing : cards_) {
    if (existing.id == c.id) throw std::runtime_error("card " + c.id + " already exists");
  }

  const auto pci_files = [&](const std::string& dir, uint16_t device) {
    WriteAbs(dir + "/vendor", "0x" + Hex(spec.vendor_id, 4) + "\n");
    WriteAbs(dir + "/device", "0x" + Hex(device, 4) + "\n");
    WriteAbs(dir + "/subsystem_vendor", "0x10ee\n");
    WriteAbs(dir + "/subsystem_device", "0x000e\n");
    WriteAbs(dir + "/class", "0x120000\n");
    WriteAbs(dir + "/numa_node", std::to_string(spec.numa) + "\n");
    WriteAbs(dir + "/local_cpulist", spec.cpulist + "\n");
    WriteAbs(dir + "/ready", std::to_string(spec.ready) + "\n");
    WriteAbs(dir + "/dev_offline", std::to_string(spec.offline) + "\n");
    WriteAbs(dir + "/current_link_speed", "8.0 GT/s PCIe\n");
    WriteAbs(dir + "/current_link_width", "16\n");
    WriteAbs(dir + "/resource0", "");
  };
  const auto xmc_files = [&](const std::string& dir) {
    WriteAbs(dir + "/serial_num", spec.serial + "\n");
    WriteAbs(dir + "/bd_name", "ALVEO U55C PQ\n");
    WriteAbs(dir + "/xmc_fpga_temp", std::to_string(spec.fpga_temp) + "\n");
    WriteAbs(dir + "/xmc_hbm_temp", std::to_string(spec.hbm_temp) + "\n");
    for (int i = 0; i < 3; ++i) {
      WriteAbs(dir + "/xmc_se98_temp" + std::to_string(i), std::to_string(spec.se98_temp[i]) + "\n");
    }
    for (int i = 0; i < 4; ++i) {
      WriteAbs(dir + "/xmc_cage_temp" + std::to_string(i), std::to_string(spec.cage_temp[i]) + "\n");
    }
    WriteAbs(dir + "/xmc_power", std::to_string(spec.power_uw) + "\n");
    WriteAbs(dir + "/xmc_vccint_vol", std::to_string(spec.vccint_mv) + "\n");
    WriteAbs(dir + "/xmc_12v_pex_vol", "12100\n");
  };
  const auto firewall_files = [&](const std::string& dir) {
    WriteAbs(dir + "/detected_status", "0x" + Hex(spec.firewall_status, 1) + "\n");
    WriteAbs(dir + "/detected_level", std::to_string(spec.firewall_level) + "\n");
    WriteAbs(dir + "/detected_level_name", spec.firewall_status != 0 ? "AF0\n" : "\n");
  };

  const std::string user = root_ + "/" + c.user_dir;
  pci_files(user, spec.user_device_id);
  WriteAbs(user + "/user_pf", "");
  WriteAbs(user + "/xclbinuuid", spec.xclbin_uuid + "\n");
  WriteAbs(user + "/board_name", "u55c\n");
  if (spec.render >= 0) {
    fs::create_directories(user + "/drm/renderD" + std::to_string(spec.render));
    fs::create_directories(user + "/drm/card" +
                           std::to_string(spec.render - 128 >= 0 ? spec.render - 128 : 0));
  }
  if (spec.with_rom) {
    const std::string rom = NewSubdev(user, "rom", 'u');
    WriteAbs(rom + "/VBNV", spec.vbnv + "\n");
    WriteAbs(rom + "/FPGA", "xcu55c-fsvh2892-2L-e\n");
    WriteAbs(rom + "/timestamp", "1665067834\n");
  }
  if (spec.with_user_xmc) xmc_files(NewSubdev(user, "xmc", 'u'));
  firewall_files(NewSubdev(user, "firewall", 'u'));
  fs::create_directories(user + "/icap.u." + std::to_string(subdev_counter_++));
  Symlink(c.user_dir, "bus/pci/devices/" + c.user_bdf);
  Symlink(c.user_dir, "bus/pci/drivers/xocl/" + c.user_bdf);
  Symlink("bus/pci/drivers/xocl", c.user_dir + "/driver");

  if (spec.with_mgmt) {
    const std::string mgmt = root_ + "/" + c.mgmt_dir;
    pci_files(mgmt, spec.mgmt_device_id);
    WriteAbs(mgmt + "/mgmt_pf", "");
    const unsigned instance = (static_cast<unsigned>(spec.domain) << 16) |
                              (static_cast<unsigned>(spec.bus) << 8) | (static_cast<unsigned>(spec.dev) << 3);
    WriteAbs(mgmt + "/instance", std::to_string(instance) + "\n");
    if (spec.with_rom) {
      const std::string rom = NewSubdev(mgmt, "rom", 'm');
      WriteAbs(rom + "/VBNV", spec.vbnv + "\n");
    }
    const std::string xmc = NewSubdev(mgmt, "xmc", 'm');
    xmc_files(xmc);
    for (int i = 0; i < 2; ++i) {
      const auto& image = spec.qsfp_diag[i];
      WriteAbs(xmc + "/qsfp" + std::to_string(i) + "_diag",
               std::string_view(reinterpret_cast<const char*>(image.data()), image.size()));
    }
    firewall_files(NewSubdev(mgmt, "firewall", 'm'));
    Symlink(c.mgmt_dir, "bus/pci/devices/" + c.mgmt_bdf);
    Symlink(c.mgmt_dir, "bus/pci/drivers/xclmgmt/" + c.mgmt_bdf);
    Symlink("bus/pci/drivers/xclmgmt", c.mgmt_dir + "/driver");
  }
  cards_.push_back(c);
  return c.id;
}

std::vector<std::string> FakeSysfs::Generate(int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) {
    const int group = i / 4;
    const int k = i % 4;
    const int root_bus = 0x10 + group * 12;  // 12 bus numbers per group: fits 16 groups (64 cards)
    if (root_bus + 3 + k > 0xff) throw std::runtime_error("Generate: too many cards for one PCI domain");
    FakeCardSpec spec;
    spec.bus = root_bus + 3 + k;
    spec.switch_path = {Bdf(0, root_bus, 0, 0), Bdf(0, root_bus + 1, 0, 0), Bdf(0, root_bus + 2, k, 0)};
    spec.numa = group % 2;
    spec.cpulist = group % 2 == 0 ? "0-15,32-47" : "16-31,48-63";
    spec.serial = "XFL1" + Hex(static_cast<unsigned>(i), 8);
    spec.render = 128 + i;
    for (int p = 0; p < 2; ++p) {
      spec.qsfp_diag[p] =
          QsfpImage("Amphenol", "NDAQGF-F305", "APF" + Hex(static_cast<unsigned>(i * 2 + p), 8));
    }
    ids.push_back(AddU55C(spec));
  }
  return ids;
}

const FakeSysfs::CardDirs& FakeSysfs::Find(const std::string& id) const {
  for (const auto& c : cards_) {
    if (c.id == id) return c;
  }
  throw std::runtime_error("FakeSysfs: no card " + id);
}

void FakeSysfs::RemoveDeviceDirs(const std::string& id) {
  const CardDirs& c = Find(id);
  fs::remove_all(root_ + "/" + c.user_dir);
  if (!c.mgmt_dir.empty()) fs::remove_all(root_ + "/" + c.mgmt_dir);
}

void FakeSysfs::RemoveCard(const std::string& id) {
  const CardDirs c = Find(id);
  RemoveDeviceDirs(id);
  fs::remove(root_ + "/bus/pci/devices/" + c.user_bdf);
  fs::remove(root_ + "/bus/pci/drivers/xocl/" + c.user_bdf);
  if (!c.mgmt_bdf.empty()) {
    fs::remove(root_ + "/bus/pci/devices/" + c.mgmt_bdf);
    fs::remove(root_ + "/bus/pci/drivers/xclmgmt/" + c.mgmt_bdf);
  }
  std::erase_if(cards_, [&](const CardDirs& d) { return d.id == id; });
}

std::string FakeSysfs::PfDir(const std::string& id, Pf pf) const {
  const CardDirs& c = Find(id);
  if (pf == Pf::kMgmt && c.mgmt_dir.empty()) throw std::runtime_error("card " + id + " has no mgmt PF");
  return root_ + "/" + (pf == Pf::kUser ? c.user_dir : c.mgmt_dir);
}

std::string FakeSysfs::SubdevDir(const std::string& id, Pf pf, std::string_view name) const {
  const std::string prefix = std::string(name) + ".";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(PfDir(id, pf), ec)) {
    const std::string n = e.path().filename().string();
    if (n.compare(0, prefix.size(), prefix) == 0) return e.path().string();
  }
  return {};
}

void FakeSysfs::Write(const std::string& id, Pf pf, const std::string& relative, std::string_view content) {
  WriteAbs(PfDir(id, pf) + "/" + relative, content);
}

void FakeSysfs::WriteSubdev(const std::string& id, Pf pf, std::string_view name, const std::string& file,
                            std::string_view content) {
  const std::string dir = SubdevDir(id, pf, name);
  if (dir.empty()) throw std::runtime_error("card " + id + " has no " + std::string(name) + " sub-device");
  WriteAbs(dir + "/" + file, content);
}

void FakeSysfs::Remove(const std::string& id, Pf pf, const std::string& relative) {
  fs::remove_all(PfDir(id, pf) + "/" + relative);
}

void FakeSysfs::SetReady(const std::string& id, int ready) {
  Write(id, Pf::kUser, "ready", std::to_string(ready) + "\n");
}

void FakeSysfs::SetOffline(const std::string& id, int offline) {
  Write(id, Pf::kUser, "dev_offline", std::to_string(offline) + "\n");
}

void FakeSysfs::SetFpgaTemp(const std::string& id, int celsius) {
  for (Pf pf : {Pf::kUser, Pf::kMgmt}) {
    if (pf == Pf::kMgmt && Find(id).mgmt_dir.empty()) continue;
    if (!SubdevDir(id, pf, "xmc").empty())
      WriteSubdev(id, pf, "xmc", "xmc_fpga_temp", std::to_string(celsius) + "\n");
  }
}

void FakeSysfs::SetFirewall(const std::string& id, uint32_t status, int level) {
  WriteSubdev(id, Pf::kUser, "firewall", "detected_status", "0x" + Hex(status, 1) + "\n");
  WriteSubdev(id, Pf::kUser, "firewall", "detected_level", std::to_string(level) + "\n");
}

void FakeSysfs::SetQsfpDiag(const std::string& id, int port, const std::vector<uint8_t>& image) {
  WriteSubdev(id, Pf::kMgmt, "xmc", "qsfp" + std::to_string(port) + "_diag",
              std::string_view(reinterpret_cast<const char*>(image.data()), image.size()));
}

void FakeSysfs::SetDriverVersion(std::string_view version) {
  WriteAbs(root_ + "/bus/pci/drivers/xocl/module/version", std::string(version) + "\n");
}

std::vector<uint8_t> FakeSysfs::QsfpImage(std::string_view vendor, std::string_view part_number,
                                          std::string_view serial, uint8_t rx_los, uint8_t identifier) {
  std::vector<uint8_t> image(256, 0);
  image[0] = identifier;
  image[1] = 0x07;  // revision compliance: SFF-8636 rev 2.5+
  image[3] = rx_los;
  image[128] = identifier;
  const auto put = [&](size_t offset, std::string_view s) {
    for (size_t i = 0; i < 16; ++i) image[offset + i] = static_cast<uint8_t>(i < s.size() ? s[i] : ' ');
  };
  put(148, vendor);
  put(168, part_number);
  put(196, serial);
  return image;
}

}  // namespace hyperaccel::testing
