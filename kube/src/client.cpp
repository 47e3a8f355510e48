#include "hyperaccel/kube/client.h"

#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "http.h"
#include "hyperaccel/common/json_fields.h"
#include "hyperaccel/common/log.h"
#include "hyperaccel/common/shutdown.h"

namespace hyperaccel::kube {
namespace {

Result<std::string> ReadFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(std::string(what) + " " + path + ": cannot open");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

Result<std::string> Base64Decode(const std::string& in, std::string_view what) {
  std::string clean;
  for (char c : in) {
    if (!std::isspace(static_cast<unsigned char>(c))) clean += c;
  }
  if (clean.size() % 4 != 0) return InvalidArgument(std::string(what) + ": invalid base64");
  std::string out(clean.size() / 4 * 3, '\0');
  int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) return InvalidArgument(std::string(what) + ": invalid base64");
  size_t pad = 0;
  if (!clean.empty() && clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string ResolvePath(const std::string& p, const std::string& base) {
  if (p.empty() || p.front() == '/' || base.empty()) return p;
  return (std::filesystem::path(base) / p).string();
}

bool Retryable(long code) { return code == 429 || code == 500 || code == 502 || code == 503 || code == 504; }

}  // namespace

// ---- configuration --------------------------------------------------------------------------

Result<ClusterConfig> InClusterConfig(const std::function<std::string(const char*)>& getenv_fn,
                                      const std::string& sa_dir) {
  auto env = [&](const char* name) -> std::string {
    if (getenv_fn) return getenv_fn(name);
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read once at start-up
    return v ? v : "";
  };
  std::string host = env("KUBERNETES_SERVICE_HOST");
  std::string port = env("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty()) {
    return FailedPrecondition(
        "not running in a cluster: KUBERNETES_SERVICE_HOST/PORT not set (use --kubeconfig)");
  }
  ClusterConfig c;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";  // IPv6
  c.server = "https://" + host + ":" + port;
  c.token_file = sa_dir + "/token";
  c.ca_file = sa_dir + "/ca.crt";
  auto token = ReadFile(c.token_file, "service-account token");
  if (!token.ok()) return token.status();
  if (!std::filesystem::exists(c.ca_file)) return NotFound("service-account CA " + c.ca_file + " missing");
  return c;
}

Result<ClusterConfig> ParseKubeconfig(std::string_view yaml, const std::string& base_dir,
                                      const std::string& context) {
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap()) return InvalidArgument("kubeconfig: not a YAML mapping");
    std::string ctx_name = context.empty() ? root["current-context"].as<std::string>("") : context;
    if (ctx_name.empty()) return InvalidArgument("kubeconfig: no current-context and no context given");
    auto find = [&](const char* list, const std::string& name) -> YAML::Node {
      for (const auto& item : root[list]) {
        if (item["name"].as<std::string>("") == name) return item;
      }
      return YAML::Node();
    };
    YAML::Node ctx = find("contexts", ctx_name);
    if (!ctx.IsMap()) return InvalidArgument("kubeconfig: context '" + ctx_name + "' not found");
    std::string cluster_name = ctx["context"]["cluster"].as<std::string>("");
    std::string user_name = ctx["context"]["user"].as<std::string>("");
    YAML::Node cluster = find("clusters", cluster_name);
    if (!cluster.IsMap()) return InvalidArgument("kubeconfig: cluster '" + cluster_name + "' not found");
    ClusterConfig c;
    YAML::Node cl = cluster["cluster"];
    c.server = cl["server"].as<std::string>("");
    if (c.server.empty()) return InvalidArgument("kubeconfig: cluster '" + cluster_name + "' has no server");
    while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
    c.insecure_skip_tls_verify = cl["insecure-skip-tls-verify"].as<bool>(false);
    c.ca_file = ResolvePath(cl["certificate-authority"].as<std::string>(""), base_dir);
    if (auto d = cl["certificate-authority-data"].as<std::string>(""); !d.empty()) {
      auto pem = Base64Decode(d, "kubeconfig: certificate-authority-data");
      if (!pem.ok()) return pem.status();
      c.ca_data = *pem;
    }
    if (!user_name.empty()) {
      YAML::Node user = find("users", user_name);
      if (!user.IsMap()) return InvalidArgument("kubeconfig: user '" + user_name + "' not found");
      YAML::Node u = user["user"];
      c.token = u["token"].as<std::string>("");
      c.token_file = ResolvePath(u["tokenFile"].as<std::string>(""), base_dir);
      c.client_cert_file = ResolvePath(u["client-certificate"].as<std::string>(""), base_dir);
      c.client_key_file = ResolvePath(u["client-key"].as<std::string>(""), base_dir);
      if (auto d = u["client-certificate-data"].as<std::string>(""); !d.empty()) {
        auto pem = Base64Decode(d, "kubeconfig: client-certificate-data");
        if (!pem.ok()) return pem.status();
        c.client_cert_data = *pem;
      }
      if (auto d = u["client-key-data"].as<std::string>(""); !d.empty()) {
        auto pem = Base64Decode(d, "kubeconfig: client-key-data");
        if (!pem.ok()) return pem.status();
        c.client_key_data = *pem;
      }
      if (u["exec"] || u["auth-provider"]) {
        return InvalidArgument("kubeconfig: user '" + user_name +
                               "' uses exec/auth-provider credentials, which are not supported (use a token "
                               "or a client certificate)");
      }
    }
    return c;
  } catch (const YAML::Exception& e) {
    return InvalidArgument(std::string("kubeconfig: ") + e.what());
  }
}

