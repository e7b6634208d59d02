#include "net/swarm.h"

namespace p2p::dht {
namespace {

constexpr int kMaxFailures = 3;  // then a key is left alone until found again later
// Two peers dialling each other at once make their connections within a few
// seconds; a connection from a key we have held longer is a restarted peer.
constexpr uint64_t kDuplicateWindowMs = 10'000;
constexpr uint64_t kEagerPeriodMs = 60'000;

}  // namespace

Swarm::Swarm(Connector& connector, HyperDht& dht, crypto::KeyPair key_pair, SwarmOptions options)
    : connector_(connector), dht_(dht), key_pair_(key_pair), options_(options) {}

Swarm::~Swarm() {
  *alive_ = false;
  dht_.node().clock().cancel_timer(lookup_timer_);
  dht_.node().clock().cancel_timer(announce_timer_);
  if (listening_) connector_.unlisten(key_pair_.public_key);
}

void Swarm::join(const Hash32& topic, bool server, bool client) {
  Topic& t = topics_[topic];
  t.server = t.server || server;
  t.client = t.client || client;
  joined_at_ = dht_.node().clock().now_ms();
  if (server && !listening_) {
    listening_ = true;
    connector_.listen(
        key_pair_, [this](Established e) { accept(std::move(e)); },
        [this, alive = alive_](const std::vector<Address>&) {
          if (!*alive) return;
          for (const auto& [topic, t] : topics_)
            if (t.server) announce(topic);
        },
        [this](const Key32& remote) { return admit(remote); });
  } else if (server) {
    announce(topic);
  }
  if (client) lookup(topic);
  schedule();
}

void Swarm::schedule() {
  Clock& clock = dht_.node().clock();
  if (lookup_timer_ == 0) {
    bool eager = clock.now_ms() - joined_at_ < kEagerPeriodMs;
    lookup_timer_ = clock.start_timer(eager ? options_.eager_lookup_ms : options_.lookup_interval_ms, [this, alive = alive_] {
      if (!*alive) return;
      lookup_timer_ = 0;
      for (const auto& [topic, t] : topics_)
        if (t.client) lookup(topic);
      schedule();
    });
  }
  if (announce_timer_ == 0) {
    announce_timer_ = clock.start_timer(options_.announce_interval_ms, [this, alive = alive_] {
      if (!*alive) return;
      announce_timer_ = 0;
      for (const auto& [topic, t] : topics_)
        if (t.server) announce(topic);
      schedule();
    });
  }
}

void Swarm::announce(const Hash32& topic) {
  // The record names where to send handshakes: our relays, which hold our
  // server record (and ourselves first, when reachable).
  std::vector<Address> relays;
  if (auto seen = dht_.node().observed_address();
      seen && seen->port && dht_.node().firewall() == Firewall::open) {
    relays.push_back(*seen);
  }
  for (const auto& r : connector_.relays(key_pair_.public_key)) {
    if (relays.size() < kMaxRelayAddresses && std::find(relays.begin(), relays.end(), r) == relays.end()) relays.push_back(r);
  }
  dht_.announce(topic, key_pair_, relays, [](const PutResult&) {});
}

void Swarm::lookup(const Hash32& topic) {
  dht_.lookup(
      topic,
      [this, alive = alive_](const FoundPeer& p) {
        if (!*alive) return;
        const Key32& remote = p.peer.public_key;
        if (remote == key_pair_.public_key || connected_.count(remote) || dialing_.count(remote)) return;
        if (auto it = accepting_.find(remote);
            it != accepting_.end() && dht_.node().clock().now_ms() - it->second < kDuplicateWindowMs)
          return;  // its connection to us is on the way
        if (connected_.size() + dialing_.size() >= options_.max_peers) return;
        if (failures_[remote] >= kMaxFailures) return;
        dial(remote, p.peer.relay_addresses);
      },
      [](const QueryResult&) {});
}

bool Swarm::wins_tie(const Key32& remote, bool we_initiate) const {
  // Hyperswarm: the peer with the larger public key dials.
  bool we_should = key_pair_.public_key > remote;
  return we_should == we_initiate;
}

void Swarm::dial(const Key32& remote, std::vector<Address> relays) {
  dialing_.insert(remote);
  connector_.connect(key_pair_, remote, std::move(relays), [this, remote, alive = alive_](Result<Established> r) {
    if (!*alive) return;
    dialing_.erase(remote);
    if (!r.ok()) {
      failures_[remote]++;
      if (on_notice_) on_notice_("could not connect to " + to_hex(remote).substr(0, 16) + ": " + r.status().message());
      return;
    }
    failures_.erase(remote);
    if (connected_.count(remote)) {
      if (on_notice_) on_notice_("dropped a duplicate connection to " + to_hex(remote).substr(0, 16));
      return;  // the stream is destroyed with `r`
    }
    connected_.insert(remote);
    connected_at_[remote] = dht_.node().clock().now_ms();
    if (on_connection_) on_connection_(std::move(*r));
  }, failures_.count(remote) ? Connector::RelayUse::always : Connector::RelayUse::when_random);  // hyperswarm's forceRelaying
}

bool Swarm::admit(const Key32& remote) {
  if (remote == key_pair_.public_key) return false;
  if (connected_.count(remote)) {
    uint64_t age = dht_.node().clock().now_ms() - connected_at_[remote];
    if (age < kDuplicateWindowMs) return false;  // the other half of a simultaneous dial
    // Held for a while and the peer dials again: it restarted, ours is stale.
    connected_.erase(remote);
    if (on_replace_) on_replace_(remote);
    return true;
  }
  if (dialing_.count(remote) && !wins_tie(remote, false)) return false;
  if (connected_.size() >= options_.max_peers) return false;
  uint64_t now = dht_.node().clock().now_ms();
  if (accepting_.size() >= 1024)  // handshakes that never became connections
    std::erase_if(accepting_, [now](const auto& kv) { return now - kv.second >= kDuplicateWindowMs; });
  accepting_[remote] = now;
  return true;
}

void Swarm::accept(Established&& e) {
  // admit() said yes when the handshake came; a dial of ours may have won since.
  const Key32& remote = e.handshake.remote_public_key;
  accepting_.erase(remote);
  if (connected_.count(remote)) {
    if (on_notice_) on_notice_("refused a duplicate connection from " + to_hex(remote).substr(0, 16));
    return;  // `e` goes out of scope: its stream is reset
  }
  connected_.insert(remote);
  connected_at_[remote] = dht_.node().clock().now_ms();
  if (on_connection_) on_connection_(std::move(e));
}

void Swarm::disconnected(const Key32& remote) {
  connected_.erase(remote);
  connected_at_.erase(remote);
}

}  // namespace p2p::dht
