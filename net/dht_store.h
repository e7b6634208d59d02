// What a persistent HyperDHT node holds for others: announce records by topic,
// servers' own records ("forwards", target = H(public key)), refresh tokens,
// and mutable / immutable values. Bounded in count and bytes; entries expire.
// Records are kept compactly (one 64-byte slot each, relay addresses inline)
// because a busy node holds hundreds of thousands of them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "net/dht_messages.h"

namespace p2p::dht {

struct StoreLimits {
  size_t max_records = 65536;               // announce records, as hyperdht's default
  uint64_t record_ttl_ms = 20 * 60 * 1000;  // an announce lives 20 minutes unless renewed
  size_t max_values = 32768;                // mutable + immutable values
  size_t max_value_bytes = 16 * 1024 * 1024;  // their total size
  uint64_t value_ttl_ms = 48ull * 60 * 60 * 1000;
};

struct StoreStats {
  size_t topics = 0, records = 0, forwards = 0, values = 0, value_bytes = 0;
};

class RecordStore {
 public:
  explicit RecordStore(StoreLimits limits);
  ~RecordStore();
  RecordStore(const RecordStore&) = delete;
  RecordStore& operator=(const RecordStore&) = delete;

  const StoreLimits& limits() const { return limits_; }
  StoreStats stats() const;
  // Drops what has expired (reads never return it either way).
  void sweep(uint64_t now);

  // Adds or renews; relay addresses beyond kMaxRelayAddresses are dropped.
  void add(const Hash32& topic, const PeerRecord& peer, uint64_t now);
  void remove(const Hash32& topic, const Key32& public_key);
  // A server's own record, and the address its announce came from: where
  // handshakes for it are relayed.
  struct Forward {
    PeerRecord peer;
    Address server;
  };
  void set_forward(const Hash32& target, const PeerRecord& peer, const Address& server, uint64_t now);
  std::optional<Forward> forward(const Hash32& target, uint64_t now) const;
  // Up to `max` live records of the topic, the forward (if any) last.
  std::vector<PeerRecord> peers(const Hash32& topic, size_t max, uint64_t now) const;
  uint64_t bump(const Hash32& topic) const;
  void raise_bump(const Hash32& topic, uint64_t bump);

  struct Refresh {
    Hash32 topic;
    PeerRecord peer;
    bool forward;
  };  // a refreshed forward relays to whoever sent the refresh
  void remember_refresh(const Hash32& key, Refresh r, uint64_t now);
  std::optional<Refresh> take_refresh(const Hash32& key, uint64_t now);

  enum class Kind { mutable_value, immutable_value };
  // False when full of live values (others' data is not evicted for it).
  bool put_value(Kind kind, const Hash32& key, Bytes bytes, uint64_t now);
  const Bytes* value(Kind kind, const Hash32& key, uint64_t now) const;

 private:
  struct Impl;
  StoreLimits limits_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2p::dht
