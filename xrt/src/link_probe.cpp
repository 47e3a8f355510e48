#include "hyperaccel/xrt/link_probe.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <exception>
#include <set>
#include <sstream>
#include <system_error>

#include "yaml_input.h"

namespace hyperaccel::hw {
namespace {

using yaml_input::Describe;

constexpr size_t kMaxMapBytes = 4u << 20;
constexpr int kMaxMapDepth = 32;
constexpr uint64_t kMaxPort = 15;
constexpr uint64_t kMaxOffset = (uint64_t{1} << 48) - 1;

std::string Hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, value);
  return buf;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsUuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

class RegisterMapReader : public yaml_input::Reader {
 public:
  using Reader::Reader;

  Status Read(const YAML::Node& root, RegisterMap* out) const {
    if (!root.IsMap()) return Error(root, "expected a mapping with the keys 'version' and 'xclbins'");
    YAML::Node version;
    YAML::Node xclbins;
    bool has_version = false;
    bool has_xclbins = false;
    Status s = ForEachKey(root, [&](const std::string& key, const YAML::Node& value) -> Status {
      if (key == "version") {
        version = value;
        has_version = true;
      } else if (key == "xclbins") {
        xclbins = value;
        has_xclbins = true;
      } else {
        return Error(value, "unknown key '" + key + "' (expected 'version' and 'xclbins')");
      }
      return Status::Ok();
    });
    if (!s.ok()) return s;
    if (!has_version) return Error(root, "missing 'version'");
    if (!version.IsScalar() || version.Tag() != "?" || version.Scalar() != "1") {
      return Error(version, "unknown version " + Describe(version) + " (this reader knows version 1)");
    }
    if (!has_xclbins) return Error(root, "missing 'xclbins'");
    if (xclbins.IsNull()) return Status::Ok();
    if (!xclbins.IsSequence())
      return Error(xclbins, "'xclbins' must be a sequence, got " + Describe(xclbins));
    for (const YAML::Node& entry : xclbins) {
      XclbinRegisters regs;
      s = ReadXclbin(entry, &regs);
      if (!s.ok()) return s;
      if (out->Find(regs.uuid) != nullptr) return Error(entry, "xclbin " + regs.uuid + " is listed twice");
      out->Add(std::move(regs));
    }
    return Status::Ok();
  }

 private:
  Status ReadOffset(const YAML::Node& value, std::string_view field, uint64_t* out) const {
    Status s = ReadUint(value, field, kMaxOffset, true, out);
    if (s.ok() && *out % 4 != 0)
      return Error(value, std::string(field) + " " + Hex(*out) + " is not 4-byte aligned");
    return s;
  }

  Status ReadStatus(const YAML::Node& value, StatusRegister* out) const {
    if (!value.IsMap())
      return Error(value, "'status' must be a mapping {offset, mask, up}, got " + Describe(value));
    bool has_offset = false;
    bool has_up = false;
    uint64_t number = 0;
    Status s = ForEachKey(value, [&](const std::string& key, const YAML::Node& field) -> Status {
      if (key == "offset") {
        has_offset = true;
        return ReadOffset(field, "offset", &out->offset);
      }
      if (key == "mask" || key == "up") {
        Status rs = ReadUint(field, key, 0xffffffffu, true, &number);
        (key == "mask" ? out->mask : out->up) = static_cast<uint32_t>(number);
        has_up = has_up || key == "up";
        return rs;
      }
      return Error(field, "unknown key '" + key + "' in status (expected offset, mask, up)");
    });
    if (!s.ok()) return s;
    if (!has_offset) return Error(value, "status is missing 'offset'");
    if (!has_up) return Error(value, "status is missing 'up'");
    if ((out->up & ~out->mask) != 0) {
      return Error(value, "status 'up' " + Hex(out->up) + " has bits outside 'mask' " + Hex(out->mask) +
                              " (it could never match)");
    }
    return Status::Ok();
  }

