// Checks a CDI spec the way the CDI JSON schema (schema/schema.json of the spec) and the CDI
// loader do, written from the spec text: required fields and their types, the cdiVersion pattern
// and the versions the features need, the kind and device name patterns, absolute paths, the
// fields of deviceNodes, mounts and hooks, no unknown fields, non-empty device edits.
#pragma once

#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace hyperaccel::dra::testing {

class CdiSchemaChecker {
 public:
  // Every violation, one message each; empty when the spec is valid.
  std::vector<std::string> Check(const nlohmann::json& spec) {
    errors_.clear();
    highest_needed_ = "0.3.0";
    if (!spec.is_object()) {
      Error("", "spec is not an object");
      return errors_;
    }
    Keys(spec, "", {"cdiVersion", "kind", "devices", "containerEdits", "annotations"});
    std::string version;
    if (!spec.contains("cdiVersion") || !spec["cdiVersion"].is_string()) {
      Error("cdiVersion", "required string");
    } else {
      version = spec["cdiVersion"].get<std::string>();
      static const std::regex kSemver(R"(^[0-9]+\.[0-9]+\.[0-9]+$)");
      static const std::set<std::string> kKnown = {"0.3.0", "0.4.0", "0.5.0", "0.6.0",
                                                   "0.7.0", "0.8.0", "1.0.0", "1.1.0"};
      if (!std::regex_match(version, kSemver)) Error("cdiVersion", "not a semantic version: " + version);
      if (kKnown.count(version) == 0) Error("cdiVersion", "not a released CDI version: " + version);
    }
    if (!spec.contains("kind") || !spec["kind"].is_string()) {
      Error("kind", "required string");
    } else {
      const std::string kind = spec["kind"].get<std::string>();
      static const std::regex kKind(R"(^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$)");
      if (!std::regex_match(kind, kKind)) Error("kind", "does not match vendor/class: " + kind);
      if (!kind.empty() && !std::isalnum(static_cast<unsigned char>(kind.back())))
        Error("kind", "class must end alphanumeric");
      const auto slash = kind.find('/');
      if (slash != std::string::npos && kind.substr(slash + 1).find('.') != std::string::npos)
        Need(version, "0.6.0", "a dot in the class");
    }
    if (!spec.contains("devices") || !spec["devices"].is_array() || spec["devices"].empty()) {
      Error("devices", "required non-empty list");
    } else {
      std::set<std::string> names;
      for (size_t i = 0; i < spec["devices"].size(); ++i) {
        const auto& d = spec["devices"][i];
        const std::string where = "devices[" + std::to_string(i) + "]";
        if (!d.is_object()) {
          Error(where, "not an object");
          continue;
        }
        Keys(d, where, {"name", "annotations", "containerEdits"});
        if (!d.contains("name") || !d["name"].is_string()) {
          Error(where + ".name", "required string");
        } else {
          const std::string name = d["name"].get<std::string>();
          static const std::regex kName(R"(^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$)");
          if (!std::regex_match(name, kName)) Error(where + ".name", "invalid device name: " + name);
          if (!names.insert(name).second) Error(where + ".name", "duplicate device name: " + name);
          if (!name.empty() && !std::isalpha(static_cast<unsigned char>(name[0])))
            Need(version, "0.5.0", "a device name starting with a digit");
        }
        if (!d.contains("containerEdits") || !d["containerEdits"].is_object() ||
            d["containerEdits"].empty()) {
          Error(where + ".containerEdits", "required, and must not be empty");
        } else {
          Edits(d["containerEdits"], where + ".containerEdits", version);
        }
      }
    }
    if (spec.contains("containerEdits")) Edits(spec["containerEdits"], "containerEdits", version);
    return errors_;
  }

