// Tests of the cabling file parser, its validation against a node's cards, and link domains.
#include "hyperaccel/xrt/cabling.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace hyperaccel::hw {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A ring of 8 cards on lpu-node-01 plus one cross-node link from a second ring on lpu-node-02.
std::string Ring8WithCrossNode() {
  std::string text = "version: 1\nlinks:\n";
  for (int i = 0; i < 8; ++i) {
    text += "  - a: {node: lpu-node-01, serial: XFL1ABCDEF0" + std::to_string(i) + ", port: 1}\n";
    text += "    b: {node: lpu-node-01, serial: XFL1ABCDEF0" + std::to_string((i + 1) % 8) + ", port: 0}\n";
  }
  text +=
      "  - a: {node: lpu-node-02, serial: XFL1GHIJKL01, port: 1}\n"
      "    b: {node: lpu-node-02, serial: XFL1GHIJKL02, port: 0}\n"
      "    kind: aurora\n"
      "  - a:\n"
      "      node: lpu-node-02\n"
      "      serial: XFL1GHIJKL02\n"
      "      port: 1\n"
      "    b: {node: lpu-node-03, serial: XFL1MNOPQR01, port: 0}   # cross-node link\n";
  return text;
}

Card CardWithSerial(const std::string& serial) {
  Card card;
  card.serial = serial;
  return card;
}

TEST(CablingParse, RingOfEightAndCrossNodeLinks) {
  auto cabling = ParseCabling(Ring8WithCrossNode(), "cabling.yaml");
  ASSERT_TRUE(cabling.ok()) << cabling.status().ToString();
  EXPECT_EQ(cabling->source, "cabling.yaml");
  ASSERT_EQ(cabling->links.size(), 10u);
  const CabledLink& first = cabling->links[0];
  EXPECT_EQ(first.a, (PortRef{"lpu-node-01", "XFL1ABCDEF00", 1}));
  EXPECT_EQ(first.b, (PortRef{"lpu-node-01", "XFL1ABCDEF01", 0}));
  EXPECT_EQ(first.kind, "esl");
  EXPECT_EQ(first.line, 3);
  EXPECT_EQ(cabling->links[7].b, (PortRef{"lpu-node-01", "XFL1ABCDEF00", 0}));
  EXPECT_EQ(cabling->links[8].kind, "aurora");
  const CabledLink& cross = cabling->links[9];
  EXPECT_EQ(cross.line, 22);
  EXPECT_EQ(cross.a, (PortRef{"lpu-node-02", "XFL1GHIJKL02", 1}));
  EXPECT_EQ(cross.b, (PortRef{"lpu-node-03", "XFL1MNOPQR01", 0}));

  EXPECT_EQ(LinksTouchingNode(*cabling, "lpu-node-01").size(), 8u);
  auto node2 = LinksTouchingNode(*cabling, "lpu-node-02");
  ASSERT_EQ(node2.size(), 2u);
  EXPECT_EQ(node2[1]->line, 22);
  auto node3 = LinksTouchingNode(*cabling, "lpu-node-03");
  ASSERT_EQ(node3.size(), 1u);
  EXPECT_EQ(node3[0], &cabling->links[9]);
  EXPECT_TRUE(LinksTouchingNode(*cabling, "lpu-node-04").empty());
}

TEST(CablingParse, EmptyAndNullLinkListsAreValid) {
  auto empty = ParseCabling("version: 1\nlinks: []\n", "c.yaml");
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->links.empty());
  auto null = ParseCabling("version: 1\nlinks:\n", "c.yaml");
  ASSERT_TRUE(null.ok()) << null.status().ToString();
  EXPECT_TRUE(null->links.empty());
}

TEST(CablingParse, LoopbackOnOneCardIsRejected) {
  auto cabling = ParseCabling(
      "version: 1\nlinks:\n"
      "  - a: {node: n1, serial: S1, port: 0}\n"
      "    b: {node: n1, serial: S2, port: 0}\n"
      "  - a: {node: n1, serial: S3, port: 0}\n"
      "    b: {node: n1, serial: S3, port: 1}\n",
      "c.yaml");
  ASSERT_FALSE(cabling.ok()) << "a card cabled to itself made " << CablingDomains(*cabling).size()
                             << " domains";
  EXPECT_EQ(cabling.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cabling.status().message(),
            "c.yaml:5: card n1/S3 is cabled to itself (port 0 to port 1): a loopback links the card to no "
            "other card; remove the entry");
}

