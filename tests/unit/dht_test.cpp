// The DHT on a simulated network: routing, queries, HyperDHT records, expiry,
// churn, packet loss and hostile datagrams, all in simulated time.
#include <catch2/catch.hpp>

#include <random>
#include <set>

#include "core/crypto.h"
#include "net/dht_query.h"
#include "net/dht_sim.h"
#include "net/hyperdht.h"

using namespace p2p;
using namespace p2p::dht;

namespace {

Address sim_address(size_t i) {
  return Address{{10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)}, 49737};
}

// A network of persistent DHT nodes plus ephemeral clients, in one process.
struct SimDht {
  struct Member {
    std::unique_ptr<DatagramSocket> socket;
    std::unique_ptr<Node> node;
    std::unique_ptr<HyperDht> dht;
  };

  SimNetwork net;
  std::vector<std::unique_ptr<Member>> nodes;
  size_t next_address = 1;
  StoreLimits limits;

  explicit SimDht(uint64_t seed, SimConditions c = {}) : net(seed, c) {}

  Member& add(bool persistent, std::vector<Address> bootstrap) {
    auto m = std::make_unique<Member>();
    Address a = sim_address(next_address++);
    m->socket = net.open_socket(a);
    NodeConfig config;
    config.bootstrap = std::move(bootstrap);
    if (persistent) config.public_address = a;
    config.seed = next_address * 7919;
    m->node = std::make_unique<Node>(net, *m->socket, config);
    m->dht = std::make_unique<HyperDht>(*m->node, limits);
    nodes.push_back(std::move(m));
    return *nodes.back();
  }

  bool join(Member& m, uint64_t max_ms = 120'000) {
    bool done = false;
    m.node->bootstrap([&] { done = true; });
    return net.run_until([&] { return done; }, max_ms);
  }

  // n persistent nodes, each joining through the first once the previous one has joined.
  void grow(size_t n) {
    Member& first = add(true, {});
    REQUIRE(join(first));
    for (size_t i = 1; i < n; i++) REQUIRE(join(add(true, {first.socket->local_address()})));
  }

  Address first_address() const { return nodes.front()->socket->local_address(); }

  Member& client() {
    Member& c = add(false, {first_address()});
    REQUIRE(join(c));
    return c;
  }

  // Takes a node off the network, as if its process died.
  void kill(size_t i) {
    nodes[i]->dht.reset();
    nodes[i]->node.reset();
    nodes[i]->socket.reset();
  }

