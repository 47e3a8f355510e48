#include "hyperaccel/xrt/cabling.h"

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>
#include <yaml.h>

#include <algorithm>
#include <cstdio>
#include <istream>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <streambuf>
#include <utility>

#include "yaml_input.h"

namespace hyperaccel::hw {
namespace {

using yaml_input::ScalarValue;
using yaml_input::Where;

constexpr size_t kMaxNameLength = 253;
constexpr size_t kMaxKindLength = 63;
// An anchored node is remembered for its aliases only up to this many YAML nodes (a link has ~20;
// only scalars can be aliased in a valid file), and all anchored nodes together up to kMaxRecorded
// (beyond either, only the node's first event: its kind and line).
constexpr size_t kMaxRecordedPerAnchor = 256;
constexpr size_t kMaxRecorded = size_t{1} << 20;
// Aliases read again at most this many YAML nodes in all (a bound on "billion laughs" input).
constexpr size_t kMaxReplayed = size_t{4} << 20;

std::string Name(const PortRef& end) {
  return end.node + "/" + end.serial + " port " + std::to_string(end.port);
}

// std::istream over a string_view without a copy (yaml-cpp reads through the streambuf).
class ViewStreamBuf : public std::streambuf {
 public:
  explicit ViewStreamBuf(std::string_view text) {
    // The get area is only read; streambuf's interface is not const-correct.
    char* begin = const_cast<char*>(text.data());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    setg(begin, begin, begin + text.size());
  }
};

// One parser event, as far as the reader needs it (aliases are expanded before they get here).
struct Event {
  enum Kind : uint8_t { kNull, kScalar, kSequenceStart, kMapStart, kEnd };
  Kind kind = kNull;
  bool plain = false;  // scalar: untagged and unquoted (tag "?")
  int line = 0;        // 1-based
  std::string text;    // scalar
};

bool IsContainer(const Event& e) { return e.kind == Event::kSequenceStart || e.kind == Event::kMapStart; }

ScalarValue ValueOf(const Event& e) {
  ScalarValue value;
  switch (e.kind) {
    case Event::kScalar: value.type = YAML::NodeType::Scalar; break;
    case Event::kSequenceStart: value.type = YAML::NodeType::Sequence; break;
    case Event::kMapStart: value.type = YAML::NodeType::Map; break;
    case Event::kNull:
    case Event::kEnd: value.type = YAML::NodeType::Null; break;
  }
  value.plain = e.plain;
  value.text = e.text;
  return value;
}

// Reads a cabling file from YAML parser events into a Cabling, keeping only the links (no node
// tree): memory grows with the links kept, not with the size of the text. Checks the same rules
// in the same order as reading the whole tree did, so the first error is the same:
//   1. the root is a mapping; its keys, in file order: strings, distinct, 'version' or 'links';
//   2. 'version' present and plain 1; 3. 'links' present, null or a sequence; 4. the first bad link.
// Links are checked as they stream by; a bad link is remembered while the rest of the top-level
// mapping is still checked for (1)-(3). After the first error the remaining events are only
// parsed (a syntax error later in the document still wins, as it did when the tree was built
// first). Anchored nodes are recorded (bounded) so that an alias reads like the node it names.
// The events come from libyaml (LibyamlEvents) or yaml-cpp (YamlCppEvents); anchors are numbered
// by the caller, a new number for each definition.
class CablingEventReader {
 public:
  using AnchorId = uint64_t;  // 0: no anchor

  CablingEventReader(std::string_view source, const CablingOptions& options, Cabling* out)
      : source_(source), options_(options), out_(out) {}

  // The result once the parser has finished the document without an error.
  Status Finish() {
    if (!top_error_.ok()) return top_error_;
    if (!root_seen_) return Error(0, "expected a mapping with the keys 'version' and 'links'");
    return result_;
  }

