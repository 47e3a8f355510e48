#include "hyperaccel/xrt/links.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

namespace hyperaccel::hw {
namespace {

std::string_view Trim(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const size_t last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

std::string Hex32(uint32_t value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", value);
  return buf;
}

// "XFL1A/1" for a local port, "lpu-node-02/XFL1B/0" for a far one.
std::string PortName(const PortRef& ref) {
  std::string out = ref.node.empty() ? "" : ref.node + "/";
  return out + ref.serial + "/" + std::to_string(ref.port);
}

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) {
    if (part.empty()) continue;
    if (!out.empty()) out += "; ";
    out += part;
  }
  return out;
}

const Card* FindCard(const std::vector<Card>& cards, const std::string& serial) {
  if (serial.empty()) return nullptr;
  for (const Card& card : cards) {
    if (card.serial == serial) return &card;
  }
  return nullptr;
}

const Port* FindPort(const Card& card, int index) {
  for (const Port& port : card.ports) {
    if (port.index == index) return &port;
  }
  return nullptr;
}

// Why a local port is physically down, from its QSFP cage; nullopt when nothing says so.
std::optional<std::string> QsfpDownReason(const Card& card, int index) {
  const Port* port = FindPort(card, index);
  if (port == nullptr || !port->module_info_read) return std::nullopt;
  const std::string name = card.serial + "/" + std::to_string(index);
  if (!port->module_present) return "no QSFP module in " + name;
  if (port->loss_of_signal.value_or(false)) return "loss of signal on " + name;
  return std::nullopt;
}

// Evidence about one link, collected end by end, then turned into a state.
struct Verdict {
  std::vector<std::string> mismatch;
  std::vector<std::string> down;
  std::vector<std::string> up;
  std::vector<std::string> notes;
  size_t local_ends = 0;
  size_t ends_up = 0;
  bool probe_used = false;
  bool qsfp_used = false;

