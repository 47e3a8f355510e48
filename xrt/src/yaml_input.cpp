#include "yaml_input.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <exception>
#include <system_error>
#include <utility>

namespace hyperaccel::hw::yaml_input {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

// A cheap over-approximation of the nesting depth of a YAML text, so that hostile input never
// reaches the recursive parser: flow brackets outside quoted scalars and comments, plus the
// width of each line's indentation prefix (blanks and the block indicators '-', '?', ':').
// Where this scan and YAML disagree (quotes inside block scalars), yaml-cpp's own recursion
// limit stays behind it. Returns a message, empty when the text is acceptable.
std::string DepthProblem(std::string_view text, int max_depth) {
  int flow = 0;
  int line = 1;
  int prefix = 0;
  bool line_start = true;
  char prev = '\n';
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
      line_start = true;
      prefix = 0;
      prev = c;
      ++i;
      continue;
    }
    if (line_start) {
      if (c == ' ' || c == '\t' || c == '-' || c == '?' || c == ':') {
        if (++prefix > 4 * max_depth) return "line " + std::to_string(line) + ": indented too deep";
        prev = c;
        ++i;
        continue;
      }
      line_start = false;
    }
    const bool token_start = prev == ' ' || prev == '\t' || prev == '\n' || prev == '[' || prev == '{' ||
                             prev == ',' || prev == ':' || prev == '-' || prev == '?';
    if (c == '#' && token_start) {
      while (i < text.size() && text[i] != '\n') ++i;
      continue;
    }
    if ((c == '"' || c == '\'') && token_start) {
      for (++i; i < text.size() && text[i] != c; ++i) {
        if (c == '"' && text[i] == '\\' && i + 1 < text.size()) ++i;
        if (text[i] == '\n') ++line;
      }
      prev = c;
      ++i;  // past the closing quote
      continue;
    }
    if (c == '[' || c == '{') {
      if (++flow > max_depth) {
        return "line " + std::to_string(line) + ": nested deeper than " + std::to_string(max_depth) +
               " levels";
      }
    } else if ((c == ']' || c == '}') && flow > 0) {
      --flow;
    }
    prev = c;
    ++i;
  }
  return {};
}

}  // namespace

std::string Where(std::string_view source, int line) {
  std::string out(source);
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  return out;
}

int LineOfMark(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.line + 1; }

int LineOf(const YAML::Node& node) { return LineOfMark(node.Mark()); }

Result<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int err = errno;
    std::string message = path + ": cannot open: " + std::error_code(err, std::generic_category()).message();
    if (err == ENOENT) return NotFound(std::move(message));
    return Unavailable(std::move(message));
  }
  std::string text;
  char buf[16 * 1024];
  size_t n = 0;
  bool too_large = false;
  while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) {
    text.append(buf, n);
    if (text.size() > max_bytes) {
      too_large = true;
      break;
    }
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (too_large) return InvalidArgument(path + ": larger than " + std::to_string(max_bytes) + " bytes");
  if (failed) return Unavailable(path + ": read error");
  return text;
}

Status Precheck(std::string_view text, std::string_view source, size_t max_bytes, int max_depth) {
  if (text.size() > max_bytes) {
    return InvalidArgument(Where(source, 0) + "larger than " + std::to_string(max_bytes) + " bytes");
  }
  if (std::string problem = DepthProblem(text, max_depth); !problem.empty()) {
    return InvalidArgument(Where(source, 0) + problem);
  }
  return Status::Ok();
}

Status MalformedYaml(const YAML::Exception& e, std::string_view source) {
  std::string message = Where(source, LineOfMark(e.mark)) + "malformed YAML: " + e.msg;
  if (!e.mark.is_null()) message += " (column " + std::to_string(e.mark.column + 1) + ")";
  return InvalidArgument(std::move(message));
}

Result<YAML::Node> Load(std::string_view text, std::string_view source, size_t max_bytes, int max_depth) {
  if (Status s = Precheck(text, source, max_bytes, max_depth); !s.ok()) return s;
  // yaml-cpp throws on malformed input; nothing may escape this library.
  try {
    return YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return MalformedYaml(e, source);
  } catch (const std::exception& e) {
    return InvalidArgument(Where(source, 0) + "cannot parse: " + e.what());
  } catch (...) {
    return Internal(Where(source, 0) + "cannot parse: unknown error");
  }
}

ScalarValue ValueOf(const YAML::Node& node) {
  ScalarValue value;
  value.type = node.Type();
  if (node.IsScalar()) {
    value.plain = node.Tag() == "?";
    value.text = node.Scalar();
  }
  return value;
}

std::string Describe(const ScalarValue& value) {
  switch (value.type) {
    case YAML::NodeType::Sequence: return "a sequence";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Scalar:
      if (value.text.size() > 40) return "'" + std::string(value.text.substr(0, 40)) + "...'";
      return "'" + std::string(value.text) + "'";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

std::string Describe(const YAML::Node& node) { return Describe(ValueOf(node)); }

std::string UintProblem(const ScalarValue& value, std::string_view field, uint64_t max, bool allow_hex,
                        uint64_t* out) {
  const std::string kind = allow_hex ? "an integer (decimal or 0x hex)" : "an integer";
  // Only plain scalars: a quoted "1" is a string.
  if (value.type != YAML::NodeType::Scalar || !value.plain) {
    return "'" + std::string(field) + "' must be " + kind + ", got " + Describe(value);
  }
  std::string_view text = value.text;
  int base = 10;
  if (allow_hex && text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
    base = 16;
  }
  uint64_t number = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, number, base);
  if (text.empty() || ec == std::errc::invalid_argument || ptr != end) {
    return "'" + std::string(field) + "' must be " + kind + ", got " + Describe(value);
  }
  if (ec == std::errc::result_out_of_range || number > max) {
    return std::string(field) + " " + std::string(value.text) + " out of range (0.." + std::to_string(max) +
           ")";
  }
  *out = number;
  return {};
}

std::string NameProblem(const ScalarValue& value, std::string_view field, size_t max_length,
                        std::string* out) {
  const std::string quoted = "'" + std::string(field) + "'";
  if (value.type == YAML::NodeType::Null) return "empty " + quoted;
  if (value.type != YAML::NodeType::Scalar) return quoted + " must be a string, got " + Describe(value);
  if (value.text.empty()) return "empty " + quoted;
  if (value.text.size() > max_length) {
    return quoted + " longer than " + std::to_string(max_length) + " characters";
  }
  if (!std::all_of(value.text.begin(), value.text.end(), IsNameChar)) {
    return quoted + " " + Describe(value) + " may only hold letters, digits, '.', '_' and '-'";
  }
  out->assign(value.text);
  return {};
}

Status Reader::ReadUint(const YAML::Node& value, std::string_view field, uint64_t max, bool allow_hex,
                        uint64_t* out) const {
  std::string problem = UintProblem(ValueOf(value), field, max, allow_hex, out);
  return problem.empty() ? Status::Ok() : Error(value, problem);
}

Status Reader::ReadName(const YAML::Node& value, std::string_view field, size_t max_length,
                        std::string* out) const {
  std::string problem = NameProblem(ValueOf(value), field, max_length, out);
  return problem.empty() ? Status::Ok() : Error(value, problem);
}

}  // namespace hyperaccel::hw::yaml_input
