// libFuzzer entry: the cabling file and register map parsers must turn any input into a value or
// an error, never a crash, a hang or an exception; accepted cabling files must satisfy the
// documented invariants.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>

#include "hyperaccel/xrt/cabling.h"
#include "hyperaccel/xrt/link_probe.h"
#include "hyperaccel/xrt/links.h"

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
  (void)ParseRegisterMap(text, "fuzz-map.yaml");
  return 0;
}
