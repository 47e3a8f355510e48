// An in-process HTTP server that behaves like kube-apiserver for what the project uses, for tests,
// benchmarks and the end-to-end demo. Plain HTTP on 127.0.0.1, or HTTPS after SetTls().
//
// Resources (JSON only):
//   nodes       /api/v1/nodes[/{name}]                                       kind Node
//   hypernodes  /apis/topology.volcano.sh/v1alpha1/hypernodes[/{name}]        kind HyperNode (cluster-scoped)
//   leases      /apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]  kind Lease
//   resourceslices  /apis/resource.k8s.io/v1/resourceslices[/{name}]          kind ResourceSlice
//   deviceclasses   /apis/resource.k8s.io/v1/deviceclasses[/{name}]           kind DeviceClass
//   resourceclaims  /apis/resource.k8s.io/v1/namespaces/{ns}/resourceclaims[/{name}[/status]]
//   version         /version (major, minor, gitVersion; SetServerVersion)
// resource.k8s.io objects are validated as dra_validation.h describes (422 Invalid with the field
// error); fields of DRA feature gates that are off are dropped on write (SetDraGates), taints get
// timeAdded. List and watch take fieldSelector (metadata.name, metadata.namespace, spec.nodeName,
// spec.driver). Deleting a Node deletes the ResourceSlices whose ownerReferences name it (name and
// UID), like the garbage collector.
// Verbs: get, list (labelSelector: k=v, k==v, k!=v, k, !k), watch (?watch=1, resourceVersion,
// allowWatchBookmarks, timeoutSeconds), create (POST), update (PUT; conditional on
// metadata.resourceVersion; HyperNodes require it, Leases may be created by PUT), patch (PATCH with
// application/merge-patch+json only, RFC 7386; a metadata.resourceVersion in the patch is a
// precondition), delete (DeleteOptions.preconditions.resourceVersion honoured).
//
// Semantics as the real server: one global resourceVersion counter; metadata.resourceVersion is a
// string; errors are Status objects {"kind":"Status","apiVersion":"v1","metadata":{},
// "status":"Failure","message":...,"reason":"NotFound"|"AlreadyExists"|"Conflict"|"Invalid"|
// "BadRequest"|"Unauthorized"|"Forbidden"|"Expired"|"UnsupportedMediaType"|...,"details":{...},
// "code":N}. Watch responses are chunked, one JSON event per line; BOOKMARK events carry only
// metadata.resourceVersion; a resourceVersion older than the retained event window yields an ERROR
// event with a 410 Expired Status. HyperNodes and Leases are validated like the CRD / API schema
// (tier >= 0, members >= 1, one selector per member, Lease times in RFC 3339 micro time).
//
// Auth: with no token registered every request is allowed; otherwise a request without a known
// bearer token gets 401, and a token without the needed "verb resource" permission gets 403.
//
// Fault injection: 500, 429/503 with Retry-After, slow responses, hangs (until the client gives
// up), dropped connections, and "down" (every connection dropped).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "hyperaccel/common/status.h"
#include "hyperaccel/testing/dra_validation.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace hyperaccel::testing {

using Json = nlohmann::json;

struct Fault {
  enum class Kind {
    kError500,    // 500 InternalError Status
    kRetryAfter,  // `code` (429 or 503) with a Retry-After header of `retry_after_seconds`
    kSlow,        // waits `delay`, then serves normally
    kHang,        // waits `delay` (or until Stop), then answers 504
    kDrop,        // sends headers and closes the connection mid-body
  };
  Kind kind = Kind::kError500;
  std::string method;       // "" = any
  std::string path_prefix;  // "" = any
  int count = 1;            // how many requests it applies to; -1 = until cleared
  std::chrono::milliseconds delay{0};
  int code = 429;
  int retry_after_seconds = 1;
};

struct RequestRecord {
  std::string method;
  std::string path;  // with query
  int status = 0;    // 0 until the reply has been written
  uint64_t seq = 0;  // order of arrival
};

class ApiServerEmulator {
 public:
  ApiServerEmulator();
  ~ApiServerEmulator();
  ApiServerEmulator(const ApiServerEmulator&) = delete;
  ApiServerEmulator& operator=(const ApiServerEmulator&) = delete;

