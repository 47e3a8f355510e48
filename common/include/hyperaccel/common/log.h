// One line per event, key=value, to stderr:
//   2026-11-25T10:00:00.123Z level=info component=device-plugin msg="registered" resource=hyperaccel.ai/fpga
// Usage: HA_LOG(kInfo, "registered").kv("resource", name);
#pragma once

#include <atomic>
#include <sstream>
#include <string>
#include <string_view>

namespace hyperaccel::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Process-wide settings; set once at start-up from flags.
void SetLevel(Level level);
Level GetLevel();
bool ParseLevel(std::string_view text, Level* out);
void SetComponent(std::string component);
// When true, lines are JSON objects instead of key=value.
void SetJson(bool json);

// Builds one log line and writes it atomically when destroyed.
class Line {
 public:
  Line(Level level, std::string_view msg);
  ~Line();
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;

  Line& kv(std::string_view key, std::string_view value);
  Line& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
  Line& kv(std::string_view key, const std::string& value) { return kv(key, std::string_view(value)); }
  Line& kv(std::string_view key, bool value) { return kv(key, value ? "true" : "false"); }
  template <typename T>
  Line& kv(std::string_view key, const T& value) {
    std::ostringstream os;
    os << value;
    return kv(key, std::string_view(os.str()));
  }

 private:
  bool enabled_;
  std::string buf_;
};

bool Enabled(Level level);

}  // namespace hyperaccel::log

#define HA_LOG(level, msg) ::hyperaccel::log::Line(::hyperaccel::log::Level::level, (msg))
