// Server-version discovery and the resource.k8s.io/v1 helpers of hyperaccel::kube.
#include "hyperaccel/kube/resource.h"

#include <gtest/gtest.h>

#include "hyperaccel/testing/apiserver_emulator.h"

namespace hyperaccel::kube {
namespace {

TEST(ResourceTest, ParsesVersions) {
  auto v = ParseServerVersion(R"({"major":"1","minor":"35","gitVersion":"v1.35.1"})");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->minor, 35);
  EXPECT_TRUE(v->AtLeast(1, 34));
  EXPECT_FALSE(v->AtLeast(1, 36));
  v = ParseServerVersion(R"({"major":"1","minor":"34+","gitVersion":"v1.34.2-gke.1"})");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->minor, 34);
  v = ParseServerVersion(R"({"major":"","minor":"","gitVersion":"v1.36.0"})");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->minor, 36);
  EXPECT_FALSE(ParseServerVersion(R"({"gitVersion":"main"})").ok());
  EXPECT_FALSE(ParseServerVersion("not json").ok());
  EXPECT_FALSE(ParseServerVersion(R"({"major":"1","minor":"99999999999999999999"})").ok());
}

TEST(ResourceTest, PathsAndSelectors) {
  EXPECT_EQ(ResourceSlicesPath(), "/apis/resource.k8s.io/v1/resourceslices");
  EXPECT_EQ(ResourceClaimStatusPath("ns", "c"),
            "/apis/resource.k8s.io/v1/namespaces/ns/resourceclaims/c/status");
  EXPECT_EQ(SliceFieldSelector("n1", "fpga.hyperaccel.ai"),
            "spec.nodeName=n1,spec.driver=fpga.hyperaccel.ai");
  EXPECT_EQ(WithFieldSelector("/x", "a=b"), "/x?fieldSelector=a%3Db");
}

TEST(ResourceTest, AllocatedDevices) {
  Json claim = {{"status",
                 {{"allocation",
                   {{"devices",
                     {{"results",
                       {{{"request", "quad"},
                         {"driver", "fpga.hyperaccel.ai"},
                         {"pool", "n1"},
                         {"device", "arc4-0"}}}}}}}}}}};
  auto d = AllocatedDevices(claim);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->size(), 1u);
  EXPECT_EQ((*d)[0].device, "arc4-0");
  EXPECT_TRUE(AllocatedDevices(Json::object()).ok());
  claim["status"]["allocation"]["devices"]["results"][0].erase("pool");
  EXPECT_FALSE(AllocatedDevices(claim).ok());
}

// Against the emulator: version discovery, field-selector lists, claim status subresource and
// 422 Invalid for a slice over the limits.
TEST(ResourceTest, AgainstTheEmulator) {
  testing::ApiServerEmulator api;
  ASSERT_TRUE(api.Start().ok());
  api.SetServerVersion(1, 34);
  ClusterConfig c;
  c.server = api.url();
  auto client = Client::Create(c);
  ASSERT_TRUE(client.ok());
  auto v = DiscoverServerVersion(**client);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->minor, 34);

  auto slice = [](const std::string& name, const std::string& node, int devices) {
    Json s = {{"metadata", {{"name", name}}},
              {"spec",
               {{"driver", "fpga.hyperaccel.ai"},
                {"nodeName", node},
                {"pool", {{"name", node}, {"generation", 1}, {"resourceSliceCount", 1}}},
                {"devices", Json::array()}}}};
    for (int i = 0; i < devices; ++i) s["spec"]["devices"].push_back({{"name", "card-" + std::to_string(i)}});
    return s;
  };
  ASSERT_TRUE((*client)->Create(ResourceSlicesPath(), slice("a", "n1", 2)).ok());
  ASSERT_TRUE((*client)->Create(ResourceSlicesPath(), slice("b", "n2", 2)).ok());
  auto list = ListNodeResourceSlices(**client, "n1", "fpga.hyperaccel.ai");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ((*list)["items"].size(), 1u);
  EXPECT_EQ((*list)["items"][0]["metadata"]["name"], "a");
  auto too_many = (*client)->Create(ResourceSlicesPath(), slice("c", "n1", 129));
  EXPECT_EQ(too_many.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_many.status().message().find("spec.devices"), std::string::npos);

  Json claim = {
      {"metadata", {{"name", "quad"}}},
      {"spec",
       {{"devices",
         {{"requests", {{{"name", "q"}, {"exactly", {{"deviceClassName", "fpga.hyperaccel.ai"}}}}}}}}}}};
  auto created = (*client)->Create(ResourceClaimsPath("default"), claim);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Json with_status = *created;
  with_status["status"] = {
      {"allocation",
       {{"devices",
         {{"results",
           {{{"request", "q"}, {"driver", "fpga.hyperaccel.ai"}, {"pool", "n1"}, {"device", "arc4-0"}}}}}}}}};
  auto updated = (*client)->Replace(ResourceClaimStatusPath("default", "quad"), with_status);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  auto read = (*client)->Get(ResourceClaimPath("default", "quad"));
  ASSERT_TRUE(read.ok());
  auto devices = AllocatedDevices(*read);
  ASSERT_TRUE(devices.ok());
  ASSERT_EQ(devices->size(), 1u);
  EXPECT_EQ((*devices)[0].pool, "n1");
}

}  // namespace
}  // namespace hyperaccel::kube