TEST(CablingParse, MaxPortsIsConfigurable) {
  const std::string text =
      "version: 1\nlinks:\n"
      "  - a: {node: n1, serial: S1, port: 3}\n"
      "    b: {node: n1, serial: S2, port: 0}\n";
  auto narrow = ParseCabling(text, "c.yaml");
  ASSERT_FALSE(narrow.ok());
  EXPECT_EQ(narrow.status().message(), "c.yaml:3: port 3 out of range (0..1)");
  CablingOptions options;
  options.max_ports = 4;
  auto wide = ParseCabling(text, "c.yaml", options);
  ASSERT_TRUE(wide.ok()) << wide.status().ToString();
  EXPECT_EQ(wide->links[0].a.port, 3);
}

struct ErrorCase {
  const char* name;
  std::string text;
  std::string message;  // exact expected message
};

class CablingErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(CablingErrors, NameFileAndLine) {
  const ErrorCase& c = GetParam();
  auto cabling = ParseCabling(c.text, "cabling.yaml");
  ASSERT_FALSE(cabling.ok()) << "accepted: " << c.text;
  EXPECT_EQ(cabling.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cabling.status().message(), c.message);
}

const std::string kHead = "version: 1\nlinks:\n";
const std::string kGood = "  - a: {node: n1, serial: S1, port: 1}\n    b: {node: n1, serial: S2, port: 0}\n";

