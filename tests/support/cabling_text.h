// Generated cabling files (the YAML text of xrt/include/hyperaccel/xrt/cabling.h) for tests and
// benchmarks: nodes of 8 cards, every 4 nodes (32 cards) cabled into one ring, so a file has link
// domains of 32 cards with cross-node links. Header-only.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace hyperaccel::testing {

enum class CablingStyle {
  kFlow,   // two lines per link: "- a: {node: ..., serial: ..., port: 1}" / "  b: {...}"
  kBlock,  // eight lines per link: every field on its own line
};

// The node and serial of card `index` (8 cards per node).
inline std::string GeneratedNode(size_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "lpu-node-%05zu", index / 8);
  return name;
}
inline std::string GeneratedSerial(size_t index) {
  char serial[32];
  std::snprintf(serial, sizeof serial, "XFL1%08zX", index);
  return serial;
}

// Link `k`: card k's port 1 to port 0 of the next card of its 32-card ring (every third link is
// of kind "aurora").
inline std::string GeneratedLink(size_t k, CablingStyle style) {
  const size_t ring = k / 32;
  const size_t a = k;
  const size_t b = ring * 32 + (k % 32 + 1) % 32;
  std::string text;
  if (style == CablingStyle::kFlow) {
    text += "  - a: {node: " + GeneratedNode(a) + ", serial: " + GeneratedSerial(a) + ", port: 1}\n";
    text += "    b: {node: " + GeneratedNode(b) + ", serial: " + GeneratedSerial(b) + ", port: 0}\n";
  } else {
    text += "  - a:\n      node: " + GeneratedNode(a) + "\n      serial: " + GeneratedSerial(a) +
            "\n      port: 1\n";
    text += "    b:\n      node: " + GeneratedNode(b) + "\n      serial: " + GeneratedSerial(b) +
            "\n      port: 0\n";
  }
  if (k % 3 == 2) text += "    kind: aurora\n";
  return text;
}

// A valid cabling file of `links` links.
inline std::string GeneratedCabling(size_t links, CablingStyle style) {
  std::string text = "version: 1\nlinks:\n";
  for (size_t k = 0; k < links; ++k) text += GeneratedLink(k, style);
  return text;
}

// A valid cabling file of about `lines` lines (at least the header).
inline std::string GeneratedCablingOfLines(size_t lines, CablingStyle style) {
  // Three links take 7 (flow) or 25 (block) lines.
  const size_t per_three = style == CablingStyle::kFlow ? 7 : 25;
  const size_t links = lines > 2 ? (lines - 2) * 3 / per_three : 0;
  return GeneratedCabling(links, style);
}

}  // namespace hyperaccel::testing