  // True once an error has been found (the rest of the document only decides which one wins).
  bool Failed() const { return !top_error_.ok() || !links_error_.ok(); }

  // A scalar, a null or the start of a mapping or sequence; End closes the last one started.
  void Start(const Event& e, AnchorId anchor) {
    if (draining_) return;
    if (anchor != 0) BeginRecording(anchor);
    Dispatch(e);
  }
  void End() {
    if (draining_) return;
    Event e;
    e.kind = Event::kEnd;
    Dispatch(e);
  }
  void Alias(int line, AnchorId anchor);

 private:
  enum class FrameKind : uint8_t { kRoot, kLinks, kLink, kEndpoint, kSkip };
  struct Frame {
    FrameKind kind = FrameKind::kSkip;
    int line = 0;                       // of the mapping or sequence
    int skip_depth = 0;                 // kSkip: open containers being skipped
    bool at_key = true;                 // mappings: the next node is a key
    bool failed = false;                // kLinks: a link was bad, the rest is skipped
    std::string key;                    // mappings: the key whose value comes next
    std::vector<std::string> keys;      // mappings: keys seen (at most 3 before an error)
    bool has_a = false, has_b = false;  // kLink
    bool has_node = false, has_serial = false, has_port = false;  // kEndpoint
    PortRef* endpoint = nullptr;                                  // kEndpoint
    const char* name = "";                                        // kEndpoint: "a" or "b"
  };
  struct Recording {
    bool complete = false;
    bool overflow = false;
    std::vector<Event> events;
  };

  Status Error(int line, const std::string& what) const {
    return InvalidArgument(Where(source_, line) + what);
  }

  // Records `e` into the open recordings, then reads it.
  void Dispatch(const Event& e) {
    Record(e);
    if (e.kind == Event::kEnd) {
      --depth_;
    } else if (IsContainer(e)) {
      ++depth_;
    }
    // A recording is complete when its node has ended: a scalar at once, a container when the
    // depth is back to where it started.
    while (!open_.empty() && open_.back().second >= depth_) {
      recordings_[open_.back().first].complete = true;
      open_.pop_back();
    }
    if (draining_) return;
    if (e.kind == Event::kEnd) {
      Close();
    } else {
      Read(e);
    }
  }

  void BeginRecording(AnchorId anchor) {
    recordings_[anchor] = Recording{};
    open_.emplace_back(anchor, depth_);
  }
  void Record(const Event& e) {
    for (const auto& [anchor, start_depth] : open_) {
      Recording& r = recordings_[anchor];
      if (r.overflow) continue;
      if (!r.events.empty() && (r.events.size() >= kMaxRecordedPerAnchor || recorded_ >= kMaxRecorded)) {
        Overflow(r);
        continue;
      }
      r.events.push_back(e);
      ++recorded_;
    }
  }
  // Keeps only the first event of a recording (what kind of node, and where).
  void Overflow(Recording& r) {
    if (r.overflow) return;
    r.overflow = true;
    if (r.events.size() > 1) {
      recorded_ -= r.events.size() - 1;
      r.events.resize(1);
      r.events.shrink_to_fit();
    }
  }

  bool Validating() const {
    if (frames_.empty()) return true;
    const Frame& f = frames_.back();
    return f.kind != FrameKind::kSkip && !(f.kind == FrameKind::kLinks && f.failed);
  }

  // --- the cabling schema over the events ---

  void Read(const Event& e) {
    if (frames_.empty()) {
      root_seen_ = true;
      if (e.kind != Event::kMapStart) {
        TopError(e.line, "expected a mapping with the keys 'version' and 'links'");
        return;
      }
      Push(FrameKind::kRoot, e.line);
      return;
    }
    Frame& f = frames_.back();
    switch (f.kind) {
      case FrameKind::kSkip:
        if (IsContainer(e)) ++f.skip_depth;
        return;
      case FrameKind::kRoot: return ReadRootEntry(e);
      case FrameKind::kLinks: return ReadLinksEntry(e);
      case FrameKind::kLink: return ReadLinkEntry(e);
      case FrameKind::kEndpoint: return ReadEndpointEntry(e);
    }
  }

