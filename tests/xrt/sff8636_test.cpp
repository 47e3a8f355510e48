#include "hyperaccel/xrt/sff8636.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>
#include <vector>

namespace hyperaccel::hw {
namespace {

// A lower+upper page 0 image written byte by byte (independent of the test-support helper).
std::vector<uint8_t> Image(uint8_t identifier, uint8_t los_byte, std::string_view vendor, std::string_view pn,
                           std::string_view sn) {
  std::vector<uint8_t> b(256, 0x00);
  b[0] = identifier;
  b[3] = los_byte;
  b[128] = identifier;
  const auto put = [&](size_t at, std::string_view s) {
    for (size_t i = 0; i < 16; ++i) b[at + i] = i < s.size() ? static_cast<uint8_t>(s[i]) : ' ';
  };
  put(148, vendor);
  put(168, pn);
  put(196, sn);
  return b;
}

TEST(Sff8636, PresentQsfp28DecodesStringsTrimmed) {
  const auto img = Image(0x11, 0x00, "Amphenol", "NDAQGF-F305", "APF22420049A1X");
  const auto m = ParseSff8636(img);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->present);
  EXPECT_EQ(m->identifier, 0x11);
  EXPECT_EQ(m->vendor, "Amphenol");
  EXPECT_EQ(m->part_number, "NDAQGF-F305");
  EXPECT_EQ(m->serial, "APF22420049A1X");
  ASSERT_TRUE(m->loss_of_signal.has_value());
  EXPECT_FALSE(*m->loss_of_signal);
  EXPECT_EQ(m->rx_los_lanes, 0);
}

TEST(Sff8636, AcceptsQsfpAndQsfpPlusIdentifiers) {
  for (uint8_t id : {0x0c, 0x0d, 0x11}) {
    const auto m = ParseSff8636(Image(id, 0, "V", "P", "S"));
    ASSERT_TRUE(m.ok());
    EXPECT_TRUE(m->present) << int{id};
  }
}

TEST(Sff8636, RxLosBitsOnlyCountRxLanes) {
  // TX LOS (bits 7..4) alone is not a receive loss of signal.
  auto m = ParseSff8636(Image(0x11, 0xf0, "V", "P", "S"));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->loss_of_signal, std::optional<bool>(false));
  EXPECT_EQ(m->rx_los_lanes, 0);

  m = ParseSff8636(Image(0x11, 0x04, "V", "P", "S"));  // RX lane 3
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->loss_of_signal, std::optional<bool>(true));
  EXPECT_EQ(m->rx_los_lanes, 0x04);

  m = ParseSff8636(Image(0x11, 0xff, "V", "P", "S"));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->rx_los_lanes, 0x0f);
}

TEST(Sff8636, DataNotReadyLeavesLosUnknown) {
  auto img = Image(0x11, 0x0f, "V", "P", "S");
  img[2] = 0x01;
  const auto m = ParseSff8636(img);
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->present);
  EXPECT_FALSE(m->loss_of_signal.has_value());
}

TEST(Sff8636, AbsentModule) {
  const auto empty = ParseSff8636({});
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->present);
  EXPECT_FALSE(empty->loss_of_signal.has_value());

  for (uint8_t id : {0x00, 0xff, 0x03, 0x18}) {  // nothing, all ones, SFP, QSFP-DD (CMIS)
    const auto m = ParseSff8636(std::vector<uint8_t>(256, id));
    ASSERT_TRUE(m.ok());
    EXPECT_FALSE(m->present) << int{id};
    EXPECT_EQ(m->identifier, id);
    EXPECT_TRUE(m->vendor.empty());
  }
}

TEST(Sff8636, TruncatedImageIsAnError) {
  const auto img = Image(0x11, 0, "V", "P", "S");
  for (size_t n : {size_t{1}, size_t{128}, size_t{200}, size_t{255}}) {
    const auto m = ParseSff8636(std::span<const uint8_t>(img.data(), n));
    ASSERT_FALSE(m.ok()) << n;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find("truncated"), std::string::npos);
  }
}

TEST(Sff8636, LongerImagesAndOddBytes) {
  auto img = Image(0x11, 0, "  Lead Vendor", "", "SN\x01\x02");
  img.resize(640, 0xaa);  // pages 1..3 appended, ignored
  img[148 + 15] = 0;      // NUL padding is treated like spaces
  const auto m = ParseSff8636(img);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->vendor, "Lead Vendor");
  EXPECT_EQ(m->part_number, "");
  EXPECT_EQ(m->serial, "SN??");
}

}  // namespace
}  // namespace hyperaccel::hw
