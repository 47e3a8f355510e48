// The REST client against the API-server emulator, and the emulator's own semantics.
#include "hyperaccel/topology_agent/kube_client.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "hyperaccel/testing/apiserver_emulator.h"

namespace hyperaccel::kube {
namespace {

using testing::ApiServerEmulator;
using testing::Fault;

const std::string kHN = "/apis/topology.volcano.sh/v1alpha1/hypernodes";
const std::string kLeases = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";

Json HyperNode(const std::string& name, const std::string& node = "n1") {
  return {
      {"apiVersion", "topology.volcano.sh/v1alpha1"},
      {"kind", "HyperNode"},
      {"metadata", {{"name", name}}},
      {"spec",
       {{"tier", 1}, {"members", {{{"type", "Node"}, {"selector", {{"exactMatch", {{"name", node}}}}}}}}}}};
}

class KubeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(emu_.Start().ok());
    client_ = MakeClient("");
  }
  std::unique_ptr<Client> MakeClient(const std::string& token, ClientOptions o = {}) {
    ClusterConfig c;
    c.server = emu_.url();
    c.token = token;
    o.sleep = [](std::chrono::milliseconds d) {
      std::this_thread::sleep_for(std::min(d, std::chrono::milliseconds(50)));
      return true;
    };
    if (o.request_timeout == ClientOptions{}.request_timeout) o.request_timeout = std::chrono::seconds(3);
    auto r = Client::Create(c, o);
    EXPECT_TRUE(r.ok());
    return std::move(*r);
  }
  ApiServerEmulator emu_;
  std::unique_ptr<Client> client_;
};

TEST_F(KubeClientTest, GetListAndNotFoundStatus) {
  emu_.PutNode("n1", {{"a", "1"}});
  emu_.PutNode("n2", {{"a", "2"}});
  auto n = client_->Get("/api/v1/nodes/n1");
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ((*n)["kind"], "Node");
  EXPECT_TRUE((*n)["metadata"]["resourceVersion"].is_string());
  auto list = client_->List("/api/v1/nodes", "a=2");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ((*list)["items"].size(), 1u);
  EXPECT_EQ((*list)["items"][0]["metadata"]["name"], "n2");
  EXPECT_FALSE(ResourceVersionOf(*list).empty());
  auto missing = client_->Get("/api/v1/nodes/nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nodes \"nope\" not found"), std::string::npos);
  // The raw body is a real Status object.
  auto raw = client_->Send("GET", "/api/v1/nodes/nope", "", "");
  EXPECT_EQ(raw.status().code(), StatusCode::kNotFound);
}

TEST_F(KubeClientTest, StatusBodiesAreRealStatusObjects) {
  // One raw request without the client's error mapping.
  ClientOptions o;
  o.max_attempts = 1;
  auto c = MakeClient("", o);
  ASSERT_TRUE(c->Create(kHN, HyperNode("h1")).ok());
  auto dup = c->Create(kHN, HyperNode("h1"));
  EXPECT_EQ(dup.status().code(), StatusCode::kAlreadyExists);
  auto stored = emu_.Get("hypernodes", "h1");
  ASSERT_TRUE(stored);
  std::string rv = (*stored)["metadata"]["resourceVersion"];
  // Stale replace -> 409 Conflict Status.
  Json stale = *stored;
  stale["metadata"]["resourceVersion"] = "1";
  auto r = c->Replace(kHN + "/h1", stale);
  EXPECT_EQ(r.status().code(), StatusCode::kConflict);
  EXPECT_NE(r.status().message().find("HTTP 409 Conflict"), std::string::npos);
  EXPECT_NE(r.status().message().find("the object has been modified"), std::string::npos);
  // Missing resourceVersion on a CR update -> 422 Invalid.
  Json norv = *stored;
  norv["metadata"].erase("resourceVersion");
  EXPECT_EQ(c->Replace(kHN + "/h1", norv).status().code(), StatusCode::kInvalidArgument);
  // Validation: tier < 0, no members, two selectors.
  Json bad = HyperNode("h2");
  bad["spec"]["tier"] = -1;
  EXPECT_EQ(c->Create(kHN, bad).status().code(), StatusCode::kInvalidArgument);
  bad = HyperNode("h2");
  bad["spec"]["members"] = Json::array();
  EXPECT_EQ(c->Create(kHN, bad).status().code(), StatusCode::kInvalidArgument);
  bad = HyperNode("h2");
  bad["spec"]["members"][0]["selector"]["regexMatch"] = {{"pattern", ".*"}};
  EXPECT_EQ(c->Create(kHN, bad).status().code(), StatusCode::kInvalidArgument);
  // Fresh replace works and bumps the global counter.
  Json fresh = *stored;
  fresh["spec"]["tier"] = 2;
  auto ok = c->Replace(kHN + "/h1", fresh);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_GT(std::stoull(ResourceVersionOf(*ok)), std::stoull(rv));
  EXPECT_EQ((*ok)["metadata"]["generation"], 2);
  // Delete with a stale precondition -> 409; with the right one -> gone; again -> 404.
  EXPECT_EQ(c->Delete(kHN + "/h1", rv).code(), StatusCode::kConflict);
  EXPECT_TRUE(c->Delete(kHN + "/h1", ResourceVersionOf(*ok)).ok());
  EXPECT_EQ(c->Delete(kHN + "/h1").code(), StatusCode::kNotFound);
}

