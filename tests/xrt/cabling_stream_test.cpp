// The event-based cabling reader (ParseCabling) against the tree-based one it replaced
// (cabling_tree_reader.h): the same links or the same first error on the fixtures, on generated
// files and on mutations of them; errors deep in large files name their line; hostile input
// (aliases, anchors, deep nesting, binary bytes) gives an error value, never a crash or a hang.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "cabling_text.h"
#include "cabling_tree_reader.h"
#include "hyperaccel/xrt/cabling.h"

namespace hyperaccel::hw {
namespace {

using ::hyperaccel::testing::CablingStyle;
using ::hyperaccel::testing::GeneratedCabling;
using ::hyperaccel::testing::GeneratedCablingOfLines;
using ::hyperaccel::testing::GeneratedLink;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Both readers give the same answer for `text`: equal links (every field) or an equal error.
void ExpectSameAsTree(const std::string& text, const CablingOptions& options = {}) {
  SCOPED_TRACE(text.size() < 400 ? text : text.substr(0, 400) + "...");
  auto events = ParseCabling(text, "c.yaml", options);
  auto tree = testing::ParseCablingTree(text, "c.yaml", options);
  ASSERT_EQ(events.ok(), tree.ok()) << "events: " << events.status().ToString()
                                    << "\ntree: " << tree.status().ToString();
  if (!tree.ok()) {
    EXPECT_EQ(events.status().code(), tree.status().code());
    EXPECT_EQ(events.status().message(), tree.status().message());
    return;
  }
  EXPECT_EQ(events->source, tree->source);
  ASSERT_EQ(events->links.size(), tree->links.size());
  for (size_t i = 0; i < tree->links.size(); ++i) {
    const CabledLink& x = events->links[i];
    const CabledLink& y = tree->links[i];
    EXPECT_EQ(x.a, y.a) << "link " << i;
    EXPECT_EQ(x.b, y.b) << "link " << i;
    EXPECT_EQ(x.kind, y.kind) << "link " << i;
    EXPECT_EQ(x.line, y.line) << "link " << i;
  }
}

std::string Cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view part : parts) out += part;
  return out;
}

std::string ReadText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(CablingStream, SameAsTreeOnFixturesAndManifests) {
  const std::filesystem::path root = HYPERACCEL_TEST_SOURCE_DIR;
  std::vector<std::filesystem::path> files = {root / "manifests/base/cabling.yaml",
                                              root / "manifests/overlays/emulated/cabling.yaml"};
  for (const auto& entry : std::filesystem::directory_iterator(root / "tests/xrt/corpus/cabling")) {
    files.push_back(entry.path());
  }
  int valid = 0;
  for (const auto& file : files) {
    SCOPED_TRACE(file.string());
    const std::string text = ReadText(file);
    ASSERT_FALSE(text.empty());
    ExpectSameAsTree(text);
    valid += ParseCabling(text, "c.yaml").ok() ? 1 : 0;
  }
  EXPECT_GE(valid, 3);  // the manifests and the valid corpus files
}

TEST(CablingStream, SameAsTreeOnGeneratedFiles) {
  for (CablingStyle style : {CablingStyle::kFlow, CablingStyle::kBlock}) {
    for (size_t links : {0, 1, 31, 32, 33, 500}) {
      const std::string text = GeneratedCabling(links, style);
      ExpectSameAsTree(text);
      auto parsed = ParseCabling(text, "c.yaml");
      ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
      EXPECT_EQ(parsed->links.size(), links);
    }
  }
  // One ring of 32 cards over 4 nodes is one link domain.
  auto ring = ParseCabling(GeneratedCabling(32, CablingStyle::kFlow), "c.yaml");
  ASSERT_TRUE(ring.ok());
  auto domains = CablingDomains(*ring);
  ASSERT_EQ(domains.size(), 1u);
  EXPECT_EQ(domains[0].members.size(), 32u);
}

