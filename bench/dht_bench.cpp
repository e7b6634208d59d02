// The DHT, the p2p side of ../shared/bench/js/dht-lookup.js and of
// bench/js-extra/dht-records.mjs. Prints one JSON line.
//   dht_bench lookup NODES TOPICS   NODES persistent nodes on 127.0.0.1 (real UDP, one
//                                   process, as hyperdht's testnet); one ephemeral node
//                                   announces TOPICS random topics, another looks each up.
//   dht_bench records N TOPICS      the memory one node uses to hold N announce records.
#include <malloc.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/crypto.h"
#include "net/dht_sim.h"
#include "net/dht_uv.h"
#include "net/hyperdht.h"

using namespace p2p;
using namespace p2p::dht;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void die(const std::string& m) {
  std::cerr << "dht_bench: " << m << "\n";
  std::exit(1);
}

double rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024;
  }
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(p / 100 * static_cast<double>(v.size())))];
}

struct Member {
  std::unique_ptr<UvUdpSocket> socket;
  std::unique_ptr<Node> node;
  std::unique_ptr<HyperDht> dht;
};

void run_until(uv_loop_t* loop, const std::function<bool()>& done) {
  double deadline = now_ms() + 120'000;
  while (!done()) {
    if (now_ms() > deadline) die("timed out");
    uv_run(loop, UV_RUN_ONCE);
  }
}

int bench_lookup(size_t n_nodes, size_t n_topics) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  UvClock clock(&loop);
  std::vector<std::unique_ptr<Member>> members;
  auto add = [&](bool persistent, std::vector<Address> bootstrap) -> Member& {
    auto m = std::make_unique<Member>();
    auto s = UvUdpSocket::bind(&loop, "127.0.0.1", 0);
    if (!s.ok()) die(s.status().message());
    m->socket = std::move(*s);
    NodeConfig c;
    c.bootstrap = std::move(bootstrap);
    if (persistent) c.public_address = m->socket->local_address();
    m->node = std::make_unique<Node>(clock, *m->socket, c);
    m->dht = std::make_unique<HyperDht>(*m->node);
    members.push_back(std::move(m));
    return *members.back();
  };
  auto join = [&](Member& m) {
    bool done = false;
    m.node->bootstrap([&] { done = true; });
    run_until(&loop, [&] { return done; });
  };
  auto packets = [&] {
    uint64_t n = 0;
    for (auto& m : members) n += m->node->stats().packets_received;
    return n;
  };

  double t0 = now_ms();
  join(add(true, {}));
  Address first = members.front()->socket->local_address();
  for (size_t i = 1; i < n_nodes; i++) join(add(true, {first}));
  double bootstrap_ms = now_ms() - t0;
  uint64_t bootstrap_packets = packets();
  Member& announcer = add(false, {first});
  Member& looker = add(false, {first});
  join(announcer);
  join(looker);

  std::vector<double> announce_ms, lookup_ms, first_hit_ms;
  uint64_t announce_packets = 0, lookup_packets = 0;
  size_t hits = 0;
  for (size_t t = 0; t < n_topics; t++) {
    Hash32 topic = crypto::random_key();
    crypto::KeyPair kp = crypto::random_key_pair();
    uint64_t p0 = packets();
    double s = now_ms();
    bool done = false;
    announcer.dht->announce(topic, kp, {}, [&](const PutResult&) { done = true; });
    run_until(&loop, [&] { return done; });
    announce_ms.push_back(now_ms() - s);
    uint64_t p1 = packets();
    announce_packets += p1 - p0;

    s = now_ms();
    done = false;
    double first_hit = -1;
    looker.dht->lookup(
        topic,
        [&](const FoundPeer& p) {
          if (first_hit < 0 && p.peer.public_key == kp.public_key) first_hit = now_ms() - s;
        },
        [&](const QueryResult&) { done = true; });
    run_until(&loop, [&] { return done; });
    lookup_ms.push_back(now_ms() - s);
    lookup_packets += packets() - p1;
    if (first_hit >= 0) {
      hits++;
      first_hit_ms.push_back(first_hit);
    }
  }
  nlohmann::json out = {
      {"bench", "dht-lookup"},
      {"impl", "p2p"},
      {"params", {{"NODES", n_nodes}, {"TOPICS", n_topics}}},
      {"testnet_bootstrap_ms", bootstrap_ms},
      {"bootstrap_packets", {{"received", bootstrap_packets}}},
      {"announce",
       {{"median_ms", median(announce_ms)},
        {"p90_ms", percentile(announce_ms, 90)},
        {"udp_packets_per_op", static_cast<double>(announce_packets) / static_cast<double>(n_topics)}}},
      {"lookup",
       {{"median_ms", median(lookup_ms)},
        {"p90_ms", percentile(lookup_ms, 90)},
        {"median_first_hit_ms", median(first_hit_ms)},
        {"hits", hits},
        {"topics", n_topics},
        {"udp_packets_per_op", static_cast<double>(lookup_packets) / static_cast<double>(n_topics)}}},
      {"peak_rss_MB", rss_mb()},
  };
  std::cout << out.dump() << std::endl;
  members.clear();
  uv_run(&loop, UV_RUN_NOWAIT);
  return 0;
}

