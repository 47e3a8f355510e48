// The answers of hyperaccel-xrt-probe, the helper executable that runs XRT outside the daemons
// (xrt_probe_helper.cpp writes them, xrt_probe.cpp reads them). One JSON object per run on the
// helper's stdout, always with "v": kXrtHelperProtocol. Requests (argv[1]) and answers:
//
//   lib-dir          {"v":1,"coreutil_dir":"/usr/lib/x86_64-linux-gnu"}
//   facts            {"v":1,"xrt_available":true,"xrt_version":"2.13.0","xrt_detail":"...","emulation":false}
//   cards BDF...     {"v":1,"cards":[{"bdf":"0000:3b:00.1","info":CARD} | {"bdf":"...","error":"..."}]}
//                    (one entry per requested BDF, in request order)
//   emulated         {"v":1,"devices":[CARD, ...]}   (index order)
//   opencl           {"v":1,"xilinx":false,"detail":"..."}
//
//   CARD = {"bdf","name","serial","xclbin_uuid","last_error": strings,
//           "sensors":{"fpga_temp_c","hbm_temp_c","board_temp_c","power_w","vccint_v": number (absent
//                      when unknown), "cage_temp_c":[number|null], "bad_readings":[string]}}
//
// A request that fails as a whole exits non-zero with the reason on stderr (last line) and
// nothing on stdout. The readers below accept exactly this shape: a missing field or one of the
// wrong type is an error naming the field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/xrt/model.h"
#include "hyperaccel/xrt/xrt_probe.h"

namespace hyperaccel::hw::wire {

inline constexpr int kXrtHelperProtocol = 1;

nlohmann::json CardToJson(const XrtCardInfo& card);
nlohmann::json FactsToJson(const NodeFacts& facts);  // the XRT part of NodeFacts
nlohmann::json OpenClToJson(const OpenClFacts& facts);

// Parses one answer: valid JSON, an object, and "v" equal to kXrtHelperProtocol.
Result<nlohmann::json> ParseAnswer(std::string_view text);

Result<XrtCardInfo> CardFromJson(const nlohmann::json& j);
Result<NodeFacts> FactsFromJson(const nlohmann::json& answer);
Result<OpenClFacts> OpenClFromJson(const nlohmann::json& answer);
Result<std::vector<XrtCardInfo>> EmulatedFromJson(const nlohmann::json& answer);
// One result per requested BDF; an entry with "error" becomes that card's Status. The answer must
// list exactly the requested BDFs, in order.
Result<std::vector<Result<XrtCardInfo>>> CardsFromJson(const nlohmann::json& answer,
                                                       const std::vector<std::string>& bdfs);
Result<std::string> LibDirFromJson(const nlohmann::json& answer);

}  // namespace hyperaccel::hw::wire
