#include "xrt_wire.h"

#include <cmath>
#include <optional>

namespace hyperaccel::hw::wire {
namespace {

using Json = nlohmann::json;

const char* TypeName(const Json& j) { return j.type_name(); }

Status WrongType(std::string_view field, std::string_view want, const Json& got) {
  return InvalidArgument("field \"" + std::string(field) + "\" is " + TypeName(got) + ", expected " +
                         std::string(want));
}

// Strict readers: the field must exist with the right type.
Result<std::string> Str(const Json& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return InvalidArgument("field \"" + std::string(key) + "\" missing");
  if (!it->is_string()) return WrongType(key, "string", *it);
  return it->get<std::string>();
}

Result<bool> Bool(const Json& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return InvalidArgument("field \"" + std::string(key) + "\" missing");
  if (!it->is_boolean()) return WrongType(key, "boolean", *it);
  return it->get<bool>();
}

Result<const Json*> Arr(const Json& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return InvalidArgument("field \"" + std::string(key) + "\" missing");
  if (!it->is_array()) return WrongType(key, "array", *it);
  return &*it;
}

// An optional number: absent = unknown.
Status OptNumber(const Json& o, std::string_view key, std::optional<double>& out) {
  auto it = o.find(key);
  if (it == o.end()) return Status::Ok();
  if (!it->is_number()) return WrongType(key, "number", *it);
  const double v = it->get<double>();
  if (!std::isfinite(v)) return InvalidArgument("field \"" + std::string(key) + "\" is not finite");
  out = v;
  return Status::Ok();
}

void PutOpt(Json& o, const char* key, const std::optional<double>& v) {
  if (v) o[key] = *v;
}

Result<Sensors> SensorsFromJson(const Json& j) {
  if (!j.is_object()) return WrongType("sensors", "object", j);
  Sensors s;
  for (auto [key, field] : {std::pair{"fpga_temp_c", &s.fpga_temp_c}, std::pair{"hbm_temp_c", &s.hbm_temp_c},
                            std::pair{"board_temp_c", &s.board_temp_c}, std::pair{"power_w", &s.power_w},
                            std::pair{"vccint_v", &s.vccint_v}}) {
    if (Status st = OptNumber(j, key, *field); !st.ok()) return st.WithContext("sensors");
  }
  auto cages = Arr(j, "cage_temp_c");
  if (!cages.ok()) return cages.status().WithContext("sensors");
  for (const Json& c : **cages) {
    if (c.is_null()) {
      s.cage_temp_c.emplace_back();
    } else if (c.is_number() && std::isfinite(c.get<double>())) {
      s.cage_temp_c.emplace_back(c.get<double>());
    } else {
      return WrongType("cage_temp_c[]", "number or null", c).WithContext("sensors");
    }
  }
  auto bad = Arr(j, "bad_readings");
  if (!bad.ok()) return bad.status().WithContext("sensors");
  for (const Json& b : **bad) {
    if (!b.is_string()) return WrongType("bad_readings[]", "string", b).WithContext("sensors");
    s.bad_readings.push_back(b.get<std::string>());
  }
  return s;
}

}  // namespace

Json CardToJson(const XrtCardInfo& card) {
  Json sensors = Json::object();
  PutOpt(sensors, "fpga_temp_c", card.sensors.fpga_temp_c);
  PutOpt(sensors, "hbm_temp_c", card.sensors.hbm_temp_c);
  PutOpt(sensors, "board_temp_c", card.sensors.board_temp_c);
  PutOpt(sensors, "power_w", card.sensors.power_w);
  PutOpt(sensors, "vccint_v", card.sensors.vccint_v);
  Json cages = Json::array();
  for (const auto& c : card.sensors.cage_temp_c) cages.push_back(c ? Json(*c) : Json(nullptr));
  sensors["cage_temp_c"] = std::move(cages);
  sensors["bad_readings"] = card.sensors.bad_readings;
  return Json{{"bdf", card.bdf},
              {"name", card.name},
              {"serial", card.serial},
              {"xclbin_uuid", card.xclbin_uuid},
              {"last_error", card.last_error},
              {"sensors", std::move(sensors)}};
}

Json FactsToJson(const NodeFacts& facts) {
  return Json{{"v", kXrtHelperProtocol},
              {"xrt_available", facts.xrt_available},
              {"xrt_version", facts.xrt_version},
              {"xrt_detail", facts.xrt_detail},
              {"emulation", facts.emulation}};
}

Json OpenClToJson(const OpenClFacts& facts) {
  return Json{{"v", kXrtHelperProtocol}, {"xilinx", facts.xilinx}, {"detail", facts.detail}};
}

Result<Json> ParseAnswer(std::string_view text) {
  if (text.empty()) return InvalidArgument("empty answer");
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::parse_error& e) {
    // e.byte is where the parser stopped; for a truncated answer that is the end.
    return InvalidArgument("malformed answer (" + std::to_string(text.size()) + " bytes): " + e.what());
  }
  if (!j.is_object())
    return InvalidArgument(std::string("answer is ") + TypeName(j) + ", expected an object");
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer()) return InvalidArgument("answer has no protocol version \"v\"");
  if (v->get<int64_t>() != kXrtHelperProtocol) {
    return FailedPrecondition("answer has protocol version " + std::to_string(v->get<int64_t>()) +
                              ", expected " + std::to_string(kXrtHelperProtocol) +
                              " (helper from another build?)");
  }
  return j;
}

