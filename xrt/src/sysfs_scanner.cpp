#include "hyperaccel/xrt/sysfs_scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <utility>

#include "hyperaccel/common/status.h"
#include "hyperaccel/xrt/sff8636.h"

namespace hyperaccel::hw {
namespace {

constexpr size_t kMaxTextFile = size_t{16} * 1024;
constexpr size_t kMaxDiagFile = 4096;  // qsfpN_diag: lower page + upper pages, 640 bytes in practice

// PCI vendors whose functions xocl/xclmgmt bind (Xilinx/AMD and board partners).
constexpr uint16_t kAlveoVendors[] = {0x10ee, 0x13fe, 0x1d0f, 0x3475};
constexpr uint16_t kXilinxVendor = 0x10ee;

struct DeviceIdEntry {
  uint16_t mgmt;
  uint16_t user;
  const char* product;
  int cages;
};

// shared/reference/xrt.md §3.1 (XRT 2.13 xocl/xclmgmt id tables; V70 from later XRT).
constexpr DeviceIdEntry kXilinxDevices[] = {
    {0x5020, 0x5021, "ALVEO-U50", 1},  {0x505c, 0x505d, "ALVEO-U55C", 2}, {0x5058, 0x5059, "ALVEO-U55N", 0},
    {0x5000, 0x5001, "ALVEO-U200", 2}, {0x5004, 0x5005, "ALVEO-U250", 2}, {0x500c, 0x500d, "ALVEO-U280", 2},
    {0x5008, 0x5009, "ALVEO-U280", 2}, {0x5048, 0x5049, "VCK5000", 2},    {0x5044, 0x5045, "VCK5000", 2},
    {0x5094, 0x5095, "ALVEO-V70", 0},  {0x50b0, 0x50b1, "ALVEO-V70", 0},
};

const DeviceIdEntry* FindDevice(uint16_t vendor_id, uint16_t device_id) {
  if (vendor_id != kXilinxVendor) return nullptr;
  for (const auto& e : kXilinxDevices) {
    if (e.mgmt == device_id || e.user == device_id) return &e;
  }
  return nullptr;
}

bool IsAlveoVendor(uint16_t vendor_id) {
  return std::find(std::begin(kAlveoVendors), std::end(kAlveoVendors), vendor_id) != std::end(kAlveoVendors);
}

std::string_view Trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\0'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Text shown in messages: printable, bounded.
std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 40)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > 40) out += "...";
  return out + "\"";
}

// Integer in decimal, or hexadecimal with a 0x prefix, surrounded by whitespace only.
// True for an optional '-' then decimal digits, or 0x then hex digits (whatever its size).
bool LooksNumeric(std::string_view text) {
  std::string_view s = Trim(text);
  if (!s.empty() && s.front() == '-') s.remove_prefix(1);
  bool hex = false;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    hex = true;
    s.remove_prefix(2);
  }
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [hex](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0 ||
           (hex && std::isxdigit(static_cast<unsigned char>(c)) != 0);
  });
}

std::optional<int64_t> ParseInt(std::string_view text) {
  std::string_view s = Trim(text);
  bool negative = false;
  if (!s.empty() && s.front() == '-') {
    negative = true;
    s.remove_prefix(1);
  }
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  }
  if (s.empty()) return std::nullopt;
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return negative ? -v : v;
}

// A hexadecimal PCI id ("0x10ee" or "10ee").
std::optional<uint16_t> ParsePciId(std::string_view text) {
  std::string_view s = Trim(text);
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  if (s.empty() || s.size() > 4) return std::nullopt;
  uint16_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// "0000:3b:00.1" (domain of 4..8 hex digits), returned lower case; nullopt when malformed.
std::optional<std::string> NormalizeBdf(std::string_view s) {
  const size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon < 4 || colon > 8) return std::nullopt;
  const std::string_view rest = s.substr(colon);
  if (rest.size() != 8 || rest[0] != ':' || rest[3] != ':' || rest[6] != '.') return std::nullopt;
  for (size_t i = 0; i < colon; ++i) {
    if (!IsHex(s[i])) return std::nullopt;
  }
  if (!IsHex(rest[1]) || !IsHex(rest[2]) || !IsHex(rest[4]) || !IsHex(rest[5])) return std::nullopt;
  if (rest[7] < '0' || rest[7] > '7') return std::nullopt;
  return Lower(s);
}

