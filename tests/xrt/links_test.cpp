// Tests of QSFP cable-serial pairing and of the merge of the link sources into model.h Links.
#include "hyperaccel/xrt/links.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hyperaccel::hw {
namespace {

using ::testing::HasSubstr;

const std::string kNode = "lpu-node-01";

Card MakeCard(const std::string& serial) {
  Card card;
  card.id = "0000:" + serial + ":00.1";
  card.serial = serial;
  for (int i = 0; i < 2; ++i) {
    Port port;
    port.index = i;
    card.ports.push_back(port);
  }
  return card;
}

// Marks a cage as read with a module carrying `cable_serial`.
void Module(Card& card, int port, const std::string& cable_serial, std::optional<bool> los = false) {
  Port& p = card.ports.at(static_cast<size_t>(port));
  p.module_info_read = true;
  p.module_present = true;
  p.loss_of_signal = los;
  p.cable_serial = cable_serial;
}

PortObservation Obs(const std::string& serial, int port, LinkState state) {
  PortObservation obs;
  obs.serial = serial;
  obs.port = port;
  obs.state = state;
  obs.detail = state == LinkState::kUp     ? "link IP status 0x11ff (up)"
               : state == LinkState::kDown ? "link IP status 0x1ff, up needs 0x11ff under mask 0x1fff"
                                           : "no register map for xclbin 0123";
  return obs;
}

void Add(ProbeObservations& probe, PortObservation obs) {
  probe.ports[{obs.serial, obs.port}] = std::move(obs);
}

PortObservation WithPeer(PortObservation obs, const std::string& peer_serial, std::optional<int> peer_port) {
  obs.peer_serial_hash = SerialHash32(peer_serial);
  obs.peer_port = peer_port;
  return obs;
}

// L1 A/1-B/0, L2 B/1-C/0 (both local), L3 C/1 - lpu-node-02/X/0 (cross-node), L4 A/0 - Z/1 where
// Z is not on this node, L5 on lpu-node-02 only.
Cabling TestCabling() {
  auto cabling = ParseCabling(
      "version: 1\n"
      "links:\n"
      "  - a: {node: lpu-node-01, serial: XFL1A, port: 1}\n"
      "    b: {node: lpu-node-01, serial: XFL1B, port: 0}\n"
      "  - a: {node: lpu-node-01, serial: XFL1B, port: 1}\n"
      "    b: {node: lpu-node-01, serial: XFL1C, port: 0}\n"
      "  - a: {node: lpu-node-01, serial: XFL1C, port: 1}\n"
      "    b: {node: lpu-node-02, serial: XFL1X, port: 0}\n"
      "    kind: aurora\n"
      "  - a: {node: lpu-node-01, serial: XFL1A, port: 0}\n"
      "    b: {node: lpu-node-01, serial: XFL1Z, port: 1}\n"
      "  - a: {node: lpu-node-02, serial: XFL1X, port: 1}\n"
      "    b: {node: lpu-node-02, serial: XFL1Y, port: 0}\n",
      "cabling.yaml");
  EXPECT_TRUE(cabling.ok()) << cabling.status().ToString();
  return cabling.ok() ? std::move(cabling).value() : Cabling{};
}

class MergeWithCabling : public ::testing::Test {
 protected:
  std::vector<Link> Merge(const ProbeObservations* probe = nullptr, bool pair_qsfp = true) {
    qsfp_ = PairByCableSerial(cards_);
    return MergeLinks(kNode, cards_, &cabling_, probe, pair_qsfp ? &qsfp_ : nullptr);
  }