  Status ReadPort(const YAML::Node& entry, PortRegisters* out) const {
    if (!entry.IsMap())
      return Error(entry, "a port must be a mapping {port, status, ...}, got " + Describe(entry));
    bool has_port = false;
    bool has_status = false;
    Status s = ForEachKey(entry, [&](const std::string& key, const YAML::Node& value) -> Status {
      uint64_t number = 0;
      if (key == "port") {
        has_port = true;
        Status ps = ReadUint(value, "port", kMaxPort, false, &number);
        out->port = static_cast<int>(number);
        return ps;
      }
      if (key == "status") {
        has_status = true;
        return ReadStatus(value, &out->status);
      }
      if (key == "peer_serial_hash" || key == "peer_port") {
        Status ps = ReadOffset(value, key, &number);
        (key == "peer_port" ? out->peer_port_offset : out->peer_serial_hash_offset) = number;
        return ps;
      }
      return Error(value,
                   "unknown key '" + key + "' in port (expected port, status, peer_serial_hash, peer_port)");
    });
    if (!s.ok()) return s;
    if (!has_port) return Error(entry, "port entry is missing 'port'");
    if (!has_status) return Error(entry, "port entry is missing 'status'");
    return Status::Ok();
  }

  Status ReadXclbin(const YAML::Node& entry, XclbinRegisters* out) const {
    if (!entry.IsMap())
      return Error(entry, "an xclbin must be a mapping {uuid, ports}, got " + Describe(entry));
    bool has_uuid = false;
    bool has_ports = false;
    std::set<int> ports;
    Status s = ForEachKey(entry, [&](const std::string& key, const YAML::Node& value) -> Status {
      if (key == "uuid") {
        has_uuid = true;
        if (!value.IsScalar() || !IsUuid(value.Scalar())) {
          return Error(value,
                       "'uuid' must look like 01234567-89ab-cdef-0123-456789abcdef, got " + Describe(value));
        }
        out->uuid = Lower(value.Scalar());
        return Status::Ok();
      }
      if (key == "description") {
        if (!value.IsScalar()) return Error(value, "'description' must be a string, got " + Describe(value));
        out->description = value.Scalar();
        return Status::Ok();
      }
      if (key == "ports") {
        has_ports = true;
        if (!value.IsSequence()) return Error(value, "'ports' must be a sequence, got " + Describe(value));
        for (const YAML::Node& port_entry : value) {
          PortRegisters regs;
          Status ps = ReadPort(port_entry, &regs);
          if (!ps.ok()) return ps;
          if (!ports.insert(regs.port).second) {
            return Error(port_entry, "port " + std::to_string(regs.port) + " is listed twice");
          }
          out->ports.push_back(regs);
        }
        return Status::Ok();
      }
      return Error(value, "unknown key '" + key + "' in xclbin (expected uuid, description, ports)");
    });
    if (!s.ok()) return s;
    if (!has_uuid) return Error(entry, "xclbin entry is missing 'uuid'");
    if (!has_ports) return Error(entry, "xclbin entry is missing 'ports'");
    std::sort(out->ports.begin(), out->ports.end(),
              [](const PortRegisters& x, const PortRegisters& y) { return x.port < y.port; });
    return Status::Ok();
  }
};

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

// A whole-string unsigned number in `base` (hex may carry "0x"), ignoring surrounding blanks.
std::optional<uint64_t> ParseNumber(std::string_view text, int base) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\t'))
    text.remove_suffix(1);
  if (base == 16 && text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
    text.remove_prefix(2);
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value, base);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

PortObservation Unknown(const Card& card, int port, std::string detail) {
  PortObservation obs;
  obs.serial = card.serial;
  obs.port = port;
  obs.state = LinkState::kUnknown;
  obs.detail = std::move(detail);
  return obs;
}

}  // namespace

const XclbinRegisters* RegisterMap::Find(std::string_view uuid) const {
  auto it = by_uuid_.find(Lower(uuid));
  return it == by_uuid_.end() ? nullptr : &it->second;
}

