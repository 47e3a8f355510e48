// Link state from the link IP itself (xrt.md §4.4, source A): read each port's status register
// (and, if the bitstream has them, peer-identity registers) through a RegisterReader, using a
// register map keyed by the loaded xclbin's UUID. The register layout is bitstream-specific and
// must come from whoever built the xclbin; with no map for a card's xclbin its ports are
// reported as unknown.
//
// Register map file (YAML, version 1); offsets are byte offsets into the card's user BAR, i.e.
// the IP's base address from its IP_LAYOUT (`xclbinutil --info`, or sysfs icap.u.*/ip_layout)
// plus the register's offset inside the IP. Integers are decimal or 0x-prefixed hex:
//
//   version: 1
//   xclbins:
//     - uuid: 5d0e3ac2-...           # any case; compared lower case
//       description: "..."          # optional, free text
//       ports:
//         - port: 0
//           status: {offset: 0x1800010, mask: 0x1fff, up: 0x11ff}
//           peer_serial_hash: 0x1800020   # optional: register holding SerialHash32(peer serial)
//           peer_port: 0x1800024          # optional: register holding the peer's port index
//
// `mask` defaults to 0xffffffff and `up` must have no bits outside it; offsets are 4-byte aligned
// and below 2^48; ports are 0..15; a uuid and, within it, a port appear once.
//
// See xrt/examples/link-registers.yaml for a complete example (AMD's Aurora tutorial kernel).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::hw {

// Reads 32-bit registers of a card. Implementations: BarRegisterReader (hardware), fakes in tests.
class RegisterReader {
 public:
  virtual ~RegisterReader() = default;
  // The 32-bit value at byte `offset` of the card's user BAR.
  virtual Result<uint32_t> Read32(const Card& card, uint64_t offset) = 0;
};

// A register whose masked value is compared with an expected value.
struct StatusRegister {
  uint64_t offset = 0;
  uint32_t mask = 0xffffffffu;
  uint32_t up = 0;  // the port is up when (value & mask) == up
};

struct PortRegisters {
  int port = 0;
  StatusRegister status;
  // Peer identity, when the link kernel exchanges one after the link comes up. Both registers are
  // read only while the status says up.
  std::optional<uint64_t> peer_serial_hash_offset;  // holds SerialHash32(peer serial); 0 = none yet
  std::optional<uint64_t> peer_port_offset;         // holds the peer's port index (low 8 bits)
};

struct XclbinRegisters {
  std::string uuid;  // lower case
  std::string description;
  std::vector<PortRegisters> ports;  // sorted by port, distinct
};

// Register layouts by xclbin UUID.
class RegisterMap {
 public:
  // The layout for `uuid` (any case), or nullptr.
  const XclbinRegisters* Find(std::string_view uuid) const;
  // Adds or replaces the layout for entry.uuid (lower-cased here).
  void Add(XclbinRegisters entry);
  size_t size() const { return by_uuid_.size(); }

 private:
  std::map<std::string, XclbinRegisters, std::less<>> by_uuid_;
};

// Parses a register map file (format above). Errors name the source and line, like the cabling
// file: "link-registers.yaml:9: 'mask' must be an integer". Never throws.
Result<RegisterMap> ParseRegisterMap(std::string_view text, std::string_view source_name);
Result<RegisterMap> LoadRegisterMapFile(const std::string& path);

// The 32-bit FNV-1a hash of a card serial: what a link kernel that exchanges identities is
// expected to publish in its peer-serial-hash register. Never 0 (0 means "no identity"; a
// serial hashing to 0 is mapped to 1).
uint32_t SerialHash32(std::string_view serial);

// What the link IP says about one port.
struct PortObservation {
  std::string serial;  // the card's serial
  int port = 0;
  LinkState state = LinkState::kUnknown;  // kUp, kDown or kUnknown (never kMismatch)
  std::optional<uint32_t> peer_serial_hash;
  std::optional<int> peer_port;
  std::string detail;  // "status 0x11ff (mask 0x1fff, up 0x11ff)", "no register map for xclbin ..."
};

struct ProbeObservations {
  std::map<std::pair<std::string, int>, PortObservation> ports;  // by (serial, port)
  const PortObservation* Find(const std::string& serial, int port) const;
};

// Reads the link registers of every card. Per card: emulated -> unknown ("emulated card, no link
// hardware"); no xclbin loaded or no map for its UUID -> unknown ("no register map for xclbin
// <uuid>"); a failed status read -> unknown with the reader's error; otherwise up or down from the
// status register, and, while up, the peer identity registers (a peer-serial-hash of 0 means "no
// identity received yet": then neither peer field is set). Ports reported: those of the register
// map plus the card's Card::ports (ports without registers -> unknown). Cards without a serial are
// skipped (a link end is named by serial).
class LinkProbe {
 public:
  LinkProbe(const RegisterMap& map, RegisterReader& reader) : map_(map), reader_(reader) {}
  ProbeObservations Probe(const std::vector<Card>& cards) const;

 private:
  PortObservation ProbePort(const Card& card, const PortRegisters& regs) const;

  const RegisterMap& map_;
  RegisterReader& reader_;
};

// Reads registers through a read-only mmap of the card's user BAR via its render node
// (Card::render_node), the context-free path of xrt.md §2.4: the xocl driver maps the user BAR
// at page offset 0 of the render node. The BAR size is taken from
// <sysfs_root>/bus/pci/devices/<card id>/resource, line `userbar` (xocl's `userbar` attribute,
// default 0).
//
// UNVERIFIED ON HARDWARE: read from the XRT 2.13 shim and xocl sources only. Whether xocl accepts
// a read-only (PROT_READ, O_RDONLY) mapping, and whether IP_LAYOUT base addresses equal BAR
// offsets on the U55C shell, has not been tried on a card. Reading an address that no IP decodes
// can hang the PCIe transaction or trip the shell's AXI firewall: only use offsets from a
// register map that matches the loaded xclbin. Never used by tests.
class BarRegisterReader final : public RegisterReader {
 public:
  explicit BarRegisterReader(std::string sysfs_root = "/sys");
  ~BarRegisterReader() override;
  BarRegisterReader(const BarRegisterReader&) = delete;
  BarRegisterReader& operator=(const BarRegisterReader&) = delete;

  Result<uint32_t> Read32(const Card& card, uint64_t offset) override;

 private:
  struct Mapping {
    const volatile uint8_t* base = nullptr;
    uint64_t size = 0;
  };
  Result<Mapping> MapCard(const Card& card);

  std::string sysfs_root_;
  std::mutex mu_;
  std::map<std::string, Mapping> mappings_;  // by card id
};

}  // namespace hyperaccel::hw
