// ParseXrtSensors: XRT's thermal and electrical JSON reports -> Sensors. Pure; compiled into both
// hyperaccel::xrt (tests use it) and the helper hyperaccel-xrt-probe (which calls it on live reports).
#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "hyperaccel/common/json_fields.h"
#include "hyperaccel/xrt/xrt_probe.h"

namespace hyperaccel::hw {
namespace {

std::optional<double> ToDouble(const nlohmann::json& j) {
  try {
    if (j.is_number()) return j.get<double>();
    if (j.is_string()) {
      const std::string& s = j.get_ref<const std::string&>();
      size_t used = 0;
      double v = std::stod(s, &used);
      if (used == 0) return std::nullopt;
      return v;
    }
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

bool IsPresent(const nlohmann::json& entry) {
  auto it = entry.find("is_present");
  if (it == entry.end()) return false;
  if (it->is_boolean()) return it->get<bool>();
  return it->is_string() && it->get<std::string>() == "true";
}

}  // namespace

Sensors ParseXrtSensors(const std::string& thermal_json, const std::string& electrical_json) {
  Sensors s;
  auto thermal = nlohmann::json::parse(thermal_json, nullptr, false);
  if (thermal.is_object() && thermal.contains("thermals") && thermal["thermals"].is_array()) {
    for (const auto& t : thermal["thermals"]) {
      if (!t.is_object() || !IsPresent(t)) continue;
      auto temp = t.contains("temp_C") ? ToDouble(t["temp_C"]) : std::nullopt;
      std::string id = json_fields::String(t, "location_id");
      if (!temp) {
        // A number that does not fit a double is an overflowed reading, not a missing sensor.
        const char* name = id == "fpga0"      ? "fpga temperature"
                           : id == "fpga_hbm" ? "hbm temperature"
                                              : nullptr;
        if (name != nullptr && t.contains("temp_C") && t["temp_C"].is_string()) {
          const std::string& raw = t["temp_C"].get_ref<const std::string&>();
          if (!raw.empty() && (std::isdigit(static_cast<unsigned char>(raw[0])) != 0 || raw[0] == '-')) {
            s.bad_readings.push_back(std::string(name) + " reading out of range: \"" + raw.substr(0, 64) +
                                     "\"");
          }
        }
        continue;
      }
      if (id == "fpga0") {
        s.fpga_temp_c = temp;
      } else if (id == "fpga_hbm") {
        s.hbm_temp_c = temp;
      } else if (id.rfind("pcb_", 0) == 0) {
        if (!s.board_temp_c || *temp > *s.board_temp_c) s.board_temp_c = temp;
      } else if (id.rfind("cage_temp_", 0) == 0 && id.size() == 11 && id[10] >= '0' && id[10] <= '3') {
        size_t idx = static_cast<size_t>(id[10] - '0');
        if (s.cage_temp_c.size() <= idx) s.cage_temp_c.resize(idx + 1);
        s.cage_temp_c[idx] = temp;
      }
    }
  }
  auto electrical = nlohmann::json::parse(electrical_json, nullptr, false);
  if (electrical.is_object()) {
    if (electrical.contains("power_consumption_watts")) {
      auto p = ToDouble(electrical["power_consumption_watts"]);
      if (p && *p > 0) s.power_w = p;
    }
    if (electrical.contains("power_rails") && electrical["power_rails"].is_array()) {
      for (const auto& r : electrical["power_rails"]) {
        if (!r.is_object() || json_fields::String(r, "id") != "vccint" || !r.contains("voltage")) continue;
        const auto& v = r["voltage"];
        if (v.is_object() && IsPresent(v) && v.contains("volts")) s.vccint_v = ToDouble(v["volts"]);
      }
    }
  }
  return s;
}

}  // namespace hyperaccel::hw
