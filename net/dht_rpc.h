// A dht-rpc node (spec section i): requests with retries and a congestion
// window, tokens with rotating secrets, the internal commands, a routing table
// kept fresh by pings and refresh queries, and iterative queries
// (net/dht_query.h). Application commands (HyperDHT, net/hyperdht.h) plug in
// through a request handler. Single-threaded: everything runs on the clock's loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "net/dht_messages.h"
#include "net/dht_nat.h"
#include "net/dht_routing.h"
#include "net/dht_transport.h"

namespace p2p::dht {

class Query;
struct QuerySpec;

struct Reply {
  Address from{};
  std::optional<Hash32> from_id{};  // only when it matches `from`
  Address to{};                     // our address as the responder saw it
  std::optional<Hash32> token{};
  std::vector<Address> closer_nodes{};
  uint64_t error = 0;
  std::optional<Bytes> value{};
  uint64_t rtt_ms = 0;
  bool on_main_socket = true;  // arrived at the main socket (PING_NAT's question)
};

struct InboundRequest {
  Address from{};
  std::optional<Hash32> from_id{};  // only when it matches `from`
  Request message{};                // a token in it has been checked: it is ours
  bool on_main_socket = true;       // false: it came to the client socket of an adaptive node
};

// How the application answers a request it handles.
struct Answer {
  bool drop = false;  // malformed or unauthorised: no reply at all, as dht-rpc does
  uint64_t error = 0;
  std::optional<Bytes> value{};
  bool token = true;         // give the requester a token
  bool closer_nodes = true;  // list closer nodes when the request had a target
  static Answer dropped() { return Answer{.drop = true}; }
};
// nullopt: not our command, answered UNKNOWN_COMMAND.
using RequestHandler = std::function<std::optional<Answer>(const InboundRequest&)>;

struct OutboundRequest {
  bool internal = false;
  uint64_t command = 0;
  std::optional<Hash32> target{};
  std::optional<Bytes> value{};
  std::optional<Hash32> token{};
};

struct NodeConfig {
  std::vector<Address> bootstrap;
  std::vector<Address> known_nodes;  // remembered from an earlier run, tried first
  // Set: a persistent node reachable at this public address. It sends its id
  // (node_id(address)), enters others' routing tables and stores records.
  // Unset: an ephemeral client, unless `adaptive` finds it reachable.
  std::optional<Address> public_address;
  // dht-rpc's adaptive mode (needs the client socket): start firewalled,
  // asking through the client socket; after joining, ask a few nodes to
  // PING_NAT the main socket. When their answers arrive there from an
  // address they agree on, use the main socket; after `stable_ticks` ticks
  // without trouble become persistent with the id of that address.
  bool adaptive = false;
  uint64_t stable_ticks = 240;  // about 20 minutes
  size_t k = 20;
  size_t concurrency = 10;
  uint64_t request_timeout_ms = 1000;
  size_t max_window = 80;  // requests per 750 ms slot
  uint64_t max_ping_delay_ms = 10'000;
  uint32_t down_hints_per_tick = 50;
  // Non-zero: ids, tids and secrets come from a PRNG with this seed, so a
  // simulated network runs the same every time. Zero: the system's randomness.
  uint64_t seed = 0;
};

struct NodeStats {
  uint64_t packets_sent = 0, packets_received = 0, requests = 0, responses = 0, timeouts = 0,
           retries = 0, malformed = 0;
};

class Node {
 public:
  static constexpr uint64_t kTickMs = 5000;
  static constexpr uint64_t kDrainMs = 750;

  // `client_socket`, when given, carries our requests while we are firewalled.
  Node(Clock& clock, DatagramSocket& socket, NodeConfig config, DatagramSocket* client_socket = nullptr);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  void set_request_handler(RequestHandler handler) { handler_ = std::move(handler); }