  void Finish(const std::string& first_source, Link* link) const {
    std::vector<std::string> reasons;
    if (!mismatch.empty()) {
      link->state = LinkState::kMismatch;
      reasons = mismatch;
      reasons.insert(reasons.end(), down.begin(), down.end());
    } else if (!down.empty()) {
      link->state = LinkState::kDown;
      reasons = down;
    } else if (local_ends > 0 && ends_up == local_ends) {
      link->state = LinkState::kUp;
      reasons = up;
    } else {
      link->state = LinkState::kUnknown;
      reasons = up;
    }
    reasons.insert(reasons.end(), notes.begin(), notes.end());
    link->detail = Join(reasons);
    std::string source = first_source;
    for (const auto& [used, name] : {std::pair{probe_used, "probe"}, std::pair{qsfp_used, "qsfp"}}) {
      if (!used) continue;
      if (!source.empty()) source += "+";
      source += name;
    }
    link->source = source;
  }
};

// Evidence for local end `end` (node empty) of a cabled link whose other end is `peer` (node
// empty when local too).
void JudgeCabledEnd(const std::vector<Card>& cards, const PortRef& end, const PortRef& peer,
                    const ProbeObservations* probe, const QsfpPairing* qsfp, Verdict* v) {
  ++v->local_ends;
  const std::string name = PortName(end);
  const Card* card = FindCard(cards, end.serial);
  if (card == nullptr) {
    v->down.push_back("card " + end.serial + " is not on this node");
    return;
  }
  if (const PortObservation* obs = probe ? probe->Find(end.serial, end.port) : nullptr; obs != nullptr) {
    if (obs->state == LinkState::kUp) {
      v->probe_used = true;
      const uint32_t expected_hash = SerialHash32(peer.serial);
      if (obs->peer_serial_hash && *obs->peer_serial_hash != expected_hash) {
        v->mismatch.push_back("link IP on " + name + " sees peer serial hash " +
                              Hex32(*obs->peer_serial_hash) + ", cabling says " + PortName(peer) + " (" +
                              Hex32(expected_hash) + ")");
      } else if (obs->peer_port && *obs->peer_port != peer.port) {
        v->mismatch.push_back("link IP on " + name + " sees peer port " + std::to_string(*obs->peer_port) +
                              ", cabling says " + PortName(peer));
      } else {
        ++v->ends_up;
        v->up.push_back(name + ": " + obs->detail +
                        (obs->peer_serial_hash || obs->peer_port ? ", peer matches the cabling" : ""));
      }
    } else if (obs->state == LinkState::kDown) {
      v->probe_used = true;
      v->down.push_back(name + ": " + obs->detail);
    } else {
      v->notes.push_back(name + ": " + obs->detail);
    }
  } else {
    v->notes.push_back(name + ": link IP not observed");
  }
  if (std::optional<std::string> reason = QsfpDownReason(*card, end.port)) {
    v->qsfp_used = true;
    v->down.push_back(*reason);
  }
  if (qsfp != nullptr) {
    if (const PortRef* paired = qsfp->PeerOf(end.serial, end.port); paired != nullptr) {
      v->qsfp_used = true;
      if (peer.node.empty() && paired->serial == peer.serial && paired->port == peer.port) {
        v->notes.push_back("cable serial of " + name + " matches " + PortName(peer));
      } else {
        v->mismatch.push_back("cable serial pairs " + name + " with " + PortName(*paired) +
                              ", cabling says " + PortName(peer));
      }
    }
  }
}

Link CabledLinkState(const std::string& node_name, const std::vector<Card>& cards, const CabledLink& cabled,
                     const ProbeObservations* probe, const QsfpPairing* qsfp) {
  Link link;
  link.kind = cabled.kind;
  link.a = cabled.a;
  link.b = cabled.b;
  if (link.a.node == node_name) link.a.node.clear();
  if (link.b.node == node_name) link.b.node.clear();
  Verdict v;
  if (link.a.node.empty()) JudgeCabledEnd(cards, link.a, link.b, probe, qsfp, &v);
  if (link.b.node.empty() && !(link.a == link.b)) JudgeCabledEnd(cards, link.b, link.a, probe, qsfp, &v);
  for (const PortRef* far : {&link.a, &link.b}) {
    if (!far->node.empty()) v.notes.push_back("far end " + PortName(*far) + " is reported by its node");
  }
  v.Finish("cabling", &link);
  return link;
}

// Without a cabling file: the local port named by the link IP of `obs` as its peer.
std::optional<PortRef> ProbePeer(const std::vector<Card>& cards, const ProbeObservations& probe,
                                 const PortObservation& obs) {
  if (obs.state != LinkState::kUp || !obs.peer_serial_hash) return std::nullopt;
  const Card* peer_card = nullptr;
  for (const Card& card : cards) {
    if (card.serial.empty() || SerialHash32(card.serial) != *obs.peer_serial_hash) continue;
    if (peer_card != nullptr) return std::nullopt;  // two local cards hash alike: cannot tell
    peer_card = &card;
  }
  if (peer_card == nullptr) return std::nullopt;
  if (obs.peer_port) return PortRef{"", peer_card->serial, *obs.peer_port};
  // No peer-port register: the peer's port whose own observation points back at this port.
  std::optional<PortRef> found;
  const uint32_t own_hash = SerialHash32(obs.serial);
  for (const auto& [key, other] : probe.ports) {
    if (key.first != peer_card->serial || other.state != LinkState::kUp) continue;
    if (other.peer_serial_hash != own_hash) continue;
    if (other.peer_port && *other.peer_port != obs.port) continue;
    if (found) return std::nullopt;
    found = PortRef{"", peer_card->serial, key.second};
  }
  return found;
}

std::vector<Link> UncabledLinks(const std::vector<Card>& cards, const ProbeObservations* probe,
                                const QsfpPairing* qsfp) {
  std::map<std::pair<PortRef, PortRef>, Link> links;
  std::map<PortRef, std::pair<PortRef, PortRef>> port_owner;
  auto key_of = [](const PortRef& x, const PortRef& y) { return x < y ? std::pair{x, y} : std::pair{y, x}; };

  if (probe != nullptr) {
    for (const auto& [port_key, obs] : probe->ports) {
      const std::optional<PortRef> peer = ProbePeer(cards, *probe, obs);
      if (!peer) continue;
      const PortRef self{"", obs.serial, obs.port};
      const auto key = key_of(self, *peer);
      // A port can be in one link only; a contradicting claim from the other end is dropped.
      auto owner_a = port_owner.find(key.first);
      auto owner_b = port_owner.find(key.second);
      if ((owner_a != port_owner.end() && owner_a->second != key) ||
          (owner_b != port_owner.end() && owner_b->second != key)) {
        continue;
      }
      port_owner[key.first] = key;
      port_owner[key.second] = key;
      Link& link = links[key];
      link.a = key.first;
      link.b = key.second;
      link.state = LinkState::kUp;
      link.source = "probe";
      const std::string seen = "link IP on " + PortName(self) + " names peer " + PortName(*peer);
      link.detail = link.detail.empty() ? seen : link.detail + "; " + seen;
    }
  }

  if (qsfp != nullptr) {
    for (const QsfpPair& pair : qsfp->pairs) {
      const auto key = key_of(pair.a, pair.b);
      if (auto it = links.find(key); it != links.end()) {
        it->second.source = "probe+qsfp";
        it->second.detail += "; cable serial " + pair.cable_serial + " matches";
        continue;
      }
      if (port_owner.count(key.first) != 0 || port_owner.count(key.second) != 0) continue;
      Link link;
      link.a = key.first;
      link.b = key.second;
      Verdict v;
      for (const PortRef* end : {&link.a, &link.b}) {
        ++v.local_ends;
        const Card* card = FindCard(cards, end->serial);
        if (card != nullptr) {
          if (std::optional<std::string> reason = QsfpDownReason(*card, end->port)) v.down.push_back(*reason);
        }
        const PortObservation* obs = probe ? probe->Find(end->serial, end->port) : nullptr;
        if (obs == nullptr || obs->state == LinkState::kUnknown) continue;
        v.probe_used = true;
        if (obs->state == LinkState::kUp) {
          ++v.ends_up;
          v.up.push_back(PortName(*end) + ": " + obs->detail);
        } else {
          v.down.push_back(PortName(*end) + ": " + obs->detail);
        }
      }
      if (v.down.empty() && v.ends_up < v.local_ends) v.notes.push_back("link IP not observed on both ends");
      v.notes.push_back("cable serial " + pair.cable_serial + " pairs " + PortName(link.a) + " and " +
                        PortName(link.b));
      v.qsfp_used = true;
      v.Finish("", &link);
      links.emplace(key, std::move(link));
    }
  }

  std::vector<Link> out;
  out.reserve(links.size());
  for (auto& [key, link] : links) out.push_back(std::move(link));
  return out;
}

}  // namespace