// Every line of a generated file deleted, duplicated or cut in half in turn, and random byte
// edits: both readers agree on each result (mostly errors, of every class).
TEST(CablingStream, SameAsTreeOnMutatedFiles) {
  const std::string base = GeneratedCabling(12, CablingStyle::kBlock) + GeneratedLink(3, CablingStyle::kFlow);
  std::vector<std::string> lines;
  for (size_t start = 0; start < base.size();) {
    const size_t end = base.find('\n', start);
    lines.push_back(base.substr(start, end - start + 1));
    start = end + 1;
  }
  auto join = [&](size_t skip, const std::string& replacement) {
    std::string text;
    for (size_t i = 0; i < lines.size(); ++i) text += i == skip ? replacement : lines[i];
    return text;
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    ExpectSameAsTree(join(i, ""));
    ExpectSameAsTree(join(i, lines[i] + lines[i]));
    ExpectSameAsTree(join(i, lines[i].substr(0, lines[i].size() / 2) + "\n"));
  }
  std::mt19937 rng(17);
  const std::string alphabet = "{}[],:-&*!|>'\"#? \n\tabc01";
  for (int round = 0; round < 2000; ++round) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % text.size();
      switch (rng() % 3) {
        case 0: text[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: text.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
        default: text.erase(at, 1 + rng() % 8); break;
      }
    }
    ExpectSameAsTree(text);
    if (::testing::Test::HasFailure()) break;
  }
}

TEST(CablingStream, SameAsTreeOnErrorPrecedence) {
  const std::string good = "  - a: {node: n1, serial: S1, port: 1}\n    b: {node: n1, serial: S2, port: 0}\n";
  const std::string bad = "  - a: {node: n1, serial: S1, port: 7}\n    b: {node: n1, serial: S2, port: 0}\n";
  for (const std::string& text : std::vector<std::string>{
           // A bad link comes after a bad version, a missing key and an unknown key.
           Cat({"links:\n", bad, "version: 2\n"}),
           Cat({"links:\n", bad}),
           Cat({"links:\n", bad, "extra: 1\nversion: 1\n"}),
           Cat({"links:\n", bad, "links: []\nversion: 1\n"}),
           Cat({"version: 1\nlinks:\n", bad, good}),
           // A syntax error after a semantic one wins, as the tree was parsed before it was read.
           Cat({"version: 1\nlinks:\n", bad, "  - [\n"}),
           "version: 3\nlinks: [}\n",
           // Version forms.
           "version: '1'\nlinks: []\n",
           "version: !!int 1\nlinks: []\n",
           "version: [1]\nlinks: []\n",
           "version:\nlinks: []\n",
           "version: 1\nlinks: ~\n",
           "version: 1\nlinks: 'x'\n",
           "? [a]\n: 1\nversion: 1\nlinks: []\n",
           "version: 1\n? {links: x}\n: []\n",
           std::string(
               "version: 1\nlinks:\n  - a: {node: n1, serial: S1, port: 1}\n    b: {node: n1, serial: S2, ") +
               "port: 0}\n    ? [x]\n    : 1\n",
           "version: 1\nlinks:\n  - a: {node: n1, serial: S1, ? [p] : 1}\n    b: {}\n",
           "version: 1\nlinks:\n  - {a: {node: n1, serial: S1, port: 1}, b: [1, 2]}\n",
           "version: 1\nlinks:\n  - {a: {node: n1, serial: S1, port: 1}, kind: {x: y}}\n",
           "version: 1\nlinks:\n  - {a: {node: n1, serial: S1, port: 1}, kind: [x]}\n" + good,
           "version: 1\nlinks:\n  - {a: {node: [n1, {x: [y]}], serial: S1, port: 1}}\n" + good,
           "version: 1\nlinks:\n  - [1, [2, [3]]]\n" + good,
           "version: 1\nlinks:\n  - {b: {node: n1, serial: S1, port: 1}}\n",
           "version: 1\nlinks: []\n---\nversion: 2\n",
           "--- 1\n",
           "---\n",
           "# only a comment\n",
           Cat({"version: 1\nlinks:\n  - a: {node: n1, serial: S1, port: 18446744073709551616}\n    b: "
                "{node: n1, ",
                "serial: ", "S2, port: 0}\n"}),
           Cat({"version: 1\nlinks:\n  - a: {node: n1, serial: S1, port: 0x1}\n    b: {node: n1, serial: "
                "S2, ",
                "port: 0}\n"}),
           "version: 1\nlinks:\n  - a: {node: " + std::string(300, 'n') +
               ", serial: S1, port: 0}\n    b: {node: n1, serial: S2, port: 0}\n",
           "version: 1\nlinks:\n  - a: {node: n1, serial: S1, port: 0}\n    b: {node: n1, serial: S2, port: "
           "0}\n"
           "    kind: " +
               std::string(64, 'k') + "\n",
       }) {
    ExpectSameAsTree(text);
  }
}