// "0000:3b:00" of "0000:3b:00.1": both PFs of a card share it.
std::string SlotKey(const std::string& bdf) { return bdf.substr(0, bdf.rfind('.')); }

// Reads at most `max` bytes of a file. Returns 0 or an errno value.
int ReadFile(const std::string& path, size_t max, std::string* out) {
  out->clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return errno;
  char buf[4096];
  int err = 0;
  while (out->size() < max) {
    const size_t want = std::min(sizeof(buf), max - out->size());
    const ssize_t n = ::read(fd, buf, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    out->append(buf, static_cast<size_t>(n));
    // A short read is the end: sysfs returns a whole attribute in one read, regular files short
    // only at the end. Saves a syscall per file.
    if (static_cast<size_t>(n) < want) break;
  }
  ::close(fd);
  return err;
}

bool IsDir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

struct DirEntry {
  std::string name;
  bool is_dir = false;  // after following a symlink
};

// Entries of a directory, sorted by name; empty when it cannot be read.
std::vector<DirEntry> ListDir(const std::string& dir) {
  std::vector<DirEntry> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  // NOLINTNEXTLINE(concurrency-mt-unsafe): readdir is only unsafe on a stream shared between threads
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    DirEntry entry{std::string(name), e->d_type == DT_DIR};
    if (e->d_type == DT_LNK || e->d_type == DT_UNKNOWN) entry.is_dir = IsDir(dir + "/" + entry.name);
    out.push_back(std::move(entry));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  return out;
}

// One PCI function of a card.
struct Function {
  std::string bdf;
  std::string dir;  // where its attributes are read from
  std::vector<DirEntry> entries;
};

// Finds the directory of a function bound to `driver`: the driver's entry (a symlink to the device
// directory, or a plain directory), else bus/pci/devices/<bdf>. nullopt when neither exists
// (dangling symlink, device removed).
std::optional<Function> ResolveFunction(const std::string& root, const char* driver, const std::string& bdf) {
  std::string by_driver = root + "/bus/pci/drivers/" + driver + "/" + bdf;
  if (IsDir(by_driver)) return Function{bdf, std::move(by_driver), {}};
  std::string by_bdf = root + "/bus/pci/devices/" + bdf;
  if (IsDir(by_bdf)) return Function{bdf, std::move(by_bdf), {}};
  return std::nullopt;
}

// PCIe path from the root complex ("pciDDDD:BB") down to, excluding, the endpoint.
std::vector<std::string> PciePath(const std::string& root, const Function& f) {
  std::error_code ec;
  std::filesystem::path real = std::filesystem::canonical(root + "/bus/pci/devices/" + f.bdf, ec);
  if (ec) real = std::filesystem::canonical(f.dir, ec);
  if (ec) return {};
  std::vector<std::string> parts;
  for (const auto& p : real) parts.push_back(p.string());
  const auto is_root_complex = [](const std::string& s) {
    // "pci0000:3a" (domains may have more digits: "pci10000:00")
    if (s.size() < 10 || s.compare(0, 3, "pci") != 0) return false;
    const size_t colon = s.find(':');
    if (colon == std::string::npos || colon < 7 || s.size() - colon != 3) return false;
    for (size_t i = 3; i < s.size(); ++i) {
      if (i != colon && !IsHex(s[i])) return false;
    }
    return true;
  };
  const auto it = std::find_if(parts.begin(), parts.end(), is_root_complex);
  if (it == parts.end() || parts.back() != f.bdf) return {};
  return {it, parts.end() - 1};
}

std::string JoinProblems(const std::vector<std::string>& problems) {
  std::string out;
  for (const auto& p : problems) {
    if (!out.empty()) out += "; ";
    out += p;
  }
  return out;
}

// Reads one card from its user PF and/or mgmt PF.
class CardReader {
 public:
  CardReader(std::string root, std::vector<std::string>* warnings)
      : root_(std::move(root)), warnings_(warnings) {}

  // NotFound when the card's functions are gone; FailedPrecondition for a foreign vendor.
  Result<Card> Read(std::optional<Function> user, std::optional<Function> mgmt, const std::string& id);

 private:
  // `path` without the sysfs root, for messages.
  std::string Relative(const std::string& path) const {
    return path.compare(0, root_.size(), root_) == 0 ? path.substr(root_.size()) : path;
  }

  void Warn(const std::string& msg) {
    if (warnings_ != nullptr) warnings_->push_back("card " + card_.id + ": " + msg);
  }

  // The directory of sub-device `name` of `f` ("rom" -> "<dir>/rom.u.12"), or empty.
  std::string Subdev(const Function& f, std::string_view name) const;

  // Trimmed text of `<dir>/<file>`; nullopt when the file is missing or unreadable (which is
  // warned about unless `missing_ok`).
  std::optional<std::string> Text(const std::string& dir, std::string_view file, bool missing_ok = true);

  std::optional<int64_t> Int(const std::string& dir, std::string_view file);
  // A sensor file of the xmc as a number times `scale`. `health_name` ("fpga temperature") marks
  // a reading the health tracker judges: an overflowed value is then recorded as a bad reading.
  std::optional<double> Sensor(std::string_view file, double scale, const char* health_name = nullptr);

  void ReadIdentity(const Function& primary);
  void ReadHealth();
  void ReadSensors();
  void ReadPorts();

  std::string root_;
  std::vector<std::string>* warnings_;
  Card card_;
  std::vector<std::string> problems_;
  std::optional<Function> user_;
  std::optional<Function> mgmt_;
  std::vector<std::string> xmc_dirs_;  // user xmc first, then mgmt xmc
};

std::string CardReader::Subdev(const Function& f, std::string_view name) const {
  const std::string prefix = std::string(name) + ".";
  for (const auto& e : f.entries) {
    if (e.is_dir && e.name.compare(0, prefix.size(), prefix) == 0) return f.dir + "/" + e.name;
  }
  std::string content;
  for (const auto& e : f.entries) {
    if (!e.is_dir) continue;
    if (ReadFile(f.dir + "/" + e.name + "/name", kMaxTextFile, &content) == 0 && Trim(content) == name) {
      return f.dir + "/" + e.name;
    }
  }
  return {};
}

std::optional<std::string> CardReader::Text(const std::string& dir, std::string_view file, bool missing_ok) {
  if (dir.empty()) return std::nullopt;
  std::string content;
  const std::string path = dir + "/" + std::string(file);
  const int err = ReadFile(path, kMaxTextFile, &content);
  if (err != 0) {
    if (err != ENOENT || !missing_ok) Warn(Relative(path) + ": " + ErrnoMessage(err));
    return std::nullopt;
  }
  return std::string(Trim(content));
}

std::optional<int64_t> CardReader::Int(const std::string& dir, std::string_view file) {
  const auto text = Text(dir, file);
  if (!text) return std::nullopt;
  const auto v = ParseInt(*text);
  if (!v) Warn(std::string(file) + ": not a number: " + Quote(*text));
  return v;
}

std::optional<double> CardReader::Sensor(std::string_view file, double scale, const char* health_name) {
  for (const auto& dir : xmc_dirs_) {
    const auto text = Text(dir, file);
    if (!text) continue;
    const auto v = ParseInt(*text);
    if (!v) {
      Warn(std::string(file) + ": not a number: " + Quote(*text));
      // Digits that do not fit are a reading gone wrong (an overflowed register), not a missing
      // sensor ("N/A"): the health tracker must not take the card for cool.
      if (health_name != nullptr && LooksNumeric(*text)) {
        card_.sensors.bad_readings.push_back(std::string(health_name) +
                                             " reading out of range: " + Quote(*text));
      }
      return std::nullopt;
    }
    return static_cast<double>(*v) * scale;
  }
  return std::nullopt;
}

void CardReader::ReadIdentity(const Function& primary) {
  if (const auto text = Text(primary.dir, "vendor", false)) {
    if (const auto v = ParsePciId(*text)) {
      card_.vendor_id = *v;
    } else {
      Warn("vendor: not a PCI id: " + Quote(*text));
    }
  }
  if (const auto text = Text(primary.dir, "device", false)) {
    if (const auto v = ParsePciId(*text)) {
      card_.device_id = *v;
    } else {
      Warn("device: not a PCI id: " + Quote(*text));
    }
  }
  card_.product = std::string(ProductName(card_.vendor_id, card_.device_id));

  if (const auto numa = Int(primary.dir, "numa_node")) {
    if (*numa >= 0 && *numa < 4096) {
      card_.numa_node = static_cast<int>(*numa);
    } else if (*numa != -1) {
      Warn("numa_node: out of range: " + std::to_string(*numa));
    }
  }
  if (auto cpus = Text(primary.dir, "local_cpulist")) {
    const bool valid = std::all_of(cpus->begin(), cpus->end(),
                                   [](char c) { return (c >= '0' && c <= '9') || c == ',' || c == '-'; });
    if (valid) {
      card_.local_cpulist = std::move(*cpus);
    } else {
      Warn("local_cpulist: not a CPU list: " + Quote(*cpus));
    }
  }
  card_.pcie_path = PciePath(root_, primary);
  if (card_.pcie_path.empty())
    Warn("PCIe path unknown (bus/pci/devices/" + primary.bdf + " does not resolve)");

  // Shell: the user PF's rom, else the mgmt PF's.
  for (const auto* f : {user_ ? &*user_ : nullptr, mgmt_ ? &*mgmt_ : nullptr}) {
    if (f == nullptr || !card_.shell.empty()) continue;
    if (auto vbnv = Text(Subdev(*f, "rom"), "VBNV")) card_.shell = std::move(*vbnv);
  }
  if (card_.shell.empty()) problems_.push_back("rom.*/VBNV missing (shell not flashed?)");

  for (const auto& dir : xmc_dirs_) {
    auto serial = Text(dir, "serial_num");
    if (serial && !serial->empty()) {
      card_.serial = std::move(*serial);
      break;
    }
  }
  if (card_.serial.empty()) Warn("xmc.*/serial_num missing (card management controller not reachable?)");

  if (user_) {
    for (const auto& e : ListDir(user_->dir + "/drm")) {
      if (e.name.compare(0, 7, "renderD") != 0) continue;
      const auto n = ParseInt(std::string_view(e.name).substr(7));
      if (n && *n >= 0) {
        card_.render_node = "/dev/dri/renderD" + std::to_string(*n);
        break;
      }
    }
    if (card_.render_node.empty())
      problems_.push_back("no drm/renderD* render node (xocl DRM device missing)");

    if (auto uuid = Text(user_->dir, "xclbinuuid")) {
      const std::string lower = Lower(*uuid);
      const size_t hex = static_cast<size_t>(std::count_if(lower.begin(), lower.end(), IsHex));
      const bool valid =
          hex == 32 && std::all_of(lower.begin(), lower.end(), [](char c) { return IsHex(c) || c == '-'; });
      if (!valid && !lower.empty()) {
        Warn("xclbinuuid: not a UUID: " + Quote(*uuid));
      } else if (lower.find_first_not_of("0-") != std::string::npos) {
        card_.xclbin_uuid = lower;
      }
    }
  }
  if (mgmt_) {
    card_.mgmt_id = mgmt_->bdf;
    if (const auto instance = Int(mgmt_->dir, "instance")) {
      if (*instance >= 0 && *instance <= UINT32_MAX) {
        card_.mgmt_instance = static_cast<uint32_t>(*instance);
        card_.mgmt_node = "/dev/xclmgmt" + std::to_string(*instance);
      } else {
        Warn("instance: out of range: " + std::to_string(*instance));
      }
    }
  }
}

void CardReader::ReadHealth() {
  if (!user_) {
    problems_.push_back("user PF " + card_.id +
                        " not bound to xocl (xocl not loaded, or the function is passed through to a VM)");
  }
  for (const auto* f : {user_ ? &*user_ : nullptr, mgmt_ ? &*mgmt_ : nullptr}) {
    if (f == nullptr) continue;
    const bool is_user = user_ && f == &*user_;
    const std::string who = is_user ? std::string() : "mgmt PF " + f->bdf + " ";
    if (const auto text = Text(f->dir, "ready")) {
      const auto ready = ParseInt(*text);
      if (!ready) {
        problems_.push_back(who + "ready unreadable: " + Quote(*text));
      } else if (*ready == 0) {
        problems_.push_back(who + "not ready");
      }
    } else if (is_user) {
      problems_.push_back("ready missing (driver still probing?)");
    }
    if (const auto text = Text(f->dir, "dev_offline")) {
      const auto offline = ParseInt(*text);
      if (!offline) {
        problems_.push_back(who + "dev_offline unreadable: " + Quote(*text));
      } else if (*offline != 0) {
        problems_.push_back(who + "offline (dev_offline=" + std::to_string(*offline) +
                            "; reset in progress or failed)");
      }
    }
    const std::string firewall = Subdev(*f, "firewall");
    if (firewall.empty()) continue;
    if (const auto status = Int(firewall, "detected_status"); status && *status != 0) {
      const auto level = Int(firewall, "detected_level");
      char hex[24];
      std::snprintf(hex, sizeof(hex), "0x%llx", static_cast<unsigned long long>(*status));
      problems_.push_back("AXI firewall tripped (level " + (level ? std::to_string(*level) : "?") +
                          ", status " + hex + "; reset the card)");
    }
  }
}

void CardReader::ReadSensors() {
  auto& s = card_.sensors;
  s.fpga_temp_c = Sensor("xmc_fpga_temp", 1.0, "fpga temperature");
  s.hbm_temp_c = Sensor("xmc_hbm_temp", 1.0, "hbm temperature");
  for (int i = 0; i < 3; ++i) {
    const auto t = Sensor("xmc_se98_temp" + std::to_string(i), 1.0);
    if (t && (!s.board_temp_c || *t > *s.board_temp_c)) s.board_temp_c = t;
  }
  const int cages = QsfpCageCount(card_.vendor_id, card_.device_id);
  for (int i = 0; i < cages; ++i) {
    auto t = Sensor("xmc_cage_temp" + std::to_string(i), 1.0);
    if (t && *t == 0) t.reset();  // 0 = no module in the cage
    s.cage_temp_c.push_back(t);
  }
  s.power_w = Sensor("xmc_power", 1e-6);
  s.vccint_v = Sensor("xmc_vccint_vol", 1e-3);
}

void CardReader::ReadPorts() {
  const int cages = QsfpCageCount(card_.vendor_id, card_.device_id);
  // The diag files are readable on the mgmt PF only; the user PF's copy is tried for completeness.
  std::vector<std::string> dirs(xmc_dirs_.rbegin(), xmc_dirs_.rend());
  for (int i = 0; i < cages; ++i) {
    Port port;
    port.index = i;
    const std::string file = "qsfp" + std::to_string(i) + "_diag";
    for (const auto& dir : dirs) {
      std::string image, path = dir;
      path.append("/").append(file);
      if (ReadFile(path, kMaxDiagFile, &image) != 0 || image.empty()) continue;
      const auto module = ParseSff8636(
          std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(image.data()), image.size()));
      if (!module.ok()) {
        Warn(file + ": " + module.status().message());
        break;
      }
      port.module_info_read = true;
      port.module_present = module->present;
      port.loss_of_signal = module->loss_of_signal;
      port.vendor = module->vendor;
      port.part_number = module->part_number;
      port.cable_serial = module->serial;
      break;
    }
    card_.ports.push_back(std::move(port));
  }
}