TEST_F(KubeClientTest, MergePatchFollowsRfc7386) {
  emu_.PutNode("n1", {{"keep", "1"}, {"drop", "2"}});
  Json patch = {{"metadata", {{"labels", {{"drop", nullptr}, {"new", "3"}}}, {"annotations", {{"a", "b"}}}}}};
  auto r = client_->MergePatch("/api/v1/nodes/n1", patch);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Json labels = (*r)["metadata"]["labels"];
  EXPECT_EQ(labels, (Json{{"keep", "1"}, {"new", "3"}}));
  EXPECT_EQ((*r)["metadata"]["annotations"]["a"], "b");
  // A wrong content type is refused like the real server (415).
  auto raw = client_->Send("PATCH", "/api/v1/nodes/n1", patch.dump(), "application/json-patch+json");
  EXPECT_FALSE(raw.ok());
  EXPECT_NE(raw.status().message().find("415"), std::string::npos);
  // Invalid label values are refused (422).
  Json bad = {{"metadata", {{"labels", {{"x", "-bad-"}}}}}};
  EXPECT_EQ(client_->MergePatch("/api/v1/nodes/n1", bad).status().code(), StatusCode::kInvalidArgument);
  // resourceVersion in a patch is a precondition.
  Json stale = {{"metadata", {{"resourceVersion", "1"}, {"labels", {{"x", "y"}}}}}};
  EXPECT_EQ(client_->MergePatch("/api/v1/nodes/n1", stale).status().code(), StatusCode::kConflict);
  EXPECT_EQ(client_->MergePatch("/api/v1/nodes/none", patch).status().code(), StatusCode::kNotFound);
}