INSTANTIATE_TEST_SUITE_P(
    AllClasses, CablingErrors,
    ::testing::Values(
        ErrorCase{"PortOutOfRange",
                  kHead + kGood +
                      "  - a: {node: n1, serial: S2, port: 1}\n    b: {node: n1, serial: S3, port: 3}\n",
                  "cabling.yaml:6: port 3 out of range (0..1)"},
        ErrorCase{"NegativePort",
                  kHead + "  - a: {node: n1, serial: S1, port: -1}\n    b: {node: n1, serial: S2, port: 0}\n",
                  "cabling.yaml:3: 'port' must be an integer, got '-1'"},
        ErrorCase{"PortUsedTwice",
                  kHead + kGood +
                      "  - a: {node: n1, serial: S3, port: 1}\n    b: {node: n1, serial: S2, port: 0}\n",
                  "cabling.yaml:5: n1/S2 port 0 is already used by the link at line 3"},
        ErrorCase{"SelfLink",
                  kHead + kGood +
                      "  - a: {node: n1, serial: S9, port: 1}\n    b: {node: n1, serial: S9, port: 1}\n",
                  "cabling.yaml:5: self-link: both ends are n1/S9 port 1"},
        ErrorCase{"SerialOnTwoNodes",
                  kHead + kGood +
                      "  - a: {node: n2, serial: S1, port: 0}\n    b: {node: n2, serial: S7, port: 0}\n",
                  "cabling.yaml:5: serial S1 on node n2 is already on node n1 (line 3)"},
        ErrorCase{"MalformedYaml", kHead + kGood + "  - a: {node: n1, serial: S3, port: 1\n    b: x\n",
                  "cabling.yaml:6: malformed YAML: end of map flow not found (column 6)"},
        ErrorCase{"TabIndentedGarbage", "version: 1\nlinks: [\n",
                  "cabling.yaml:3: malformed YAML: end of sequence flow not found (column 1)"},
        ErrorCase{"MissingPort",
                  kHead + "  - a: {node: n1, serial: S1}\n    b: {node: n1, serial: S2, port: 0}\n",
                  "cabling.yaml:3: endpoint 'a' is missing 'port'"},
        ErrorCase{
            "MissingSerial",
            kHead + kGood + "  - a: {node: n1, serial: S3, port: 1}\n    b:\n      node: n2\n      port: 0\n",
            "cabling.yaml:7: endpoint 'b' is missing 'serial'"},
        ErrorCase{"MissingEndpoint", kHead + "  - a: {node: n1, serial: S1, port: 1}\n    kind: esl\n",
                  "cabling.yaml:3: link is missing endpoint 'b'"},
        ErrorCase{"MissingVersion", "links: []\n", "cabling.yaml:1: missing 'version'"},
        ErrorCase{"MissingLinks", "version: 1\n", "cabling.yaml:1: missing 'links'"},
        ErrorCase{"UnknownVersion", "version: 2\nlinks: []\n",
                  "cabling.yaml:1: unknown version '2' (this reader knows version 1)"},
        ErrorCase{
            "PortIsString",
            kHead + "  - a: {node: n1, serial: S1, port: \"1\"}\n    b: {node: n1, serial: S2, port: 0}\n",
            "cabling.yaml:3: 'port' must be an integer, got '1'"},
        ErrorCase{
            "PortIsFloat",
            kHead + "  - a: {node: n1, serial: S1, port: 1.0}\n    b: {node: n1, serial: S2, port: 0}\n",
            "cabling.yaml:3: 'port' must be an integer, got '1.0'"},
        ErrorCase{
            "NodeIsSequence",
            kHead + "  - a: {node: [n1], serial: S1, port: 1}\n    b: {node: n1, serial: S2, port: 0}\n",
            "cabling.yaml:3: 'node' must be a string, got a sequence"},
        ErrorCase{"EndpointIsScalar", kHead + "  - a: n1/S1/1\n    b: {node: n1, serial: S2, port: 0}\n",
                  "cabling.yaml:3: endpoint 'a' must be a mapping {node, serial, port}, got 'n1/S1/1'"},
        ErrorCase{"LinksIsMapping", "version: 1\nlinks: {a: 1}\n",
                  "cabling.yaml:2: 'links' must be a sequence, got a mapping"},
        ErrorCase{"LinkIsScalar", kHead + "  - just-a-string\n",
                  "cabling.yaml:3: a link must be a mapping {a, b, kind}, got 'just-a-string'"},
        ErrorCase{"TopLevelSequence", "- 1\n- 2\n",
                  "cabling.yaml:1: expected a mapping with the keys 'version' and 'links'"},
        ErrorCase{"EmptyDocument", "",
                  "cabling.yaml: expected a mapping with the keys 'version' and 'links'"},
        ErrorCase{
            "EmptyNode",
            kHead + "  - a: {node: \"\", serial: S1, port: 1}\n    b: {node: n1, serial: S2, port: 0}\n",
            "cabling.yaml:3: empty 'node'"},
        ErrorCase{"NullSerial",
                  kHead + "  - a: {node: n1, serial: , port: 1}\n    b: {node: n1, serial: S2, port: 0}\n",
                  "cabling.yaml:3: empty 'serial'"},
        ErrorCase{
            "BadCharacters",
            kHead + "  - a: {node: n1, serial: \"S 1\", port: 1}\n    b: {node: n1, serial: S2, port: 0}\n",
            "cabling.yaml:3: 'serial' 'S 1' may only hold letters, digits, '.', '_' and '-'"},
        ErrorCase{"UnknownTopLevelKey", "version: 1\nlinkz: []\n",
                  "cabling.yaml:2: unknown key 'linkz' (expected 'version' and 'links')"},
        ErrorCase{"UnknownEndpointKey",
                  kHead + "  - a: {node: n1, serial: S1, prot: 1}\n    b: {node: n1, serial: S2, port: 0}\n",
                  "cabling.yaml:3: unknown key 'prot' in endpoint 'a' (expected node, serial, port)"},
        ErrorCase{
            "DuplicateKey",
            kHead +
                "  - a: {node: n1, serial: S1, port: 1, port: 0}\n    b: {node: n1, serial: S2, port: 0}\n",
            "cabling.yaml:3: duplicate key 'port'"},
        ErrorCase{"TooDeep", "version: 1\nlinks: " + std::string(100, '[') + std::string(100, ']') + "\n",
                  "cabling.yaml: line 2: nested deeper than 32 levels"}),
    [](const ::testing::TestParamInfo<ErrorCase>& param_info) { return std::string(param_info.param.name); });

