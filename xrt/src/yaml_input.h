// Private helpers for the YAML inputs of this library (cabling file, register map): bounded,
// exception-free loading and messages that name the source and line. The register map is read
// into a YAML::Node tree; the cabling file, which can be large, is read from the parser's events
// (cabling.cpp), so the field checks below also exist for a bare value (ScalarValue).
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "hyperaccel/common/status.h"

namespace hyperaccel::hw::yaml_input {

// "<source>:<line>: " (or "<source>: " when line is 0).
std::string Where(std::string_view source, int line);

// 1-based line of a node, 0 when unknown.
int LineOf(const YAML::Node& node);

// Reads a whole file of at most `max_bytes`. NotFound when it does not exist, Unavailable when
// it cannot be read, InvalidArgument when it is larger.
Result<std::string> ReadFile(const std::string& path, size_t max_bytes);

// The checks Load makes before parsing: InvalidArgument "<source>: larger than N bytes" or
// "<source>: line L: nested deeper than D levels" / "indented too deep", OK otherwise.
Status Precheck(std::string_view text, std::string_view source, size_t max_bytes, int max_depth);

// A parser exception as an InvalidArgument "<source>:<line>: malformed YAML: <what> (column N)".
Status MalformedYaml(const YAML::Exception& e, std::string_view source);

// 1-based line of a mark, 0 when unknown.
int LineOfMark(const YAML::Mark& mark);

// Parses one YAML document. Input larger than `max_bytes` or nested deeper than `max_depth` is
// rejected before the (recursive) parser sees it; every exception becomes an InvalidArgument
// "<source>:<line>: malformed YAML: <what> (column N)".
Result<YAML::Node> Load(std::string_view text, std::string_view source, size_t max_bytes, int max_depth);

// A short human description of a node for messages: "'abc'", "a mapping", "nothing".
std::string Describe(const YAML::Node& node);

// What the field checks need to know of a node: its kind, whether a scalar is plain (untagged,
// unquoted: tag "?") and a scalar's text.
struct ScalarValue {
  YAML::NodeType::value type = YAML::NodeType::Null;
  bool plain = false;
  std::string_view text;
};
ScalarValue ValueOf(const YAML::Node& node);

// Describe for a ScalarValue.
std::string Describe(const ScalarValue& value);

// A plain (unquoted) decimal integer, or 0x-prefixed hex when `allow_hex`, in [0, max]. Returns
// the problem ("'port' must be an integer, got '-1'", "port 3 out of range (0..1)"), empty when
// the value is good (then *out is set).
std::string UintProblem(const ScalarValue& value, std::string_view field, uint64_t max, bool allow_hex,
                        uint64_t* out);

// A non-empty string of letters, digits, '.', '_' and '-', at most `max_length` long. Returns the
// problem, empty when the value is good (then *out is set).
std::string NameProblem(const ScalarValue& value, std::string_view field, size_t max_length,
                        std::string* out);

// Field access with errors naming `source` and the node's line.
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  Status Error(const YAML::Node& at, const std::string& what) const {
    return InvalidArgument(Where(source_, LineOf(at)) + what);
  }

  // Calls fn(key, value) for each entry of `map`; keys must be distinct strings.
  template <typename Fn>
  Status ForEachKey(const YAML::Node& map, Fn&& fn) const {
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const YAML::Node key = it->first;
      if (!key.IsScalar()) return Error(key, "mapping keys must be strings, got " + Describe(key));
      if (!seen.insert(key.Scalar()).second) return Error(key, "duplicate key '" + key.Scalar() + "'");
      Status s = fn(key.Scalar(), it->second);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }

  // A plain (unquoted) decimal integer, or 0x-prefixed hex when `allow_hex`, in [0, max].
  Status ReadUint(const YAML::Node& value, std::string_view field, uint64_t max, bool allow_hex,
                  uint64_t* out) const;

  // A non-empty string of letters, digits, '.', '_' and '-', at most `max_length` long.
  Status ReadName(const YAML::Node& value, std::string_view field, size_t max_length, std::string* out) const;

  std::string_view source() const { return source_; }

 private:
  std::string_view source_;
};

}  // namespace hyperaccel::hw::yaml_input