// Feeds N signed announces straight into one persistent node over the
// simulated network (the real path would be paced by the congestion window).
int bench_records(size_t n, size_t n_topics) {
  SimNetwork net(1, SimConditions{.min_delay_ms = 0, .max_delay_ms = 0});
  Address node_address{{10, 0, 0, 1}, 49737}, client_address{{10, 0, 0, 2}, 49737};
  auto socket = net.open_socket(node_address);
  NodeConfig config;
  config.public_address = node_address;
  Node node(net, *socket, config);
  StoreLimits limits;
  limits.max_records = std::max<size_t>(limits.max_records, n);
  HyperDht dht(node, limits);
  auto client_socket = net.open_socket(client_address);
  Node client(net, *client_socket, NodeConfig{});

  std::vector<Hash32> topics(n_topics);
  for (auto& t : topics) t = crypto::random_key();
  // One token serves every announce: it is bound to the requester's IP.
  std::optional<Hash32> token;
  client.request(node_address, OutboundRequest{.command = kLookup, .target = topics[0]},
                 [&](const Reply* r) { token = r ? r->token : std::nullopt; });
  net.run_until([&] { return token.has_value(); }, 10'000);
  if (!token) die("no token");

  malloc_trim(0);
  double before = rss_mb();
  double t0 = now_ms();
  for (size_t i = 0; i < n; i++) {
    const Hash32& topic = topics[i % n_topics];
    crypto::KeyPair kp = crypto::random_key_pair();
    PeerRecord peer{kp.public_key, {}};
    Announce ann{.peer = peer};
    ann.signature = crypto::sign(announce_signable(namespaces().announce, topic, *node.id(), *token, peer, std::nullopt), kp);
    Request req{.tid = static_cast<uint16_t>(i), .to = node_address, .token = token, .command = kAnnounce,
                .target = topic, .value = encode_announce(ann)};
    net.inject(client_address, node_address, encode_request(req));
    if (i % 1000 == 999) net.run_for(1);
  }
  net.run_for(1);
  double ms = now_ms() - t0;
  malloc_trim(0);
  double after = rss_mb();
  StoreStats s = dht.store_stats();
  if (s.records != n) die("stored " + std::to_string(s.records) + " records, not " + std::to_string(n));
  nlohmann::json out = {{"bench", "dht-records"}, {"impl", "p2p"},       {"records", s.records},
                        {"topics", s.topics},     {"rss_before_MB", before}, {"rss_after_MB", after},
                        {"rss_delta_MB", after - before}, {"ms", ms}};
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  crypto::init();
  std::string mode = argc > 1 ? argv[1] : "";
  size_t a = argc > 2 ? std::stoul(argv[2]) : 0, b = argc > 3 ? std::stoul(argv[3]) : 0;
  if (mode == "lookup") return bench_lookup(a ? a : 30, b ? b : 20);
  if (mode == "records") return bench_records(a ? a : 100000, b ? b : (a ? a : 100000));
  std::cerr << "usage: dht_bench lookup [NODES TOPICS] | records [N TOPICS]\n";
  return 2;
}