Result<ClusterConfig> LoadKubeconfig(const std::string& path, const std::string& context) {
  auto text = ReadFile(path, "kubeconfig");
  if (!text.ok()) return text.status();
  auto c = ParseKubeconfig(*text, std::filesystem::path(path).parent_path().string(), context);
  if (!c.ok()) return c.status().WithContext(path);
  return c;
}

Result<ClusterConfig> ResolveClusterConfig(const std::string& kubeconfig_flag) {
  if (!kubeconfig_flag.empty()) return LoadKubeconfig(kubeconfig_flag);
  auto in = InClusterConfig();
  if (in.ok()) return in;
  const char* env = std::getenv("KUBECONFIG");  // NOLINT(concurrency-mt-unsafe): start-up only
  if (env && *env) return LoadKubeconfig(env);
  const char* home = std::getenv("HOME");  // NOLINT(concurrency-mt-unsafe): start-up only
  if (home && std::filesystem::exists(std::string(home) + "/.kube/config")) {
    return LoadKubeconfig(std::string(home) + "/.kube/config");
  }
  return in.status();
}

// ---- helpers ----------------------------------------------------------------------------------

Backoff::Backoff(std::chrono::milliseconds base, std::chrono::milliseconds max, uint64_t seed)
    : base_(base), max_(max), rng_(seed ? seed : std::random_device{}()) {}

std::chrono::milliseconds Backoff::Next() {
  int64_t d = base_.count();
  for (int i = 0; i < attempt_ && d < max_.count(); ++i) d *= 2;
  if (d > max_.count()) d = max_.count();
  ++attempt_;
  if (d <= 1) return std::chrono::milliseconds(d);
  std::uniform_int_distribution<int64_t> dist(d / 2, d);
  return std::chrono::milliseconds(dist(rng_));
}

Result<WatchEvent> ParseWatchEvent(std::string_view line) {
  Json j = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("watch: event is not a JSON object");
  auto t = j.find("type");
  auto o = j.find("object");
  if (t == j.end() || !t->is_string()) return InvalidArgument("watch: event without a string \"type\"");
  if (o == j.end() || !o->is_object()) return InvalidArgument("watch: event without an \"object\"");
  WatchEvent e;
  e.type = t->get<std::string>();
  e.object = std::move(*o);
  return e;
}

Status WatchDecoder::Feed(std::string_view bytes, const std::function<bool(WatchEvent&&)>& on_event) {
  buf_.append(bytes);
  size_t start = 0;
  for (;;) {
    size_t nl = buf_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(buf_.data() + start, nl - start);
    start = nl + 1;
    bool blank = true;
    for (char c : line) blank = blank && std::isspace(static_cast<unsigned char>(c));
    if (blank) continue;
    auto ev = ParseWatchEvent(line);
    if (!ev.ok()) {
      buf_.clear();
      return ev.status();
    }
    if (!on_event(std::move(*ev))) {
      buf_.erase(0, start);
      return Status(StatusCode::kOk, "stopped");
    }
  }
  buf_.erase(0, start);
  if (buf_.size() > max_line_) {
    buf_.clear();
    return ResourceExhausted("watch: event larger than " + std::to_string(max_line_) + " bytes");
  }
  return Status::Ok();
}

