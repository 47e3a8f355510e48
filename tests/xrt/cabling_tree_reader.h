// The cabling-file reader as it was before the event-based one: the whole document is loaded into
// a YAML::Node tree, then checked. Kept for tests only, as the reference the event-based
// ParseCabling must agree with (same links, same first error).
#pragma once

#include <string_view>

#include "hyperaccel/xrt/cabling.h"

namespace hyperaccel::hw::testing {

Result<Cabling> ParseCablingTree(std::string_view text, std::string_view source_name,
                                 const CablingOptions& options = {});

}  // namespace hyperaccel::hw::testing
