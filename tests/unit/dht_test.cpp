// The DHT on a simulated network: routing, queries, HyperDHT records, expiry,
// churn, packet loss and hostile datagrams, all in simulated time; then
// connections by public key between peers behind simulated NATs
// (holepunching), and the NAT analysis and puncher on their own.
#include <catch2/catch.hpp>

#include <random>
#include <set>

#include "core/crypto.h"
#include "core/encoding.h"
#include "net/blind_relay.h"
#include "net/dht_connect.h"
#include "net/dht_query.h"
#include "net/dht_sim.h"
#include "net/hyperdht.h"
#include "net/udp_demux.h"

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

// --- connections by public key behind NATs ---------------------------------------------

namespace {

enum class Behind { nothing, consistent_nat, random_nat };

// A node wired as dht_runtime wires one: one socket for the DHT node, the UDX
// streams and the connector (every node relays handshakes).
struct Wired {
  std::unique_ptr<DatagramSocket> socket;
  std::unique_ptr<DatagramSocket> client_socket;  // adaptive nodes: requests while not known reachable
  std::unique_ptr<UdpDemux> demux;
  std::unique_ptr<udx::Mux> mux;
  std::unique_ptr<Node> node;
  std::unique_ptr<HyperDht> dht;
  std::unique_ptr<Connector> connector;
  Address address() const { return socket->local_address(); }
};

struct ConnectSim {
  SimNetwork net;
  std::vector<std::unique_ptr<Wired>> nodes;
  size_t next_address = 1;

  explicit ConnectSim(uint64_t seed) : net(seed) {}

  Wired& add(Behind behind, bool persistent, std::vector<Address> bootstrap, bool adaptive = false) {
    auto w = std::make_unique<Wired>();
    Address a = sim_address(next_address++);
    w->socket = behind == Behind::random_nat ? net.open_random_nat_socket(a)
                                             : net.open_socket(a, behind == Behind::consistent_nat);
    if (adaptive) {
      Address c = a;
      c.port = 40000;  // the same host, another port
      w->client_socket = net.open_socket(c, behind == Behind::consistent_nat);
    }
    w->demux = std::make_unique<UdpDemux>(*w->socket);
    w->mux = std::make_unique<udx::Mux>(net, *w->socket);
    w->demux->set_stream_handler([mux = w->mux.get()](const Address& from, ByteView d) { return mux->handle(from, d); });
    NodeConfig config;
    config.bootstrap = std::move(bootstrap);
    if (persistent) config.public_address = a;
    config.adaptive = adaptive;
    config.seed = next_address * 104729;
    w->node = std::make_unique<Node>(net, w->demux->dht_socket(), config, w->client_socket.get());
    w->dht = std::make_unique<HyperDht>(*w->node);
    w->connector = std::make_unique<Connector>(*w->dht, *w->mux, *w->demux);
    // Punching sockets behind the same NAT as the main one.
    w->connector->set_socket_opener(
        [this, behind, host = a.ip, port = uint16_t{30000}]() mutable -> std::unique_ptr<DatagramSocket> {
          Address at{host, port++};
          if (behind == Behind::random_nat) return net.open_random_nat_socket(at);
          return net.open_socket(at, behind == Behind::consistent_nat);
        },
        next_address * 7919);
    nodes.push_back(std::move(w));
    return *nodes.back();
  }