TEST(CablingParse, HostileNestingNeverReachesTheParser) {
  // Brackets hidden in a quoted scalar do not count; real nesting does, even very deep.
  auto quoted = ParseCabling("version: 1\nlinks: []\n# " + std::string(500, '[') + "\n", "c.yaml");
  EXPECT_TRUE(quoted.ok()) << quoted.status().ToString();
  auto deep = ParseCabling(std::string(100000, '[') + std::string(100000, ']'), "c.yaml");
  ASSERT_FALSE(deep.ok());
  EXPECT_THAT(deep.status().message(), HasSubstr("nested deeper than 32 levels"));
  auto indented = ParseCabling("version: 1\nlinks:\n" + std::string(200, '-') + " x\n", "c.yaml");
  ASSERT_FALSE(indented.ok());
  EXPECT_THAT(indented.status().message(), HasSubstr("line 3: indented too deep"));
  // A lone quote in a block scalar hides the brackets from the scan; yaml-cpp's own recursion
  // limit must then stop the parser, and the result is still an error value.
  auto hidden =
      ParseCabling("a: |\n  '\n" + std::string(5000, '[') + std::string(5000, ']') + "\n", "c.yaml");
  ASSERT_FALSE(hidden.ok());
  EXPECT_THAT(hidden.status().message(), StartsWith("c.yaml:"));
  CablingOptions small;
  small.max_bytes = 16;
  auto large = ParseCabling("version: 1\nlinks: []\n", "c.yaml", small);
  ASSERT_FALSE(large.ok());
  EXPECT_EQ(large.status().message(), "c.yaml: larger than 16 bytes");
}

TEST(CablingParse, YamlAnchorsAndAliasesStillValidatePorts) {
  auto cabling = ParseCabling(
      "version: 1\nlinks:\n"
      "  - a: &x {node: n1, serial: S1, port: 1}\n"
      "    b: {node: n1, serial: S2, port: 0}\n"
      "  - a: *x\n"
      "    b: {node: n1, serial: S3, port: 0}\n",
      "c.yaml");
  ASSERT_FALSE(cabling.ok());
  EXPECT_EQ(cabling.status().message(), "c.yaml:5: n1/S1 port 1 is already used by the link at line 3");
}

TEST(CablingLoad, ReadsFileAndNamesItInErrors) {
  const auto dir = std::filesystem::temp_directory_path() / ("cabling_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string good = (dir / "good.yaml").string();
  const std::string bad = (dir / "bad.yaml").string();
  std::ofstream(good) << Ring8WithCrossNode();
  std::ofstream(bad) << "version: 1\nlinks:\n  - a: {node: n1, serial: S1, port: 9}\n    b: {node: n1, "
                        "serial: S2, port: 0}\n";

  auto loaded = LoadCablingFile(good);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->links.size(), 10u);
  EXPECT_EQ(loaded->source, good);

  auto failed = LoadCablingFile(bad);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().message(), bad + ":3: port 9 out of range (0..1)");

  auto missing = LoadCablingFile((dir / "absent.yaml").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("absent.yaml"));
  std::filesystem::remove_all(dir);
}

TEST(CablingCheck, UnknownSerialOnThisNodeNamesTheLine) {
  auto cabling = ParseCabling(Ring8WithCrossNode(), "cabling.yaml");
  ASSERT_TRUE(cabling.ok());
  std::vector<Card> node2 = {CardWithSerial("XFL1GHIJKL01"), CardWithSerial("XFL1GHIJKL02")};
  EXPECT_TRUE(CheckCablingAgainstCards(*cabling, "lpu-node-02", node2).empty());

  // XFL1GHIJKL02 is missing: it appears on lines 19 and 22; the far end on node 03 is not checked.
  std::vector<Card> node2_missing = {CardWithSerial("XFL1GHIJKL01"), CardWithSerial("XFL1OTHER")};
  auto problems = CheckCablingAgainstCards(*cabling, "lpu-node-02", node2_missing);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0],
            "cabling.yaml:19: unknown serial XFL1GHIJKL02 on node lpu-node-02 (cards here: XFL1GHIJKL01, "
            "XFL1OTHER)");
  EXPECT_THAT(problems[1], StartsWith("cabling.yaml:22: unknown serial XFL1GHIJKL02 on node lpu-node-02"));

  EXPECT_EQ(CheckCablingAgainstCards(*cabling, "lpu-node-01", {}).size(), 16u);
}