Result<Card> CardReader::Read(std::optional<Function> user, std::optional<Function> mgmt,
                              const std::string& id) {
  card_ = Card{};
  card_.id = id;
  problems_.clear();
  user_ = std::move(user);
  mgmt_ = std::move(mgmt);
  if (!user_ && !mgmt_) return NotFound("card " + id + ": no PCI function found (removed?)");
  if (user_) user_->entries = ListDir(user_->dir);
  if (mgmt_) mgmt_->entries = ListDir(mgmt_->dir);
  const Function& primary = user_ ? *user_ : *mgmt_;
  if (primary.entries.empty() && !IsDir(primary.dir)) {
    return NotFound("card " + id + ": " + primary.bdf + " vanished during the scan");
  }
  xmc_dirs_.clear();
  for (const auto* f : {user_ ? &*user_ : nullptr, mgmt_ ? &*mgmt_ : nullptr}) {
    if (f == nullptr) continue;
    if (std::string xmc = Subdev(*f, "xmc"); !xmc.empty()) xmc_dirs_.push_back(std::move(xmc));
  }

  ReadIdentity(primary);
  if (card_.vendor_id != 0 && !IsAlveoVendor(card_.vendor_id)) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%04x", static_cast<unsigned>(card_.vendor_id));
    return FailedPrecondition("card " + id + ": vendor " + hex + " is not an Alveo vendor; skipped");
  }
  ReadHealth();
  ReadSensors();
  ReadPorts();
  if (!IsDir(primary.dir)) return NotFound("card " + id + ": " + primary.bdf + " vanished during the scan");

  card_.health = problems_.empty() ? Health::kHealthy : Health::kUnhealthy;
  card_.health_reason = JoinProblems(problems_);
  return std::move(card_);
}