  void Close() {
    if (frames_.empty()) return;
    Frame& f = frames_.back();
    switch (f.kind) {
      case FrameKind::kSkip:
        if (--f.skip_depth == 0) frames_.pop_back();
        return;
      case FrameKind::kEndpoint: {
        const int line = f.line;
        const std::string name = f.name;
        const char* missing = !f.has_node     ? "node"
                              : !f.has_serial ? "serial"
                              : !f.has_port   ? "port"
                                              : nullptr;
        frames_.pop_back();
        if (missing != nullptr)
          LinksError(line, "endpoint '" + name + "' is missing '" + missing + "'", false);
        return;
      }
      case FrameKind::kLink: {
        const bool complete = f.has_a && f.has_b;
        const bool has_a = f.has_a;
        frames_.pop_back();
        if (!complete) {
          LinksError(link_.line, std::string("link is missing endpoint '") + (has_a ? "b" : "a") + "'",
                     false);
          return;
        }
        FinishLink();
        return;
      }
      case FrameKind::kLinks: frames_.pop_back(); return;
      case FrameKind::kRoot: {
        const int line = f.line;
        frames_.pop_back();
        Resolve(line);
        return;
      }
    }
  }

  void Push(FrameKind kind, int line) {
    Frame f;
    f.kind = kind;
    f.line = line;
    if (kind == FrameKind::kSkip) f.skip_depth = 1;
    frames_.push_back(std::move(f));
  }

  // A key of the mapping `f`: a distinct string. Returns false when it was not acceptable.
  bool TakeKey(Frame& f, const Event& e, bool top) {
    std::string problem;
    if (e.kind != Event::kScalar) {
      problem = "mapping keys must be strings, got " + yaml_input::Describe(ValueOf(e));
    } else if (std::find(f.keys.begin(), f.keys.end(), e.text) != f.keys.end()) {
      problem = "duplicate key '" + e.text + "'";
    }
    if (!problem.empty()) {
      if (top) {
        TopError(e.line, problem);
      } else {
        LinksError(e.line, problem, IsContainer(e));
      }
      return false;
    }
    f.keys.push_back(e.text);
    f.key = e.text;
    f.at_key = false;
    return true;
  }

  void ReadRootEntry(const Event& e) {
    Frame& f = frames_.back();
    if (f.at_key) {
      TakeKey(f, e, true);
      return;
    }
    f.at_key = true;
    if (f.key == "version") {
      has_version_ = true;
      version_line_ = e.line;
      version_ok_ = e.kind == Event::kScalar && e.plain && e.text == "1";
      version_described_ = yaml_input::Describe(ValueOf(e));
      if (IsContainer(e)) Push(FrameKind::kSkip, e.line);
    } else if (f.key == "links") {
      has_links_ = true;
      if (e.kind == Event::kSequenceStart) {
        Push(FrameKind::kLinks, e.line);
      } else if (e.kind != Event::kNull) {
        SetLinksError(e.line, "'links' must be a sequence, got " + yaml_input::Describe(ValueOf(e)));
        if (IsContainer(e)) Push(FrameKind::kSkip, e.line);
      }
    } else {
      TopError(e.line, "unknown key '" + f.key + "' (expected 'version' and 'links')");
    }
  }

  void ReadLinksEntry(const Event& e) {
    Frame& f = frames_.back();
    if (f.failed) {
      if (IsContainer(e)) Push(FrameKind::kSkip, e.line);
      return;
    }
    if (e.kind != Event::kMapStart) {
      LinksError(e.line, "a link must be a mapping {a, b, kind}, got " + yaml_input::Describe(ValueOf(e)),
                 IsContainer(e));
      return;
    }
    link_ = CabledLink{};
    link_.line = e.line;
    Push(FrameKind::kLink, e.line);
  }

