// Tests of the link-IP register probe with a fake register reader (never the BAR reader).
#include "hyperaccel/xrt/link_probe.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace hyperaccel::hw {
namespace {

using ::testing::HasSubstr;

constexpr const char* kUuid = "0123abcd-0000-4000-8000-00000000beef";

// Registers by (card id, offset); a missing register reads as an error, like a dead BAR.
class FakeReader : public RegisterReader {
 public:
  void Set(const std::string& card, uint64_t offset, uint32_t value) { regs_[{card, offset}] = value; }
  Result<uint32_t> Read32(const Card& card, uint64_t offset) override {
    reads_.emplace_back(card.id, offset);
    auto it = regs_.find({card.id, offset});
    if (it == regs_.end())
      return Unavailable("card " + card.id + ": no register at " + std::to_string(offset));
    return it->second;
  }
  const std::vector<std::pair<std::string, uint64_t>>& reads() const { return reads_; }

 private:
  std::map<std::pair<std::string, uint64_t>, uint32_t> regs_;
  std::vector<std::pair<std::string, uint64_t>> reads_;
};

Card MakeCard(const std::string& id, const std::string& serial, const std::string& uuid) {
  Card card;
  card.id = id;
  card.serial = serial;
  card.xclbin_uuid = uuid;
  for (int i = 0; i < 2; ++i) {
    Port port;
    port.index = i;
    card.ports.push_back(port);
  }
  return card;
}

RegisterMap AuroraMap() {
  auto map = ParseRegisterMap(std::string("version: 1\nxclbins:\n  - uuid: ") + kUuid +
                                  "\n    ports:\n"
                                  "      - port: 0\n"
                                  "        status: {offset: 0x10, mask: 0x1fff, up: 0x11ff}\n"
                                  "        peer_serial_hash: 0x20\n"
                                  "        peer_port: 0x24\n"
                                  "      - port: 1\n"
                                  "        status: {offset: 0x1010, mask: 0x1000, up: 0x1000}\n",
                              "map.yaml");
  EXPECT_TRUE(map.ok()) << map.status().ToString();
  return map.ok() ? std::move(map).value() : RegisterMap{};
}

TEST(RegisterMapParse, ExampleFileParses) {
  const char* source_dir = std::getenv("HYPERACCEL_SOURCE_DIR");  // NOLINT(concurrency-mt-unsafe): no setenv
  const std::string root = source_dir != nullptr ? source_dir : HYPERACCEL_TEST_SOURCE_DIR;
  auto map = LoadRegisterMapFile(root + "/xrt/examples/link-registers.yaml");
  ASSERT_TRUE(map.ok()) << map.status().ToString();
  EXPECT_EQ(map->size(), 2u);
  const XclbinRegisters* aurora = map->Find("00000000-0000-0000-0000-00000000A0A0");
  ASSERT_NE(aurora, nullptr);
  ASSERT_EQ(aurora->ports.size(), 2u);
  EXPECT_EQ(aurora->ports[0].status.offset, 0x1000010u);
  EXPECT_EQ(aurora->ports[0].status.mask, 0x1fffu);
  EXPECT_EQ(aurora->ports[0].status.up, 0x11ffu);
  EXPECT_FALSE(aurora->ports[0].peer_serial_hash_offset);
  const XclbinRegisters* peer = map->Find("00000000-0000-0000-0000-00000000b0b0");
  ASSERT_NE(peer, nullptr);
  EXPECT_EQ(peer->ports[1].peer_serial_hash_offset, 0x1010020u);
  EXPECT_EQ(peer->ports[1].peer_port_offset, 0x1010024u);
}

TEST(RegisterMapParse, ErrorsNameTheLine) {
  const std::string head =
      "version: 1\nxclbins:\n  - uuid: 0123abcd-0000-4000-8000-00000000beef\n    ports:\n";
  struct Case {
    std::string text;
    std::string message;
  } cases[] = {
      {head + "      - port: 0\n        status: {offset: 0x12, mask: 0x1, up: 0x1}\n",
       "m.yaml:6: offset 0x12 is not 4-byte aligned"},
      {head + "      - port: 0\n        status: {offset: 0x10, mask: 0x1, up: 0x3}\n",
       "m.yaml:6: status 'up' 0x3 has bits outside 'mask' 0x1 (it could never match)"},
      {head + "      - port: 0\n        status: {offset: 0x10, up: 1}\n      - port: 0\n        status: "
              "{offset: 0x10, up: 1}\n",
       "m.yaml:7: port 0 is listed twice"},
      {head + "      - port: 0\n        status: {offset: 0x10, mask: zz, up: 1}\n",
       "m.yaml:6: 'mask' must be an integer (decimal or 0x hex), got 'zz'"},
      {head + "      - port: 0\n        status: {offset: 0x10}\n", "m.yaml:6: status is missing 'up'"},
      {"version: 1\nxclbins:\n  - uuid: not-a-uuid\n    ports: []\n",
       "m.yaml:3: 'uuid' must look like 01234567-89ab-cdef-0123-456789abcdef, got 'not-a-uuid'"},
      {"version: 1\nxclbins: [\n", "m.yaml:3: malformed YAML: end of sequence flow not found (column 1)"},
  };
  for (const Case& c : cases) {
    auto map = ParseRegisterMap(c.text, "m.yaml");
    ASSERT_FALSE(map.ok()) << c.text;
    EXPECT_EQ(map.status().message(), c.message);
  }
}

TEST(SerialHash, IsFnv1a32) {
  EXPECT_EQ(SerialHash32("XFL1B"), 0x1a469b22u);  // computed independently
  EXPECT_NE(SerialHash32("XFL1A"), SerialHash32("XFL1B"));
  EXPECT_NE(SerialHash32(""), 0u);
}

TEST(LinkProbe, UpDownAndPeerIdentity) {
  RegisterMap map = AuroraMap();
  FakeReader reader;
  Card a = MakeCard("0000:3b:00.1", "XFL1A", kUuid);
  Card b = MakeCard("0000:5e:00.1", "XFL1B", "0123ABCD-0000-4000-8000-00000000BEEF");  // upper case uuid
  reader.Set(a.id, 0x10, 0x11ff);  // healthy 4-lane Aurora
  reader.Set(a.id, 0x20, SerialHash32("XFL1B"));
  reader.Set(a.id, 0x24, 0x101);     // only the low 8 bits count: port 1
  reader.Set(a.id, 0x1010, 0x0000);  // channel down
  reader.Set(b.id, 0x10, 0x19ff);    // channel up but hard_err set: not up under mask 0x1fff
  reader.Set(b.id, 0x1010, 0x1000);
  // b port 1 has no peer registers configured at all.

  ProbeObservations obs = LinkProbe(map, reader).Probe({a, b});
  ASSERT_EQ(obs.ports.size(), 4u);
  const PortObservation* a0 = obs.Find("XFL1A", 0);
  ASSERT_NE(a0, nullptr);
  EXPECT_EQ(a0->state, LinkState::kUp);
  EXPECT_EQ(a0->peer_serial_hash, SerialHash32("XFL1B"));
  EXPECT_EQ(a0->peer_port, 1);
  EXPECT_EQ(a0->detail, "link IP status 0x11ff (up)");

  const PortObservation* a1 = obs.Find("XFL1A", 1);
  ASSERT_NE(a1, nullptr);
  EXPECT_EQ(a1->state, LinkState::kDown);
  EXPECT_EQ(a1->detail, "link IP status 0x0, up needs 0x1000 under mask 0x1000");
  EXPECT_FALSE(a1->peer_serial_hash);

  const PortObservation* b0 = obs.Find("XFL1B", 0);
  ASSERT_NE(b0, nullptr);
  EXPECT_EQ(b0->state, LinkState::kDown);
  EXPECT_THAT(b0->detail, HasSubstr("0x19ff"));
  // Peer registers are not read while the port is down.
  for (const auto& read : reader.reads())
    EXPECT_FALSE(read.first == b.id && (read.second == 0x20 || read.second == 0x24));

  const PortObservation* b1 = obs.Find("XFL1B", 1);
  ASSERT_NE(b1, nullptr);
  EXPECT_EQ(b1->state, LinkState::kUp);
  EXPECT_FALSE(b1->peer_serial_hash);
  EXPECT_FALSE(b1->peer_port);
}

TEST(LinkProbe, NoPeerIdentityYet) {
  RegisterMap map = AuroraMap();
  FakeReader reader;
  Card a = MakeCard("0000:3b:00.1", "XFL1A", kUuid);
  reader.Set(a.id, 0x10, 0x11ff);
  reader.Set(a.id, 0x20, 0);  // nothing received yet
  reader.Set(a.id, 0x24, 1);
  reader.Set(a.id, 0x1010, 0x1000);
  ProbeObservations obs = LinkProbe(map, reader).Probe({a});
  const PortObservation* a0 = obs.Find("XFL1A", 0);
  ASSERT_NE(a0, nullptr);
  EXPECT_EQ(a0->state, LinkState::kUp);
  EXPECT_FALSE(a0->peer_serial_hash);
  EXPECT_FALSE(a0->peer_port);
  EXPECT_THAT(a0->detail, HasSubstr("no peer identity received yet"));
}

TEST(LinkProbe, UnknownWhenNothingCanBeRead) {
  RegisterMap map = AuroraMap();
  FakeReader reader;  // no registers at all: every read fails
  Card unknown_uuid = MakeCard("0000:01:00.1", "S-UNKNOWN", "FFFFFFFF-0000-4000-8000-000000000000");
  Card no_xclbin = MakeCard("0000:02:00.1", "S-NONE", "");
  Card emulated = MakeCard("0000:00:01.0", "S-EMU", kUuid);
  emulated.emulated = true;
  Card failing = MakeCard("0000:03:00.1", "S-FAIL", kUuid);
  Card no_serial = MakeCard("0000:04:00.1", "", kUuid);
  Card three_ports = MakeCard("0000:05:00.1", "S-THREE", kUuid);
  Port extra;
  extra.index = 2;
  three_ports.ports.push_back(extra);
  reader.Set(three_ports.id, 0x10, 0x11ff);
  reader.Set(three_ports.id, 0x1010, 0x1000);
  reader.Set(three_ports.id, 0x20, 0);

  ProbeObservations obs =
      LinkProbe(map, reader).Probe({unknown_uuid, no_xclbin, emulated, failing, no_serial, three_ports});
  EXPECT_EQ(obs.ports.size(), 11u);  // 2 + 2 + 2 + 2 + 0 + 3

  const PortObservation* u = obs.Find("S-UNKNOWN", 1);
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(u->state, LinkState::kUnknown);
  EXPECT_EQ(u->detail, "no register map for xclbin ffffffff-0000-4000-8000-000000000000");
  EXPECT_EQ(obs.Find("S-NONE", 0)->detail, "no xclbin loaded, no register map");
  EXPECT_EQ(obs.Find("S-EMU", 0)->detail, "emulated card, no link hardware");
  const PortObservation* f = obs.Find("S-FAIL", 0);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->state, LinkState::kUnknown);
  EXPECT_EQ(f->detail, "status register 0x10 unreadable: card 0000:03:00.1: no register at 16");
  const PortObservation* extra_obs = obs.Find("S-THREE", 2);
  ASSERT_NE(extra_obs, nullptr);
  EXPECT_EQ(extra_obs->state, LinkState::kUnknown);
  EXPECT_EQ(extra_obs->detail, "register map for xclbin " + std::string(kUuid) + " has no port 2");
  EXPECT_EQ(obs.Find("S-THREE", 1)->state, LinkState::kUp);
  // Only the failing card and the three-port card were read; nothing else touched the reader.
  for (const auto& read : reader.reads()) {
    EXPECT_TRUE(read.first == failing.id || read.first == three_ports.id) << read.first;
  }
}

}  // namespace
}  // namespace hyperaccel::hw
