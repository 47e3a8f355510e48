// A minimal PromQL reader for tests: the metric names an expression selects, and a syntax check
// (balanced brackets, label matchers, known functions and operators). Not a full parser: it is
// enough to prove that dashboards and alerts use only metrics the daemons export.
#pragma once

#include <set>
#include <string>
#include <string_view>

#include "hyperaccel/common/status.h"

namespace hyperaccel::testing {

// Metric names selected by `expr` (function, aggregation, keyword and label names are not
// metrics). Grafana variables ($node, $__rate_interval) are accepted where PromQL puts durations
// or label values. Errors name what is wrong ("unknown function ratee", "unbalanced ')'").
Result<std::set<std::string>> MetricNames(std::string_view expr);

}  // namespace hyperaccel::testing