void RegisterMap::Add(XclbinRegisters entry) {
  entry.uuid = Lower(entry.uuid);
  std::string key = entry.uuid;
  by_uuid_.insert_or_assign(std::move(key), std::move(entry));
}

Result<RegisterMap> ParseRegisterMap(std::string_view text, std::string_view source_name) {
  Result<YAML::Node> root = yaml_input::Load(text, source_name, kMaxMapBytes, kMaxMapDepth);
  if (!root.ok()) return root.status();
  try {
    RegisterMap map;
    Status s = RegisterMapReader(source_name).Read(*root, &map);
    if (!s.ok()) return s;
    return map;
  } catch (const std::exception& e) {
    return InvalidArgument(yaml_input::Where(source_name, 0) + "cannot read: " + e.what());
  }
}

Result<RegisterMap> LoadRegisterMapFile(const std::string& path) {
  Result<std::string> text = yaml_input::ReadFile(path, kMaxMapBytes);
  if (!text.ok()) return text.status().WithContext("register map");
  return ParseRegisterMap(*text, path);
}

uint32_t SerialHash32(std::string_view serial) {
  uint32_t hash = 0x811c9dc5u;
  for (const char c : serial) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x01000193u;
  }
  return hash == 0 ? 1 : hash;
}

const PortObservation* ProbeObservations::Find(const std::string& serial, int port) const {
  auto it = ports.find({serial, port});
  return it == ports.end() ? nullptr : &it->second;
}

PortObservation LinkProbe::ProbePort(const Card& card, const PortRegisters& regs) const {
  PortObservation obs = Unknown(card, regs.port, "");
  Result<uint32_t> status = reader_.Read32(card, regs.status.offset);
  if (!status.ok()) {
    obs.detail = "status register " + Hex(regs.status.offset) + " unreadable: " + status.status().message();
    return obs;
  }
  const uint32_t value = *status;
  if ((value & regs.status.mask) != regs.status.up) {
    obs.state = LinkState::kDown;
    obs.detail = "link IP status " + Hex(value) + ", up needs " + Hex(regs.status.up) + " under mask " +
                 Hex(regs.status.mask);
    return obs;
  }
  obs.state = LinkState::kUp;
  obs.detail = "link IP status " + Hex(value) + " (up)";
  if (regs.peer_serial_hash_offset) {
    Result<uint32_t> hash = reader_.Read32(card, *regs.peer_serial_hash_offset);
    if (!hash.ok()) {
      obs.detail += "; peer serial hash unreadable: " + hash.status().message();
      return obs;
    }
    if (*hash == 0) {
      obs.detail += "; no peer identity received yet";
      return obs;
    }
    obs.peer_serial_hash = *hash;
  }
  if (regs.peer_port_offset) {
    Result<uint32_t> port = reader_.Read32(card, *regs.peer_port_offset);
    if (port.ok()) {
      obs.peer_port = static_cast<int>(*port & 0xffu);
    } else {
      obs.detail += "; peer port unreadable: " + port.status().message();
    }
  }
  return obs;
}

ProbeObservations LinkProbe::Probe(const std::vector<Card>& cards) const {
  ProbeObservations out;
  for (const Card& card : cards) {
    if (card.serial.empty()) continue;
    const XclbinRegisters* regs =
        card.emulated || card.xclbin_uuid.empty() ? nullptr : map_.Find(card.xclbin_uuid);
    std::set<int> ports;
    for (const Port& p : card.ports) ports.insert(p.index);
    if (regs != nullptr) {
      for (const PortRegisters& p : regs->ports) ports.insert(p.port);
    }
    for (const int port : ports) {
      PortObservation obs;
      if (card.emulated) {
        obs = Unknown(card, port, "emulated card, no link hardware");
      } else if (card.xclbin_uuid.empty()) {
        obs = Unknown(card, port, "no xclbin loaded, no register map");
      } else if (regs == nullptr) {
        obs = Unknown(card, port, "no register map for xclbin " + Lower(card.xclbin_uuid));
      } else {
        auto it = std::find_if(regs->ports.begin(), regs->ports.end(),
                               [port](const PortRegisters& p) { return p.port == port; });
        obs = it == regs->ports.end()
                  ? Unknown(card, port,
                            "register map for xclbin " + regs->uuid + " has no port " + std::to_string(port))
                  : ProbePort(card, *it);
      }
      out.ports.insert_or_assign({card.serial, port}, std::move(obs));
    }
  }
  return out;
}