  // Joins the network: a FIND_NODE query for our own id. `done` runs once.
  void bootstrap(std::function<void()> done);
  bool bootstrapped() const { return bootstrapped_; }
  bool persistent() const { return persistent_; }
  bool firewalled() const { return firewalled_; }
  // hyperdht's classification: open, or behind a NAT that keeps our port
  // (consistent) or does not (random); unknown until replies tell.
  Firewall firewall() const;
  std::optional<Hash32> id() const;
  const RoutingTable& table() const { return table_; }
  const NodeConfig& config() const { return config_; }
  Clock& clock() { return clock_; }
  const NodeStats& stats() const { return stats_; }
  // Addresses of table nodes, most recently seen first (to remember across runs).
  std::vector<Address> known_addresses(size_t limit) const;
  // Our address as replies report it (port 0 when it varies).
  std::optional<Address> observed_address() const { return nat_.address(); }

  using ReplyCallback = std::function<void(const Reply*)>;  // nullptr: timed out
  // One request, resent up to `retries` times; `on_cycle` runs on every timeout.
  void request(const Address& to, const OutboundRequest& req, ReplyCallback cb, int retries = 3,
               std::function<void()> on_cycle = nullptr);
  void ping(const Address& to, ReplyCallback cb);

  std::shared_ptr<Query> query(QuerySpec spec);
  // Tells `to` that `down` did not answer (rate limited per tick).
  void send_down_hint(const Address& to, const Address& down);

  void add_node(const Address& address);

  // hyperdht routes handshakes through nodes with these: re-send a request
  // (same tid, command and target, a new value, no token) to another node...
  void relay_request(const Address& to, const Request& original, ByteView value);
  // ...and answer a request at an address other than its sender's.
  void reply_to(const Address& to, const Request& request, const Answer& answer) { send_reply(socket_, to, request, answer); }
  // The main socket (connections share it with the DHT).
  DatagramSocket& socket() { return socket_; }
  // Stops timers and drops every pending request without calling back.
  void close();

 private:
  friend class Query;
  struct Inflight;

  void on_datagram(DatagramSocket& socket, const Address& from, ByteView datagram);
  void on_request(DatagramSocket& socket, const Address& from, Request msg);
  void on_response(DatagramSocket& socket, const Address& from, Response msg);
  void send_reply(DatagramSocket& socket, const Address& to, const Request& req, const Answer& a);
  DatagramSocket& request_socket() { return firewalled_ && client_socket_ ? *client_socket_ : socket_; }
  void check_firewall();
  void become_persistent(const Address& address);
  bool handle_internal(DatagramSocket& socket, const InboundRequest& in);
  Hash32 token_for(const Address& addr, int secret) const;
  void transmit(uint16_t tid);
  void on_request_timeout(uint16_t tid);
  void drain();
  void tick();
  void ping_some();
  void refresh();
  void check(const Hash32& id);
  void add_from_network(const Address& from, const std::optional<Hash32>& id, const Address& to);
  void insert(NodeEntry entry);
  void on_full_row(const NodeEntry& fresh);
  void query_finished(Query* q);
  void random_fill(uint8_t* out, size_t n);
  Hash32 random_hash();

  Clock& clock_;
  DatagramSocket& socket_;          // the main ("server") socket
  DatagramSocket* client_socket_;  // may be null
  NodeConfig config_;
  uint64_t rng_state_;
  RoutingTable table_;
  RequestHandler handler_;
  NodeStats stats_;

  std::unordered_map<uint16_t, std::unique_ptr<Inflight>> inflight_;
  std::vector<uint16_t> waiting_;  // tids held back by the congestion window
  uint16_t next_tid_;
  std::array<size_t, 4> window_{};
  size_t window_slot_ = 0, window_total_ = 0;

  std::array<Hash32, 2> secrets_{};
  int drains_until_rotation_ = 10;

  uint64_t tick_ = 0;
  int refresh_ticks_ = 60;
  uint32_t down_hints_sent_ = 0;
  int repinging_ = 0, checks_ = 0;
  Clock::TimerId tick_timer_ = 0, drain_timer_ = 0;
  bool bootstrapped_ = false, closed_ = false;
  bool persistent_, firewalled_;
  uint64_t stable_ticks_left_;
  bool checking_firewall_ = false;
  NatSampler nat_;
  std::vector<Address> nat_samples_from_;  // who gave the samples (one each, bootstrap nodes included)
  std::vector<std::function<void()>> on_bootstrapped_;

  std::set<std::shared_ptr<Query>> queries_;
  std::unordered_map<uint64_t, Clock::TimerId> delayed_pings_;
  uint64_t next_delayed_ = 0;
};

}  // namespace p2p::dht
