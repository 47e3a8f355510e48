#include "promql.h"

#include <cctype>
#include <vector>

namespace hyperaccel::testing {
namespace {

const std::set<std::string, std::less<>> kFunctions = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "count_over_time", "day_of_month", "day_of_week", "days_in_month", "delta", "deriv", "exp",
    "floor", "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "last_over_time", "ln", "log10", "log2", "max_over_time", "min_over_time", "minute",
    "month", "predict_linear", "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort",
    "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "time", "timestamp",
    "vector", "year",
    // Grafana template functions used in variable queries
    "label_values"};
const std::set<std::string, std::less<>> kAggregations = {"sum",          "min",     "max",    "avg",
                                                          "group",        "stddev",  "stdvar", "count",
                                                          "count_values", "bottomk", "topk",   "quantile"};
// Keywords followed by a parenthesised list of label names.
const std::set<std::string, std::less<>> kGrouping = {"by",       "without",    "on",
                                                      "ignoring", "group_left", "group_right"};
const std::set<std::string, std::less<>> kKeywords = {"and", "or", "unless", "bool", "offset", "inf", "nan"};

bool IdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' || c == ':'; }
bool IdentChar(char c) { return IdentStart(c) || std::isdigit(static_cast<unsigned char>(c)) != 0; }

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])) != 0) ++i;
  return i;
}

// Skips a quoted string starting at s[i]; returns the index after the closing quote, or npos.
size_t SkipString(std::string_view s, size_t i) {
  const char q = s[i];
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == q) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// Label matchers "{a="x", b=~"y"}" starting at s[i] == '{'; returns the index after '}'.
Result<size_t> SkipMatchers(std::string_view s, size_t i) {
  ++i;
  for (;;) {
    i = SkipSpace(s, i);
    if (i < s.size() && s[i] == '}') return i + 1;
    if (i >= s.size() || !IdentStart(s[i]))
      return InvalidArgument("label matcher: expected a label name at " + std::to_string(i));
    while (i < s.size() && IdentChar(s[i])) ++i;
    i = SkipSpace(s, i);
    if (s.substr(i, 2) == "=~" || s.substr(i, 2) == "!~" || s.substr(i, 2) == "!=") {
      i += 2;
    } else if (i < s.size() && s[i] == '=') {
      ++i;
    } else {
      return InvalidArgument("label matcher: expected =, !=, =~ or !~ at " + std::to_string(i));
    }
    i = SkipSpace(s, i);
    if (i >= s.size() || (s[i] != '"' && s[i] != '\''))
      return InvalidArgument("label matcher: expected a quoted value");
    i = SkipString(s, i);
    if (i == std::string_view::npos) return InvalidArgument("label matcher: unterminated string");
    i = SkipSpace(s, i);
    if (i < s.size() && s[i] == ',') ++i;
  }
}

}  // namespace

Result<std::set<std::string>> MetricNames(std::string_view s) {
  std::set<std::string> names;
  std::vector<char> open;
  size_t i = 0;
  while ((i = SkipSpace(s, i)) < s.size()) {
    const char c = s[i];
    if (c == '"' || c == '\'') {
      i = SkipString(s, i);
      if (i == std::string_view::npos) return InvalidArgument("unterminated string");
    } else if (c == '{') {
      auto end = SkipMatchers(s, i);
      if (!end.ok()) return end.status();
      i = *end;
    } else if (c == '[') {  // range or subquery: durations and Grafana variables only
      const size_t close = s.find(']', i);
      if (close == std::string_view::npos) return InvalidArgument("unbalanced '['");
      for (size_t k = i + 1; k < close; ++k) {
        if (!(std::isalnum(static_cast<unsigned char>(s[k])) != 0 || s[k] == '$' || s[k] == '_' ||
              s[k] == ':')) {
          return InvalidArgument("range: unexpected '" + std::string(1, s[k]) + "'");
        }
      }
      i = close + 1;
    } else if (c == '(') {
      open.push_back(c);
      ++i;
    } else if (c == ')') {
      if (open.empty()) return InvalidArgument("unbalanced ')'");
      open.pop_back();
      ++i;
    } else if (c == '$') {  // Grafana variable outside a range (e.g. a threshold)
      ++i;
      while (i < s.size() && IdentChar(s[i])) ++i;
    } else if (std::isdigit(static_cast<unsigned char>(c)) != 0 ||
               (c == '.' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])) != 0)) {
      // Number or duration (5m, 1e-3, 0.99).
      ++i;
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) != 0 || s[i] == '.' ||
                              ((s[i] == '-' || s[i] == '+') && (s[i - 1] == 'e' || s[i - 1] == 'E')))) {
        ++i;
      }
    } else if (IdentStart(c)) {
      const size_t start = i;
      while (i < s.size() && IdentChar(s[i])) ++i;
      const std::string word(s.substr(start, i - start));
      const size_t next = SkipSpace(s, i);
      const bool call = next < s.size() && s[next] == '(';
      if (kGrouping.count(word) != 0) {
        if (!call) return InvalidArgument(word + ": expected a list of labels");
        const size_t close = s.find(')', next);
        if (close == std::string_view::npos) return InvalidArgument("unbalanced '(' after " + word);
        i = close + 1;
      } else if (kAggregations.count(word) != 0 || kFunctions.count(word) != 0) {
        if (!call && kAggregations.count(word) == 0)
          return InvalidArgument(word + ": a function needs arguments");
        // An aggregation may carry its grouping before the arguments: handled on the next word.
      } else if (kKeywords.count(word) != 0) {
        // operators and modifiers
      } else if (call) {
        return InvalidArgument("unknown function " + word);
      } else {
        names.insert(word);
      }
    } else if (std::string_view("+-*/%^=!<>,").find(c) != std::string_view::npos) {
      ++i;
    } else {
      return InvalidArgument("unexpected '" + std::string(1, c) + "' at " + std::to_string(i));
    }
  }
  if (!open.empty()) return InvalidArgument("unbalanced '('");
  return names;
}

}  // namespace hyperaccel::testing