TEST_F(KubeClientTest, UpdateRetriesConflictsWithAFreshRead) {
  ASSERT_TRUE(client_->Create(kHN, HyperNode("h1")).ok());
  int calls = 0;
  auto r = client_->Update(kHN + "/h1", [&](Json& o) {
    if (++calls == 1) {
      // Someone else writes between our read and our write.
      Json other = *emu_.Get("hypernodes", "h1");
      other["spec"]["tierName"] = "other";
      emu_.Upsert("hypernodes", other);
    }
    o["spec"]["tier"] = 3;
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(calls, 2);
  EXPECT_EQ((*emu_.Get("hypernodes", "h1"))["spec"]["tier"], 3);
  EXPECT_EQ((*emu_.Get("hypernodes", "h1"))["spec"]["tierName"], "other");
}

TEST_F(KubeClientTest, LeasesValidateMicroTime) {
  Json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                {"kind", "Lease"},
                {"metadata", {{"name", "l1"}, {"namespace", "kube-system"}}},
                {"spec",
                 {{"holderIdentity", "a"},
                  {"leaseDurationSeconds", 15},
                  {"renewTime", MicroTime(std::chrono::system_clock::now())}}}};
  ASSERT_TRUE(client_->Create(kLeases, lease).ok());
  lease["metadata"]["name"] = "l2";
  lease["spec"]["renewTime"] = "2026-11-25T10:00:00Z";  // not micro time
  EXPECT_EQ(client_->Create(kLeases, lease).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(KubeClientTest, UnauthorizedAndForbidden) {
  emu_.AddToken("admin");
  emu_.AddToken("reader", {"get nodes", "list nodes"});
  emu_.PutNode("n1");
  EXPECT_EQ(MakeClient("")->Get("/api/v1/nodes/n1").status().code(), StatusCode::kFailedPrecondition);
  auto wrong = MakeClient("wrong")->Get("/api/v1/nodes/n1");
  EXPECT_NE(wrong.status().message().find("401 Unauthorized"), std::string::npos);
  auto reader = MakeClient("reader");
  EXPECT_TRUE(reader->Get("/api/v1/nodes/n1").ok());
  auto denied = reader->MergePatch("/api/v1/nodes/n1", {{"metadata", {{"labels", {{"a", "b"}}}}}});
  EXPECT_NE(denied.status().message().find("403 Forbidden"), std::string::npos);
  EXPECT_NE(denied.status().message().find("cannot patch resource \"nodes\""), std::string::npos);
  EXPECT_TRUE(
      MakeClient("admin")->MergePatch("/api/v1/nodes/n1", {{"metadata", {{"labels", {{"a", "b"}}}}}}).ok());
}

TEST_F(KubeClientTest, RetriesServerErrorsAndHonoursRetryAfter) {
  emu_.PutNode("n1");
  emu_.InjectFault({Fault::Kind::kError500, "GET", "/api/v1/nodes", 2});
  EXPECT_TRUE(client_->Get("/api/v1/nodes/n1").ok());
  EXPECT_EQ(client_->stats().get, 3u);

  std::vector<std::chrono::milliseconds> waits;
  ClientOptions o;
  o.sleep = [&](std::chrono::milliseconds d) {
    waits.push_back(d);
    return true;
  };
  ClusterConfig c;
  c.server = emu_.url();
  auto created = Client::Create(c, o);
  ASSERT_TRUE(created.ok());
  auto cl = std::move(*created);
  Fault f{Fault::Kind::kRetryAfter, "", "", 1};
  f.code = 429;
  f.retry_after_seconds = 7;
  emu_.InjectFault(f);
  EXPECT_TRUE(cl->Get("/api/v1/nodes/n1").ok());
  ASSERT_EQ(waits.size(), 1u);
  EXPECT_EQ(waits[0], std::chrono::seconds(7));

  // Errors that are not transient are not retried.
  cl->stats().get = 0;
  EXPECT_FALSE(cl->Get("/api/v1/nodes/none").ok());
  EXPECT_EQ(cl->stats().get, 1u);

  // Retries are bounded.
  emu_.InjectFault({Fault::Kind::kError500, "", "", -1});
  auto r = cl->Get("/api/v1/nodes/n1");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  emu_.ClearFaults();
}

TEST_F(KubeClientTest, TimeoutsDropsAndSlowResponses) {
  emu_.PutNode("n1");
  ClientOptions o;
  o.request_timeout = std::chrono::milliseconds(300);
  o.max_attempts = 1;
  auto c = MakeClient("", o);
  Fault hang{Fault::Kind::kHang, "", "", 1};
  hang.delay = std::chrono::milliseconds(2000);
  emu_.InjectFault(hang);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(c->Get("/api/v1/nodes/n1").status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
  emu_.ClearFaults();

  emu_.InjectFault({Fault::Kind::kDrop, "", "", 1});
  EXPECT_EQ(c->Get("/api/v1/nodes/n1").status().code(), StatusCode::kUnavailable);
  emu_.InjectFault({Fault::Kind::kDrop, "", "", 1});
  EXPECT_TRUE(client_->Get("/api/v1/nodes/n1").ok());  // retried on a new connection

  Fault slow{Fault::Kind::kSlow, "", "", 1};
  slow.delay = std::chrono::milliseconds(100);
  emu_.InjectFault(slow);
  EXPECT_TRUE(c->Get("/api/v1/nodes/n1").ok());
}

TEST_F(KubeClientTest, ServerDownThenBack) {
  emu_.PutNode("n1");
  int port = emu_.port();
  emu_.Stop();
  ClientOptions o;
  o.max_attempts = 2;
  auto c = MakeClient("", o);
  EXPECT_EQ(c->Get("/api/v1/nodes/n1").status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(emu_.Start(port).ok());
  EXPECT_TRUE(c->Get("/api/v1/nodes/n1").ok());  // state survived the restart
}

TEST_F(KubeClientTest, WatchDeliversEventsAndBookmarks) {
  emu_.SetBookmarkInterval(std::chrono::milliseconds(100));
  emu_.PutNode("n1");
  auto list = client_->List("/api/v1/nodes");
  ASSERT_TRUE(list.ok());
  std::string rv = ResourceVersionOf(*list);
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    emu_.PutNode("n2");
    emu_.PutNode("n1", {{"x", "y"}});
    emu_.Remove("nodes", "n2");
  });
  std::vector<std::string> types;
  bool bookmark = false;
  std::atomic<bool> stop{false};
  auto watcher = MakeClient("");
  Status s = watcher->Watch(
      "/api/v1/nodes", "", rv,
      [&](WatchEvent&& e) {
        if (e.type == "BOOKMARK") {
          bookmark = true;
          EXPECT_FALSE(ResourceVersionOf(e.object).empty());
        } else {
          types.push_back(e.type + ":" + e.object["metadata"]["name"].get<std::string>());
        }
        return !(bookmark && types.size() >= 3);
      },
      &stop, std::chrono::seconds(5));
  writer.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED:n2", "MODIFIED:n1", "DELETED:n2"}));
  EXPECT_TRUE(bookmark);
}

TEST_F(KubeClientTest, WatchFromACompactedVersionIsGone) {
  emu_.PutNode("n1");
  std::string rv = ResourceVersionOf(*client_->List("/api/v1/nodes"));
  emu_.PutNode("n2");
  emu_.CompactHistory();
  std::atomic<bool> stop{false};
  Status s = client_->Watch(
      "/api/v1/nodes", "", rv, [](WatchEvent&&) { return true; }, &stop, std::chrono::seconds(5));
  EXPECT_TRUE(IsGone(s)) << s.ToString();
  EXPECT_NE(s.message().find("410"), std::string::npos);
}

TEST_F(KubeClientTest, WatchStopsOnRequest) {
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  Status s = client_->Watch(
      "/api/v1/nodes", "", "", [](WatchEvent&&) { return true; }, &stop, std::chrono::seconds(30));
  stopper.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(WatchDecoder, SplitsArbitraryChunks) {
  std::string stream = R"({"type":"ADDED","object":{"metadata":{"name":"a"}}})"
                       "\n"
                       R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"7"}}})"
                       "\n";
  for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    WatchDecoder d;
    std::vector<std::string> types;
    for (size_t i = 0; i < stream.size(); i += chunk) {
      Status s = d.Feed(std::string_view(stream).substr(i, chunk), [&](WatchEvent&& e) {
        types.push_back(e.type);
        return true;
      });
      ASSERT_TRUE(s.ok());
    }
    EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "BOOKMARK"})) << chunk;
  }
  WatchDecoder bad;
  EXPECT_FALSE(bad.Feed("{not json}\n", [](WatchEvent&&) { return true; }).ok());
  WatchDecoder small(16);
  EXPECT_EQ(small.Feed(std::string(100, 'x'), [](WatchEvent&&) { return true; }).code(),
            StatusCode::kResourceExhausted);
}

