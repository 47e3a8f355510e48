// json_fields: reads of untrusted JSON never throw, whatever the types.
#include "hyperaccel/common/json_fields.h"

#include <gtest/gtest.h>

namespace hyperaccel::json_fields {
namespace {

TEST(JsonFields, RightTypesAreRead) {
  const Json o = Json::parse(R"({"s":"x","b":true,"i":-3,"o":{"k":1},"a":[1,2]})");
  EXPECT_EQ(String(o, "s"), "x");
  EXPECT_TRUE(Bool(o, "b"));
  EXPECT_EQ(Int(o, "i"), -3);
  EXPECT_EQ(Object(o, "o").at("k"), 1);
  EXPECT_EQ(Array(o, "a").size(), 2U);
  EXPECT_EQ(Any(o, "i"), -3);
  ASSERT_NE(Find(o, "s"), nullptr);
}

TEST(JsonFields, WrongTypesMissingKeysAndNonObjectsGiveTheFallback) {
  const Json o = Json::parse(R"({"s":5,"b":"true","i":1.5,"o":[1],"a":{"k":1}})");
  EXPECT_EQ(String(o, "s", "none"), "none");
  EXPECT_FALSE(Bool(o, "b"));
  EXPECT_TRUE(Bool(o, "missing", true));
  EXPECT_EQ(Int(o, "i", 7), 7);
  EXPECT_TRUE(Object(o, "o").is_object());
  EXPECT_TRUE(Object(o, "o").empty());
  EXPECT_TRUE(Array(o, "a").is_array());
  EXPECT_TRUE(Array(o, "a").empty());
  EXPECT_TRUE(Any(o, "missing").is_null());
  for (const Json& not_object : {Json(), Json(3), Json("x"), Json::array({1, 2})}) {
    EXPECT_EQ(Find(not_object, "s"), nullptr);
    EXPECT_EQ(String(not_object, "s"), "");
    EXPECT_TRUE(Object(not_object, "o").empty());
  }
}

}  // namespace
}  // namespace hyperaccel::json_fields