  void ReadLinkEntry(const Event& e) {
    Frame& f = frames_.back();
    if (f.at_key) {
      TakeKey(f, e, false);
      return;
    }
    f.at_key = true;
    if (f.key == "a" || f.key == "b") {
      const bool is_a = f.key == "a";
      (is_a ? f.has_a : f.has_b) = true;
      if (e.kind != Event::kMapStart) {
        LinksError(e.line,
                   "endpoint '" + f.key + "' must be a mapping {node, serial, port}, got " +
                       yaml_input::Describe(ValueOf(e)),
                   IsContainer(e));
        return;
      }
      Push(FrameKind::kEndpoint, e.line);
      frames_.back().endpoint = is_a ? &link_.a : &link_.b;
      frames_.back().name = is_a ? "a" : "b";
    } else if (f.key == "kind") {
      std::string problem = yaml_input::NameProblem(ValueOf(e), "kind", kMaxKindLength, &link_.kind);
      if (!problem.empty()) LinksError(e.line, problem, IsContainer(e));
    } else {
      LinksError(e.line, "unknown key '" + f.key + "' in link (expected a, b, kind)", IsContainer(e));
    }
  }

  void ReadEndpointEntry(const Event& e) {
    Frame& f = frames_.back();
    if (f.at_key) {
      TakeKey(f, e, false);
      return;
    }
    f.at_key = true;
    std::string problem;
    if (f.key == "node") {
      f.has_node = true;
      problem = yaml_input::NameProblem(ValueOf(e), "node", kMaxNameLength, &f.endpoint->node);
    } else if (f.key == "serial") {
      f.has_serial = true;
      problem = yaml_input::NameProblem(ValueOf(e), "serial", kMaxNameLength, &f.endpoint->serial);
    } else if (f.key == "port") {
      f.has_port = true;
      uint64_t port = 0;
      problem = yaml_input::UintProblem(ValueOf(e), "port", static_cast<uint64_t>(options_.max_ports - 1),
                                        false, &port);
      f.endpoint->port = static_cast<int>(port);
    } else {
      problem = "unknown key '" + f.key + "' in endpoint '" + f.name + "' (expected node, serial, port)";
    }
    if (!problem.empty()) LinksError(e.line, problem, IsContainer(e));
  }

  void FinishLink() {
    const CabledLink& link = link_;
    if (link.a == link.b) {
      LinksError(link.line, "self-link: both ends are " + Name(link.a), false);
      return;
    }
    if (link.a.node == link.b.node && link.a.serial == link.b.serial) {
      LinksError(link.line,
                 "card " + link.a.node + "/" + link.a.serial + " is cabled to itself (port " +
                     std::to_string(link.a.port) + " to port " + std::to_string(link.b.port) +
                     "): a loopback links the card to no other card; remove the entry",
                 false);
      return;
    }
    for (const PortRef* end : {&link.a, &link.b}) {
      auto [used, fresh_port] = port_lines_.emplace(*end, link.line);
      if (!fresh_port) {
        LinksError(link.line,
                   Name(*end) + " is already used by the link at line " + std::to_string(used->second),
                   false);
        return;
      }
      auto [owner, fresh_serial] = serial_nodes_.emplace(end->serial, std::make_pair(end->node, link.line));
      if (!fresh_serial && owner->second.first != end->node) {
        LinksError(link.line,
                   "serial " + end->serial + " on node " + end->node + " is already on node " +
                       owner->second.first + " (line " + std::to_string(owner->second.second) + ")",
                   false);
        return;
      }
    }
    out_->links.push_back(std::move(link_));
  }

  // The first error of the top-level mapping: final (only a syntax error can replace it).
  void TopError(int line, const std::string& what) {
    top_error_ = Error(line, what);
    draining_ = true;
    frames_.clear();
    open_.clear();
    recordings_.clear();
  }