// ---- BarRegisterReader (unverified on hardware, see the header) ----

BarRegisterReader::BarRegisterReader(std::string sysfs_root) : sysfs_root_(std::move(sysfs_root)) {}

BarRegisterReader::~BarRegisterReader() {
  for (auto& [id, mapping] : mappings_) {
    // munmap takes a non-const, non-volatile pointer; the mapping is only ever read.
    munmap(const_cast<uint8_t*>(mapping.base), mapping.size);
  }
}

Result<BarRegisterReader::Mapping> BarRegisterReader::MapCard(const Card& card) {
  if (card.render_node.empty()) return FailedPrecondition("card " + card.id + ": no render node");
  const std::string dir = sysfs_root_ + "/bus/pci/devices/" + card.id;
  // xocl's `userbar` attribute names the user BAR (0 when absent or unreadable).
  uint64_t bar = 0;
  if (Result<std::string> text = yaml_input::ReadFile(dir + "/userbar", 64); text.ok()) {
    bar = ParseNumber(*text, 10).value_or(0);
  }
  Result<std::string> resource = yaml_input::ReadFile(dir + "/resource", size_t{64} * 1024);
  if (!resource.ok()) return resource.status().WithContext("card " + card.id);
  // One line per BAR: "0x<start> 0x<end> 0x<flags>".
  std::istringstream lines(*resource);
  std::string line;
  bool found = false;
  for (uint64_t i = 0; std::getline(lines, line); ++i) {
    if (i == bar) {
      found = true;
      break;
    }
  }
  std::istringstream fields(line);
  std::string start_text;
  std::string end_text;
  fields >> start_text >> end_text;
  const uint64_t start = ParseNumber(start_text, 16).value_or(0);
  const uint64_t end = ParseNumber(end_text, 16).value_or(0);
  if (!found || start == 0 || end <= start) {
    return FailedPrecondition("card " + card.id + ": BAR " + std::to_string(bar) + " not found in " + dir +
                              "/resource");
  }
  const uint64_t size = end - start + 1;
  const int fd = ::open(card.render_node.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Unavailable("card " + card.id + ": open " + card.render_node + ": " + ErrnoText(errno));
  }
  void* base = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  const int mmap_errno = errno;
  ::close(fd);
  if (base == MAP_FAILED) {
    return Unavailable("card " + card.id + ": mmap of " + card.render_node + " (" + std::to_string(size) +
                       " bytes): " + ErrnoText(mmap_errno));
  }
  return Mapping{static_cast<const volatile uint8_t*>(base), size};
}

Result<uint32_t> BarRegisterReader::Read32(const Card& card, uint64_t offset) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = mappings_.find(card.id);
  if (it == mappings_.end()) {
    Result<Mapping> mapping = MapCard(card);
    if (!mapping.ok()) return mapping.status();
    it = mappings_.emplace(card.id, *mapping).first;
  }
  const Mapping& m = it->second;
  if (offset % 4 != 0 || m.size < 4 || offset > m.size - 4) {
    return InvalidArgument("card " + card.id + ": register offset " + Hex(offset) +
                           " outside the user BAR (" + std::to_string(m.size) + " bytes) or unaligned");
  }
  return *reinterpret_cast<const volatile uint32_t*>(m.base + offset);
}

}  // namespace hyperaccel::hw