  PutResult announce(Member& m, const Hash32& topic, const crypto::KeyPair& kp) {
    std::optional<PutResult> r;
    m.dht->announce(topic, kp, {}, [&](const PutResult& p) { r = p; });
    REQUIRE(net.run_until([&] { return r.has_value(); }, 300'000));
    return *r;
  }

  std::set<Key32> lookup(Member& m, const Hash32& topic) {
    std::set<Key32> found;
    bool done = false;
    m.dht->lookup(topic, [&](const FoundPeer& p) { found.insert(p.peer.public_key); }, [&](const QueryResult&) { done = true; });
    REQUIRE(net.run_until([&] { return done; }, 300'000));
    return found;
  }
};

crypto::KeyPair key_pair(uint8_t n) {
  Key32 seed{};
  seed.fill(n);
  return crypto::key_pair_from_seed(seed);
}

Hash32 random_id(std::mt19937_64& rng) {
  Hash32 h;
  for (auto& b : h) b = static_cast<uint8_t>(rng());
  return h;
}

}  // namespace

TEST_CASE("routing table: closest is exact and rows hold k nodes", "[dht]") {
  std::mt19937_64 rng(42);
  RoutingTable table(random_id(rng), 20);
  std::vector<NodeEntry> all;
  for (int i = 0; i < 3000; i++) {
    NodeEntry e{.id = random_id(rng), .address = sim_address(static_cast<size_t>(i))};
    if (table.add(e) == RoutingTable::Added::inserted) all.push_back(e);
  }
  CHECK(table.size() == all.size());
  // Random ids mostly share a short prefix with ours: the first rows fill up.
  CHECK(table.row_of(all.front().id).size() <= 20);
  CHECK(table.size() < 3000);
  for (int t = 0; t < 50; t++) {
    Hash32 target = random_id(rng);
    auto expected = all;
    std::sort(expected.begin(), expected.end(), [&](const NodeEntry& a, const NodeEntry& b) { return closer(target, a.id, b.id); });
    expected.resize(20);
    auto got = table.closest(target, 20);
    REQUIRE(got.size() == 20);
    for (size_t i = 0; i < 20; i++) CHECK(got[i].id == expected[i].id);
  }
  CHECK(table.remove(all[3].id));
  CHECK_FALSE(table.get(all[3].id));
  CHECK_FALSE(table.remove(all[3].id));
}

TEST_CASE("record store: bounded, renewing, expiring", "[dht]") {
  RecordStore store(StoreLimits{.max_records = 1000, .record_ttl_ms = 60'000, .max_values = 10, .max_value_bytes = 100});
  std::mt19937_64 rng(5);
  Hash32 busy = random_id(rng);
  for (uint64_t i = 0; i < 5000; i++) {
    PeerRecord p{key_pair(static_cast<uint8_t>(i)).public_key, {sim_address(i), sim_address(i + 1), sim_address(i + 2), sim_address(i + 3)}};
    p.public_key[1] = static_cast<uint8_t>(i >> 8);
    store.add(i % 2 ? busy : random_id(rng), p, i);
    REQUIRE(store.stats().records <= 1000);
  }
  auto peers = store.peers(busy, 20, 5000);
  REQUIRE(peers.size() == 20);
  CHECK(peers[0].relay_addresses.size() == kMaxRelayAddresses);  // the fourth was dropped
  CHECK(peers[0].relay_addresses[2] == sim_address(4999 + 2));  // newest first, addresses intact
  CHECK(store.peers(busy, 20, 5000 + 60'000).empty());         // all expired
  store.sweep(5000 + 60'000);
  CHECK(store.stats().records == 0);
  CHECK(store.stats().topics == 0);
  // Values: refused when full of live ones, accepted again once they expire.
  for (uint8_t i = 0; i < 10; i++) CHECK(store.put_value(RecordStore::Kind::immutable_value, Hash32{i}, Bytes(5, i), 0));
  CHECK_FALSE(store.put_value(RecordStore::Kind::immutable_value, Hash32{99}, Bytes(5), 0));
  CHECK(store.put_value(RecordStore::Kind::immutable_value, Hash32{99}, Bytes(5), store.limits().value_ttl_ms + 1));
}

TEST_CASE("dht: announce, lookup and unannounce on 30 nodes", "[dht]") {
  SimDht sim(1);
  sim.grow(30);
  Hash32 topic = topic_from_text("sim topic");
  auto& a = sim.client();
  auto& b = sim.client();
  auto kp = key_pair(1);
  PutResult put = sim.announce(a, topic, kp);
  CHECK(put.ok);
  CHECK(put.nodes >= 15);
  CHECK(sim.lookup(b, topic) == std::set<Key32>{kp.public_key});
  CHECK(sim.lookup(b, topic_from_text("other topic")).empty());

  // Only the key's owner can take its record down.
  std::optional<PutResult> r;
  b.dht->unannounce(topic, key_pair(2), [&](const PutResult& p) { r = p; });
  REQUIRE(sim.net.run_until([&] { return r.has_value(); }, 60'000));
  CHECK(sim.lookup(b, topic).size() == 1);
  r.reset();
  a.dht->unannounce(topic, kp, [&](const PutResult& p) { r = p; });
  REQUIRE(sim.net.run_until([&] { return r.has_value(); }, 60'000));
  CHECK(r->nodes >= 15);
  CHECK(sim.lookup(b, topic).empty());
}

TEST_CASE("dht: a server announced under the hash of its key is found with find_peer", "[dht]") {
  SimDht sim(10);
  sim.grow(20);
  auto& server = sim.client();
  auto& other = sim.client();
  auto kp = key_pair(7);
  Hash32 target = crypto::hash({kp.public_key});
  std::optional<PutResult> put;
  server.dht->announce(target, kp, {sim_address(4242)}, [&](const PutResult& r) { put = r; });
  REQUIRE(sim.net.run_until([&] { return put.has_value(); }, 60'000));
  REQUIRE(put->ok);
  std::optional<std::optional<FoundPeer>> found;
  other.dht->find_peer(kp.public_key, [&](std::optional<FoundPeer> p) { found = std::move(p); });
  REQUIRE(sim.net.run_until([&] { return found.has_value(); }, 60'000));
  REQUIRE(*found);
  CHECK((*found)->peer.public_key == kp.public_key);
  CHECK((*found)->peer.relay_addresses == std::vector<Address>{sim_address(4242)});
  // A server's record also answers a lookup of that target, and the relays know where it announced from.
  CHECK(sim.lookup(other, target) == std::set<Key32>{kp.public_key});
  size_t relays = 0;
  for (auto& m : sim.nodes) {
    if (!m->dht) continue;
    if (auto f = m->dht->forward(target)) relays += f->server == server.socket->local_address();
  }
  CHECK(relays >= 10);
  found.reset();
  other.dht->find_peer(key_pair(8).public_key, [&](std::optional<FoundPeer> p) { found = std::move(p); });
  REQUIRE(sim.net.run_until([&] { return found.has_value(); }, 60'000));
  CHECK_FALSE(*found);
}

TEST_CASE("dht: records expire after 20 minutes unless re-announced", "[dht]") {
  SimDht sim(2);
  sim.grow(20);
  auto& a = sim.client();
  auto& b = sim.client();
  Hash32 t1 = topic_from_text("expires"), t2 = topic_from_text("renewed");
  REQUIRE(sim.announce(a, t1, key_pair(1)).ok);
  REQUIRE(sim.announce(a, t2, key_pair(2)).ok);
  sim.net.run_for(15 * 60 * 1000);
  CHECK(sim.lookup(b, t1).size() == 1);
  REQUIRE(sim.announce(a, t2, key_pair(2)).ok);  // renews t2 only
  sim.net.run_for(6 * 60 * 1000);
  CHECK(sim.lookup(b, t1).empty());
  CHECK(sim.lookup(b, t2).size() == 1);
}

TEST_CASE("dht: a record is still found after a third of the nodes die", "[dht]") {
  SimDht sim(3);
  sim.grow(30);
  auto& a = sim.client();
  Hash32 topic = topic_from_text("churn");
  REQUIRE(sim.announce(a, topic, key_pair(1)).ok);
  std::set<Address> dead;
  for (size_t i = 1; i < 30; i += 3) dead.insert(sim.nodes[i]->socket->local_address());
  auto references_to_dead = [&] {
    size_t n = 0;
    for (auto& m : sim.nodes) {
      if (!m->node) continue;
      for (const auto& e : m->node->table().all()) n += dead.count(e.address);
    }
    return n;
  };
  size_t before = references_to_dead();
  for (size_t i = 1; i < 30; i += 3) sim.kill(i);  // 10 of the 30
  auto& b = sim.client();
  CHECK(sim.lookup(b, topic) == std::set<Key32>{key_pair(1).public_key});
  // Pings, timeouts and down hints clear the dead from the routing tables.
  sim.net.run_for(5 * 60 * 1000);
  size_t after = references_to_dead();
  CAPTURE(before, after);
  CHECK(after < before / 2);
}

TEST_CASE("dht: 500 nodes with 10% packet loss still find announced records", "[dht][slow]") {
  SimDht sim(4, SimConditions{.loss = 0.10, .duplicate = 0.01, .min_delay_ms = 1, .max_delay_ms = 40});
  sim.grow(500);
  auto& a = sim.client();
  auto& b = sim.client();
  int found = 0;
  for (uint8_t i = 1; i <= 5; i++) {
    Hash32 topic = topic_from_text("lossy " + std::to_string(i));
    PutResult put = sim.announce(a, topic, key_pair(i));
    CHECK(put.ok);
    if (sim.lookup(b, topic).count(key_pair(i).public_key)) found++;
  }
  CHECK(found == 5);
  CHECK(sim.net.dropped() > 0);
}

TEST_CASE("dht: mutable and immutable records", "[dht]") {
  SimDht sim(5);
  sim.grow(20);
  auto& a = sim.client();
  auto& b = sim.client();
  auto kp = key_pair(9);

  std::optional<PutResult> put;
  a.dht->mutable_put(kp, as_bytes("one"), 1, [&](const PutResult& r) { put = r; });
  REQUIRE(sim.net.run_until([&] { return put.has_value(); }, 60'000));
  CHECK(put->ok);
  CHECK(put->nodes >= 10);

  auto get = [&](uint64_t min_seq) {
    std::optional<std::optional<MutableValue>> got;
    b.dht->mutable_get(kp.public_key, min_seq, [&](std::optional<MutableValue> v) { got = std::move(v); });
    REQUIRE(sim.net.run_until([&] { return got.has_value(); }, 60'000));
    return *got;
  };
  auto v = get(0);
  REQUIRE(v);
  CHECK(v->record.seq == 1);
  CHECK(as_chars(v->record.value) == "one");
  CHECK_FALSE(get(2));

  put.reset();
  a.dht->mutable_put(kp, as_bytes("other"), 1, [&](const PutResult& r) { put = r; });
  REQUIRE(sim.net.run_until([&] { return put.has_value(); }, 60'000));
  CHECK(put->nodes == 0);
  CHECK(put->error == kErrorSeqReused);
  put.reset();
  a.dht->mutable_put(kp, as_bytes("older"), 0, [&](const PutResult& r) { put = r; });
  REQUIRE(sim.net.run_until([&] { return put.has_value(); }, 60'000));
  CHECK(put->nodes == 0);
  CHECK(put->error == kErrorSeqTooLow);

  std::optional<Hash32> hash;
  a.dht->immutable_put(as_bytes("forever"), [&](const Hash32& h, const PutResult& r) {
    CHECK(r.ok);
    hash = h;
  });
  REQUIRE(sim.net.run_until([&] { return hash.has_value(); }, 60'000));
  CHECK(*hash == crypto::hash({as_bytes("forever")}));
  std::optional<std::optional<Bytes>> got;
  b.dht->immutable_get(*hash, [&](std::optional<Bytes> v) { got = std::move(v); });
  REQUIRE(sim.net.run_until([&] { return got.has_value(); }, 60'000));
  REQUIRE(*got);
  CHECK(as_chars(**got) == "forever");
}

TEST_CASE("dht: tokens are required to store and expire after two rotations", "[dht]") {
  SimDht sim(6);
  sim.grow(2);
  auto& c = sim.client();
  Address server = sim.first_address();
  auto ask = [&](const OutboundRequest& req) {
    std::optional<Reply> reply;
    bool done = false;
    c.node->request(server, req, [&](const Reply* r) {
      if (r) reply = *r;
      done = true;
    });
    REQUIRE(sim.net.run_until([&] { return done; }, 30'000));
    REQUIRE(reply);
    return *reply;
  };
  Bytes value = to_bytes(as_bytes("v"));
  Hash32 target = crypto::hash({value});
  Reply first = ask({.command = kImmutableGet, .target = target});
  REQUIRE(first.token);
  CHECK(ask({.command = kImmutablePut, .target = target, .value = value, .token = Hash32{}}).error == kErrorInvalidToken);
  sim.net.run_for(8000);  // one rotation: the old token still works
  CHECK(ask({.command = kImmutablePut, .target = target, .value = value, .token = first.token}).error == 0);
  sim.net.run_for(16000);  // two more: it does not
  CHECK(ask({.command = kImmutablePut, .target = target, .value = value, .token = first.token}).error == kErrorInvalidToken);
  // An unknown command is answered as such.
  CHECK(ask({.command = 99, .target = target}).error == kErrorUnknownCommand);
}

TEST_CASE("dht: hostile datagrams never crash or stall a node", "[dht]") {
  SimDht sim(7);
  sim.grow(10);
  auto& c = sim.client();
  std::mt19937_64 rng(99);
  Address evil = sim_address(60000);
  Address victim = sim.nodes[3]->socket->local_address();
  auto send = [&](Bytes b) { sim.net.inject(evil, victim, b); };
  for (int i = 0; i < 3000; i++) {
    Bytes b(rng() % 200);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    if (!b.empty() && i % 2) b[0] = (i % 4 == 1) ? kRequestByte : kResponseByte;
    send(b);
  }
  // Truncations of a valid request, huge array and buffer lengths, oversized datagrams.
  Bytes ping = encode_request(Request{.tid = 1, .to = victim, .internal = true, .command = kFindNode, .target = Hash32{}});
  for (size_t n = 0; n < ping.size(); n++) send(Bytes(ping.begin(), ping.begin() + static_cast<long>(n)));
  send(Bytes{kResponseByte, 4, 0, 0, 10, 0, 0, 1, 0x49, 0xc2, 0xfe, 0xff, 0xff, 0xff, 0xff});
  send(Bytes{kRequestByte, 16, 0, 0, 10, 0, 0, 1, 0x49, 0xc2, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
  Bytes big(60000, 0x41);
  big[0] = kRequestByte;
  send(big);
  sim.net.run_for(5000);
  CHECK(sim.nodes[3]->node->stats().malformed > 0);
  bool answered = false;
  c.node->ping(victim, [&](const Reply* r) { answered = r != nullptr; });
  sim.net.run_for(5000);
  CHECK(answered);
  Hash32 topic = topic_from_text("after the storm");
  REQUIRE(sim.announce(c, topic, key_pair(3)).ok);
  CHECK(sim.lookup(c, topic).size() == 1);
}

TEST_CASE("dht: adaptive nodes find out whether they are reachable", "[dht]") {
  SimDht sim(9);
  sim.grow(20);
  struct Adaptive {
    std::unique_ptr<DatagramSocket> main, client;
    std::unique_ptr<Node> node;
    std::unique_ptr<HyperDht> dht;
  };
  auto make = [&](size_t n, bool behind_firewall) {
    Adaptive a;
    Address client = sim_address(1000 + n);
    client.port = 40000;  // the same host, another port
    a.main = sim.net.open_socket(sim_address(1000 + n), behind_firewall);
    a.client = sim.net.open_socket(client, behind_firewall);
    NodeConfig config;
    config.bootstrap = {sim.first_address()};
    config.adaptive = true;
    config.stable_ticks = 12;  // a minute, not twenty
    config.seed = 77 + n;
    a.node = std::make_unique<Node>(sim.net, *a.main, config, a.client.get());
    a.dht = std::make_unique<HyperDht>(*a.node);
    bool joined = false;
    a.node->bootstrap([&] { joined = true; });
    REQUIRE(sim.net.run_until([&] { return joined; }, 60'000));
    return a;
  };
  Adaptive open = make(1, false), walled = make(2, true);
  CHECK_FALSE(open.node->persistent());
  sim.net.run_for(2 * 60 * 1000);
  CHECK(open.node->firewall() == Firewall::open);
  CHECK(open.node->persistent());
  CHECK(open.node->id() == node_id(sim_address(1001)));
  CHECK(walled.node->firewall() == Firewall::consistent);
  CHECK_FALSE(walled.node->persistent());
  CHECK_FALSE(walled.node->id());
  // The open node now stores records for others: it answers with its id.
  auto& c = sim.client();
  std::optional<Reply> reply;
  c.node->request(sim_address(1001), OutboundRequest{.command = kLookup, .target = Hash32{}}, [&](const Reply* r) {
    if (r) reply = *r;
  });
  REQUIRE(sim.net.run_until([&] { return reply.has_value(); }, 10'000));
  CHECK(reply->from_id == node_id(sim_address(1001)));
  CHECK(reply->error == 0);
}

TEST_CASE("dht: a simulated run is the same every time", "[dht]") {
  auto run = [] {
    SimDht sim(8, SimConditions{.loss = 0.05});
    sim.grow(25);
    auto& a = sim.client();
    sim.announce(a, topic_from_text("same"), key_pair(1));
    return std::make_pair(sim.net.delivered(), sim.net.now_ms());
  };
  CHECK(run() == run());
}
