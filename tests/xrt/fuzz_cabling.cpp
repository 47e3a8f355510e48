// libFuzzer entry: the cabling file and register map parsers must turn any input into a value or
// an error, never a crash, a hang or an exception; accepted cabling files must satisfy the
// documented invariants; and the event-based ParseCabling must give what the tree-based reader
// it replaced gives (cabling_tree_reader.h): the same links, or the same first error (except
// for an alias this reader does not repeat, and on text where libyaml and yaml-cpp disagree on the
// syntax itself: YAML 1.1's other line breaks and '?' in flow collections, see below).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "cabling_tree_reader.h"
#include "hyperaccel/xrt/cabling.h"
#include "hyperaccel/xrt/link_probe.h"
#include "hyperaccel/xrt/links.h"

namespace {

// Where libyaml and yaml-cpp read the same text differently, so the two readers cannot be compared:
//  - a line break YAML 1.1 (and libyaml) knows and yaml-cpp does not: a lone CR, NEL (U+0085),
//    LINE SEPARATOR (U+2028) or PARAGRAPH SEPARATOR (U+2029);
//  - a '?' anywhere: in a flow collection libyaml takes '?' as the explicit-key indicator even when
//    a non-space follows (`{?port: 1}` has the key "port"), yaml-cpp rejects it as a token.
bool ReadersDisagreeOnSyntax(std::string_view text) {
  if (text.find('?') != std::string_view::npos) return true;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) return true;
    if (text.substr(i, 2) == "\xc2\x85" || text.substr(i, 3) == "\xe2\x80\xa8" ||
        text.substr(i, 3) == "\xe2\x80\xa9")
      return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hyperaccel::hw;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cabling = ParseCabling(text, "fuzz.yaml");
  if (cabling.ok()) {
    std::set<PortRef> ports;
    for (const CabledLink& link : cabling->links) {
      if (link.a == link.b || link.a.port < 0 || link.a.port > 1 || link.b.port < 0 || link.b.port > 1)
        std::abort();
      if (!ports.insert(link.a).second || !ports.insert(link.b).second) std::abort();
    }
    size_t members = 0;
    for (const LinkDomain& domain : CablingDomains(*cabling)) members += domain.members.size();
    if (members > 2 * cabling->links.size()) std::abort();
    if (!cabling->links.empty()) {
      const std::string node = cabling->links.front().a.node;
      (void)CheckCablingAgainstCards(*cabling, node, {});
      (void)MergeLinks(node, {}, &*cabling, nullptr, nullptr);
    }
  } else if (cabling.status().message().rfind("fuzz.yaml:", 0) != 0) {
    std::abort();  // every error names the source
  }
  if (ReadersDisagreeOnSyntax(text)) {
    (void)ParseRegisterMap(text, "fuzz-map.yaml");
    return 0;
  }
  const auto tree = testing::ParseCablingTree(text, "fuzz.yaml");
  if (cabling.ok() != tree.ok()) std::abort();
  if (cabling.ok()) {
    if (cabling->links.size() != tree->links.size()) std::abort();
    for (size_t i = 0; i < tree->links.size(); ++i) {
      const CabledLink& x = cabling->links[i];
      const CabledLink& y = tree->links[i];
      if (!(x.a == y.a) || !(x.b == y.b) || x.kind != y.kind || x.line != y.line) std::abort();
    }
  } else if (cabling.status().message() != tree.status().message() &&
             cabling.status().message().find("alias to a node larger than") == std::string::npos) {
    std::abort();
  }
  (void)ParseRegisterMap(text, "fuzz-map.yaml");
  return 0;
}