  void join(Wired& w) {
    bool done = false;
    w.node->bootstrap([&] { done = true; });
    REQUIRE(net.run_until([&] { return done; }, 60'000));
  }

  // n persistent nodes on the open network, then peers behind NATs.
  void grow(size_t n) {
    join(add(Behind::nothing, true, {}));
    for (size_t i = 1; i < n; i++) join(add(Behind::nothing, true, {nodes.front()->address()}));
  }
  Wired& peer(Behind behind) {
    Wired& w = add(behind, false, {nodes.front()->address()});
    join(w);
    return w;
  }

  void listen(Wired& server, const crypto::KeyPair& kp, std::optional<Established>& accepted) {
    bool announced = false;
    server.connector->listen(
        kp, [&accepted](Established e) { accepted = std::move(e); }, [&](const std::vector<Address>&) { announced = true; });
    REQUIRE(net.run_until([&] { return announced; }, 60'000));
  }
};

// Everything a stream receives, early data first.
std::shared_ptr<Bytes> collect(Established& e) {
  auto got = std::make_shared<Bytes>(*e.early_data);
  e.stream->on_data = [got](ByteView b) { got->insert(got->end(), b.begin(), b.end()); };
  return got;
}

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; i++) b[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 9));
  return b;
}

}  // namespace

TEST_CASE("connect: two peers behind consistent NATs holepunch and carry bytes both ways", "[dht][connect]") {
  ConnectSim sim(21);
  sim.grow(10);
  Wired& server = sim.peer(Behind::consistent_nat);
  Wired& client = sim.peer(Behind::consistent_nat);
  CHECK(server.node->firewall() == Firewall::consistent);
  auto skp = key_pair(31), ckp = key_pair(32);
  std::optional<Established> accepted;
  sim.listen(server, skp, accepted);

  std::optional<Result<Established>> dialled;
  client.connector->connect(ckp, skp.public_key, {}, [&](Result<Established> r) { dialled = std::move(r); });
  REQUIRE(sim.net.run_until([&] { return dialled.has_value(); }, 60'000));
  INFO(dialled->status().message());
  REQUIRE(dialled->ok());
  Established& c = dialled->value();
  // The server's stream connects on the client's first packet (a secret
  // stream's header, in real use).
  auto at_client = collect(c);
  Bytes up = pattern(200'000, 1), down = pattern(150'000, 2);
  c.stream->write(up);
  REQUIRE(sim.net.run_until([&] { return accepted.has_value(); }, 20'000));
  CHECK(c.how == How::holepunched);
  CHECK(c.relayed);
  CHECK(c.initiator);
  CHECK(c.remote == server.address());
  CHECK(accepted->how == How::holepunched);
  CHECK_FALSE(accepted->initiator);
  CHECK(accepted->remote == client.address());
  CHECK(accepted->handshake.remote_public_key == ckp.public_key);
  CHECK(c.handshake.tx == accepted->handshake.rx);

  auto at_server = collect(*accepted);
  accepted->stream->write(down);
  REQUIRE(sim.net.run_until([&] { return *at_server == up && *at_client == down; }, 60'000));
}

TEST_CASE("connect: a peer on the open network is reached without punching", "[dht][connect]") {
  ConnectSim sim(22);
  sim.grow(10);
  // A persistent server answers a handshake sent straight to it: direct.
  Wired& server = sim.add(Behind::nothing, true, {sim.nodes.front()->address()});
  sim.join(server);
  Wired& client = sim.peer(Behind::consistent_nat);
  auto skp = key_pair(41), ckp = key_pair(42);
  std::optional<Established> accepted;
  sim.listen(server, skp, accepted);
  std::optional<Result<Established>> dialled;
  client.connector->connect(ckp, skp.public_key, {server.address()},
                            [&](Result<Established> r) { dialled = std::move(r); });
  REQUIRE(sim.net.run_until([&] { return dialled.has_value() && accepted.has_value(); }, 60'000));
  REQUIRE(dialled->ok());
  CHECK(dialled->value().how == How::direct);
  CHECK_FALSE(dialled->value().relayed);
  CHECK(accepted->how == How::direct);
  auto at_server = collect(*accepted);
  dialled->value().stream->write(pattern(5000, 3));
  REQUIRE(sim.net.run_until([&] { return at_server->size() == 5000; }, 20'000));
}

TEST_CASE("connect: a handshake sent to an adaptive server's client socket still ends on its main socket", "[dht][connect]") {
  ConnectSim sim(24);
  sim.grow(10);
  // Freshly started and adaptive: until it knows it is reachable, the server's
  // node asks (and is seen by others) from its client socket; its streams are
  // on the main socket. A client that sends the handshake straight to the
  // client socket must not get a stream pointed there.
  Wired& server = sim.add(Behind::nothing, false, {sim.nodes.front()->address()}, true);
  sim.join(server);
  REQUIRE(server.node->firewalled());
  Wired& client = sim.peer(Behind::nothing);
  auto skp = key_pair(45), ckp = key_pair(46);
  std::optional<Established> accepted;
  sim.listen(server, skp, accepted);
  std::optional<Result<Established>> dialled;
  client.connector->connect(ckp, skp.public_key, {server.client_socket->local_address()},
                            [&](Result<Established> r) { dialled = std::move(r); });
  REQUIRE(sim.net.run_until([&] { return dialled.has_value(); }, 60'000));
  INFO(dialled->status().message());
  REQUIRE(dialled->ok());
  CHECK(dialled->value().remote == server.address());
  dialled->value().stream->write(pattern(5000, 4));
  REQUIRE(sim.net.run_until([&] { return accepted.has_value(); }, 20'000));
  auto at_server = collect(*accepted);
  auto at_client = collect(dialled->value());
  accepted->stream->write(pattern(3000, 5));
  REQUIRE(sim.net.run_until([&] { return at_server->size() == 5000 && at_client->size() == 3000; }, 20'000));
}

// Dials `server` (listening as `skp`) from `client`; both ends or the failure.
struct Dialled {
  std::optional<Result<Established>> client;
  std::optional<Established> server;
};
void dial_and_check_bytes(ConnectSim& sim, Wired& server, Wired& client, const crypto::KeyPair& skp,
                          const crypto::KeyPair& ckp, Dialled& out, bool listen = true) {
  if (listen) sim.listen(server, skp, out.server);
  client.connector->connect(ckp, skp.public_key, {}, [&](Result<Established> r) { out.client = std::move(r); });
  REQUIRE(sim.net.run_until([&] { return out.client.has_value(); }, Connector::kConnectTimeoutMs + 1000));
  INFO(out.client->status().message());
  REQUIRE(out.client->ok());
  Established& c = out.client->value();
  auto at_client = collect(c);
  Bytes up = pattern(100'000, 7), down = pattern(80'000, 8);
  c.stream->write(up);
  REQUIRE(sim.net.run_until([&] { return out.server.has_value(); }, 20'000));
  auto at_server = collect(*out.server);
  out.server->stream->write(down);
  REQUIRE(sim.net.run_until([&] { return *at_server == up && *at_client == down; }, 60'000));
  CHECK(c.how == How::holepunched);
  CHECK(out.server->how == How::holepunched);
}

TEST_CASE("connect: a client behind a random NAT punches from its own sockets; the server sprays ports", "[dht][connect]") {
  ConnectSim sim(25);
  sim.grow(10);
  Wired& server = sim.peer(Behind::consistent_nat);
  Wired& client = sim.peer(Behind::random_nat);
  REQUIRE(client.node->firewall() != Firewall::open);
  Dialled d;
  dial_and_check_bytes(sim, server, client, key_pair(71), key_pair(72), d);
  // The client's stream moved to the punching socket that got through.
  Established& c = d.client->value();
  CHECK(&c.stream->mux() != client.mux.get());
  CHECK(c.remote == server.address());
  CHECK(&d.server->stream->mux() == server.mux.get());

  // A second randomized punch within 20 s of the first: refused in time...
  Wired& other = sim.peer(Behind::consistent_nat);
  Dialled again;
  auto okp = key_pair(73);
  sim.listen(other, okp, again.server);
  client.connector->connect(key_pair(74), okp.public_key, {}, [&](Result<Established> r) { again.client = std::move(r); });
  REQUIRE(sim.net.run_until([&] { return again.client.has_value(); }, Connector::kConnectTimeoutMs + 1000));
  REQUIRE_FALSE(again.client->ok());
  CHECK_THAT(again.client->status().message(), Catch::Contains("try again later"));
  // ...and the first connection still carries bytes.
  auto more = collect(*d.server);
  c.stream->write(pattern(5000, 9));
  REQUIRE(sim.net.run_until([&] { return more->size() == 5000; }, 20'000));
  // 20 s on, it goes through.
  sim.net.run_for(PunchShared::kRandomPunchIntervalMs);
  again.client.reset();
  dial_and_check_bytes(sim, other, client, okp, key_pair(74), again, false);
}

TEST_CASE("connect: a server behind a random NAT punches from its own sockets; the client sprays ports", "[dht][connect]") {
  ConnectSim sim(26);
  sim.grow(10);
  Wired& server = sim.peer(Behind::random_nat);
  Wired& client = sim.peer(Behind::consistent_nat);
  Dialled d;
  dial_and_check_bytes(sim, server, client, key_pair(75), key_pair(76), d);
  // The server's stream came in on one of its punching sockets and keeps it.
  CHECK(&d.server->stream->mux() != server.mux.get());
  CHECK(&d.client->value().stream->mux() == client.mux.get());
  CHECK(d.client->value().remote.ip == server.address().ip);
}

// A blind relay on the simulated network for RelayPairer: each pairing is
// a protomux channel (in memory) to a BlindRelay whose streams run on the
// relay's own socket; its answer reaches the peer 5 ms later.
struct SimRelay : RelayPairer {
  struct Link : net::ChannelHandler {
    SimNetwork* net = nullptr;
    Address relay_address{};
    std::weak_ptr<Link> self;
    std::unique_ptr<net::Mux> peer, relay_side;
    std::unique_ptr<net::ChannelHandler> session;
    uint64_t channel = 0;
    net::RelayPair request;
    std::function<void(Result<RelayPath>)> done;
    Status on_open(uint64_t id, ByteView) override {
      channel = id;  // (before open() returns, when the relay opened first)
      peer->send(channel, net::kRelayPair, net::encode_relay_pair(request));
      return {};
    }
    Status on_message(uint64_t, ByteView payload) override {
      auto m = net::decode_relay_pair(payload);
      if (!m) return {};
      RelayPath path{static_cast<uint32_t>(m->stream_id), relay_address};
      net->start_timer(5, [weak = self, path] {
        auto k = weak.lock();
        if (!k || !k->done) return;
        auto cb = std::move(k->done);
        cb(path);
      });
      return {};
    }
    void on_close() override {}
  };
  SimNetwork& net;
  Address address;
  std::unique_ptr<DatagramSocket> socket;
  std::unique_ptr<udx::Mux> streams;
  std::unique_ptr<net::BlindRelay> relay;
  size_t pairs = 0;

  SimRelay(SimNetwork& n, Address a) : net(n), address(a), socket(n.open_socket(a)) {
    streams = std::make_unique<udx::Mux>(net, *socket);
    socket->set_receiver([this](const Address& from, ByteView d) { streams->handle(from, d); });
    relay = std::make_unique<net::BlindRelay>(*streams);
  }
  std::shared_ptr<void> pair(const crypto::KeyPair& us, const Key32&, const Hash32& token, bool initiator,
                             uint32_t stream_id, std::function<void(Result<RelayPath>)> done) override {
    pairs++;
    auto link = std::make_shared<Link>();
    Link* l = link.get();
    l->net = &net;
    l->relay_address = address;
    l->self = link;
    l->peer = std::make_unique<net::Mux>([l](ByteView f) { (void)l->relay_side->receive(f); });
    l->relay_side = std::make_unique<net::Mux>([l](ByteView f) { (void)l->peer->receive(f); });
    l->peer->hold_unmatched_opens(true);
    l->request = net::RelayPair{.initiator = initiator, .token = token, .stream_id = stream_id};
    l->done = std::move(done);
    l->session = std::move(*relay->accept(*l->relay_side, us.public_key));
    (void)l->peer->open(std::string(net::kBlindRelayProtocol), us.public_key, {}, l);
    return link;
  }
};

TEST_CASE("connect: two randomized NATs connect through a blind relay; a reset there ends both", "[dht][connect]") {
  ConnectSim sim(27);
  sim.grow(10);
  Wired& server = sim.peer(Behind::random_nat);
  Wired& client = sim.peer(Behind::random_nat);
  SimRelay relay(sim.net, sim_address(200));
  Key32 relay_key = key_pair(80).public_key;
  client.connector->set_relay(&relay, relay_key);
  server.connector->set_relay(&relay, std::nullopt);  // follows the client's relay
  auto skp = key_pair(81), ckp = key_pair(82);
  std::optional<Established> accepted;
  sim.listen(server, skp, accepted);
  std::optional<Result<Established>> dialled;
  client.connector->connect(ckp, skp.public_key, {}, [&](Result<Established> r) { dialled = std::move(r); },
                            Connector::RelayUse::always);
  bool both = sim.net.run_until([&] { return dialled.has_value() && accepted.has_value(); }, Connector::kConnectTimeoutMs + 1000);
  INFO("dialled " << dialled.has_value() << (dialled && !dialled->ok() ? " " + dialled->status().message() : "") << " accepted " << accepted.has_value() << " pairs " << relay.pairs << " relaying " << relay.relay->stats().relaying << " pending " << relay.relay->stats().pending);
  REQUIRE(both);
  REQUIRE(dialled->ok());
  Established& c = dialled->value();
  CHECK(c.how == How::blind_relay);
  CHECK(accepted->how == How::blind_relay);
  CHECK(c.remote == relay.address);
  CHECK(accepted->remote == relay.address);
  CHECK(relay.pairs == 2);
  CHECK(relay.relay->stats().relaying == 1);
  auto at_client = collect(c), at_server = collect(*accepted);
  Bytes up = pattern(120'000, 3), down = pattern(90'000, 4);
  c.stream->write(up);
  accepted->stream->write(down);
  REQUIRE(sim.net.run_until([&] { return *at_server == up && *at_client == down; }, 60'000));

  // The relay drops the pair (its session with the client ends): both are reset.
  std::optional<std::string> client_closed, server_closed;
  c.stream->on_close = [&](const std::string& e) { client_closed = e; };
  accepted->stream->on_close = [&](const std::string& e) { server_closed = e; };
  c.stream.reset();  // our end goes, and with it the connection to the relay
  REQUIRE(sim.net.run_until([&] { return server_closed.has_value(); }, 10'000));
  CHECK(*server_closed == "connection reset by peer");
  CHECK(relay.relay->stats().relaying == 0);
}

TEST_CASE("connect: two randomized NATs are not punched; the dial fails in bounded time", "[dht][connect]") {
  ConnectSim sim(23);
  sim.grow(10);
  Wired& server = sim.peer(Behind::random_nat);
  Wired& client = sim.peer(Behind::random_nat);
  auto skp = key_pair(51), ckp = key_pair(52);
  std::optional<Established> accepted;
  sim.listen(server, skp, accepted);
  std::optional<Result<Established>> dialled;
  int calls = 0;
  client.connector->connect(ckp, skp.public_key, {}, [&](Result<Established> r) {
    calls++;
    dialled = std::move(r);
  });
  REQUIRE(sim.net.run_until([&] { return dialled.has_value(); }, Connector::kConnectTimeoutMs + 1000));
  INFO((dialled->ok() ? std::string(to_string(dialled->value().how)) + " " + dialled->value().remote.to_string() : ""));
  INFO("server " << server.address().to_string() << " " << (int)server.node->firewall() << " client " << client.address().to_string() << " " << (int)client.node->firewall());
  REQUIRE_FALSE(dialled->ok());
  CHECK_THAT(dialled->status().message(), Catch::Contains("RANDOMIZED"));
  // The server heard the client give up: nothing is handed over, ever.
  sim.net.run_for(60'000);
  CHECK(calls == 1);
  CHECK_FALSE(accepted.has_value());
}

TEST_CASE("connect: forged and malformed PEER_HOLEPUNCH messages are dropped", "[dht][connect]") {
  ConnectSim sim(24);
  sim.grow(10);
  Wired& server = sim.peer(Behind::consistent_nat);
  Wired& client = sim.peer(Behind::consistent_nat);
  auto skp = key_pair(61), ckp = key_pair(62);
  std::optional<Established> accepted;
  sim.listen(server, skp, accepted);
  Hash32 target = crypto::hash({skp.public_key});

  // A bystander that must never be sent anything by the relays.
  Address victim_address{{10, 99, 0, 1}, 7000};
  auto victim = sim.net.open_socket(victim_address);
  size_t victim_got = 0;
  victim->set_receiver([&](const Address&, ByteView) { victim_got++; });

  std::mt19937_64 rng(5);
  Address attacker{{10, 98, 0, 1}, 6000};
  auto send = [&](const Address& to, const Hash32& t, ByteView value) {
    Request r{.tid = static_cast<uint16_t>(rng()), .to = to, .command = kPeerHolepunch, .target = t, .value = to_bytes(value)};
    sim.net.inject(attacker, to, encode_request(r));
  };
  for (int i = 0; i < 400; i++) {
    HolepunchMessage m{.mode = rng() % 6, .id = rng() % 4, .payload = Bytes(rng() % 80), .peer_address = victim_address};
    for (auto& b : m.payload) b = static_cast<uint8_t>(rng());
    Bytes value = encode_holepunch_message(m);
    if (i % 3 == 0) value.resize(rng() % (value.size() + 1));  // truncated
    Hash32 t = i % 2 ? target : random_id(rng);                  // a target no relay holds
    send(server.address(), t, value);
    for (size_t n = 0; n < 3; n++) send(sim.nodes[n]->address(), i % 4 == 0 ? random_id(rng) : t, value);
    sim.net.run_for(5);
  }
  sim.net.run_for(5000);
  // Relays relayed for the real target only, to the server (never a victim
  // whose record they do not hold), and the server answered nothing it could not open.
  CHECK(victim_got == 0);
  CHECK_FALSE(accepted.has_value());

  // The real client still gets through.
  std::optional<Result<Established>> dialled;
  client.connector->connect(ckp, skp.public_key, {}, [&](Result<Established> r) {
    dialled = std::move(r);
    if (dialled->ok()) dialled->value().stream->write(pattern(10, 4));
  });
  REQUIRE(sim.net.run_until([&] { return dialled.has_value() && accepted.has_value(); }, 60'000));
  REQUIRE(dialled->ok());
  CHECK(dialled->value().how == How::holepunched);
  CHECK(accepted->how == How::holepunched);
}

TEST_CASE("nat analysis: hyperdht's classification of a socket's NAT", "[dht][nat]") {
  Address n1{{1, 1, 1, 1}, 1}, n2{{2, 2, 2, 2}, 2}, n3{{3, 3, 3, 3}, 3}, n4{{4, 4, 4, 4}, 4}, n5{{5, 5, 5, 5}, 5};
  Address us{{9, 9, 9, 9}, 4000}, us2{{9, 9, 9, 9}, 4001}, us3{{9, 9, 9, 9}, 4002}, other{{8, 8, 8, 8}, 4000};
  SECTION("the same address three times: consistent, analysed at once") {
    NatAnalysis nat(false);
    bool done = false;
    nat.when_analyzed([&] { done = true; });
    nat.add(us, n1);
    nat.add(us, n1);  // one node counts once
    nat.add(us, n2);
    CHECK(nat.firewall() == Firewall::unknown);
    CHECK_FALSE(nat.addresses());
    CHECK_FALSE(done);
    nat.add(us, n3);
    CHECK(nat.firewall() == Firewall::consistent);
    CHECK(done);
    CHECK(nat.addresses() == std::vector<Address>{us});
  }
  SECTION("a new port for every node: random, the host alone") {
    NatAnalysis nat(false);
    nat.add(us, n1);
    nat.add(us2, n2);
    nat.add(us3, n3);
    CHECK(nat.firewall() == Firewall::random);
    CHECK_FALSE(nat.analyzed());  // random waits for the 4th sample
    nat.add(Address{us.ip, 4003}, n4);
    CHECK(nat.analyzed());
    CHECK(nat.addresses() == std::vector<Address>{Address{us.ip, 0}});
  }
  SECTION("two hits: one host is random after four samples, two hosts twice each consistent") {
    NatAnalysis one(false);
    one.add(us, n1);
    one.add(us, n2);
    one.add(us2, n3);
    CHECK(one.firewall() == Firewall::unknown);
    one.add(us3, n4);
    CHECK(one.firewall() == Firewall::random);
    NatAnalysis two(false);
    two.add(us, n1);
    two.add(other, n2);
    two.add(us, n3);
    two.add(other, n4);
    CHECK(two.firewall() == Firewall::consistent);
    CHECK(two.addresses() == std::vector<Address>{us, other});
  }
  SECTION("frozen: later samples do not change what was told") {
    NatAnalysis nat(false);
    for (auto* n : {&n1, &n2, &n3}) nat.add(us, *n);
    nat.freeze();
    nat.add(us2, n4);
    nat.add(us3, n5);
    CHECK(nat.firewall() == Firewall::consistent);
  }
  SECTION("an open node needs no samples; settling ends an unknown analysis") {
    CHECK(NatAnalysis(true).firewall() == Firewall::open);
    CHECK(NatAnalysis(true).analyzed());
    NatAnalysis nat(false);
    nat.add(us, n1);
    nat.settle();
    CHECK(nat.analyzed());
    CHECK(nat.firewall() == Firewall::unknown);
  }
}

TEST_CASE("holepuncher: bounded probes, echoes, the first answer connects", "[dht][nat]") {
  SimNetwork net(3);
  Address a{{10, 0, 0, 1}, 1000}, b{{10, 0, 0, 2}, 2000};
  auto sa = net.open_socket(a), sb = net.open_socket(b);
  size_t probes_at_b = 0;
  sb->set_receiver([&](const Address&, ByteView d) {
    if (d.size() == 1) probes_at_b++;
  });
  ProbeRouter router;
  auto consistent = static_cast<uint64_t>(Firewall::consistent);
  auto make = [&](bool initiator) {
    auto p = std::make_unique<Holepuncher>(net, *sa, router, initiator, consistent, false);
    for (int i = 1; i <= 3; i++) p->nat().add(a, Address{{1, 1, 1, static_cast<uint8_t>(i)}, 1});
    p->update_remote(true, consistent, std::vector<Address>{b}, b.ip);
    return p;
  };
  SECTION("nobody answers: 10 probes a second apart, then on_abort once") {
    auto p = make(true);
    int aborts = 0;
    p->on_abort = [&] { aborts++; };
    REQUIRE(p->punch());
    net.run_for(60'000);
    CHECK(probes_at_b == Holepuncher::kConsistentTries);
    CHECK(aborts == 1);
    CHECK_FALSE(p->punching());
  }
  SECTION("the initiator connects on the first probe from the peer and stops") {
    auto p = make(true);
    std::optional<Address> connected;
    p->on_connect = [&](const Address& from, std::shared_ptr<PunchSocket> via) {
      connected = from;
      CHECK_FALSE(via);  // the main socket
    };
    REQUIRE(p->punch());
    net.run_for(2500);
    router.on_probe(b);
    CHECK(connected == b);
    CHECK(p->connected());
    size_t sent = probes_at_b;
    net.run_for(30'000);
    CHECK(probes_at_b == sent);
  }
  SECTION("the other side waits a second, echoes probes (a bounded number), ignores strangers") {
    auto p = make(false);
    REQUIRE(p->punch());
    net.run_for(500);
    CHECK(probes_at_b == 0);
    for (int i = 0; i < 100; i++) router.on_probe(b);
    router.on_probe(Address{{10, 0, 0, 3}, 3000});  // nobody's peer
    net.run_for(100);
    CHECK(probes_at_b == Holepuncher::kMaxEchoes);
    p.reset();
    CHECK(router.size() == 0);
  }
  SECTION("without a PunchShared, a random NAT is not punched") {
    auto p = make(true);
    p->update_remote(true, static_cast<uint64_t>(Firewall::random), std::vector<Address>{Address{b.ip, 0}}, b.ip);
    CHECK_FALSE(p->punch());
    CHECK_FALSE(p->punch());  // the answer stays
  }
}

TEST_CASE("holepuncher: random NATs, ports sprayed at theirs, birthday sockets behind ours", "[dht][nat]") {
  SimNetwork net(5);
  Address a{{10, 0, 0, 1}, 1000}, b{{10, 0, 0, 2}, 2000};
  auto sa = net.open_socket(a), sb = net.open_socket(b);
  size_t probes_at_b = 0;
  std::vector<Address> probe_senders;
  sb->set_receiver([&](const Address& from, ByteView d) {
    if (d.size() != 1) return;
    probes_at_b++;
    if (std::find(probe_senders.begin(), probe_senders.end(), from) == probe_senders.end()) probe_senders.push_back(from);
  });
  ProbeRouter router;
  PunchShared shared;
  shared.seed = 99;
  const auto consistent = static_cast<uint64_t>(Firewall::consistent), random = static_cast<uint64_t>(Firewall::random);
  auto sample = [&](Holepuncher& p, bool random_nat) {
    for (uint8_t i = 1; i <= 4; i++) p.nat().add(Address{a.ip, static_cast<uint16_t>(random_nat ? 5000 + i : 5000)}, Address{{1, 1, 1, i}, 1});
  };
  SECTION("ours consistent, theirs random: a probe every 20 ms at a random port of the verified host, then give up") {
    Holepuncher p(net, *sa, router, true, random, false, &shared);
    sample(p, false);
    int aborts = 0;
    p.on_abort = [&] { aborts++; };
    p.update_remote(true, random, std::vector<Address>{Address{b.ip, 0}}, std::nullopt);
    CHECK_FALSE(p.punch());  // nothing verified: no host to spray
    Holepuncher q(net, *sa, router, true, random, false, &shared);
    sample(q, false);
    q.on_abort = [&] { aborts++; };
    q.update_remote(true, random, std::vector<Address>{Address{b.ip, 0}}, b.ip);
    uint64_t t0 = net.now_ms();
    REQUIRE(q.punch());
    CHECK(shared.random_active == 1);
    CHECK_FALSE(shared.random_allowed(net.now_ms()));
    // A probe from any port of that host is the peer's (its NAT's new port for us).
    CHECK(q.punched(Address{b.ip, 4242}));
    CHECK_FALSE(q.punched(Address{{10, 0, 0, 9}, 4242}));
    net.run_for(60'000);
    CHECK(aborts == 1);
    CHECK(shared.random_active == 0);
    REQUIRE(shared.last_random_end);
    uint64_t took = *shared.last_random_end - t0;
    CHECK(took >= (Holepuncher::kRandomTries - 1) * Holepuncher::kRandomIntervalMs);
    CHECK(took <= Holepuncher::kRandomTries * Holepuncher::kRandomIntervalMs + 100);
    CHECK_FALSE(shared.random_allowed(*shared.last_random_end + PunchShared::kRandomPunchIntervalMs - 1));
    CHECK(shared.random_allowed(*shared.last_random_end + PunchShared::kRandomPunchIntervalMs));
  }
  SECTION("ours random, theirs consistent: 256 sockets open towards the peer; the one it answers connects") {
    uint16_t next_port = 30000;
    size_t opened = 0;
    shared.open_socket = [&]() -> std::unique_ptr<DatagramSocket> {
      opened++;
      return net.open_socket(Address{a.ip, next_port++});
    };
    Holepuncher p(net, *sa, router, true, consistent, false, &shared);
    sample(p, true);
    REQUIRE(p.nat().firewall() == Firewall::random);
    std::optional<Address> connected;
    std::shared_ptr<PunchSocket> via;
    p.on_connect = [&](const Address& from, std::shared_ptr<PunchSocket> s) {
      connected = from;
      via = std::move(s);
    };
    p.update_remote(true, consistent, std::vector<Address>{b}, b.ip);
    REQUIRE(p.punch());
    CHECK(opened == Holepuncher::kBirthdaySockets);
    CHECK(p.sockets() == Holepuncher::kBirthdaySockets);
    net.run_for(1000);
    CHECK(probe_senders.size() == Holepuncher::kBirthdaySockets);  // each socket opened its NAT towards b
    size_t before = probes_at_b;
    net.run_for(1000);
    CHECK(probes_at_b >= before + 40);  // then one every 20 ms
    // b answers the 100th socket: that one connects, the others close.
    Address winner = probe_senders[100];
    sb->send(winner, Bytes{0});
    sb->send(probe_senders[101], Bytes{1, 2});  // not a probe: no one's business
    net.run_for(100);
    REQUIRE(connected == b);
    REQUIRE(via);
    CHECK(via->socket->local_address() == winner);
    CHECK(p.sockets() == 0);
    CHECK(shared.random_active == 0);
    size_t after = probes_at_b;
    net.run_for(10'000);
    CHECK(probes_at_b == after);  // the punching stopped
  }
  SECTION("ours random, no sockets to open: not punched") {
    Holepuncher p(net, *sa, router, true, consistent, false, &shared);
    sample(p, true);
    p.update_remote(true, consistent, std::vector<Address>{b}, b.ip);
    CHECK_FALSE(p.punch());
    CHECK(shared.random_active == 0);
  }
}

TEST_CASE("udp demux: while firewalled, answers from nodes the main socket sent to do not count", "[dht][nat]") {
  SimNetwork net(4);
  Address main{{10, 0, 0, 1}, 1000}, contacted{{10, 0, 0, 2}, 2000}, stranger{{10, 0, 0, 3}, 3000};
  auto socket = net.open_socket(main);
  UdpDemux demux(*socket);
  bool firewalled = true;
  demux.guard_reachability_check(net, [&] { return firewalled; });
  std::vector<Address> seen;
  demux.dht_socket().set_receiver([&](const Address& from, ByteView) { seen.push_back(from); });
  Bytes response = encode_response(Response{.tid = 7, .to = main});
  demux.outbound().send(contacted, Bytes{1, 2, 3});
  net.inject(contacted, main, response);
  net.inject(stranger, main, response);
  net.run_for(10);
  CHECK(seen == std::vector<Address>{stranger});
  // Requests still pass, and an open node takes every response.
  Request req{.tid = 8, .to = main, .internal = true, .command = kPing};
  net.inject(contacted, main, encode_request(req));
  firewalled = false;
  net.inject(contacted, main, response);
  net.run_for(10);
  CHECK(seen == std::vector<Address>{stranger, contacted, contacted});
  // Forgotten after kContactMemoryMs.
  firewalled = true;
  net.run_for(UdpDemux::kContactMemoryMs + 1);
  net.inject(contacted, main, response);
  net.run_for(10);
  CHECK(seen.size() == 4);
}
