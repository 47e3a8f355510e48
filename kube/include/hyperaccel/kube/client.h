// A small Kubernetes REST client (HTTP/1.1 over Boost.Beast and OpenSSL) shared by the daemons: the verbs
// they use (get, list, create, replace, delete, JSON merge patch, watch) with the real API's semantics.
//
// - Configuration: in-cluster (service-account token and CA, KUBERNETES_SERVICE_HOST/PORT) or a
//   kubeconfig file (token, token file, client certificate; CA file or data). TLS verification is
//   on unless the kubeconfig says `insecure-skip-tls-verify: true`. `http://` servers (tests) work.
// - Every request has a timeout. Transport errors, 5xx and 429 are retried with exponential
//   backoff and jitter; 429 and 503 honour `Retry-After` (seconds). Other errors are returned at once.
// - Error bodies (`Status` objects) become Status values: 404 NotFound, 409 Conflict (AlreadyExists
//   for reason AlreadyExists), 400/422 InvalidArgument, 401/403 FailedPrecondition, 410 with a
//   message starting "gone:", timeouts DeadlineExceeded, the rest Unavailable/Internal.
// - A Client keeps one connection alive between requests (a watch opens its own) and runs its
//   I/O on the calling thread; it is not thread-safe: use one Client per thread. Proxies
//   (http_proxy/https_proxy) are not used.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>

#include "hyperaccel/common/status.h"

