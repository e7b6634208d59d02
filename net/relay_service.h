// A blind relay on the DHT (`p2p relay`): listens under a key pair, as
// hyperdht peers configured with relayThrough expect, and serves the
// blind-relay protocol on every connection (net/blind_relay.h).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/crypto.h"
#include "net/blind_relay.h"
#include "net/dht_runtime.h"

namespace p2p::net {

struct RelayEvent {
  enum Kind { connected, disconnected, paired, ended } kind = connected;
  Key32 key{};             // the peer (connected, disconnected) or the pairing's token
  std::string address{};   // connected, disconnected
  std::string reason{};    // disconnected: why, when not a clean end
  uint64_t bytes = 0;      // ended: relayed both ways
};

class RelayService {
 public:
  static constexpr size_t kMaxConnections = 1024;

  // Listens on `rt`'s connector (announced to the DHT); events as they come.
  RelayService(dht::Runtime& rt, const crypto::KeyPair& key_pair, std::function<void(const RelayEvent&)> on_event);
  ~RelayService();
  RelayService(const RelayService&) = delete;
  RelayService& operator=(const RelayService&) = delete;

  BlindRelay::Stats stats() const;
  size_t connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2p::net
