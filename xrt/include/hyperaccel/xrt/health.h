// Health over time: turns successive scans into the health the rest of the system sees.
// Deterministic (the clock is injected), no threads, no I/O besides one log line per change.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "hyperaccel/xrt/model.h"

namespace hyperaccel::hw {

struct HealthOptions {
  // A card whose FPGA or HBM temperature is above this is unhealthy.
  double max_temp_c = 95.0;
  // A card missing from a scan is reported unhealthy for this long, then dropped.
  std::chrono::steady_clock::duration vanish_grace = std::chrono::seconds(60);
  // A card that was unhealthy is reported healthy again after this many consecutive healthy scans
  // (values below 1 count as 1).
  int recovery_probes = 3;
};

class HealthTracker {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  explicit HealthTracker(HealthOptions options = {}, Clock clock = &std::chrono::steady_clock::now);

  // Takes one scan and returns the cards to report, sorted by id:
  //   - the temperature limit is applied ("fpga temperature 101 °C over limit 95 °C");
  //   - a bad reading (Sensors::bad_readings, or a temperature below absolute zero or not
  //     finite) makes the card unhealthy ("bad sensor reading: fpga temperature reading out of
  //     range: ..."), and it recovers like any unhealthy card;
  //   - a card that was unhealthy stays unhealthy until `recovery_probes` consecutive healthy
  //     scans ("recovering: 1/3 good probes after: not ready");
  //   - a card missing from the scan is kept as last seen, unhealthy ("card vanished (reset or
  //     hot-unplug?)"), for `vanish_grace`, then dropped; when it comes back within the grace
  //     period it must recover like any unhealthy card. A card seen for the first time is taken
  //     as scanned.
  std::vector<Card> Update(std::vector<Card> scanned);

 private:
  struct State {
    Card last;                // as last reported
    bool recovering = false;  // was unhealthy; counting good probes
    int good_probes = 0;
    std::string bad_reason;  // the last reason it was unhealthy
    bool vanished = false;
    std::chrono::steady_clock::time_point vanished_at;
  };

  void ApplyTemperatureLimit(Card& card) const;

  HealthOptions options_;
  Clock clock_;
  std::map<std::string, State> states_;  // by card id
};

}  // namespace hyperaccel::hw