const PortRef* QsfpPairing::PeerOf(const std::string& serial, int port) const {
  for (const QsfpPair& pair : pairs) {
    if (pair.a.serial == serial && pair.a.port == port) return &pair.b;
    if (pair.b.serial == serial && pair.b.port == port) return &pair.a;
  }
  return nullptr;
}

QsfpPairing PairByCableSerial(const std::vector<Card>& cards) {
  std::map<std::string, std::vector<PortRef>> by_cable;
  for (const Card& card : cards) {
    if (card.emulated || card.serial.empty()) continue;
    for (const Port& port : card.ports) {
      if (!port.module_info_read || !port.module_present) continue;
      const std::string_view cable = Trim(port.cable_serial);
      if (cable.empty()) continue;
      by_cable[std::string(cable)].push_back(PortRef{"", card.serial, port.index});
    }
  }
  QsfpPairing out;
  for (auto& [cable, ports] : by_cable) {
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
    if (ports.size() == 2) {
      out.pairs.push_back(QsfpPair{ports[0], ports[1], cable});
    } else if (ports.size() > 2) {
      std::string names;
      for (const PortRef& p : ports) {
        if (!names.empty()) names += ", ";
        names += PortName(p);
      }
      std::string warning = "cable serial " + cable;
      warning +=
          " is reported by " + std::to_string(ports.size()) + " ports (" + names + "); not pairing them";
      out.warnings.push_back(std::move(warning));
      out.ambiguous.insert(out.ambiguous.end(), ports.begin(), ports.end());
    }
  }
  std::sort(out.pairs.begin(), out.pairs.end(),
            [](const QsfpPair& x, const QsfpPair& y) { return x.a < y.a; });
  std::sort(out.ambiguous.begin(), out.ambiguous.end());
  return out;
}

std::vector<Link> MergeLinks(const std::string& node_name, const std::vector<Card>& cards,
                             const Cabling* cabling, const ProbeObservations* probe,
                             const QsfpPairing* qsfp) {
  if (cabling == nullptr) return UncabledLinks(cards, probe, qsfp);
  std::vector<Link> out;
  for (const CabledLink* cabled : LinksTouchingNode(*cabling, node_name)) {
    out.push_back(CabledLinkState(node_name, cards, *cabled, probe, qsfp));
  }
  return out;
}

}  // namespace hyperaccel::hw