// YAML 1.1's line breaks: CR LF, a lone CR, NEL, U+2028, U+2029 (found by fuzz_cabling: a file
// ending in a lone CR). CR LF reads as the tree reader reads it; the others are where the two
// differ (the tree reader, yaml-cpp, takes them for content): this reader gives the links and lines
// of the same file written with LF.
TEST(CablingStream, CarriageReturnsAreLineBreaks) {
  const std::string lf =
      Cat({"version: 1\n", "links:\n", "  - a: {node: n1, serial: S0, port: 0}\n",
           "    b: {node: n1, serial: S1, port: 0}\n", "  - a: {node: n1, serial: S0, port: 1}\n",
           "    b: {node: n1, serial: S1, port: 1}\n"});
  const auto with_breaks = [&lf](const std::string& line_break) {
    std::string out;
    for (char c : lf) out += c == '\n' ? line_break : std::string(1, c);
    return out;
  };
  const std::string crlf = with_breaks("\r\n");
  ExpectSameAsTree(crlf);
  auto want = ParseCabling(lf, "c.yaml");
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  ASSERT_EQ(want->links.size(), 2U);
  for (const std::string& text : {with_breaks("\r"), with_breaks("\xc2\x85"), with_breaks("\xe2\x80\xa8"),
                                  with_breaks("\xe2\x80\xa9"), lf + "\r", crlf + "\r\r\n"}) {
    auto got = ParseCabling(text, "c.yaml");
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(got->links.size(), want->links.size());
    for (size_t i = 0; i < want->links.size(); ++i) {
      EXPECT_EQ(got->links[i].a, want->links[i].a);
      EXPECT_EQ(got->links[i].b, want->links[i].b);
      EXPECT_EQ(got->links[i].line, want->links[i].line);
    }
  }
  EXPECT_FALSE(testing::ParseCablingTree(lf + "\r", "c.yaml").ok());  // the documented difference
  EXPECT_FALSE(testing::ParseCablingTree(with_breaks("\xc2\x85"), "c.yaml").ok());
}

// libyaml's syntax, where yaml-cpp differs (found by fuzz_cabling): in a flow mapping '?' starts an
// explicit key even before a non-space.
TEST(CablingStream, QuestionMarkInAFlowMappingStartsAKey) {
  const std::string text = Cat({"version: 1\n", "links:\n", "  - a: {node: n1, serial: S0, ?port: 1}\n",
                                "    b: {node: n1, serial: S1, port: 0}\n"});
  auto got = ParseCabling(text, "c.yaml");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->links.size(), 1U);
  EXPECT_EQ(got->links[0].a.port, 1);
  EXPECT_EQ(got->links[0].b.port, 0);
  EXPECT_FALSE(testing::ParseCablingTree(text, "c.yaml").ok());
}

