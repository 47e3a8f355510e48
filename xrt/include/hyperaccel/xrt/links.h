// Links between cards: QSFP cable-serial pairing (xrt.md §4.4 source B) and the merge of the three
// link sources (cabling file, link-IP probe, QSFP modules) into the Link list of model.h.
#pragma once

#include <string>
#include <vector>

#include "hyperaccel/xrt/cabling.h"
#include "hyperaccel/xrt/link_probe.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::hw {

// Two local ports whose QSFP modules report the same cable serial (PortRef::node empty).
struct QsfpPair {
  PortRef a;  // a < b
  PortRef b;
  std::string cable_serial;
};

struct QsfpPairing {
  std::vector<QsfpPair> pairs;        // sorted by a
  std::vector<PortRef> ambiguous;     // ports sharing a cable serial with two or more other ports
  std::vector<std::string> warnings;  // one per ambiguous cable serial

  // The port cabled to `port` (node ignored), or nullptr when it is in no pair.
  const PortRef* PeerOf(const std::string& serial, int port) const;
};

// Pairs the ports of this node's `cards` by cable serial. A port takes part when its module info
// was read, a module is present and the cable serial is not blank (compared after trimming
// blanks). Exactly two ports sharing a serial make a pair, even on one card (a loopback cable);
// three or more make no pair and a warning ("cable serial X is reported by 3 ports: ..."). A
// single port with a serial is left alone (the far end may be on another node, or the optics
// have distinct serials). Emulated cards and cards without a serial are skipped. Shared cable
// serials are a strong hint, not a proof (xrt.md §4.4 B).
QsfpPairing PairByCableSerial(const std::vector<Card>& cards);

// Merges what is known about links into the Link list of model.h: the links with at least one
// end on `node_name`. Local ends come back with an empty PortRef::node, far ends with their node.
// Any of `cabling`, `probe`, `qsfp` may be null.
//
// With a cabling file, it alone says which links exist (in file order); each link's state:
//   - mismatch: the link IP of a local end reports a peer (serial hash or port) other than the
//     file's, or the QSFP pairing cables a local end to another port than the file's;
//   - down: otherwise, when a local end's link IP reports down, its cage has no module or reports
//     loss of signal (QSFP facts count only when Port::module_info_read), or the file names a
//     card serial that is not on this node ("card X is not on this node");
//   - up: otherwise, when the link IP reports every local end up (one local end for a cross-node
//     link: the far end is reported by its own node);
//   - unknown: otherwise (no register map for the xclbin, emulated card, nothing observed).
// Ports the file does not mention are not reported, whatever the probe or the QSFP modules say.
//
// Without a cabling file, a link is reported when the link IP of a local port names its peer
// (serial hash resolving to exactly one local card; port from the peer-port register, or from the
// peer's own observation pointing back) -> up; or when two local ports share a cable serial ->
// unknown, or down with loss of signal on either end, or up when the link IP reports both ends up.
// A QSFP pair that contradicts a probe-identified link is dropped (the link IP is authoritative);
// peers on other nodes cannot be named without a cabling file and are not reported. These links
// are sorted by (a, b) with a < b.
//
// `source` names the contributing sources in the order cabling, probe, qsfp ("cabling",
// "cabling+probe", "cabling+probe+qsfp", "probe", "probe+qsfp", "qsfp"); a source contributes when
// it observed something other than "unknown". `detail` gives the reasons, "; "-separated, those
// that decided the state first.
std::vector<Link> MergeLinks(const std::string& node_name, const std::vector<Card>& cards,
                             const Cabling* cabling, const ProbeObservations* probe, const QsfpPairing* qsfp);

}  // namespace hyperaccel::hw