  void SetLinksError(int line, const std::string& what) {
    if (links_error_.ok()) links_error_ = Error(line, what);
  }

  // The first bad link: remembered; the rest of 'links' is skipped. `open_container` is true when
  // the node at fault is a mapping or sequence that has just started.
  void LinksError(int line, const std::string& what, bool open_container) {
    SetLinksError(line, what);
    int open = open_container ? 1 : 0;
    while (!frames_.empty() && frames_.back().kind != FrameKind::kLinks) {
      const Frame& f = frames_.back();
      open += f.kind == FrameKind::kSkip ? f.skip_depth : 1;
      frames_.pop_back();
    }
    if (frames_.empty()) return;  // not reached: link frames sit on a kLinks frame
    frames_.back().failed = true;
    out_->links.clear();
    out_->links.shrink_to_fit();
    port_lines_.clear();
    serial_nodes_.clear();
    if (open > 0) {
      Push(FrameKind::kSkip, line);
      frames_.back().skip_depth = open;
    }
  }

  void Resolve(int root_line) {
    if (!has_version_) {
      result_ = Error(root_line, "missing 'version'");
    } else if (!version_ok_) {
      result_ =
          Error(version_line_, "unknown version " + version_described_ + " (this reader knows version 1)");
    } else if (!has_links_) {
      result_ = Error(root_line, "missing 'links'");
    } else {
      result_ = links_error_;
    }
    if (!result_.ok()) out_->links.clear();
  }

  std::string_view source_;
  const CablingOptions& options_;
  Cabling* out_;

  std::vector<Frame> frames_;
  int depth_ = 0;  // open mappings and sequences
  bool draining_ = false;
  bool root_seen_ = false;
  bool has_version_ = false;
  bool version_ok_ = false;
  int version_line_ = 0;
  std::string version_described_;
  bool has_links_ = false;
  CabledLink link_;
  Status top_error_ = Status::Ok();
  Status links_error_ = Status::Ok();
  Status result_ = Status::Ok();
  std::map<PortRef, int> port_lines_;                                // port -> line of its link
  std::map<std::string, std::pair<std::string, int>> serial_nodes_;  // serial -> (node, first line)

  std::map<AnchorId, Recording> recordings_;
  std::vector<std::pair<AnchorId, int>> open_;  // recording, depth its node started at
  size_t recorded_ = 0;
  size_t replayed_ = 0;
};

void CablingEventReader::Alias(int line, AnchorId anchor) {
  if (draining_) return;
  const bool validating = Validating();
  // In a skipped part an alias changes nothing, unless an anchored node around it is recorded.
  if (!validating && open_.empty()) return;
  auto it = recordings_.find(anchor);
  if (it != recordings_.end() && it->second.complete && !it->second.overflow &&
      replayed_ + it->second.events.size() <= kMaxReplayed) {
    // Read the node again as if it stood here (its events keep their own lines, as an aliased
    // node of a tree keeps its mark). A copy: reading may drop the recordings (after an error).
    const std::vector<Event> events = it->second.events;
    replayed_ += events.size();
    for (const Event& e : events) {
      if (draining_) return;
      Dispatch(e);
    }
    return;
  }
  // Only the node's first event is known (it is too large, or contains this alias). The
  // recordings around it can no longer hold a faithful copy.
  for (const auto& [open_anchor, start_depth] : open_) Overflow(recordings_[open_anchor]);
  const std::string what = "alias to a node larger than " + std::to_string(kMaxRecordedPerAnchor) +
                           " YAML nodes, or to a node that contains the alias: write the value out";
  if (it == recordings_.end() || it->second.events.empty()) {  // not reached: parsers check their anchors
    if (!validating) return;
    if (frames_.empty() || frames_.back().kind == FrameKind::kRoot) {
      TopError(line, what);
    } else {
      LinksError(line, what, false);
    }
    return;
  }
  const Event head = it->second.events.front();
  const size_t frames_before = frames_.size();
  Dispatch(head);
  if (draining_ || !IsContainer(head)) return;
  // Where only the kind of the node matters (a value that is wrong anyway, a skipped part), its
  // first event is enough; where its contents would be read, this reader cannot go on.
  if (frames_.size() == frames_before + 1 && frames_.back().kind != FrameKind::kSkip) {
    const FrameKind kind = frames_.back().kind;
    frames_.pop_back();
    --depth_;
    if (kind == FrameKind::kLinks) {
      SetLinksError(line, what);
    } else {
      LinksError(line, what, false);
    }
    return;
  }
  Event end;
  end.kind = Event::kEnd;
  Dispatch(end);
}

// yaml-cpp's parser events into the reader (yaml-cpp numbers anchors itself).
class YamlCppEvents final : public YAML::EventHandler {
 public:
  explicit YamlCppEvents(CablingEventReader* reader) : reader_(reader) {}

