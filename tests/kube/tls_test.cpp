// The REST client over HTTPS against the API-server emulator in TLS mode, with a CA, server and
// client certificates made at test time (tests/support/test_pki.h): verification on by default, CA from data
// or file, server name checked, insecure mode, client-certificate authentication, watch streams.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "http.h"  // kube/src: the transport's URL parsing
#include "hyperaccel/kube/client.h"
#include "hyperaccel/testing/apiserver_emulator.h"
#include "test_pki.h"

namespace hyperaccel::kube {
namespace {

using testing::ApiServerEmulator;

class KubeTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new testing::TestPki(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }
  void StartEmulator(bool require_client_cert) {
    emu_.SetTls(pki_->server_cert_file, pki_->server_key_file, require_client_cert ? pki_->ca_file : "");
    ASSERT_TRUE(emu_.Start().ok());
    emu_.PutNode("n1", {{"a", "1"}});
  }
  ClusterConfig Config() const {
    ClusterConfig c;
    c.server = emu_.url();
    c.ca_data = pki_->ca_pem;
    return c;
  }
  static std::unique_ptr<Client> Make(const ClusterConfig& c) {
    ClientOptions o;
    o.request_timeout = std::chrono::seconds(5);
    o.sleep = [](std::chrono::milliseconds) { return true; };
    auto r = Client::Create(c, o);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(*r) : nullptr;
  }

  static testing::TestPki* pki_;
  ApiServerEmulator emu_;
};

testing::TestPki* KubeTlsTest::pki_ = nullptr;

TEST_F(KubeTlsTest, VerifiesTheServerWithTheConfiguredCa) {
  StartEmulator(false);
  ASSERT_EQ(emu_.url().rfind("https://", 0), 0u);
  // CA as data: every verb works over one kept-alive TLS connection.
  auto client = Make(Config());
  auto node = client->Get("/api/v1/nodes/n1");
  ASSERT_TRUE(node.ok()) << node.status().ToString();
  EXPECT_EQ((*node)["metadata"]["name"], "n1");
  auto patched = client->MergePatch("/api/v1/nodes/n1", {{"metadata", {{"labels", {{"b", "2"}}}}}});
  ASSERT_TRUE(patched.ok()) << patched.status().ToString();
  EXPECT_EQ((*emu_.Get("nodes", "n1"))["metadata"]["labels"]["b"], "2");
  EXPECT_EQ(client->Get("/api/v1/nodes/none").status().code(), StatusCode::kNotFound);
  // CA as a file.
  ClusterConfig from_file = Config();
  from_file.ca_data.clear();
  from_file.ca_file = pki_->ca_file;
  EXPECT_TRUE(Make(from_file)->List("/api/v1/nodes").ok());
}

TEST_F(KubeTlsTest, RefusesAServerItCannotVerifyWithoutRetrying) {
  StartEmulator(false);
  // Signed by another CA: a TLS error, reported at once (no retry).
  ClusterConfig wrong_ca = Config();
  wrong_ca.ca_data = pki_->other_ca_pem;
  auto client = Make(wrong_ca);
  auto r = client->Get("/api/v1/nodes/n1");
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().ToString();
  EXPECT_NE(r.status().message().find("TLS: "), std::string::npos) << r.status().ToString();
  EXPECT_EQ(client->stats().get, 1u);
  // The certificate names 127.0.0.1 only: "localhost" does not match it.
  ClusterConfig by_name = Config();
  by_name.server = "https://localhost:" + std::to_string(emu_.port());
  auto mismatch = Make(by_name)->Get("/api/v1/nodes/n1");
  EXPECT_EQ(mismatch.status().code(), StatusCode::kFailedPrecondition) << mismatch.status().ToString();
  // The same server with verification off (insecure-skip-tls-verify: true).
  by_name.ca_data.clear();
  by_name.insecure_skip_tls_verify = true;
  EXPECT_TRUE(Make(by_name)->Get("/api/v1/nodes/n1").ok());
  // A CA that is not PEM.
  ClusterConfig garbage = Config();
  garbage.ca_data = "not a certificate";
  auto bad = Make(garbage)->Get("/api/v1/nodes/n1");
  EXPECT_EQ(bad.status().code(), StatusCode::kFailedPrecondition) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("certificate-authority-data"), std::string::npos);
}

TEST_F(KubeTlsTest, AuthenticatesWithAClientCertificate) {
  StartEmulator(true);
  // Without a certificate the server ends the handshake.
  auto without = Make(Config());
  auto refused = without->Get("/api/v1/nodes/n1");
  EXPECT_FALSE(refused.ok());
  EXPECT_EQ(emu_.CountRequests("GET", "/api/v1/nodes"), 0u);
  // As data and as files.
  ClusterConfig data = Config();
  data.client_cert_data = pki_->client_cert_pem;
  data.client_key_data = pki_->client_key_pem;
  auto got = Make(data)->Get("/api/v1/nodes/n1");
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  ClusterConfig files = Config();
  files.client_cert_file = pki_->client_cert_file;
  files.client_key_file = pki_->client_key_file;
  got = Make(files)->Get("/api/v1/nodes/n1");
  EXPECT_TRUE(got.ok()) << got.status().ToString();
  // A key file that is not there.
  files.client_key_file = pki_->client_key_file + ".missing";
  auto missing = Make(files)->Get("/api/v1/nodes/n1");
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition) << missing.status().ToString();
}

TEST_F(KubeTlsTest, WatchStreamsOverTls) {
  StartEmulator(false);
  emu_.SetBookmarkInterval(std::chrono::milliseconds(100));
  auto client = Make(Config());
  auto list = client->List("/api/v1/nodes");
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    emu_.PutNode("n2");
    emu_.Remove("nodes", "n2");
  });
  std::vector<std::string> types;
  std::atomic<bool> stop{false};
  auto started = std::chrono::steady_clock::now();
  Status s = client->Watch(
      "/api/v1/nodes", "", ResourceVersionOf(*list),
      [&](WatchEvent&& e) {
        if (e.type != "BOOKMARK")
          types.push_back(e.type + ":" + e.object["metadata"]["name"].get<std::string>());
        return types.size() < 2;
      },
      &stop, std::chrono::seconds(5));
  writer.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED:n2", "DELETED:n2"}));
  // Events arrive as they are written, not when the server ends the stream (timeoutSeconds=5).
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(3));
  // A watch stopped from outside while the stream is idle returns promptly.
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  s = client->Watch(
      "/api/v1/nodes", "", "", [](WatchEvent&&) { return true; }, &stop, std::chrono::seconds(30));
  stopper.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(ServerUrl, SplitsSchemeHostPortAndBasePath) {
  auto a = ParseServerUrl("https://10.96.0.1:443");
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->host, "10.96.0.1");
  EXPECT_EQ(a->port, "443");
  EXPECT_EQ(a->host_header, "10.96.0.1:443");
  auto v6 = ParseServerUrl("https://[fd00::1]:6443/k8s/clusters/c-1/");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "fd00::1");
  EXPECT_EQ(v6->port, "6443");
  EXPECT_EQ(v6->base_path, "/k8s/clusters/c-1");
  EXPECT_EQ(v6->host_header, "[fd00::1]:6443");
  auto plain = ParseServerUrl("http://api.example");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->tls);
  EXPECT_EQ(plain->port, "80");
  EXPECT_EQ(plain->host_header, "api.example");
  for (const char* bad : {"ftp://x", "https://", "https://h:0", "https://h:99999", "https://h:8x",
                          "https://[::1", "https://u@h", "https://[::1]x"}) {
    EXPECT_FALSE(ParseServerUrl(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace hyperaccel::kube
