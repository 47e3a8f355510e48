// Prometheus metrics (text exposition format 0.0.4), thread-safe, no dependencies.
//
//   Registry reg;
//   auto& calls = reg.AddCounter("hyperaccel_allocations_total", "Allocate calls", {"result"});
//   calls.Inc({"ok"});
//   auto& lat = reg.AddHistogram("hyperaccel_allocate_seconds", "Allocate latency", {},
//                                Histogram::LatencyBuckets());
//   lat.Observe({}, 0.0003);
//   std::string body = reg.Render();
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace hyperaccel::metrics {

using LabelValues = std::vector<std::string>;

class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}
  virtual ~Family() = default;
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;
  virtual void Render(std::string& out) const = 0;
  const std::string& name() const { return name_; }

 protected:
  // `{a="x",b="y"}` (empty string when there are no labels); `extra` is appended (e.g. le="0.1").
  std::string LabelString(const LabelValues& values, const std::string& extra = "") const;
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
};

// A monotonically increasing value per label set.
class Counter : public Family {
 public:
  using Family::Family;
  void Inc(const LabelValues& labels = {}, double by = 1.0);
  double Value(const LabelValues& labels = {}) const;
  void Render(std::string& out) const override;

 private:
  mutable std::mutex mu_;
  std::map<LabelValues, double> values_;
};

// A value that goes up and down per label set.
class Gauge : public Family {
 public:
  using Family::Family;
  void Set(const LabelValues& labels, double value);
  void Set(double value) { Set({}, value); }
  double Value(const LabelValues& labels = {}) const;
  // Removes every label set (for per-card gauges when cards change).
  void Clear();
  void Render(std::string& out) const override;

 private:
  mutable std::mutex mu_;
  std::map<LabelValues, double> values_;
};

// Cumulative buckets, sum and count per label set.
class Histogram : public Family {
 public:
  Histogram(std::string name, std::string help, std::vector<std::string> label_names,
            std::vector<double> bounds);
  void Observe(const LabelValues& labels, double value);
  uint64_t Count(const LabelValues& labels = {}) const;
  void Render(std::string& out) const override;
  // 10 µs .. 10 s, roughly ×2.5 apart.
  static std::vector<double> LatencyBuckets();

 private:
  struct Series {
    std::vector<uint64_t> buckets;  // non-cumulative per bound, +Inf last
    double sum = 0;
    uint64_t count = 0;
  };
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<LabelValues, Series> series_;
};

class Registry {
 public:
  Counter& AddCounter(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  Gauge& AddGauge(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  Histogram& AddHistogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                          std::vector<double> bounds);
  // Adds a family of any kind (for custom collectors rendered on demand).
  Family& Add(std::unique_ptr<Family> family);
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Family>> families_;
};

// Process metrics every daemon exports: resident memory and start time.
void AddProcessMetrics(Registry& registry);
// Resident set size of this process in bytes (from /proc/self/statm), 0 when unknown.
uint64_t ResidentBytes();

}  // namespace hyperaccel::metrics
