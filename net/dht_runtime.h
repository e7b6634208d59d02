// One object that owns a libuv loop, the UDP socket, the dht-rpc node and
// HyperDHT on it: what `p2p dht` (and later the swarm) runs.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "net/dht_connect.h"
#include "net/hyperdht.h"
#include "net/udx.h"

struct uv_loop_s;

namespace p2p::dht {

// The public HyperDHT bootstrap nodes (hyperdht's constants.js), "suggestedIP@host:port".
extern const std::vector<std::string> kDefaultBootstrap;

// "host:port,..." entries: an IPv4 literal, "suggestedIP@hostname" (the
// suggested IP is used) or a hostname (resolved, IPv4).
Result<std::vector<Address>> resolve_bootstrap(const std::vector<std::string>& entries);
std::vector<std::string> split_list(std::string_view comma_separated);

struct RuntimeOptions {
  std::string bind_host = "0.0.0.0";
  uint16_t port = 0;
  std::vector<Address> bootstrap;
  // A persistent node (bootstrap nodes, servers with a known public address).
  std::optional<Address> public_address;
  // A long-running node: a second socket and dht-rpc's adaptive mode, so it
  // becomes persistent (stores records for others) when it is reachable.
  bool adaptive = false;
  // Run on this loop (owned by the caller, e.g. the seeder) instead of our own.
  uv_loop_s* loop = nullptr;
  // Where known nodes are remembered between runs ("" = not at all).
  std::string nodes_file;
  StoreLimits limits;
};

class Runtime {
 public:
  static Result<std::unique_ptr<Runtime>> open(RuntimeOptions options);
  ~Runtime();

  Node& node();
  HyperDht& dht();
  // Streams and connections share the DHT's socket.
  udx::Mux& streams();
  Connector& connector();
  // Our blind relay (hyperswarm's relayThrough): named in our handshakes
  // when our NAT is random or a punch to the peer failed before. A peer's
  // relay is followed either way.
  void set_relay_through(std::optional<Key32> relay);
  uv_loop_s* loop();
  Address local_address() const;

  enum class Stop { done, signal, timeout };
  // Runs the loop until `done()` holds, SIGINT/SIGTERM arrives, or
  // `timeout_ms` passes (0: no limit).
  Stop run_until(const std::function<bool()>& done, uint64_t timeout_ms);
  // Writes the nodes worth remembering to nodes_file.
  void save_nodes();

 private:
  Runtime();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2p::dht