namespace hyperaccel::kube {

class HttpTransport;

using Json = nlohmann::json;

// Where the API server is and how to authenticate. PEM material is either a file or inline data.
struct ClusterConfig {
  std::string server;      // "https://10.96.0.1:443" or "http://127.0.0.1:8080"
  std::string token;       // bearer token (static)
  std::string token_file;  // bearer token file, re-read at most once a minute (rotated SA tokens)
  std::string ca_file;
  std::string ca_data;  // PEM
  std::string client_cert_file;
  std::string client_cert_data;  // PEM
  std::string client_key_file;
  std::string client_key_data;  // PEM
  bool insecure_skip_tls_verify = false;
};

// Reads the in-cluster configuration. `getenv` and `sa_dir` are injectable for tests.
Result<ClusterConfig> InClusterConfig(
    const std::function<std::string(const char*)>& getenv = nullptr,
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// Parses a kubeconfig file; `context` empty = current-context. Relative paths are resolved against
// the file's directory; *-data fields are base64.
Result<ClusterConfig> LoadKubeconfig(const std::string& path, const std::string& context = "");
Result<ClusterConfig> ParseKubeconfig(std::string_view yaml, const std::string& base_dir,
                                      const std::string& context = "");

// --kubeconfig when given, else in-cluster, else $KUBECONFIG / ~/.kube/config.
Result<ClusterConfig> ResolveClusterConfig(const std::string& kubeconfig_flag);

// Exponential backoff with equal jitter: attempt n waits in [d/2, d] with d = min(max, base * 2^n).
class Backoff {
 public:
  Backoff(std::chrono::milliseconds base, std::chrono::milliseconds max, uint64_t seed = 0);
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  std::chrono::milliseconds base_;
  std::chrono::milliseconds max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

struct ClientOptions {
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds connect_timeout{5000};
  int max_attempts = 4;  // per request, including the first
  std::chrono::milliseconds backoff_base{200};
  std::chrono::milliseconds backoff_max{5000};
  std::chrono::seconds max_retry_after{30};
  std::string user_agent = "hyperaccel-topology-agent/0.1";  // each binary sets its own
  // Waits between retries; returns false to give up (shutdown). Default: shutdown::WaitFor.
  std::function<bool(std::chrono::milliseconds)> sleep;
};

struct Response {
  long code = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
};

// Counters of requests sent (after retries each attempt counts), by verb.
struct RequestStats {
  std::atomic<uint64_t> get{0}, list{0}, watch{0}, create{0}, update{0}, patch{0}, del{0};
  uint64_t Reads() const { return get + list + watch; }
  uint64_t Writes() const { return create + update + patch + del; }
  uint64_t Total() const { return Reads() + Writes(); }
};

// One watch event as the API server frames it: {"type": ..., "object": {...}}.
struct WatchEvent {
  std::string type;  // ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
  Json object;
};

// Splits a watch stream (newline-delimited JSON objects, arbitrary chunking) into events.
class WatchDecoder {
 public:
  explicit WatchDecoder(size_t max_line = 16u << 20) : max_line_(max_line) {}
  // Feeds bytes; calls `on_event` for each complete event. Returns an error on malformed input
  // (the stream must be abandoned) or when `on_event` returns false ("stopped").
  Status Feed(std::string_view bytes, const std::function<bool(WatchEvent&&)>& on_event);

 private:
  size_t max_line_;
  std::string buf_;
};

// Parses one watch event line.
Result<WatchEvent> ParseWatchEvent(std::string_view line);

// Turns an error response into a Status (see the mapping above); `what` prefixes the message.
Status StatusFromResponse(long code, std::string_view body, std::string_view what);

// Parses a JSON object body (get/create/replace/patch responses). Errors name `what`.
Result<Json> ParseObject(std::string_view body, std::string_view what);

// metadata.resourceVersion of an object or list ("" when absent).
std::string ResourceVersionOf(const Json& object);

// True when the status is the 410 Gone of a watch or list (relist needed).
bool IsGone(const Status& s);

// RFC 3339 with microseconds, UTC ("2026-11-25T23:40:00.123456Z"), as Lease times are written.
std::string MicroTime(std::chrono::system_clock::time_point t);
Result<std::chrono::system_clock::time_point> ParseMicroTime(std::string_view s);

// Percent-encodes a query value.
std::string QueryEscape(std::string_view s);

class Client {
 public:
  static Result<std::unique_ptr<Client>> Create(ClusterConfig config, ClientOptions options = {},
                                                std::shared_ptr<RequestStats> stats = nullptr);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // GET an object. `path` is the full API path ("/api/v1/nodes/n1").
  Result<Json> Get(const std::string& path);
  // GET a collection; `label_selector` empty = all. Returns the List object.
  Result<Json> List(const std::string& path, const std::string& label_selector = "");
  // POST to a collection.
  Result<Json> Create(const std::string& collection_path, const Json& object);
  // PUT an object (metadata.resourceVersion in `object` makes it conditional).
  Result<Json> Replace(const std::string& path, const Json& object);
  // PATCH with application/merge-patch+json (RFC 7386).
  Result<Json> MergePatch(const std::string& path, const Json& patch);
  // DELETE; a non-empty `resource_version` is sent as a precondition.
  Status Delete(const std::string& path, const std::string& resource_version = "");

  // Get, mutate, replace; on 409 reads again and retries (up to `attempts`). `mutate` returns
  // false when no change is needed (then nothing is written and the current object returned).
  Result<Json> Update(const std::string& path, const std::function<bool(Json&)>& mutate, int attempts = 5);

  // Watches `path` (collection) from `resource_version` with bookmarks on. Calls `on_event` for
  // each event; returns when the server ends the stream (OK), on error, on a 410 (IsGone), or when
  // `on_event` returns false or `stop` becomes true (OK). ERROR events carrying a Status are
  // returned as errors. `timeout` is sent as timeoutSeconds.
  Status Watch(const std::string& path, const std::string& label_selector,
               const std::string& resource_version, const std::function<bool(WatchEvent&&)>& on_event,
               const std::atomic<bool>* stop, std::chrono::seconds timeout = std::chrono::seconds(300));

  // One raw request with retries (what the verbs use).
  Result<Response> Send(const std::string& method, const std::string& path, const std::string& body,
                        const std::string& content_type);

  RequestStats& stats() { return *stats_; }
  const ClusterConfig& config() const { return config_; }

 private:
  Client(ClusterConfig config, ClientOptions options, std::shared_ptr<RequestStats> stats);
  std::string Token();
  Result<Response> SendOnce(const std::string& method, const std::string& target, const std::string& body,
                            const std::string& content_type);
  void Count(const std::string& method, bool list);

  ClusterConfig config_;
  ClientOptions options_;
  std::shared_ptr<RequestStats> stats_;
  std::unique_ptr<HttpTransport> http_;
  bool next_is_list_ = false;
  std::string token_cache_;
  std::chrono::steady_clock::time_point token_read_{};
  Backoff backoff_;
};

}  // namespace hyperaccel::kube
