// The hardware model of one node: cards, their ports, the links between ports, and node facts.
// Plain values, no I/O. Everything else in the project (placement, the device plugin, the
// topology agent, the bridge) reads this model.
//
// Namespace note: the folder is `xrt/`, the namespace is `hyperaccel::hw` so that it never
// shadows XRT's own `::xrt` namespace.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hyperaccel::hw {

enum class Health { kHealthy, kUnhealthy };

const char* HealthName(Health h);  // "healthy" | "unhealthy"

// Sensor readings. Every value is optional: absent when the card or XRT did not report it.
struct Sensors {
  std::optional<double> fpga_temp_c;
  std::optional<double> hbm_temp_c;
  std::optional<double> board_temp_c;              // hottest PCB (se98) sensor
  std::vector<std::optional<double>> cage_temp_c;  // one per QSFP cage, index = port
  std::optional<double> power_w;
  std::optional<double> vccint_v;
  // Health-relevant readings (FPGA and HBM temperature) that the sensor gave but that cannot be a
  // temperature (an overflowed number, below absolute zero, not finite), one message each, e.g.
  // "fpga temperature reading out of range: \"99999999999999999999\"". The health tracker counts
  // each as a bad reading; the matching field above is then unset.
  std::vector<std::string> bad_readings;
};

// One QSFP28 cage of a card. Port numbers are 0 (QSFP0, upper) and 1 (QSFP1, lower).
struct Port {
  int index = 0;
  bool module_present = false;         // from the module's SFF-8636 EEPROM, when readable
  std::optional<bool> loss_of_signal;  // any RX lane reports LOS
  std::string vendor;                  // module/cable vendor name (SFF-8636 bytes 148-163)
  std::string part_number;             // bytes 168-183
  std::string cable_serial;            // bytes 196-211; DAC/AOC ends usually share it
  // True when the fields above come from an actual read of the cage (the CMC answered). False
  // means nothing is known: `module_present == false` then does not mean "no module", and link
  // merging (links.h) draws no conclusion from it.
  bool module_info_read = false;
};

struct Card {
  // Identity and location.
  std::string id;       // user-PF PCI address, lower case "0000:3b:00.1"; the kubelet device ID
  std::string serial;   // board serial (xmc serial_num); names the card in links and labels
  std::string shell;    // VBNV, e.g. "xilinx_u55c_gen3x16_xdma_base_3"
  std::string product;  // "ALVEO-U55C", "ALVEO-U280", ... ("UNKNOWN" when the device ID is not known)
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  std::optional<int> numa_node;  // absent when sysfs says -1 or nothing
  std::string local_cpulist;     // "0-15,32-47"
  // PCIe path from the root complex to the endpoint: ["pci0000:3a", "0000:3a:00.0",
  // "0000:3b:00.0"...]; the endpoint's own function is not included. Two cards whose paths
  // share a component after the root port sit behind the same PCIe switch.
  std::vector<std::string> pcie_path;
  std::string render_node;                // "/dev/dri/renderD128"; empty when none
  std::string mgmt_id;                    // mgmt-PF PCI address; empty when absent (VM, user PF only)
  std::optional<uint32_t> mgmt_instance;  // xclmgmt instance
  std::string mgmt_node;                  // "/dev/xclmgmt15104"; empty when absent
  std::string xclbin_uuid;                // lower case, empty when none is loaded
  std::string driver_version;             // xocl module version, when known

  Sensors sensors;
  std::vector<Port> ports;  // U55C: two

  Health health = Health::kHealthy;
  std::string health_reason;  // empty when healthy; otherwise something a human can act on

  bool emulated = false;  // an XRT software-emulation device, never matched against sysfs
};

enum class LinkState { kUp, kDown, kMismatch, kUnknown };
const char* LinkStateName(LinkState s);  // "up" | "down" | "mismatch" | "unknown"

// One end of a link. `node` is empty for a port on this node.
struct PortRef {
  std::string node;
  std::string serial;
  int port = 0;
  friend bool operator==(const PortRef&, const PortRef&) = default;
  friend auto operator<=>(const PortRef&, const PortRef&) = default;
};

struct Link {
  PortRef a;
  PortRef b;
  std::string kind = "esl";  // what runs over it ("esl", "aurora", "ethernet")
  LinkState state = LinkState::kUnknown;
  // Where the link comes from and what observed it: "cabling", "cabling+probe", "qsfp", ...
  std::string source;
  std::string detail;  // why the state is what it is ("link IP reports channel down", ...)
};

// Facts about the node as a whole; none of them makes a card unhealthy.
struct NodeFacts {
  bool xrt_available = false;
  std::string xrt_version;  // "2.13.0"
  std::string xrt_detail;   // why XRT is unavailable, or which shim was used
  bool opencl_xilinx = false;
  std::string opencl_detail;
  bool emulation = false;  // cards come from XRT software emulation
};

struct Inventory {
  std::string node_name;
  std::vector<Card> cards;  // sorted by id
  std::vector<Link> links;  // links with at least one end on this node
  NodeFacts facts;

  const Card* FindById(const std::string& id) const;
  const Card* FindBySerial(const std::string& serial) const;
  size_t HealthyCount() const;
};

}  // namespace hyperaccel::hw
