// Fuzzes what the claim preparer reads from outside: a ResourceClaim from the API server (UID
// check, allocation results, device names -> cards, CDI spec rendering) and the checkpoint file
// (parse, serialize, parse again must give the same). None may crash, throw or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "hyperaccel/dra_driver/checkpoint.h"
#include "hyperaccel/dra_driver/claim_preparer.h"
#include "inventories.h"

namespace {

namespace dra = hyperaccel::dra;

const hyperaccel::hw::Inventory& Inv() {
  static const hyperaccel::hw::Inventory inv = [] {
    auto i = dra::testing::Ring(8);
    for (size_t c = 0; c < i.cards.size(); ++c)
      i.cards[c].render_node = "/dev/dri/renderD" + std::to_string(128 + c);
    i.cards[5].health = hyperaccel::hw::Health::kUnhealthy;
    return i;
  }();
  return inv;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);

  // The checkpoint file.
  auto cp = dra::ParseCheckpoint(text);
  if (cp.ok()) {
    auto again = dra::ParseCheckpoint(dra::SerializeCheckpoint(*cp));
    if (!again.ok() || !(*again == *cp)) __builtin_trap();
  }

  // A claim as the API server would return it.
  auto claim = nlohmann::json::parse(text, nullptr, false);
  if (claim.is_discarded()) return 0;
  static const std::vector<dra::PoolDevice> pool = [] {
    dra::SliceOptions o;
    o.node_name = "node-1";
    auto p = dra::PoolDevices(Inv(), o);
    return p.ok() ? *p : std::vector<dra::PoolDevice>{};
  }();
  dra::ClaimRef ref{"default", "c", "00000000-0000-4000-8000-000000000001"};
  if (claim.is_object() && claim.contains("metadata") && claim["metadata"].is_object() &&
      claim["metadata"].contains("uid") && claim["metadata"]["uid"].is_string()) {
    ref.uid = claim["metadata"]["uid"].get<std::string>();
  }
  auto mapped = dra::MapClaimDevices(claim, ref, pool, dra::kDriverName, "node-1");
  (void)dra::MinimumCdiVersion(claim);
  if (!mapped.ok()) return 0;
  dra::PreparerOptions o;
  o.node_name = "node-1";
  o.cdi_dir = "/nonexistent";
  auto spec = dra::RenderClaimSpec(ref.uid, *mapped, Inv(), o);
  if (spec.ok() && nlohmann::json::parse(spec->content, nullptr, false).is_discarded()) __builtin_trap();
  return 0;
}