Status StatusFromResponse(long code, std::string_view body, std::string_view what) {
  std::string message;
  std::string reason;
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  if (!j.is_discarded() && json_fields::String(j, "kind") == "Status") {
    if (auto m = j.find("message"); m != j.end() && m->is_string()) message = m->get<std::string>();
    if (auto r = j.find("reason"); r != j.end() && r->is_string()) reason = r->get<std::string>();
  } else {
    message = std::string(body.substr(0, 200));
  }
  std::string text = std::string(what) + ": HTTP " + std::to_string(code);
  if (!reason.empty()) text += " " + reason;
  if (!message.empty()) text += ": " + message;
  switch (code) {
    case 400:
    case 422: return InvalidArgument(text);
    case 401:
    case 403: return FailedPrecondition(text);
    case 404: return NotFound(text);
    case 409:
      return Status(reason == "AlreadyExists" ? StatusCode::kAlreadyExists : StatusCode::kConflict, text);
    case 410: return FailedPrecondition("gone: " + text);
    case 429: return ResourceExhausted(text);
    case 504: return Status(StatusCode::kDeadlineExceeded, text);
    default: break;
  }
  if (code >= 500) return Unavailable(text);
  return Internal(text);
}

Result<Json> ParseObject(std::string_view body, std::string_view what) {
  Json j = Json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Internal(std::string(what) + ": response is not a JSON object");
  }
  return j;
}

std::string ResourceVersionOf(const Json& object) {
  if (!object.is_object()) return "";
  auto m = object.find("metadata");
  if (m == object.end() || !m->is_object()) return "";
  auto rv = m->find("resourceVersion");
  if (rv == m->end() || !rv->is_string()) return "";
  return rv->get<std::string>();
}

bool IsGone(const Status& s) {
  return s.code() == StatusCode::kFailedPrecondition && s.message().find("gone: ") != std::string::npos;
}

std::string MicroTime(std::chrono::system_clock::time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(us % 1000000));
  return buf;
}

