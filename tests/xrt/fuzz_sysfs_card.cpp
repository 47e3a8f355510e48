// Fuzzes the sysfs card reader: the input becomes the contents of one card's sysfs files, written
// to a temporary tree, then read back with ReadUserPf. The last field is also decoded directly as
// an SFF-8636 image.
//
// Input: fields separated by 0x1e (record separator), in the order of kFields below; the first
// field's first byte selects which optional parts exist (see kLayout*). The last field takes the
// rest of the input unchanged (binary QSFP diag bytes). The first field lists the optional parts
// that exist as letters: M mgmt PF, R rom, N rom found by its `name` file, X xmc, F firewall,
// D drm; when it is empty, all but N exist.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/xrt/sff8636.h"
#include "hyperaccel/xrt/sysfs_scanner.h"

namespace {

namespace fs = std::filesystem;
using hyperaccel::hw::Health;

constexpr char kSeparator = '\x1e';
constexpr const char* kUserBdf = "0000:3b:00.1";
constexpr const char* kMgmtBdf = "0000:3b:00.0";
constexpr const char* kParent = "devices/pci0000:3a/0000:3a:00.0";

constexpr uint8_t kLayoutMgmt = 1;
constexpr uint8_t kLayoutRom = 2;
constexpr uint8_t kLayoutXmc = 4;
constexpr uint8_t kLayoutFirewall = 8;
constexpr uint8_t kLayoutDrm = 16;
constexpr uint8_t kLayoutRomByName = 32;

uint8_t Layout(std::string_view letters) {
  if (letters.empty()) return kLayoutMgmt | kLayoutRom | kLayoutXmc | kLayoutFirewall | kLayoutDrm;
  uint8_t layout = 0;
  for (char c : letters) {
    switch (c) {
      case 'M': layout |= kLayoutMgmt; break;
      case 'R': layout |= kLayoutRom; break;
      case 'N': layout |= kLayoutRom | kLayoutRomByName; break;
      case 'X': layout |= kLayoutXmc; break;
      case 'F': layout |= kLayoutFirewall; break;
      case 'D': layout |= kLayoutDrm; break;
      default: break;
    }
  }
  return layout;
}

// Where each field goes: "U:" user PF, "M:" mgmt PF; "rom/", "xmc/", "fw/" sub-devices.
constexpr const char* kFields[] = {
    "layout",
    "U:vendor",
    "U:device",
    "U:ready",
    "U:dev_offline",
    "U:numa_node",
    "U:local_cpulist",
    "U:xclbinuuid",
    "U:rom/VBNV",
    "U:xmc/serial_num",
    "U:xmc/xmc_fpga_temp",
    "U:xmc/xmc_hbm_temp",
    "U:xmc/xmc_power",
    "U:fw/detected_status",
    "U:fw/detected_level",
    "M:instance",
    "M:ready",
    "M:xmc/serial_num",
    "drm",
    "M:xmc/qsfp0_diag",
};
constexpr size_t kFieldCount = sizeof(kFields) / sizeof(kFields[0]);

// The temporary tree, removed at exit (never destroyed itself, so the exit handler can use it).
const std::string& Root() {
  static const std::string* root = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/fuzz-sysfs-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) std::abort();
    auto* dir = new std::string(templ);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(Root(), ec);
    });
    return dir;
  }();
  return *root;
}

void Write(const std::string& path, std::string_view content) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(content.data(), static_cast<std::streamsize>(content.size()));
}

bool SafeName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'))
      return false;
  }
  return s != "." && s != "..";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (fields.size() + 1 < kFieldCount && pos <= input.size()) {
    const size_t end = input.find(kSeparator, pos);
    if (end == std::string_view::npos) break;
    fields.push_back(input.substr(pos, end - pos));
    pos = end + 1;
  }
  if (pos <= input.size()) fields.push_back(input.substr(pos));

  // The last field is an SFF-8636 image on its own too.
  if (fields.size() == kFieldCount) {
    const std::string_view diag = fields.back();
    (void)hyperaccel::hw::ParseSff8636(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(diag.data()), diag.size()));
  }

  const std::string& root = Root();
  std::error_code ec;
  fs::remove_all(root, ec);
  const std::string user = root + "/" + kParent + "/" + kUserBdf;
  const std::string mgmt = root + "/" + kParent + "/" + kMgmtBdf;
  const uint8_t layout = Layout(fields.empty() ? std::string_view() : fields[0]);
  fs::create_directories(user, ec);
  fs::create_directories(root + "/bus/pci/drivers/xocl", ec);
  fs::create_directories(root + "/bus/pci/drivers/xclmgmt", ec);
  fs::create_directories(root + "/bus/pci/devices", ec);
  fs::create_directory_symlink(std::string("../../../") + kParent + "/" + kUserBdf,
                               root + "/bus/pci/devices/" + kUserBdf, ec);
  fs::create_directory_symlink(std::string("../../../../") + kParent + "/" + kUserBdf,
                               root + "/bus/pci/drivers/xocl/" + kUserBdf, ec);
  if (layout & kLayoutMgmt) {
    fs::create_directories(mgmt, ec);
    fs::create_directory_symlink(std::string("../../../../") + kParent + "/" + kMgmtBdf,
                                 root + "/bus/pci/drivers/xclmgmt/" + kMgmtBdf, ec);
  }

  for (size_t i = 1; i < fields.size(); ++i) {
    std::string_view target = kFields[i];
    if (target == "drm") {
      if ((layout & kLayoutDrm) && SafeName(fields[i]))
        fs::create_directories(user + "/drm/" + std::string(fields[i]), ec);
      continue;
    }
    const bool is_mgmt = target.substr(0, 2) == "M:";
    if (is_mgmt && !(layout & kLayoutMgmt)) continue;
    target.remove_prefix(2);
    std::string dir = is_mgmt ? mgmt : user;
    const char side = is_mgmt ? 'm' : 'u';
    if (target.substr(0, 4) == "rom/") {
      if (!(layout & kLayoutRom)) continue;
      dir += (layout & kLayoutRomByName) ? std::string("/subdev9") : std::string("/rom.") + side + ".7";
      if (layout & kLayoutRomByName) Write(dir + "/name", "rom\n");
      target.remove_prefix(4);
    } else if (target.substr(0, 4) == "xmc/") {
      if (!(layout & kLayoutXmc)) continue;
      dir += std::string("/xmc.") + side + ".12";
      target.remove_prefix(4);
    } else if (target.substr(0, 3) == "fw/") {
      if (!(layout & kLayoutFirewall)) continue;
      dir += std::string("/firewall.") + side + ".3";
      target.remove_prefix(3);
    }
    Write(dir + "/" + std::string(target), fields[i]);
  }

  std::vector<std::string> warnings;
  const auto card = hyperaccel::hw::ReadUserPf(root, kUserBdf, &warnings);
  if (card.ok()) {
    if (card->id != kUserBdf) __builtin_trap();
    if ((card->health == Health::kHealthy) != card->health_reason.empty()) __builtin_trap();
    if (card->product.empty()) __builtin_trap();
  }
  return 0;
}
