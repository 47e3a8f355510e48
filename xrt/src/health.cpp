#include "hyperaccel/xrt/health.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <utility>

#include "hyperaccel/common/log.h"

namespace hyperaccel::hw {
namespace {

constexpr const char* kVanished = "card vanished (reset or hot-unplug?)";

// "101" for whole numbers, "101.5" otherwise.
std::string FormatTemp(double v) {
  char buf[32];
  if (std::nearbyint(v) == v && std::fabs(v) < 1e9) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f", v);
  }
  return buf;
}

void AddProblem(Card& card, const std::string& problem) {
  card.health = Health::kUnhealthy;
  card.health_reason = card.health_reason.empty() ? problem : card.health_reason + "; " + problem;
}

// One line when the health flips or the cause changes (not for each recovery probe).
void LogChange(const Card& before, const Card& after) {
  if (before.health == after.health && before.health_reason == after.health_reason) return;
  if (before.health == after.health && after.health_reason.rfind("recovering: ", 0) == 0) return;
  if (after.health == Health::kHealthy) {
    HA_LOG(kInfo, "card healthy").kv("card", after.id).kv("serial", after.serial);
  } else {
    HA_LOG(kWarn, "card unhealthy")
        .kv("card", after.id)
        .kv("serial", after.serial)
        .kv("reason", after.health_reason);
  }
}

}  // namespace

HealthTracker::HealthTracker(HealthOptions options, Clock clock)
    : options_(options), clock_(std::move(clock)) {
  if (options_.recovery_probes < 1) options_.recovery_probes = 1;
}

void HealthTracker::ApplyTemperatureLimit(Card& card) const {
  for (const std::string& bad : card.sensors.bad_readings) AddProblem(card, "bad sensor reading: " + bad);
  // Colder than absolute zero or not a number: the sensor is broken, and a broken sensor cannot
  // vouch for the card (an overheating card could hide behind it).
  constexpr double kAbsoluteZeroC = -273.15;
  const auto check = [&](const std::optional<double>& t, const char* what) {
    if (t && (!std::isfinite(*t) || *t < kAbsoluteZeroC)) {
      AddProblem(card, "bad sensor reading: " + std::string(what) + " temperature " + FormatTemp(*t) +
                           " \xC2\xB0"
                           "C out of range");
    } else if (t && *t > options_.max_temp_c) {
      AddProblem(card, std::string(what) + " temperature " + FormatTemp(*t) +
                           " \xC2\xB0"
                           "C over limit " +
                           FormatTemp(options_.max_temp_c) +
                           " \xC2\xB0"
                           "C");
    }
  };
  check(card.sensors.fpga_temp_c, "fpga");
  check(card.sensors.hbm_temp_c, "hbm");
}

std::vector<Card> HealthTracker::Update(std::vector<Card> scanned) {
  const auto now = clock_();
  std::vector<Card> out;
  out.reserve(std::max(scanned.size(), states_.size()));
  std::set<std::string> seen;

  for (Card& card : scanned) {
    if (!seen.insert(card.id).second) continue;  // duplicate id in one scan: keep the first
    ApplyTemperatureLimit(card);
    const auto [it, is_new] = states_.try_emplace(card.id);
    State& st = it->second;
    const Card before = is_new ? card : st.last;
    st.vanished = false;
    if (card.health == Health::kUnhealthy) {
      st.recovering = true;
      st.good_probes = 0;
      st.bad_reason = card.health_reason;
    } else if (st.recovering) {
      if (++st.good_probes >= options_.recovery_probes) {
        st.recovering = false;
        st.good_probes = 0;
      } else {
        card.health = Health::kUnhealthy;
        card.health_reason = "recovering: " + std::to_string(st.good_probes) + "/" +
                             std::to_string(options_.recovery_probes) +
                             " good probes after: " + st.bad_reason;
      }
    }
    if (!is_new || card.health == Health::kUnhealthy) LogChange(before, card);
    st.last = card;
    out.push_back(std::move(card));
  }

  for (auto it = states_.begin(); it != states_.end();) {
    State& st = it->second;
    if (seen.count(it->first) != 0) {
      ++it;
      continue;
    }
    if (!st.vanished) {
      st.vanished = true;
      st.vanished_at = now;
    }
    if (now - st.vanished_at >= options_.vanish_grace) {
      HA_LOG(kWarn, "card dropped").kv("card", it->first).kv("reason", "missing for the whole grace period");
      it = states_.erase(it);
      continue;
    }
    Card card = st.last;
    card.health = Health::kUnhealthy;
    card.health_reason = kVanished;
    st.recovering = true;
    st.good_probes = 0;
    st.bad_reason = kVanished;
    LogChange(st.last, card);
    st.last = card;
    out.push_back(std::move(card));
    ++it;
  }

  std::sort(out.begin(), out.end(), [](const Card& a, const Card& b) { return a.id < b.id; });
  return out;
}

}  // namespace hyperaccel::hw