Result<std::chrono::system_clock::time_point> ParseMicroTime(std::string_view s) {
  std::tm tm{};
  int frac = 0;
  char tail = 0;
  std::string str(s);
  // Fixed-width fields and the conversion count are checked; each field's range is checked below.
  // NOLINTNEXTLINE(cert-err34-c)
  int n = std::sscanf(str.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec);
  if (n != 6 || str.size() < 20) return InvalidArgument("bad time '" + str + "'");
  size_t pos = 19;
  if (str[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < str.size() && std::isdigit(static_cast<unsigned char>(str[pos]))) {
      if (digits < 6) frac = frac * 10 + (str[pos] - '0');
      ++digits;
      ++pos;
    }
    for (int d = digits; d < 6; ++d) frac *= 10;
  }
  if (pos < str.size()) tail = str[pos];
  if (tail != 'Z' || pos + 1 != str.size()) return InvalidArgument("bad time '" + str + "' (want UTC 'Z')");
  // system_clock counts nanoseconds in 64 bits: years 1678..2261 only. A Lease time outside
  // 1970..2200 is garbage from the server, not a time to compare with.
  if (tm.tm_year < 1970 || tm.tm_year > 2200 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
      tm.tm_mday > 31 || tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 ||
      tm.tm_sec < 0 || tm.tm_sec > 60) {
    return InvalidArgument("bad time '" + str + "' (out of range)");
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::time_t secs = timegm(&tm);
  return std::chrono::system_clock::time_point(std::chrono::seconds(secs)) + std::chrono::microseconds(frac);
}

std::string QueryEscape(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// ---- client -----------------------------------------------------------------------------------

Client::Client(ClusterConfig config, ClientOptions options, std::shared_ptr<RequestStats> stats)
    : config_(std::move(config)),
      options_(std::move(options)),
      stats_(stats ? std::move(stats) : std::make_shared<RequestStats>()),
      backoff_(options_.backoff_base, options_.backoff_max) {}

Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Create(ClusterConfig config, ClientOptions options,
                                               std::shared_ptr<RequestStats> stats) {
  if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0) {
    return InvalidArgument("API server '" + config.server + "': want an http:// or https:// URL");
  }
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  if (!options.sleep) {
    options.sleep = [](std::chrono::milliseconds d) { return !shutdown::WaitFor(d); };
  }
  auto http = HttpTransport::Create(config, options.user_agent);
  if (!http.ok()) return http.status();
  std::unique_ptr<Client> c(new Client(std::move(config), std::move(options), std::move(stats)));
  c->http_ = std::move(*http);
  return c;
}

std::string Client::Token() {
  if (config_.token_file.empty()) return config_.token;
  auto now = std::chrono::steady_clock::now();
  if (token_cache_.empty() || now - token_read_ > std::chrono::minutes(1)) {
    auto t = ReadFile(config_.token_file, "token file");
    if (t.ok()) {
      token_cache_ = Trim(*t);
      token_read_ = now;
    } else if (token_cache_.empty()) {
      HA_LOG(kWarn, "cannot read token file").kv("path", config_.token_file);
    }
  }
  return token_cache_;
}

void Client::Count(const std::string& method, bool list) {
  if (method == "GET") {
    (list ? stats_->list : stats_->get)++;
  } else if (method == "POST") {
    stats_->create++;
  } else if (method == "PUT") {
    stats_->update++;
  } else if (method == "PATCH") {
    stats_->patch++;
  } else if (method == "DELETE") {
    stats_->del++;
  }
}

Result<Response> Client::SendOnce(const std::string& method, const std::string& target,
                                  const std::string& body, const std::string& content_type) {
  const std::string token = Token();
  HttpRequest request{method, target, body, content_type, token};
  return http_->RoundTrip(request, options_.connect_timeout, options_.request_timeout);
}

Result<Response> Client::Send(const std::string& method, const std::string& path, const std::string& body,
                              const std::string& content_type) {
  bool list = next_is_list_;
  next_is_list_ = false;
  std::string what = method + " " + path;
  backoff_.Reset();
  Status last;
  for (int attempt = 0; attempt < std::max(1, options_.max_attempts); ++attempt) {
    Count(method, list);
    auto r = SendOnce(method, path, body, content_type);
    std::chrono::milliseconds wait = backoff_.Next();
    if (r.ok()) {
      if (r->code < 300) return r;
      last = StatusFromResponse(r->code, r->body, what);
      if (!Retryable(r->code)) return last;
      if (auto ra = r->headers.find("retry-after"); ra != r->headers.end()) {
        char* end = nullptr;
        long secs = std::strtol(ra->second.c_str(), &end, 10);
        if (end != ra->second.c_str() && secs >= 0) {
          wait = std::chrono::seconds(std::min<long>(secs, options_.max_retry_after.count()));
        }
      }
    } else {
      last = r.status().WithContext(what);
      if (r.status().code() == StatusCode::kFailedPrecondition) return last;  // TLS errors do not heal
    }
    if (attempt + 1 >= options_.max_attempts) break;
    HA_LOG(kDebug, "retrying API request")
        .kv("request", what)
        .kv("error", last.message())
        .kv("wait_ms", wait.count());
    if (!options_.sleep(wait)) break;
  }
  return last;
}

Result<Json> Client::Get(const std::string& path) {
  auto r = Send("GET", path, "", "");
  if (!r.ok()) return r.status();
  return ParseObject(r->body, "GET " + path);
}

Result<Json> Client::List(const std::string& path, const std::string& label_selector) {
  std::string p = path;
  if (!label_selector.empty())
    p += (p.find('?') == std::string::npos ? "?" : "&") + std::string("labelSelector=") +
         QueryEscape(label_selector);
  next_is_list_ = true;
  auto r = Send("GET", p, "", "");
  if (!r.ok()) return r.status();
  auto j = ParseObject(r->body, "GET " + p);
  if (!j.ok()) return j;
  auto items = j->find("items");
  if (items == j->end() || !(items->is_array() || items->is_null())) {
    return Internal("GET " + p + ": list without \"items\"");
  }
  if (items->is_null()) *items = Json::array();
  return j;
}

Result<Json> Client::Create(const std::string& collection_path, const Json& object) {
  auto r = Send("POST", collection_path, object.dump(), "application/json");
  if (!r.ok()) return r.status();
  return ParseObject(r->body, "POST " + collection_path);
}

Result<Json> Client::Replace(const std::string& path, const Json& object) {
  auto r = Send("PUT", path, object.dump(), "application/json");
  if (!r.ok()) return r.status();
  return ParseObject(r->body, "PUT " + path);
}

Result<Json> Client::MergePatch(const std::string& path, const Json& patch) {
  auto r = Send("PATCH", path, patch.dump(), "application/merge-patch+json");
  if (!r.ok()) return r.status();
  return ParseObject(r->body, "PATCH " + path);
}

Status Client::Delete(const std::string& path, const std::string& resource_version) {
  std::string body;
  if (!resource_version.empty()) {
    Json opts = {{"kind", "DeleteOptions"},
                 {"apiVersion", "v1"},
                 {"preconditions", {{"resourceVersion", resource_version}}}};
    body = opts.dump();
  }
  auto r = Send("DELETE", path, body, "application/json");
  return r.ok() ? Status::Ok() : r.status();
}

Result<Json> Client::Update(const std::string& path, const std::function<bool(Json&)>& mutate, int attempts) {
  Status last;
  for (int i = 0; i < attempts; ++i) {
    auto cur = Get(path);
    if (!cur.ok()) return cur.status();
    Json obj = *cur;
    if (!mutate(obj)) return cur;
    if (!obj.contains("metadata")) obj["metadata"] = Json::object();
    obj["metadata"]["resourceVersion"] = ResourceVersionOf(*cur);
    auto put = Replace(path, obj);
    if (put.ok() || put.status().code() != StatusCode::kConflict) return put;
    last = put.status();
  }
  return last;
}

Status Client::Watch(const std::string& path, const std::string& label_selector,
                     const std::string& resource_version, const std::function<bool(WatchEvent&&)>& on_event,
                     const std::atomic<bool>* stop, std::chrono::seconds timeout) {
  std::string p = path + (path.find('?') == std::string::npos ? "?" : "&") +
                  "watch=1&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(timeout.count());
  if (!resource_version.empty()) p += "&resourceVersion=" + QueryEscape(resource_version);
  if (!label_selector.empty()) p += "&labelSelector=" + QueryEscape(label_selector);
  WatchDecoder decoder;
  Status error;  // a malformed stream or an ERROR event
  bool handler_stopped = false;
  auto on_data = [&](std::string_view bytes) {
    Status s = decoder.Feed(bytes, [&](WatchEvent&& ev) {
      if (ev.type == "ERROR") {
        long code = static_cast<long>(json_fields::Int(ev.object, "code"));
        error = StatusFromResponse(code ? code : 500, ev.object.dump(), "watch");
        return false;
      }
      return on_event(std::move(ev));
    });
    if (!s.ok()) {
      error = s;
      return false;
    }
    if (!s.message().empty() || !error.ok()) {  // stopped by the handler or an ERROR event
      handler_stopped = error.ok();
      return false;
    }
    return true;
  };
  auto should_stop = [stop] { return (stop != nullptr && stop->load()) || shutdown::Requested(); };
  const std::string token = Token();
  HttpRequest request{"GET", p, "", "", token};
  stats_->watch++;
  std::string error_body;
  // The server ends the stream after timeoutSeconds; ours is a margin behind it.
  StreamEnd end =
      http_->Stream(request, options_.connect_timeout,
                    std::chrono::duration_cast<std::chrono::milliseconds>(timeout + std::chrono::seconds(30)),
                    on_data, should_stop, &error_body);
  std::string what = "watch " + path;
  if (!error.ok()) return error.WithContext(what);
  if (end.stopped || handler_stopped) return Status::Ok();
  if (end.code >= 300) return StatusFromResponse(end.code, error_body, what);
  if (!end.transport.ok()) {
    // A long stream ended by our own timeout.
    if (end.transport.code() == StatusCode::kDeadlineExceeded && end.code != 0) return Status::Ok();
    return Unavailable(what + ": " + end.transport.message());
  }
  return Status::Ok();
}

}  // namespace hyperaccel::kube