TEST(CablingDomains, SameIdsOnEveryNodeAndDistinctPerComponent) {
  auto cabling = ParseCabling(Ring8WithCrossNode(), "cabling.yaml");
  ASSERT_TRUE(cabling.ok());
  // Node 02 and node 03 read the same file independently (the second copy in another order).
  std::string reordered = "version: 1\nlinks:\n";
  reordered +=
      "  - b: {node: lpu-node-02, serial: XFL1GHIJKL02, port: 1}\n"
      "    a: {node: lpu-node-03, serial: XFL1MNOPQR01, port: 0}\n";
  for (int i = 7; i >= 0; --i) {
    reordered +=
        "  - a: {node: lpu-node-01, serial: XFL1ABCDEF0" + std::to_string((i + 1) % 8) + ", port: 0}\n";
    reordered += "    b: {node: lpu-node-01, serial: XFL1ABCDEF0" + std::to_string(i) + ", port: 1}\n";
  }
  reordered +=
      "  - a: {node: lpu-node-02, serial: XFL1GHIJKL02, port: 0}\n"
      "    b: {node: lpu-node-02, serial: XFL1GHIJKL01, port: 1}\n";
  auto other = ParseCabling(reordered, "copy.yaml");
  ASSERT_TRUE(other.ok()) << other.status().ToString();

  auto domains = CablingDomains(*cabling);
  auto other_domains = CablingDomains(*other);
  ASSERT_EQ(domains.size(), 2u);
  ASSERT_EQ(other_domains.size(), 2u);
  EXPECT_EQ(domains[0].members.size(), 8u);
  EXPECT_EQ(domains[1].members.size(), 3u);
  EXPECT_EQ(domains[1].members.front(), (CardKey{"lpu-node-02", "XFL1GHIJKL01"}));
  EXPECT_EQ(domains[1].members.back(), (CardKey{"lpu-node-03", "XFL1MNOPQR01"}));
  for (size_t i = 0; i < domains.size(); ++i) {
    EXPECT_EQ(domains[i].id, other_domains[i].id);
    EXPECT_EQ(domains[i].members, other_domains[i].members);
  }
  EXPECT_NE(domains[0].id, domains[1].id);
  // The ID is a 12-digit lower-case hex label value derived from the smallest member only.
  EXPECT_EQ(domains[0].id, DomainId({"lpu-node-01", "XFL1ABCDEF00"}));
  EXPECT_EQ(domains[0].id.size(), 12u);
  EXPECT_EQ(domains[0].id.find_first_not_of("0123456789abcdef"), std::string::npos);
  // FNV-1a 64 of "a/b" is 0xe620c3190468cf61 (computed independently).
  EXPECT_EQ(DomainId({"a", "b"}), "e620c3190468");

  // Node 02's card and node 03's card share the domain; a card not in the file has none.
  const LinkDomain* d2 = FindDomain(domains, {"lpu-node-02", "XFL1GHIJKL01"});
  const LinkDomain* d3 = FindDomain(other_domains, {"lpu-node-03", "XFL1MNOPQR01"});
  ASSERT_NE(d2, nullptr);
  ASSERT_NE(d3, nullptr);
  EXPECT_EQ(d2->id, d3->id);
  EXPECT_EQ(FindDomain(domains, {"lpu-node-09", "XFL1ABCDEF00"}), nullptr);
}

TEST(RingCabling, RingsOfOneTwoAndEightCards) {
  EXPECT_TRUE(RingCabling("n1", {}).links.empty());
  EXPECT_TRUE(RingCabling("n1", {"S0"}).links.empty());

  Cabling two = RingCabling("n1", {"S0", "S1"});
  ASSERT_EQ(two.links.size(), 2u);
  EXPECT_EQ(two.links[0].a, (PortRef{"n1", "S0", 1}));
  EXPECT_EQ(two.links[0].b, (PortRef{"n1", "S1", 0}));
  EXPECT_EQ(two.links[1].a, (PortRef{"n1", "S1", 1}));
  EXPECT_EQ(two.links[1].b, (PortRef{"n1", "S0", 0}));

  std::vector<std::string> serials;
  serials.reserve(8);
  for (int i = 0; i < 8; ++i) serials.push_back("S" + std::to_string(i));
  Cabling eight = RingCabling("n1", serials);
  ASSERT_EQ(eight.links.size(), 8u);
  std::set<PortRef> used;
  for (const CabledLink& link : eight.links) {
    EXPECT_EQ(link.a.port, 1);
    EXPECT_EQ(link.b.port, 0);
    EXPECT_EQ(link.kind, "esl");
    EXPECT_TRUE(used.insert(link.a).second);
    EXPECT_TRUE(used.insert(link.b).second);
  }
  EXPECT_EQ(eight.links[7].b.serial, "S0");
  auto domains = CablingDomains(eight);
  ASSERT_EQ(domains.size(), 1u);
  EXPECT_EQ(domains[0].members.size(), 8u);
}

}  // namespace
}  // namespace hyperaccel::hw