  Cabling cabling_ = TestCabling();
  std::vector<Card> cards_ = {MakeCard("XFL1A"), MakeCard("XFL1B"), MakeCard("XFL1C")};
  QsfpPairing qsfp_;
};

TEST_F(MergeWithCabling, NothingObservedIsUnknownAndMissingCardIsDown) {
  std::vector<Link> links = Merge(nullptr, false);
  ASSERT_EQ(links.size(), 4u);  // L5 does not touch this node
  EXPECT_EQ(links[0].a, (PortRef{"", "XFL1A", 1}));
  EXPECT_EQ(links[0].b, (PortRef{"", "XFL1B", 0}));
  EXPECT_EQ(links[0].state, LinkState::kUnknown);
  EXPECT_EQ(links[0].source, "cabling");
  EXPECT_EQ(links[0].kind, "esl");
  EXPECT_EQ(links[0].detail, "XFL1A/1: link IP not observed; XFL1B/0: link IP not observed");

  EXPECT_EQ(links[2].b, (PortRef{"lpu-node-02", "XFL1X", 0}));
  EXPECT_EQ(links[2].kind, "aurora");
  EXPECT_EQ(links[2].state, LinkState::kUnknown);
  EXPECT_THAT(links[2].detail, HasSubstr("far end lpu-node-02/XFL1X/0 is reported by its node"));

  EXPECT_EQ(links[3].state, LinkState::kDown);
  EXPECT_EQ(links[3].source, "cabling");
  EXPECT_THAT(links[3].detail, HasSubstr("card XFL1Z is not on this node"));
}

TEST_F(MergeWithCabling, UpWhenEveryLocalEndIsUpAndPeersMatch) {
  ProbeObservations probe;
  Add(probe, WithPeer(Obs("XFL1A", 1, LinkState::kUp), "XFL1B", 0));
  Add(probe, WithPeer(Obs("XFL1B", 0, LinkState::kUp), "XFL1A", 1));
  Add(probe, Obs("XFL1B", 1, LinkState::kUp));  // no identity registers: state alone
  Add(probe, Obs("XFL1C", 0, LinkState::kUp));
  Add(probe, Obs("XFL1C", 1, LinkState::kUp));  // the cross-node link's only local end
  std::vector<Link> links = Merge(&probe);
  ASSERT_EQ(links.size(), 4u);
  EXPECT_EQ(links[0].state, LinkState::kUp);
  EXPECT_EQ(links[0].source, "cabling+probe");
  EXPECT_EQ(links[0].detail,
            "XFL1A/1: link IP status 0x11ff (up), peer matches the cabling; "
            "XFL1B/0: link IP status 0x11ff (up), peer matches the cabling");
  EXPECT_EQ(links[1].state, LinkState::kUp);
  EXPECT_EQ(links[2].state, LinkState::kUp);
  EXPECT_EQ(links[2].source, "cabling+probe");
}

TEST_F(MergeWithCabling, OneEndUpOtherUnobservedIsUnknown) {
  ProbeObservations probe;
  Add(probe, Obs("XFL1A", 1, LinkState::kUp));
  Add(probe, Obs("XFL1B", 0, LinkState::kUnknown));
  std::vector<Link> links = Merge(&probe);
  EXPECT_EQ(links[0].state, LinkState::kUnknown);
  EXPECT_EQ(links[0].source, "cabling+probe");
  EXPECT_EQ(links[0].detail, "XFL1A/1: link IP status 0x11ff (up); XFL1B/0: no register map for xclbin 0123");
}

TEST_F(MergeWithCabling, DownWhenAnEndIsDown) {
  ProbeObservations probe;
  Add(probe, Obs("XFL1A", 1, LinkState::kUp));
  Add(probe, Obs("XFL1B", 0, LinkState::kDown));
  std::vector<Link> links = Merge(&probe);
  EXPECT_EQ(links[0].state, LinkState::kDown);
  EXPECT_EQ(links[0].source, "cabling+probe");
  EXPECT_THAT(links[0].detail, ::testing::StartsWith("XFL1B/0: link IP status 0x1ff, up needs 0x11ff"));
}

TEST_F(MergeWithCabling, MismatchWhenTheLinkIpSeesAnotherPeer) {
  ProbeObservations probe;
  Add(probe, WithPeer(Obs("XFL1A", 1, LinkState::kUp), "XFL1C", 0));  // file says B/0
  Add(probe, WithPeer(Obs("XFL1B", 0, LinkState::kUp), "XFL1A", 1));
  Add(probe, WithPeer(Obs("XFL1B", 1, LinkState::kUp), "XFL1C", 1));  // right card, wrong port
  Add(probe, WithPeer(Obs("XFL1C", 1, LinkState::kUp), "XFL1X", 0));  // cross-node peer matches
  std::vector<Link> links = Merge(&probe);
  EXPECT_EQ(links[0].state, LinkState::kMismatch);
  EXPECT_THAT(links[0].detail, HasSubstr("link IP on XFL1A/1 sees peer serial hash"));
  EXPECT_THAT(links[0].detail, HasSubstr("cabling says XFL1B/0"));
  EXPECT_EQ(links[1].state, LinkState::kMismatch);
  EXPECT_THAT(links[1].detail, HasSubstr("link IP on XFL1B/1 sees peer port 1, cabling says XFL1C/0"));
  EXPECT_EQ(links[2].state, LinkState::kUp);
  EXPECT_THAT(links[2].detail, HasSubstr("peer matches the cabling"));
}

TEST_F(MergeWithCabling, QsfpModuleAbsentOrLossOfSignalIsDown) {
  // A/1: module info read, no module. B/1: loss of signal.
  cards_[0].ports[1].module_info_read = true;
  cards_[0].ports[1].module_present = false;
  Module(cards_[1], 1, "CABLE-2", true);
  std::vector<Link> links = Merge();
  EXPECT_EQ(links[0].state, LinkState::kDown);
  EXPECT_EQ(links[0].source, "cabling+qsfp");
  EXPECT_THAT(links[0].detail, ::testing::StartsWith("no QSFP module in XFL1A/1"));
  EXPECT_EQ(links[1].state, LinkState::kDown);
  EXPECT_THAT(links[1].detail, ::testing::StartsWith("loss of signal on XFL1B/1"));
}

TEST_F(MergeWithCabling, UnreadQsfpInformationProvesNothing) {
  // The scanner could not read the cages: module_present is false but means "unknown".
  for (Card& card : cards_) {
    for (Port& port : card.ports) port.loss_of_signal = true;
  }
  std::vector<Link> links = Merge();
  EXPECT_EQ(links[0].state, LinkState::kUnknown);
  EXPECT_EQ(links[0].source, "cabling");
}

TEST_F(MergeWithCabling, QsfpPairingConfirmsOrContradictsTheFile) {
  Module(cards_[0], 1, "CABLE-1");  // A/1 and B/0 share a cable: as the file says
  Module(cards_[1], 0, "CABLE-1");
  Module(cards_[1], 1, "CABLE-2");  // B/1 pairs with C/1, the file says B/1 - C/0
  Module(cards_[2], 1, "CABLE-2");
  std::vector<Link> links = Merge();
  EXPECT_EQ(links[0].state, LinkState::kUnknown);  // a matching cable is not a working link
  EXPECT_EQ(links[0].source, "cabling+qsfp");
  EXPECT_THAT(links[0].detail, HasSubstr("cable serial of XFL1A/1 matches XFL1B/0"));
  EXPECT_EQ(links[1].state, LinkState::kMismatch);
  EXPECT_THAT(links[1].detail, HasSubstr("cable serial pairs XFL1B/1 with XFL1C/1, cabling says XFL1C/0"));
  // The cross-node link's local end is cabled to a local port: the cable cannot reach node 02.
  EXPECT_EQ(links[2].state, LinkState::kMismatch);
  EXPECT_THAT(links[2].detail,
              HasSubstr("cable serial pairs XFL1C/1 with XFL1B/1, cabling says lpu-node-02/XFL1X/0"));
}

TEST_F(MergeWithCabling, ProbeAndQsfpTogether) {
  Module(cards_[0], 1, "CABLE-1");
  Module(cards_[1], 0, "CABLE-1");
  ProbeObservations probe;
  Add(probe, Obs("XFL1A", 1, LinkState::kUp));
  Add(probe, Obs("XFL1B", 0, LinkState::kUp));
  std::vector<Link> links = Merge(&probe);
  EXPECT_EQ(links[0].state, LinkState::kUp);
  EXPECT_EQ(links[0].source, "cabling+probe+qsfp");
}

TEST_F(MergeWithCabling, EmulatedRingFromRingCabling) {
  std::vector<Card> emulated = {MakeCard("EMU0"), MakeCard("EMU1"), MakeCard("EMU2")};
  for (Card& card : emulated) card.emulated = true;
  Cabling ring = RingCabling(kNode, {"EMU0", "EMU1", "EMU2"});
  RegisterMap no_maps;
  class NeverRead : public RegisterReader {
   public:
    Result<uint32_t> Read32(const Card&, uint64_t) override { return Internal("must not be called"); }
  } reader;
  ProbeObservations probe = LinkProbe(no_maps, reader).Probe(emulated);
  std::vector<Link> links = MergeLinks(kNode, emulated, &ring, &probe, nullptr);
  ASSERT_EQ(links.size(), 3u);
  for (const Link& link : links) {
    EXPECT_EQ(link.state, LinkState::kUnknown);  // the caller marks them up ("emulated")
    EXPECT_TRUE(link.a.node.empty() && link.b.node.empty());
    EXPECT_THAT(link.detail, HasSubstr("emulated card, no link hardware"));
  }
  EXPECT_EQ(links[2].a, (PortRef{"", "EMU2", 1}));
  EXPECT_EQ(links[2].b, (PortRef{"", "EMU0", 0}));
}

TEST(MergeWithoutCabling, ProbePeerIdentityMakesUpLinks) {
  std::vector<Card> cards = {MakeCard("XFL1A"), MakeCard("XFL1B"), MakeCard("XFL1C")};
  ProbeObservations probe;
  // A/1 <-> B/0 with peer ports; B/1 <-> C/0 without peer-port registers (resolved through C/0
  // pointing back); C/1 names a card that is not on this node; A/0 is down.
  Add(probe, WithPeer(Obs("XFL1A", 1, LinkState::kUp), "XFL1B", 0));
  Add(probe, WithPeer(Obs("XFL1B", 0, LinkState::kUp), "XFL1A", 1));
  Add(probe, WithPeer(Obs("XFL1B", 1, LinkState::kUp), "XFL1C", std::nullopt));
  Add(probe, WithPeer(Obs("XFL1C", 0, LinkState::kUp), "XFL1B", std::nullopt));
  Add(probe, WithPeer(Obs("XFL1C", 1, LinkState::kUp), "XFL1REMOTE", 0));
  Add(probe, Obs("XFL1A", 0, LinkState::kDown));
  std::vector<Link> links = MergeLinks(kNode, cards, nullptr, &probe, nullptr);
  ASSERT_EQ(links.size(), 2u);
  EXPECT_EQ(links[0].a, (PortRef{"", "XFL1A", 1}));
  EXPECT_EQ(links[0].b, (PortRef{"", "XFL1B", 0}));
  EXPECT_EQ(links[0].state, LinkState::kUp);
  EXPECT_EQ(links[0].source, "probe");
  EXPECT_EQ(links[0].detail, "link IP on XFL1A/1 names peer XFL1B/0; link IP on XFL1B/0 names peer XFL1A/1");
  EXPECT_EQ(links[1].a, (PortRef{"", "XFL1B", 1}));
  EXPECT_EQ(links[1].b, (PortRef{"", "XFL1C", 0}));
  EXPECT_EQ(links[1].state, LinkState::kUp);
}

TEST(MergeWithoutCabling, QsfpPairsAreUnknownDownOrUp) {
  std::vector<Card> cards = {MakeCard("XFL1A"), MakeCard("XFL1B"), MakeCard("XFL1C")};
  Module(cards[0], 1, "CABLE-1");  // A/1 - B/0: nothing else known
  Module(cards[1], 0, "CABLE-1");
  Module(cards[1], 1, "CABLE-2", true);  // B/1 - C/0: loss of signal
  Module(cards[2], 0, "CABLE-2");
  Module(cards[2], 1, "CABLE-3");  // C/1 - A/0: link IP up on both ends
  Module(cards[0], 0, "CABLE-3");
  ProbeObservations probe;
  Add(probe, Obs("XFL1C", 1, LinkState::kUp));
  Add(probe, Obs("XFL1A", 0, LinkState::kUp));
  QsfpPairing qsfp = PairByCableSerial(cards);
  std::vector<Link> links = MergeLinks(kNode, cards, nullptr, &probe, &qsfp);
  ASSERT_EQ(links.size(), 3u);
  // Sorted by (a, b): A/0-C/1, A/1-B/0, B/1-C/0.
  EXPECT_EQ(links[0].a, (PortRef{"", "XFL1A", 0}));
  EXPECT_EQ(links[0].b, (PortRef{"", "XFL1C", 1}));
  EXPECT_EQ(links[0].state, LinkState::kUp);
  EXPECT_EQ(links[0].source, "probe+qsfp");
  EXPECT_EQ(links[1].state, LinkState::kUnknown);
  EXPECT_EQ(links[1].source, "qsfp");
  EXPECT_EQ(links[1].detail,
            "link IP not observed on both ends; cable serial CABLE-1 pairs XFL1A/1 and XFL1B/0");
  EXPECT_EQ(links[2].state, LinkState::kDown);
  EXPECT_THAT(links[2].detail, ::testing::StartsWith("loss of signal on XFL1B/1"));
}

TEST(MergeWithoutCabling, ProbeWinsOverAContradictingCable) {
  std::vector<Card> cards = {MakeCard("XFL1A"), MakeCard("XFL1B")};
  Module(cards[0], 1, "CABLE-1");  // the cables claim A/1 - B/1
  Module(cards[1], 1, "CABLE-1");
  Module(cards[0], 0, "CABLE-9");  // and A/0 - B/0
  Module(cards[1], 0, "CABLE-9");
  ProbeObservations probe;
  Add(probe, WithPeer(Obs("XFL1A", 1, LinkState::kUp), "XFL1B", 0));  // the link IP says A/1 - B/0
  QsfpPairing qsfp = PairByCableSerial(cards);
  std::vector<Link> links = MergeLinks(kNode, cards, nullptr, &probe, &qsfp);
  ASSERT_EQ(links.size(), 1u);
  EXPECT_EQ(links[0].a, (PortRef{"", "XFL1A", 1}));
  EXPECT_EQ(links[0].b, (PortRef{"", "XFL1B", 0}));
  EXPECT_EQ(links[0].source, "probe");
}

TEST(MergeWithoutCabling, NothingKnownMeansNoLinks) {
  std::vector<Card> cards = {MakeCard("XFL1A"), MakeCard("XFL1B")};
  EXPECT_TRUE(MergeLinks(kNode, cards, nullptr, nullptr, nullptr).empty());
}

TEST(QsfpPairing, PairsAmbiguousTriplesAndAbsentModules) {
  std::vector<Card> cards = {MakeCard("XFL1A"), MakeCard("XFL1B"), MakeCard("XFL1C"), MakeCard("XFL1D")};
  Module(cards[0], 1, "  DAC-1  ");  // blanks are trimmed
  Module(cards[1], 0, "DAC-1");
  Module(cards[1], 1, "DAC-3");  // three ports share DAC-3: ambiguous
  Module(cards[2], 0, "DAC-3");
  Module(cards[3], 0, "DAC-3");
  Module(cards[2], 1, "LONELY");  // far end elsewhere
  Module(cards[3], 1, "DAC-1");   // absent module: its stale serial does not count
  cards[3].ports[1].module_present = false;
  Module(cards[0], 0, "DAC-7");  // unread cage with a leftover serial does not count
  cards[0].ports[0].module_info_read = false;

  QsfpPairing qsfp = PairByCableSerial(cards);
  ASSERT_EQ(qsfp.pairs.size(), 1u);
  EXPECT_EQ(qsfp.pairs[0].a, (PortRef{"", "XFL1A", 1}));
  EXPECT_EQ(qsfp.pairs[0].b, (PortRef{"", "XFL1B", 0}));
  EXPECT_EQ(qsfp.pairs[0].cable_serial, "DAC-1");
  ASSERT_NE(qsfp.PeerOf("XFL1B", 0), nullptr);
  EXPECT_EQ(*qsfp.PeerOf("XFL1B", 0), (PortRef{"", "XFL1A", 1}));
  EXPECT_EQ(qsfp.PeerOf("XFL1C", 1), nullptr);
  EXPECT_EQ(qsfp.PeerOf("XFL1C", 0), nullptr);
  EXPECT_EQ(qsfp.ambiguous, (std::vector<PortRef>{{"", "XFL1B", 1}, {"", "XFL1C", 0}, {"", "XFL1D", 0}}));
  ASSERT_EQ(qsfp.warnings.size(), 1u);
  EXPECT_EQ(qsfp.warnings[0],
            "cable serial DAC-3 is reported by 3 ports (XFL1B/1, XFL1C/0, XFL1D/0); not pairing them");
}

TEST(QsfpPairing, LoopbackOnOneCardAndEmulatedCards) {
  std::vector<Card> cards = {MakeCard("XFL1A"), MakeCard("EMU0")};
  Module(cards[0], 0, "LOOP");
  Module(cards[0], 1, "LOOP");
  Module(cards[1], 0, "EMU-CABLE");
  Module(cards[1], 1, "EMU-CABLE");
  cards[1].emulated = true;
  QsfpPairing qsfp = PairByCableSerial(cards);
  ASSERT_EQ(qsfp.pairs.size(), 1u);
  EXPECT_EQ(qsfp.pairs[0].a, (PortRef{"", "XFL1A", 0}));
  EXPECT_EQ(qsfp.pairs[0].b, (PortRef{"", "XFL1A", 1}));
  EXPECT_TRUE(qsfp.warnings.empty());
}

}  // namespace
}  // namespace hyperaccel::hw