  void OnDocumentStart(const YAML::Mark& /*mark*/) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    reader_->Start(Make(Event::kNull, mark), anchor);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    Event e = Make(Event::kScalar, mark);
    e.plain = tag == "?";
    e.text = value;
    reader_->Start(e, anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value /*style*/) override {
    reader_->Start(Make(Event::kSequenceStart, mark), anchor);
  }
  void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value /*style*/) override {
    reader_->Start(Make(Event::kMapStart, mark), anchor);
  }
  void OnSequenceEnd() override { reader_->End(); }
  void OnMapEnd() override { reader_->End(); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    reader_->Alias(yaml_input::LineOfMark(mark), anchor);
  }

 private:
  static Event Make(Event::Kind kind, const YAML::Mark& mark) {
    Event e;
    e.kind = kind;
    e.line = yaml_input::LineOfMark(mark);
    return e;
  }
  CablingEventReader* reader_;
};

// The whole first document through yaml-cpp (the parser whose messages malformed files get).
Status ReadWithYamlCpp(std::string_view text, std::string_view source, CablingEventReader* reader) {
  // yaml-cpp throws on malformed input; nothing may escape this library. Only the first document
  // is read (as YAML::Load does).
  try {
    ViewStreamBuf buffer(text);
    std::istream in(&buffer);
    YAML::Parser parser(in);
    YamlCppEvents events(reader);
    parser.HandleNextDocument(events);
  } catch (const YAML::Exception& e) {
    return yaml_input::MalformedYaml(e, source);
  } catch (const std::exception& e) {
    return InvalidArgument(Where(source, 0) + "cannot parse: " + e.what());
  } catch (...) {
    return Internal(Where(source, 0) + "cannot parse: unknown error");
  }
  return reader->Finish();
}

// The first document through libyaml, ~8x faster than yaml-cpp's parser. Returns false, having
// read part of the document perhaps, when libyaml finds a syntax error, an alias of an anchor it
// has not seen, or the reader an error: the caller then reads the text again with yaml-cpp, so
// that a file with any error gets yaml-cpp's messages and its idea of what is malformed (the two
// parsers differ on some malformed input), exactly as before.
bool ReadWithLibyaml(std::string_view text, CablingEventReader* reader) {
  yaml_parser_t parser;
  if (yaml_parser_initialize(&parser) == 0) return false;
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  std::map<std::string, CablingEventReader::AnchorId, std::less<>> anchors;  // name -> latest definition
  CablingEventReader::AnchorId next_anchor = 0;
  auto define = [&](const yaml_char_t* name) -> CablingEventReader::AnchorId {
    if (name == nullptr) return 0;
    const std::string key(reinterpret_cast<const char*>(name));
    anchors[key] = ++next_anchor;
    return next_anchor;
  };
  auto line_of = [](const yaml_mark_t& mark) { return static_cast<int>(mark.line) + 1; };
  // An empty value ("key:" with nothing after it) is placed by yaml-cpp where the next token
  // starts, by libyaml right after the ':'; it is held until the next event says where that is.
  std::optional<std::pair<Event, CablingEventReader::AnchorId>> empty;
  bool ok = true;
  bool done = false;
  while (ok && !done) {
    if (reader->Failed()) {
      ok = false;
      break;
    }
    yaml_event_t event;
    if (yaml_parser_parse(&parser, &event) == 0) {
      ok = false;
      break;
    }
    Event e;
    e.line = line_of(event.start_mark);
    if (empty) {
      empty->first.line = e.line;
      reader->Start(empty->first, empty->second);
      empty.reset();
    }
    switch (event.type) {
      case YAML_SCALAR_EVENT: {
        const auto& scalar = event.data.scalar;
        e.text.assign(reinterpret_cast<const char*>(scalar.value), scalar.length);
        e.plain = scalar.tag == nullptr && scalar.style == YAML_PLAIN_SCALAR_STYLE;
        // yaml-cpp's nulls: an untagged plain "", "~", "null", "Null" or "NULL".
        const bool null = e.plain && (e.text.empty() || e.text == "~" || e.text == "null" ||
                                      e.text == "Null" || e.text == "NULL");
        e.kind = null ? Event::kNull : Event::kScalar;
        const bool implicit_empty = e.plain && e.text.empty();
        if (null) e.text.clear();
        if (implicit_empty) {
          empty.emplace(std::move(e), define(scalar.anchor));
        } else {
          reader->Start(e, define(scalar.anchor));
        }
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
        e.kind = Event::kSequenceStart;
        reader->Start(e, define(event.data.sequence_start.anchor));
        break;
      case YAML_MAPPING_START_EVENT:
        e.kind = Event::kMapStart;
        reader->Start(e, define(event.data.mapping_start.anchor));
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: reader->End(); break;
      case YAML_ALIAS_EVENT: {
        auto it = anchors.find(std::string_view(reinterpret_cast<const char*>(event.data.alias.anchor)));
        if (it == anchors.end()) {
          ok = false;
        } else {
          reader->Alias(e.line, it->second);
        }
        break;
      }
      case YAML_DOCUMENT_END_EVENT:
      case YAML_STREAM_END_EVENT: done = true; break;
      case YAML_NO_EVENT:
      case YAML_STREAM_START_EVENT:
      case YAML_DOCUMENT_START_EVENT: break;
    }
    yaml_event_delete(&event);
  }
  yaml_parser_delete(&parser);
  return ok && !reader->Failed();
}

uint64_t Fnv1a64(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

}  // namespace

Result<Cabling> ParseCabling(std::string_view text, std::string_view source_name,
                             const CablingOptions& options) {
  if (options.max_ports < 1 || options.max_depth < 1) {
    return InvalidArgument("cabling: max_ports and max_depth must be at least 1");
  }
  if (Status s = yaml_input::Precheck(text, source_name, options.max_bytes, options.max_depth); !s.ok())
    return s;
  {
    Cabling cabling;
    cabling.source = std::string(source_name);
    CablingEventReader reader(source_name, options, &cabling);
    if (ReadWithLibyaml(text, &reader) && reader.Finish().ok()) {
      cabling.links.shrink_to_fit();
      return cabling;
    }
  }
  // Something is wrong with the file: yaml-cpp reads it again and says what it always said.
  Cabling cabling;
  cabling.source = std::string(source_name);
  CablingEventReader reader(source_name, options, &cabling);
  if (Status s = ReadWithYamlCpp(text, source_name, &reader); !s.ok()) return s;
  cabling.links.shrink_to_fit();
  return cabling;
}

Result<Cabling> LoadCablingFile(const std::string& path, const CablingOptions& options) {
  Result<std::string> text = yaml_input::ReadFile(path, options.max_bytes);
  if (!text.ok()) return text.status().WithContext("cabling file");
  return ParseCabling(*text, path, options);
}

std::vector<std::string> CheckCablingAgainstCards(const Cabling& cabling, std::string_view node_name,
                                                  const std::vector<Card>& cards) {
  std::set<std::string> serials;
  for (const Card& card : cards) {
    if (!card.serial.empty()) serials.insert(card.serial);
  }
  std::string here;
  for (const std::string& serial : serials) here += (here.empty() ? "" : ", ") + serial;
  if (here.empty()) here = "none with a serial";
  std::vector<std::string> problems;
  for (const CabledLink* link : LinksTouchingNode(cabling, node_name)) {
    for (const PortRef* end : {&link->a, &link->b}) {
      if (end->node != node_name || serials.count(end->serial) != 0) continue;
      problems.push_back(Where(cabling.source, link->line) + "unknown serial " + end->serial + " on node " +
                         std::string(node_name) + " (cards here: " + here + ")");
    }
  }
  return problems;
}

std::vector<const CabledLink*> LinksTouchingNode(const Cabling& cabling, std::string_view node_name) {
  std::vector<const CabledLink*> out;
  for (const CabledLink& link : cabling.links) {
    if (link.a.node == node_name || link.b.node == node_name) out.push_back(&link);
  }
  return out;
}

std::string DomainId(const CardKey& smallest) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(Fnv1a64(smallest.node + "/" + smallest.serial)));
  return std::string(hex, 12);
}