// Functions bound to a driver: BDF-named entries of bus/pci/drivers/<driver>, lower case.
std::vector<std::string> BoundFunctions(const std::string& root, const char* driver, bool* driver_present) {
  const std::string dir = root + "/bus/pci/drivers/" + driver;
  *driver_present = IsDir(dir);
  std::vector<std::string> out;
  for (const auto& e : ListDir(dir)) {
    if (auto bdf = NormalizeBdf(e.name)) out.push_back(std::move(*bdf));
  }
  return out;
}

std::string DriverVersion(const std::string& root) {
  std::string content;
  if (ReadFile(root + "/bus/pci/drivers/xocl/module/version", kMaxTextFile, &content) != 0) return {};
  return std::string(Trim(content));
}

std::string UserIdForMgmt(const std::string& mgmt_bdf) { return SlotKey(mgmt_bdf) + ".1"; }

}  // namespace

std::string_view ProductName(uint16_t vendor_id, uint16_t device_id) {
  const DeviceIdEntry* e = FindDevice(vendor_id, device_id);
  return e != nullptr ? e->product : "UNKNOWN";
}

int QsfpCageCount(uint16_t vendor_id, uint16_t device_id) {
  const DeviceIdEntry* e = FindDevice(vendor_id, device_id);
  return e != nullptr ? e->cages : 0;
}