Result<XrtCardInfo> CardFromJson(const Json& j) {
  if (!j.is_object()) return WrongType("card", "object", j);
  XrtCardInfo c;
  for (auto [key, field] :
       {std::pair{"bdf", &c.bdf}, std::pair{"name", &c.name}, std::pair{"serial", &c.serial},
        std::pair{"xclbin_uuid", &c.xclbin_uuid}, std::pair{"last_error", &c.last_error}}) {
    auto v = Str(j, key);
    if (!v.ok()) return v.status();
    *field = std::move(v.value());
  }
  auto it = j.find("sensors");
  if (it == j.end()) return InvalidArgument("field \"sensors\" missing");
  auto sensors = SensorsFromJson(*it);
  if (!sensors.ok()) return sensors.status();
  c.sensors = std::move(sensors.value());
  return c;
}

Result<NodeFacts> FactsFromJson(const Json& answer) {
  NodeFacts f;
  auto available = Bool(answer, "xrt_available");
  if (!available.ok()) return available.status();
  auto emulation = Bool(answer, "emulation");
  if (!emulation.ok()) return emulation.status();
  auto version = Str(answer, "xrt_version");
  if (!version.ok()) return version.status();
  auto detail = Str(answer, "xrt_detail");
  if (!detail.ok()) return detail.status();
  f.xrt_available = *available;
  f.emulation = *emulation;
  f.xrt_version = std::move(version.value());
  f.xrt_detail = std::move(detail.value());
  return f;
}

Result<OpenClFacts> OpenClFromJson(const Json& answer) {
  auto xilinx = Bool(answer, "xilinx");
  if (!xilinx.ok()) return xilinx.status();
  auto detail = Str(answer, "detail");
  if (!detail.ok()) return detail.status();
  return OpenClFacts{*xilinx, std::move(detail.value())};
}

Result<std::vector<XrtCardInfo>> EmulatedFromJson(const Json& answer) {
  auto devices = Arr(answer, "devices");
  if (!devices.ok()) return devices.status();
  std::vector<XrtCardInfo> out;
  for (const Json& d : **devices) {
    auto card = CardFromJson(d);
    if (!card.ok()) return card.status().WithContext("devices[" + std::to_string(out.size()) + "]");
    out.push_back(std::move(card.value()));
  }
  return out;
}

Result<std::vector<Result<XrtCardInfo>>> CardsFromJson(const Json& answer,
                                                       const std::vector<std::string>& bdfs) {
  auto cards = Arr(answer, "cards");
  if (!cards.ok()) return cards.status();
  if ((*cards)->size() != bdfs.size()) {
    return InvalidArgument("answer lists " + std::to_string((*cards)->size()) + " cards, " +
                           std::to_string(bdfs.size()) + " were asked for");
  }
  std::vector<Result<XrtCardInfo>> out;
  for (size_t i = 0; i < bdfs.size(); ++i) {
    const Json& entry = (**cards)[i];
    const std::string where = "cards[" + std::to_string(i) + "]";
    if (!entry.is_object()) return WrongType(where, "object", entry);
    auto bdf = Str(entry, "bdf");
    if (!bdf.ok()) return bdf.status().WithContext(where);
    if (*bdf != bdfs[i]) return InvalidArgument(where + " is card " + *bdf + ", expected " + bdfs[i]);
    if (auto err = entry.find("error"); err != entry.end()) {
      if (!err->is_string()) return WrongType("error", "string", *err).WithContext(where);
      out.emplace_back(Unavailable("card " + bdfs[i] + ": " + err->get<std::string>()));
      continue;
    }
    auto info = entry.find("info");
    if (info == entry.end()) return InvalidArgument(where + ": neither \"info\" nor \"error\"");
    auto card = CardFromJson(*info);
    if (!card.ok()) return card.status().WithContext(where);
    out.emplace_back(std::move(card.value()));
  }
  return out;
}

Result<std::string> LibDirFromJson(const Json& answer) { return Str(answer, "coreutil_dir"); }

}  // namespace hyperaccel::hw::wire
