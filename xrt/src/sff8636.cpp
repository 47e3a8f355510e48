#include "hyperaccel/xrt/sff8636.h"

#include <string_view>

namespace hyperaccel::hw {
namespace {

// Offsets into the 256-byte lower+upper page 0 image. Checked against the SFF-8636 field table
// (lower page 00h and upper page 00h, as reproduced in ethtool's qsfp.h for SFF-8636 Rev 2.7):
//   byte 0        identifier, values from SFF-8024 (0x0c QSFP, 0x0d QSFP+, 0x11 QSFP28)
//   byte 2 bit 0  Data_Not_Ready (monitoring and flag data not valid yet)
//   byte 3        latched LOS flags: bits 7..4 TX4..TX1 LOS, bits 3..0 RX4..RX1 LOS
//   148-163       vendor name, ASCII, space padded
//   168-183       vendor part number, ASCII, space padded
//   196-211       vendor serial number, ASCII, space padded
// Not verified on hardware: how the Alveo CMC fills the file when the module is absent (empty
// read vs. 0x00/0xff bytes); both are reported as "not present".
constexpr size_t kIdentifier = 0;
constexpr size_t kStatus2 = 2;
constexpr uint8_t kDataNotReady = 0x01;
constexpr size_t kLos = 3;
constexpr uint8_t kRxLosMask = 0x0f;
constexpr size_t kVendorName = 148;
constexpr size_t kPartNumber = 168;
constexpr size_t kSerial = 196;
constexpr size_t kAsciiLen = 16;

constexpr uint8_t kIdQsfp = 0x0c;
constexpr uint8_t kIdQsfpPlus = 0x0d;
constexpr uint8_t kIdQsfp28 = 0x11;

std::string Ascii(std::span<const uint8_t> image, size_t offset) {
  std::string out;
  out.reserve(kAsciiLen);
  for (size_t i = offset; i < offset + kAsciiLen; ++i) {
    const uint8_t c = image[i];
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : (c == 0 ? ' ' : '?'));
  }
  const size_t first = out.find_first_not_of(' ');
  if (first == std::string::npos) return {};
  const size_t last = out.find_last_not_of(' ');
  return out.substr(first, last - first + 1);
}

}  // namespace

Result<QsfpModule> ParseSff8636(std::span<const uint8_t> image) {
  QsfpModule m;
  if (image.empty()) return m;
  if (image.size() < kSff8636ImageSize) {
    return InvalidArgument("SFF-8636 image truncated: " + std::to_string(image.size()) + " bytes, need " +
                           std::to_string(kSff8636ImageSize));
  }
  m.identifier = image[kIdentifier];
  if (m.identifier != kIdQsfp && m.identifier != kIdQsfpPlus && m.identifier != kIdQsfp28) return m;
  m.present = true;
  m.rx_los_lanes = image[kLos] & kRxLosMask;
  if ((image[kStatus2] & kDataNotReady) == 0) m.loss_of_signal = m.rx_los_lanes != 0;
  m.vendor = Ascii(image, kVendorName);
  m.part_number = Ascii(image, kPartNumber);
  m.serial = Ascii(image, kSerial);
  return m;
}

}  // namespace hyperaccel::hw