SysfsScan ScanSysfs(const std::string& root) {
  SysfsScan scan;
  bool has_xocl = false;
  bool has_xclmgmt = false;
  const auto users = BoundFunctions(root, "xocl", &has_xocl);
  const auto mgmts = BoundFunctions(root, "xclmgmt", &has_xclmgmt);
  if (!has_xocl && !has_xclmgmt) {
    scan.warnings.push_back("no xocl or xclmgmt driver under " + root +
                            "/bus/pci/drivers (XRT drivers not loaded?)");
    return scan;
  }

  struct Slot {
    std::string user;
    std::string mgmt;
  };
  std::map<std::string, Slot> slots;
  for (const auto& bdf : users) {
    Slot& s = slots[SlotKey(bdf)];
    if (s.user.empty()) {
      s.user = bdf;
    } else {
      scan.warnings.push_back("card " + s.user + ": second user PF " + bdf + " on the same slot ignored");
    }
  }
  for (const auto& bdf : mgmts) {
    Slot& s = slots[SlotKey(bdf)];
    if (s.mgmt.empty()) s.mgmt = bdf;
  }

  const std::string driver_version = DriverVersion(root);
  CardReader reader(root, &scan.warnings);
  for (const auto& [key, slot] : slots) {
    std::optional<Function> user;
    std::optional<Function> mgmt;
    if (!slot.user.empty()) user = ResolveFunction(root, "xocl", slot.user);
    if (!slot.mgmt.empty()) mgmt = ResolveFunction(root, "xclmgmt", slot.mgmt);
    const std::string id = slot.user.empty() ? UserIdForMgmt(slot.mgmt) : slot.user;
    if (!slot.user.empty() && !user) {
      // The user PF is listed but its device directory is gone: the card is being reset or
      // removed. Report nothing for it (the health tracker keeps it for its grace period).
      scan.warnings.push_back("card " + id + ": bus/pci/drivers/xocl/" + slot.user +
                              " does not resolve (device removed or resetting)");
      continue;
    }
    auto card = reader.Read(std::move(user), std::move(mgmt), id);
    if (!card.ok()) {
      scan.warnings.push_back(card.status().message());
      continue;
    }
    card->driver_version = driver_version;
    scan.cards.push_back(std::move(card).value());
  }
  std::sort(scan.cards.begin(), scan.cards.end(), [](const Card& a, const Card& b) { return a.id < b.id; });
  return scan;
}

Result<Card> ReadUserPf(const std::string& root, const std::string& bdf, std::vector<std::string>* warnings) {
  const auto id = NormalizeBdf(bdf);
  if (!id) return InvalidArgument("not a PCI address (want 0000:3b:00.1): " + Quote(bdf));
  auto user = ResolveFunction(root, "xocl", *id);
  if (!user) return NotFound("card " + *id + ": no such PCI function under " + root);
  std::optional<Function> mgmt;
  bool has_xclmgmt = false;
  for (const auto& m : BoundFunctions(root, "xclmgmt", &has_xclmgmt)) {
    if (SlotKey(m) == SlotKey(*id)) {
      mgmt = ResolveFunction(root, "xclmgmt", m);
      break;
    }
  }
  CardReader reader(root, warnings);
  auto card = reader.Read(std::move(user), std::move(mgmt), *id);
  if (card.ok()) card->driver_version = DriverVersion(root);
  return card;
}

}  // namespace hyperaccel::hw
