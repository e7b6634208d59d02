// Serving cores to peers that connect over TCP (`p2p seed --listen`): each
// connection gets a session per core it opens; appends made meanwhile (by
// this or another process) are announced to the connected peers.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/log.h"
#include "net/dht_messages.h"
#include "storage/store.h"

namespace p2p::net {

struct SeedEvent {
  enum Kind { listening, connected, disconnected, refused } kind = listening;
  std::string address;     // the peer's, or ours for `listening`
  Key32 remote_key{};      // the peer's Noise public key (connected and after)
  uint64_t bytes_in = 0, bytes_out = 0;
  uint64_t blocks_sent = 0, bytes_sent = 0;  // block payloads served
  std::string reason;      // why it ended, when not cleanly
};

struct SeedOptions {
  std::string listen = "127.0.0.1:0";
  std::vector<Key32> allow;  // peers' public keys; empty: anyone
  // Cores to serve, by key; empty: every core in the store, as it is then.
  std::vector<Key32> cores;
  uint64_t poll_ms = 100;    // how often other processes' appends are noticed
  // Also (or only, with listen empty) on the DHT: each core's discovery key is
  // announced as a topic and peers that find it connect by public key.
  bool dht = false;
  std::vector<dht::Address> bootstrap;
  std::string dht_nodes_file;
};

class Seeder {
 public:
  using Report = std::function<void(const SeedEvent&)>;
  Seeder(storage::Store& store, const crypto::KeyPair& key_pair, SeedOptions options, Report report);
  ~Seeder();
  // Binds the listening socket (reported as a `listening` event), and joins
  // the DHT when asked to.
  Status listen();
  // Serves until SIGINT or SIGTERM (or stop()); then closes every connection.
  Status run();
  void stop();
  const std::string& address() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2p::net