TEST(CablingStream, AliasesReadLikeTheNodesTheyName) {
  // A scalar alias is a valid way to write a repeated name.
  const std::string scalars =
      "version: 1\nlinks:\n"
      "  - a: {node: &n lpu-node-01, serial: &s XFL1A, port: 1}\n"
      "    b: {node: *n, serial: XFL1B, port: 0}\n"
      "    kind: &k aurora\n"
      "  - a: {node: *n, serial: XFL1B, port: 1}\n"
      "    b: {node: *n, serial: *s, port: 0}\n"
      "    kind: *k\n";
  ExpectSameAsTree(scalars);
  auto parsed = ParseCabling(scalars, "c.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->links[1].b, (PortRef{"lpu-node-01", "XFL1A", 0}));
  EXPECT_EQ(parsed->links[1].kind, "aurora");
  // Aliased endpoints and links, keys and version; anchors redefined; aliases in skipped parts.
  for (const std::string& text : std::vector<std::string>{
           std::string("version: 1\nlinks:\n  - a: &x {node: n1, serial: S1, port: 1}\n") +
               "    b: {node: n1, serial: S2, port: 0}\n  - a: {node: n1, serial: S3, port: 1}\n    b: *x\n",
           Cat({"version: 1\nlinks:\n  - &l {a: {node: n1, serial: S1, port: 1}, b: {node: n1, serial: S2, "
                "port: ",
                "0}}\n", "  - *l\n"}),
           Cat({"version: &v 1\nlinks:\n  - a: {node: n1, serial: S1, port: *v}\n    b: {node: n1, serial: "
                "S2, ",
                "port: 0}\n"}),
           "&k version: 1\n*k : 1\nlinks: []\n",
           Cat({"version: 1\nlinks:\n  - a: {node: &n n1, serial: S1, port: 1}\n    b: {node: &n n2, serial: "
                "S2, ",
                "port: 0}\n",
                "  - a: {node: *n, serial: S3, port: 1}\n    b: {node: n2, serial: S4, port: 0}\n"}),
           "version: [&a x, *a]\nlinks: []\n",
           "version: 1\nlinks:\n  - x\n  - &b {a: *b}\n",
           Cat({"version: 1\nlinks: &all\n  - a: {node: n1, serial: S1, port: 1}\n    b: {node: n1, serial: "
                "S2, ",
                "port: 0}\n"}),
       }) {
    ExpectSameAsTree(text);
  }
}

TEST(CablingStream, AliasesThisReaderCannotRepeatAreErrors) {
  constexpr const char* kCannot =
      "alias to a node larger than 256 YAML nodes, or to a node that contains the alias";
  // A link whose endpoint is the link itself (an error either way; the tree reader followed the
  // cycle one step and reported what it found there).
  const std::string cycle = "version: 1\nlinks:\n  - &m {a: *m}\n";
  auto cyclic = ParseCabling(cycle, "c.yaml");
  ASSERT_FALSE(cyclic.ok());
  EXPECT_EQ(cyclic.status().message(), std::string("c.yaml:3: ") + kCannot + ": write the value out");
  EXPECT_FALSE(testing::ParseCablingTree(cycle, "c.yaml").ok());
  // Where only the kind of the aliased node matters, a cycle or a large node reads as the tree did.
  ExpectSameAsTree("version: 1\nlinks: &l\n  - *l\n");
  std::string list = "[1";  // 300 scalars: more than a recording holds
  for (int i = 1; i < 300; ++i) list += ", 1";
  list += "]";
  EXPECT_EQ(ParseCabling("version: 1\nlinks: []\nx: " + list + "\n", "c.yaml").status().message(),
            "c.yaml:3: unknown key 'x' (expected 'version' and 'links')");
  ExpectSameAsTree("version: 1\nlinks:\n  - &x " + list + "\n  - *x\n");
  ExpectSameAsTree("version: &x " + list + "\nlinks: *x\n");
  ExpectSameAsTree("links: &x " + list + "\nversion: *x\n");
  ExpectSameAsTree("version: 1\nlinks: &x " + list + "\nother: *x\n");
  // A large anchored list used as the links: its contents would be needed, but the version is
  // wrong first, as in the tree reader.
  const std::string reused = "version: [&l " + list + "]\nlinks: *l\n";
  auto big = ParseCabling(reused, "c.yaml");
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().message(), "c.yaml:1: unknown version a sequence (this reader knows version 1)");
  ExpectSameAsTree(reused);
}