TEST(MicroTime, RoundTrips) {
  auto t = std::chrono::system_clock::time_point(std::chrono::microseconds(1764114000123456));
  std::string s = MicroTime(t);
  EXPECT_EQ(s, "2025-11-25T23:40:00.123456Z");
  auto back = ParseMicroTime(s);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, t);
  EXPECT_TRUE(ParseMicroTime("2025-11-25T23:40:00Z").ok());
  EXPECT_FALSE(ParseMicroTime("2025-11-25T23:40:00+01:00").ok());
  EXPECT_FALSE(ParseMicroTime("yesterday").ok());
  // Found by the response fuzzer: year 26 overflowed system_clock's nanoseconds (UB).
  EXPECT_FALSE(ParseMicroTime("0026-11-25T23:40:00.123456Z").ok());
  EXPECT_FALSE(ParseMicroTime("9999-12-31T23:59:59Z").ok());
  EXPECT_FALSE(ParseMicroTime("2025-13-01T00:00:00Z").ok());
}

TEST(Backoff, GrowsWithJitterAndCaps) {
  Backoff b(std::chrono::milliseconds(100), std::chrono::milliseconds(1000), 42);
  std::vector<int64_t> w;
  w.reserve(8);
  for (int i = 0; i < 8; ++i) w.push_back(b.Next().count());
  EXPECT_GE(w[0], 50);
  EXPECT_LE(w[0], 100);
  EXPECT_GE(w[3], 400);
  EXPECT_LE(w[3], 800);
  for (int i = 4; i < 8; ++i) {
    EXPECT_GE(w[static_cast<size_t>(i)], 500);
    EXPECT_LE(w[static_cast<size_t>(i)], 1000);
  }
}

