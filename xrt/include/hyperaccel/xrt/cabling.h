// The cabling file: which QSFP port of which card is cabled to which other port, cluster-wide.
// It is the source of truth for which links exist (see links.h for how observations are merged).
//
// Format (YAML, version 1). Every node of the cluster can read the same file; endpoints name the
// node, the card serial number (xmc serial_num, printed on the card label) and the QSFP port
// (0 = QSFP0 upper cage, 1 = QSFP1 lower cage):
//
//   version: 1                 # required; only 1 is known
//   links:                     # required; a sequence (empty or null = no links)
//     - a: {node: lpu-node-01, serial: XFL1ABCDEF01, port: 1}
//       b: {node: lpu-node-01, serial: XFL1ABCDEF02, port: 0}
//       kind: esl              # optional, default "esl" (others: "aurora", "ethernet", ...)
//     - a: {node: lpu-node-01, serial: XFL1ABCDEF08, port: 1}
//       b: {node: lpu-node-02, serial: XFL1GHIJKL01, port: 0}   # a cross-node link
//
// Rules (each violation is an InvalidArgument error "<source>:<line>: <what>", first error only):
//   - top level is a mapping with exactly the keys `version` and `links`; a link has the keys
//     `a`, `b` and optionally `kind`; an endpoint has exactly `node`, `serial`, `port`;
//   - `node` and `serial` are non-empty strings of letters, digits, '.', '_' and '-' (at most 253
//     characters); `kind` likewise (at most 63); `port` is a plain (unquoted) decimal integer in
//     0..max_ports-1 (U55C: 0..1);
//   - a port (node, serial, port) appears in at most one link; both ends of a link being the same
//     port is a "self-link" error;
//   - a serial belongs to one node only (the same serial under two node names is an error);
//   - a cable from a card's port to another port of the same card (a loopback, used for link
//     self-tests) is an error: it links the card to no other card, so it must not make the card a
//     link domain of its own.
// Unknown keys are errors (they are usually typos). Input larger than `max_bytes` or nested deeper
// than `max_depth` is rejected before it is parsed. Only the first YAML document is read.
//
// The file is read from the YAML parser's events, not into a node tree: memory grows with the
// links kept (a few hundred bytes each), and a 100 000-line file parses in a fraction of a second
// (bench/xrt/bench_cabling.cpp). An alias may name an anchored node of at most 256 YAML nodes
// (names, endpoints, links); an alias of a larger node, or of a node that contains it, is an error.
// Line breaks are YAML 1.1's: LF, CR LF, a lone CR (as old Mac editors write), NEL (U+0085) and
// U+2028 / U+2029 all end a line. (The yaml-cpp tree reader this replaced took all but LF and CR LF
// for content and rejected such files.) The syntax is libyaml's: in a flow mapping `?` starts an
// explicit key even before a non-space (`{?port: 1}` is port 1), where yaml-cpp reported an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/xrt/model.h"

namespace hyperaccel::hw {

// One cabled link as the file states it. Both endpoints always carry their node name here.
struct CabledLink {
  PortRef a;
  PortRef b;
  std::string kind = "esl";
  int line = 0;  // 1-based line of the entry in the source; 0 when built in code (RingCabling)
};

struct Cabling {
  std::string source;             // name used in messages: the file path, or "ring"
  std::vector<CabledLink> links;  // in file order
};

struct CablingOptions {
  int max_ports = 2;             // ports per card; valid ports are 0..max_ports-1
  size_t max_bytes = 16u << 20;  // larger input is rejected unread (16 MiB: ~150 000 links)
  int max_depth = 32;            // deeper nesting ('[', '{', indentation) is rejected unparsed
};

// Parses and validates a cabling file held in `text`; `source_name` prefixes every message
// ("cabling.yaml:7: port 3 out of range (0..1)"). Never throws.
Result<Cabling> ParseCabling(std::string_view text, std::string_view source_name,
                             const CablingOptions& options = {});

// Reads `path` and parses it; messages are prefixed with `path` as given. NotFound when the file
// does not exist, Unavailable when it cannot be read.
Result<Cabling> LoadCablingFile(const std::string& path, const CablingOptions& options = {});

// Checks the links of `cabling` that have an end on `node_name` against the cards found on that
// node. Returns one message per problem, empty when all is well, e.g.
//   "cabling.yaml:7: unknown serial XFL1ZZZ on node lpu-node-01 (cards here: XFL1A, XFL1B)".
// The caller decides whether that is a warning or fatal; MergeLinks reports such links as down.
std::vector<std::string> CheckCablingAgainstCards(const Cabling& cabling, std::string_view node_name,
                                                  const std::vector<Card>& cards);

// The links with at least one end on `node_name`, in file order (pointers into `cabling`).
std::vector<const CabledLink*> LinksTouchingNode(const Cabling& cabling, std::string_view node_name);

// A card, cluster-wide.
struct CardKey {
  std::string node;
  std::string serial;
  friend bool operator==(const CardKey&, const CardKey&) = default;
  friend auto operator<=>(const CardKey&, const CardKey&) = default;
};

// A link domain: a connected set of cards over the cabled links of the whole file (cards are
// vertices, links are edges).
struct LinkDomain {
  // Stable ID: the first 12 lower-case hex digits of the 64-bit FNV-1a hash of "<node>/<serial>"
  // of the domain's smallest member (members ordered by node, then serial, byte-wise). Every node
  // reading the same file computes the same ID for the same connected set, without talking to
  // the others; it is a valid Kubernetes label value.
  std::string id;
  std::vector<CardKey> members;  // sorted
};

// All link domains of the file, ordered by their smallest member. Cards not named in the file
// belong to no domain.
std::vector<LinkDomain> CablingDomains(const Cabling& cabling);

// The domain of a card, or nullptr when the card is not in any. `domains` from CablingDomains.
const LinkDomain* FindDomain(const std::vector<LinkDomain>& domains, const CardKey& card);

// The ID used for a domain whose smallest member is `smallest` (see LinkDomain::id).
std::string DomainId(const CardKey& smallest);

// A ring over `serials` on one node, in the given order: card i port 1 -> card i+1 port 0, and the
// last card's port 1 -> the first card's port 0. Two cards give two links (a 2-cycle using both
// ports of each card); one or zero cards give no links. Used for emulated nodes, which have no
// link hardware (the caller marks these links up with detail "emulated"). Serials must be
// distinct and non-empty.
Cabling RingCabling(const std::string& node, const std::vector<std::string>& serials);

}  // namespace hyperaccel::hw
