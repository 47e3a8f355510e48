#include "hyperaccel/common/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace hyperaccel::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<bool> g_json{false};
std::mutex g_component_mu;
std::string g_component;  // guarded by g_component_mu

std::string_view LevelName(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

bool NeedsQuotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

void AppendEscaped(std::string& out, std::string_view v) {
  for (char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += b;
        } else {
          out += c;
        }
    }
  }
}

void AppendPair(std::string& out, std::string_view key, std::string_view value) {
  if (g_json.load(std::memory_order_relaxed)) {
    out += ",\"";
    AppendEscaped(out, key);
    out += "\":\"";
    AppendEscaped(out, value);
    out += '"';
    return;
  }
  out += ' ';
  out += key;
  out += '=';
  if (NeedsQuotes(value)) {
    out += '"';
    AppendEscaped(out, value);
    out += '"';
  } else {
    out += value;
  }
}

std::string Timestamp() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

void SetLevel(Level level) { g_level.store(static_cast<int>(level)); }
Level GetLevel() { return static_cast<Level>(g_level.load()); }
bool Enabled(Level level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }
void SetJson(bool json) { g_json.store(json); }
void SetComponent(std::string component) {
  std::lock_guard<std::mutex> lock(g_component_mu);
  g_component = std::move(component);
}

bool ParseLevel(std::string_view text, Level* out) {
  if (text == "debug")
    *out = Level::kDebug;
  else if (text == "info")
    *out = Level::kInfo;
  else if (text == "warn" || text == "warning")
    *out = Level::kWarn;
  else if (text == "error")
    *out = Level::kError;
  else
    return false;
  return true;
}

Line::Line(Level level, std::string_view msg) : enabled_(Enabled(level)) {
  if (!enabled_) return;
  std::string component;
  {
    std::lock_guard<std::mutex> lock(g_component_mu);
    component = g_component;
  }
  if (g_json.load(std::memory_order_relaxed)) {
    buf_ = "{\"ts\":\"" + Timestamp() + "\"";
    AppendPair(buf_, "level", LevelName(level));
  } else {
    buf_ = Timestamp();
    AppendPair(buf_, "level", LevelName(level));
  }
  if (!component.empty()) AppendPair(buf_, "component", component);
  AppendPair(buf_, "msg", msg);
}

Line& Line::kv(std::string_view key, std::string_view value) {
  if (enabled_) AppendPair(buf_, key, value);
  return *this;
}

Line::~Line() {
  if (!enabled_) return;
  if (g_json.load(std::memory_order_relaxed)) buf_ += '}';
  buf_ += '\n';
  // One write(2) per line so concurrent lines never interleave.
  const char* p = buf_.data();
  size_t left = buf_.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace hyperaccel::log
