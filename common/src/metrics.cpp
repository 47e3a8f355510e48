#include "hyperaccel/common/metrics.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>

namespace hyperaccel::metrics {
namespace {

std::string EscapeLabel(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

void Header(std::string& out, const std::string& name, const std::string& help, const char* type) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string Family::LabelString(const LabelValues& values, const std::string& extra) const {
  std::string out;
  for (size_t i = 0; i < label_names_.size() && i < values.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += label_names_[i] + "=\"" + EscapeLabel(values[i]) + "\"";
  }
  if (!extra.empty()) out += (out.empty() ? "{" : ",") + extra;
  if (!out.empty()) out += "}";
  return out;
}

void Counter::Inc(const LabelValues& labels, double by) {
  std::lock_guard<std::mutex> lock(mu_);
  values_[labels] += by;
}

double Counter::Value(const LabelValues& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0.0 : it->second;
}

void Counter::Render(std::string& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  Header(out, name_, help_, "counter");
  if (values_.empty() && label_names_.empty()) out += name_ + " 0\n";
  for (const auto& [labels, v] : values_) out += name_ + LabelString(labels) + " " + FormatValue(v) + "\n";
}

void Gauge::Set(const LabelValues& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  values_[labels] = value;
}

double Gauge::Value(const LabelValues& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = values_.find(labels);
  return it == values_.end() ? 0.0 : it->second;
}

void Gauge::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  values_.clear();
}

void Gauge::Render(std::string& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  Header(out, name_, help_, "gauge");
  if (values_.empty() && label_names_.empty()) out += name_ + " 0\n";
  for (const auto& [labels, v] : values_) out += name_ + LabelString(labels) + " " + FormatValue(v) + "\n";
}

Histogram::Histogram(std::string name, std::string help, std::vector<std::string> label_names,
                     std::vector<double> bounds)
    : Family(std::move(name), std::move(help), std::move(label_names)), bounds_(std::move(bounds)) {}

void Histogram::Observe(const LabelValues& labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = series_[labels];
  if (s.buckets.empty()) s.buckets.assign(bounds_.size() + 1, 0);
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  s.buckets[i]++;
  s.sum += value;
  s.count++;
}

uint64_t Histogram::Count(const LabelValues& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(labels);
  return it == series_.end() ? 0 : it->second.count;
}

void Histogram::Render(std::string& out) const {
  std::lock_guard<std::mutex> lock(mu_);
  Header(out, name_, help_, "histogram");
  for (const auto& [labels, s] : series_) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += s.buckets[i];
      std::string le = "le=\"" + (i < bounds_.size() ? FormatValue(bounds_[i]) : std::string("+Inf")) + "\"";
      out += name_ + "_bucket" + LabelString(labels, le) + " " + std::to_string(cumulative) + "\n";
    }
    out += name_ + "_sum" + LabelString(labels) + " " + FormatValue(s.sum) + "\n";
    out += name_ + "_count" + LabelString(labels) + " " + std::to_string(s.count) + "\n";
  }
}

std::vector<double> Histogram::LatencyBuckets() {
  return {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3,
          1e-2, 2.5e-2, 5e-2, 0.1,  0.25,   0.5,  1,    2.5,    10};
}

Counter& Registry::AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> labels) {
  std::lock_guard<std::mutex> lock(mu_);
  families_.push_back(std::make_unique<Counter>(name, help, std::move(labels)));
  return static_cast<Counter&>(*families_.back());
}

Gauge& Registry::AddGauge(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  std::lock_guard<std::mutex> lock(mu_);
  families_.push_back(std::make_unique<Gauge>(name, help, std::move(labels)));
  return static_cast<Gauge&>(*families_.back());
}

Histogram& Registry::AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels, std::vector<double> bounds) {
  std::lock_guard<std::mutex> lock(mu_);
  families_.push_back(std::make_unique<Histogram>(name, help, std::move(labels), std::move(bounds)));
  return static_cast<Histogram&>(*families_.back());
}

Family& Registry::Add(std::unique_ptr<Family> family) {
  std::lock_guard<std::mutex> lock(mu_);
  families_.push_back(std::move(family));
  return *families_.back();
}

std::string Registry::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& f : families_) f->Render(out);
  return out;
}

uint64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

namespace {
// A gauge whose value is read when rendered.
class ResidentGauge : public Family {
 public:
  ResidentGauge() : Family("process_resident_memory_bytes", "Resident memory size in bytes.", {}) {}
  void Render(std::string& out) const override {
    Header(out, name_, help_, "gauge");
    out += name_ + " " + std::to_string(ResidentBytes()) + "\n";
  }
};
}  // namespace

void AddProcessMetrics(Registry& registry) {
  auto& start = registry.AddGauge("process_start_time_seconds", "Start time of the process since the epoch.");
  start.Set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  registry.Add(std::make_unique<ResidentGauge>());
}

}  // namespace hyperaccel::metrics