TEST(CablingStream, BillionLaughsStaysBounded) {
  // Each level doubles the previous one: read naively, the last alias would be 2^40 scalars.
  std::string text =
      "version: 1\nlinks:\n  - a: {node: n1, serial: S1, port: 1}\n    b: {node: n1, serial: S2, "
      "port: 0}\n    kind: &l0 esl\n";
  std::string laughs = "x0: &l1 [*l0, *l0]\n";
  for (int i = 2; i <= 40; ++i) {
    laughs += "x" + std::to_string(i) + ": &l" + std::to_string(i) + " [*l" + std::to_string(i - 1) + ", *l" +
              std::to_string(i - 1) + "]\n";
  }
  auto parsed = ParseCabling(text + laughs + "y: *l40\n", "c.yaml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), "c.yaml:6: unknown key 'x0' (expected 'version' and 'links')");
  // Inside a link, where aliases are read: the first expansion fails, nothing explodes.
  std::string inside =
      "version: 1\nlinks:\n  - a: {node: &l0 n1, serial: S1, port: 1}\n    b: {node: n1, serial: "
      "S2, port: 0}\n";
  for (int i = 1; i <= 40; ++i) {
    inside += "  - &l" + std::to_string(i) + " [*l" + std::to_string(i - 1) + ", *l" + std::to_string(i - 1) +
              "]\n";
  }
  auto nested = ParseCabling(inside, "c.yaml");
  ASSERT_FALSE(nested.ok());
  EXPECT_EQ(nested.status().message(), "c.yaml:5: a link must be a mapping {a, b, kind}, got a sequence");
}

TEST(CablingStream, MalformedYamlDeepInALargeFileNamesItsLine) {
  // 30 000 lines, a broken flow mapping on line 18 001 (a link starts on every odd line 3, 5, ...;
  // the 100 000-line files are read in the next test and in bench/xrt/bench_cabling.cpp).
  const std::string text = GeneratedCablingOfLines(30000, CablingStyle::kFlow);
  size_t at = 0;
  for (int line = 1; line < 18001; ++line) at = text.find('\n', at) + 1;
  std::string broken = text;
  const size_t brace = broken.find('}', at);
  ASSERT_NE(brace, std::string::npos);
  broken.erase(brace, 1);
  CablingOptions options;
  options.max_bytes = 64u << 20;
  auto parsed = ParseCabling(broken, "big.yaml", options);
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(parsed.status().message(), StartsWith("big.yaml:1800"));
  EXPECT_THAT(parsed.status().message(), HasSubstr("malformed YAML"));
  // A semantic error there names the same place; the file before it was fine.
  std::string bad_port = text;
  const size_t port = bad_port.find("port: 1", at);
  bad_port.replace(port, 7, "port: 9");
  auto semantic = ParseCabling(bad_port, "big.yaml", options);
  ASSERT_FALSE(semantic.ok());
  EXPECT_THAT(semantic.status().message(), HasSubstr("port 9 out of range (0..1)"));
  EXPECT_THAT(semantic.status().message(), StartsWith("big.yaml:1800"));
  auto good = ParseCabling(text, "big.yaml", options);
  ASSERT_TRUE(good.ok()) << good.status().ToString();
  EXPECT_GT(good->links.size(), 12000u);
}

TEST(CablingStream, DefaultSizeBoundTakesAHundredThousandLineFile) {
  // The default bound (16 MiB) holds a 100 000-line file (the flow style is the larger).
  const std::string text = GeneratedCablingOfLines(100000, CablingStyle::kFlow);
  auto parsed = ParseCabling(text, "c.yaml");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->links.size(), 42856u);
  EXPECT_EQ(parsed->links.back().line, static_cast<int>(std::count(text.begin(), text.end(), '\n')) - 1);
  CablingOptions small;
  small.max_bytes = 1000;
  auto over = ParseCabling(GeneratedCabling(100, CablingStyle::kFlow), "c.yaml", small);
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.status().message(), "c.yaml: larger than 1000 bytes");
}

TEST(CablingStream, HostileBytesGiveErrorsNamingTheSource) {
  std::mt19937 rng(5);
  std::vector<std::string> inputs = {
      std::string("\0\0\0", 3),
      "\xef\xbb\xbfversion: 1\nlinks: []\n",
      std::string("\xff\xfe\x00v", 4),
      "version: 1\nlinks:\n  - a: {node: \"\\u0000\", serial: S1, port: 1}\n",
      "version: 1\nlinks:\n  - a: {node: n1, serial: S1, port: 1}\n    b: {node: n1, serial: S2, port: 0}\n" +
          std::string(100000, ' ') + "x",
      "version: 1\nlinks: [" + std::string(20000, ',') + "]\n",
      "version: 1\nlinks:\n" + std::string(5000, '\t') + "\n",
      "version: 1\nlinks:\n  - " + std::string(20000, '&') + "\n",
      "version: 1\nlinks:\n  - !<" + std::string(5000, '!') + "> x\n",
      "%YAML 1.2\n%TAG ! tag:x,2000:\n---\nversion: 1\nlinks: []\n",
      "version: 1\nlinks: *undefined\n",
  };
  for (int i = 0; i < 200; ++i) {
    std::string bytes(rng() % 512, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() % 256);
    inputs.push_back(bytes);
  }
  for (const std::string& text : inputs) {
    auto parsed = ParseCabling(text, "h.yaml");
    if (!parsed.ok()) {
      EXPECT_THAT(parsed.status().message(), StartsWith("h.yaml")) << text.substr(0, 80);
    }
    ExpectSameAsTree(text);
  }
}

}  // namespace
}  // namespace hyperaccel::hw