 private:
  void Error(const std::string& where, const std::string& what) {
    errors_.push_back((where.empty() ? "" : where + ": ") + what);
  }
  void Keys(const nlohmann::json& o, const std::string& where, const std::set<std::string>& allowed) {
    for (auto it = o.begin(); it != o.end(); ++it) {
      if (allowed.count(it.key()) == 0) Error(where, "unknown field \"" + it.key() + "\"");
    }
  }
  static int Cmp(const std::string& a, const std::string& b) {
    int x[3] = {0, 0, 0};
    int y[3] = {0, 0, 0};
    std::sscanf(a.c_str(), "%d.%d.%d", &x[0], &x[1], &x[2]);  // NOLINT(cert-err34-c)
    std::sscanf(b.c_str(), "%d.%d.%d", &y[0], &y[1], &y[2]);  // NOLINT(cert-err34-c)
    for (int i = 0; i < 3; ++i) {
      if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    }
    return 0;
  }
  void Need(const std::string& version, const std::string& want, const std::string& feature) {
    if (!version.empty() && Cmp(version, want) < 0) Error("cdiVersion", feature + " needs " + want);
    if (Cmp(want, highest_needed_) > 0) highest_needed_ = want;
  }
  static bool Absolute(const nlohmann::json& v) {
    return v.is_string() && !v.get<std::string>().empty() && v.get<std::string>().front() == '/';
  }
  void Edits(const nlohmann::json& e, const std::string& where, const std::string& version) {
    if (!e.is_object()) {
      Error(where, "not an object");
      return;
    }
    Keys(e, where, {"env", "deviceNodes", "hooks", "mounts", "intelRdt", "additionalGids", "netDevices"});
    if (e.contains("env")) {
      if (!e["env"].is_array()) Error(where + ".env", "not a list");
      for (const auto& v : e["env"]) {
        if (!v.is_string() || v.get<std::string>().find('=') == std::string::npos ||
            v.get<std::string>().front() == '=')
          Error(where + ".env", "entry is not KEY=VALUE: " + v.dump());
      }
    }
    if (e.contains("deviceNodes")) {
      if (!e["deviceNodes"].is_array()) Error(where + ".deviceNodes", "not a list");
      for (const auto& n : e["deviceNodes"]) {
        if (!n.is_object()) {
          Error(where + ".deviceNodes", "entry not an object");
          continue;
        }
        Keys(n, where + ".deviceNodes",
             {"path", "hostPath", "type", "major", "minor", "fileMode", "permissions", "uid", "gid"});
        if (!Absolute(n.value("path", nlohmann::json())))
          Error(where + ".deviceNodes.path", "required absolute path");
        if (n.contains("hostPath")) {
          if (!Absolute(n["hostPath"])) Error(where + ".deviceNodes.hostPath", "must be an absolute path");
          Need(version, "0.5.0", "deviceNodes.hostPath");
        }
        if (n.contains("type") &&
            (!n["type"].is_string() ||
             std::string("bcup").find(n["type"].get<std::string>()) == std::string::npos))
          Error(where + ".deviceNodes.type", "must be one of b, c, u, p");
        if (n.contains("permissions")) {
          if (!n["permissions"].is_string())
            Error(where + ".deviceNodes.permissions", "not a string");
          else if (n["permissions"].get<std::string>().find_first_not_of("rwm") != std::string::npos)
            Error(where + ".deviceNodes.permissions", "only r, w and m are allowed");
        }
        for (const char* k : {"major", "minor", "uid", "gid", "fileMode"}) {
          if (n.contains(k) && !n[k].is_number_integer())
            Error(where + ".deviceNodes." + k, "not an integer");
        }
      }
    }
    if (e.contains("mounts")) {
      if (!e["mounts"].is_array()) Error(where + ".mounts", "not a list");
      for (const auto& m : e["mounts"]) {
        if (!m.is_object()) {
          Error(where + ".mounts", "entry not an object");
          continue;
        }
        Keys(m, where + ".mounts", {"hostPath", "containerPath", "type", "options"});
        if (!m.contains("hostPath") || !m["hostPath"].is_string())
          Error(where + ".mounts.hostPath", "required string");
        if (!Absolute(m.value("containerPath", nlohmann::json())))
          Error(where + ".mounts.containerPath", "required absolute path");
        if (m.contains("type")) {
          if (!m["type"].is_string()) Error(where + ".mounts.type", "not a string");
          Need(version, "0.4.0", "mounts.type");
        }
        if (m.contains("options")) {
          if (!m["options"].is_array()) Error(where + ".mounts.options", "not a list");
          for (const auto& o : m["options"]) {
            if (!o.is_string()) Error(where + ".mounts.options", "entry not a string");
          }
        }
      }
    }
    if (e.contains("hooks")) {
      if (!e["hooks"].is_array()) Error(where + ".hooks", "not a list");
      for (const auto& h : e["hooks"]) {
        if (!h.is_object() || !h.contains("hookName") || !h["hookName"].is_string() ||
            !Absolute(h.value("path", nlohmann::json())))
          Error(where + ".hooks", "entry needs hookName and an absolute path");
      }
    }
  }

  std::vector<std::string> errors_;
  std::string highest_needed_ = "0.3.0";

 public:
  // The highest version a feature of the last checked spec needs (so a test can check the spec
  // declares exactly the minimum).
  const std::string& highest_needed() const { return highest_needed_; }
};

}  // namespace hyperaccel::dra::testing