  // Listens on 127.0.0.1:`port` (0 = any free port; after a Stop, Start(port()) reuses the port,
  // keeping all objects: that is an API-server restart).
  Status Start(int port = 0);
  void Stop();
  bool running() const;
  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:<port>" ("https://..." with TLS)

  // Serves HTTPS from the next Start() with this certificate chain and key (PEM files). A
  // non-empty `client_ca_file` makes the TLS handshake require a client certificate signed by it.
  void SetTls(std::string cert_file, std::string key_file, std::string client_ca_file = "");

  // Permissions are "verb resource" ("patch nodes", "list hypernodes", "get leases") or "*".
  void AddToken(const std::string& token, std::set<std::string> permissions = {"*"});

  // Direct access to the store (no auth, no faults). Resources: "nodes", "hypernodes", "leases";
  // `ns` only for leases.
  Json Upsert(const std::string& resource, Json object, const std::string& ns = "");
  void PutNode(const std::string& name, const std::map<std::string, std::string>& labels = {});
  std::optional<Json> Get(const std::string& resource, const std::string& name,
                          const std::string& ns = "") const;
  std::vector<Json> List(const std::string& resource) const;
  bool Remove(const std::string& resource, const std::string& name, const std::string& ns = "");
  uint64_t resource_version() const;

  // Kubernetes version served on /version and the DRA validation/gate rules that go with it
  // (default 1.35, partitionable devices and device taints on).
  void SetServerVersion(int major, int minor);
  void SetDraGates(bool partitionable, bool device_taints);
  DraGates dra_gates() const;
  // The ResourceSlices of one pool (for ValidatePool).
  std::vector<Json> Pool(const std::string& driver, const std::string& pool) const;

  // Faults apply in insertion order to matching requests.
  void InjectFault(Fault fault);
  void ClearFaults();
  // While down, every connection is dropped without a response.
  void SetDown(bool down);

  // Watch tuning: bookmark period (default 1 s; the real server uses ~1 min) and how many
  // events are kept for watches that resume from a resourceVersion (default 10000).
  void SetBookmarkInterval(std::chrono::milliseconds interval);
  void SetEventWindow(size_t events);
  // Forgets all event history: any watch from an older resourceVersion gets 410.
  void CompactHistory();

  std::vector<RequestRecord> Requests() const;
  void ClearRequests();
  // Counts recorded requests whose method matches (or "" = any) and path starts with `prefix`.
  size_t CountRequests(const std::string& method, const std::string& prefix = "") const;

 private:
  struct Event {
    uint64_t rv;
    std::string type;
    std::string resource;
    std::string ns;
    Json object;
  };
  struct Route {
    std::string resource;
    std::string ns;
    std::string name;
    bool ok = false;
    bool status = false;  // the /status subresource
  };
  static Route ParseRoute(const std::string& path);
  void Handle(const httplib::Request& req, httplib::Response& res);
  bool PreRoute(const httplib::Request& req, httplib::Response& res);
  void Serve(const Route& route, const httplib::Request& req, httplib::Response& res);
  void ServeWatch(const Route& route, const httplib::Request& req, httplib::Response& res);
  Json Stamp(const std::string& resource, Json object, const std::string& ns, const Json* old);
  void Record(const std::string& type, const std::string& resource, const std::string& ns,
              const Json& object);
  bool WaitStoppable(std::chrono::milliseconds d);
  void Admit(const std::string& resource, Json& object) const;
  void CollectGarbageLocked(const Json& node);

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::map<std::string, Json>> store_;  // resource -> "ns/name" -> object
  uint64_t rv_ = 1000;
  uint64_t uid_ = 0;
  std::vector<Event> events_;
  uint64_t compacted_rv_ = 0;  // events with rv <= this are forgotten
  size_t window_ = 10000;
  std::chrono::milliseconds bookmark_interval_{1000};
  std::map<std::string, std::set<std::string>> tokens_;
  std::vector<Fault> faults_;
  bool down_ = false;
  int version_major_ = 1;
  DraGates gates_;
  bool stopping_ = false;
  std::vector<RequestRecord> requests_;
  uint64_t request_seq_ = 0;

  std::unique_ptr<httplib::Server> server_;
  std::string tls_cert_, tls_key_, tls_client_ca_;  // empty: plain HTTP
  std::thread thread_;
  int port_ = 0;
};

}  // namespace hyperaccel::testing
