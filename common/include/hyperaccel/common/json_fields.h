// Type-checked field reads for JSON that comes from outside the process (API server objects,
// request bodies, tool output). nlohmann's `value(key, default)` throws type_error when the field
// exists with another type, or when the object is not an object at all; these never throw: a
// missing field, a field of another type and a non-object all give the fallback.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

namespace hyperaccel::json_fields {

using Json = nlohmann::json;

// The field, or nullptr when `o` is not an object or has no such key.
inline const Json* Find(const Json& o, std::string_view key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  return it == o.end() ? nullptr : &*it;
}

inline std::string String(const Json& o, std::string_view key, std::string fallback = {}) {
  const Json* v = Find(o, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : std::move(fallback);
}

inline bool Bool(const Json& o, std::string_view key, bool fallback = false) {
  const Json* v = Find(o, key);
  return v != nullptr && v->is_boolean() ? v->get<bool>() : fallback;
}

inline int64_t Int(const Json& o, std::string_view key, int64_t fallback = 0) {
  const Json* v = Find(o, key);
  return v != nullptr && v->is_number_integer() ? v->get<int64_t>() : fallback;
}

// The field when it is an object, otherwise a shared empty object.
inline const Json& Object(const Json& o, std::string_view key) {
  static const Json kEmpty = Json::object();
  const Json* v = Find(o, key);
  return v != nullptr && v->is_object() ? *v : kEmpty;
}

// The field when it is an array, otherwise a shared empty array.
inline const Json& Array(const Json& o, std::string_view key) {
  static const Json kEmpty = Json::array();
  const Json* v = Find(o, key);
  return v != nullptr && v->is_array() ? *v : kEmpty;
}

// The field whatever its type, otherwise null.
inline const Json& Any(const Json& o, std::string_view key) {
  static const Json kNull;
  const Json* v = Find(o, key);
  return v != nullptr ? *v : kNull;
}

}  // namespace hyperaccel::json_fields