std::vector<LinkDomain> CablingDomains(const Cabling& cabling) {
  // Union-find over the cards named in the file.
  std::map<CardKey, size_t> index;
  std::vector<CardKey> keys;
  auto vertex = [&](const PortRef& end) {
    auto [it, inserted] = index.emplace(CardKey{end.node, end.serial}, keys.size());
    if (inserted) keys.push_back(it->first);
    return it->second;
  };
  std::vector<std::pair<size_t, size_t>> edges;
  for (const CabledLink& link : cabling.links) edges.emplace_back(vertex(link.a), vertex(link.b));

  std::vector<size_t> parent(keys.size());
  std::iota(parent.begin(), parent.end(), size_t{0});
  auto find = [&](size_t x) {
    while (parent[x] != x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  };
  for (const auto& [u, v] : edges) {
    const size_t ru = find(u);
    const size_t rv = find(v);
    if (ru != rv) parent[std::max(ru, rv)] = std::min(ru, rv);
  }

  std::map<size_t, std::vector<CardKey>> groups;
  for (size_t i = 0; i < keys.size(); ++i) groups[find(i)].push_back(keys[i]);
  std::vector<LinkDomain> domains;
  domains.reserve(groups.size());
  for (auto& [root, members] : groups) {
    std::sort(members.begin(), members.end());
    LinkDomain domain;
    domain.id = DomainId(members.front());
    domain.members = std::move(members);
    domains.push_back(std::move(domain));
  }
  std::sort(domains.begin(), domains.end(),
            [](const LinkDomain& x, const LinkDomain& y) { return x.members.front() < y.members.front(); });
  return domains;
}

const LinkDomain* FindDomain(const std::vector<LinkDomain>& domains, const CardKey& card) {
  for (const LinkDomain& domain : domains) {
    if (std::binary_search(domain.members.begin(), domain.members.end(), card)) return &domain;
  }
  return nullptr;
}

Cabling RingCabling(const std::string& node, const std::vector<std::string>& serials) {
  Cabling cabling;
  cabling.source = "ring";
  if (serials.size() < 2) return cabling;
  for (size_t i = 0; i < serials.size(); ++i) {
    CabledLink link;
    link.a = PortRef{node, serials[i], 1};
    link.b = PortRef{node, serials[(i + 1) % serials.size()], 0};
    cabling.links.push_back(std::move(link));
  }
  return cabling;
}

}  // namespace hyperaccel::hw