TEST(Config, KubeconfigTokenAndClientCertificate) {
  auto dir = std::filesystem::temp_directory_path() / ("kc-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "ca.crt") << "CA";
  std::string yaml = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c1
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority: ca.crt
- name: c2
  cluster:
    server: https://10.0.0.2:6443
    certificate-authority-data: UEVNLUNB
contexts:
- name: dev
  context: {cluster: c1, user: u1}
- name: prod
  context: {cluster: c2, user: u2}
users:
- name: u1
  user: {token: abc}
- name: u2
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
)";
  auto dev = ParseKubeconfig(yaml, dir.string());
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ(dev->server, "https://10.0.0.1:6443");
  EXPECT_EQ(dev->token, "abc");
  EXPECT_EQ(dev->ca_file, (dir / "ca.crt").string());
  EXPECT_FALSE(dev->insecure_skip_tls_verify);
  auto prod = ParseKubeconfig(yaml, dir.string(), "prod");
  ASSERT_TRUE(prod.ok()) << prod.status().ToString();
  EXPECT_EQ(prod->ca_data, "PEM-CA");
  EXPECT_EQ(prod->client_cert_data, "CERT");
  EXPECT_EQ(prod->client_key_data, "KEY");
  auto nope = ParseKubeconfig(yaml, dir.string(), "nope");
  ASSERT_FALSE(nope.ok());
  EXPECT_NE(nope.status().message().find("context 'nope' not found"), std::string::npos)
      << nope.status().ToString();
  // A context naming a cluster or a user that is not there says which one is missing.
  std::string dangling = yaml;
  dangling.replace(dangling.find("{cluster: c2, user: u2}"), 23, "{cluster: c9, user: u2}");
  auto no_cluster = ParseKubeconfig(dangling, dir.string(), "prod");
  ASSERT_FALSE(no_cluster.ok());
  EXPECT_NE(no_cluster.status().message().find("cluster 'c9' not found"), std::string::npos)
      << no_cluster.status().ToString();
  dangling = yaml;
  dangling.replace(dangling.find("{cluster: c1, user: u1}"), 23, "{cluster: c1, user: u7}");
  auto no_user = ParseKubeconfig(dangling, dir.string());
  ASSERT_FALSE(no_user.ok());
  EXPECT_NE(no_user.status().message().find("user 'u7' not found"), std::string::npos)
      << no_user.status().ToString();
  EXPECT_FALSE(ParseKubeconfig("[1, 2", dir.string()).ok());
  std::filesystem::remove_all(dir);
}

TEST(Config, InCluster) {
  auto dir = std::filesystem::temp_directory_path() / ("sa-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "token") << "tok\n";
  std::ofstream(dir / "ca.crt") << "CA";
  auto env = [](const char* n) -> std::string {
    if (std::string(n) == "KUBERNETES_SERVICE_HOST") return "10.96.0.1";
    if (std::string(n) == "KUBERNETES_SERVICE_PORT") return "443";
    return "";
  };
  auto c = InClusterConfig(env, dir.string());
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token_file, (dir / "token").string());
  EXPECT_FALSE(InClusterConfig([](const char*) { return std::string(); }, dir.string()).ok());
  std::filesystem::remove_all(dir);
}

TEST(Config, TlsVerificationIsOnByDefault) {
  ClusterConfig c;
  c.server = "https://127.0.0.1:1";  // nothing listens; we only check the client refuses bad URLs
  EXPECT_FALSE(c.insecure_skip_tls_verify);
  c.server = "ftp://x";
  EXPECT_FALSE(Client::Create(c).ok());
}

}  // namespace
}  // namespace hyperaccel::kube
