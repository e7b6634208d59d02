// HyperDHT on a dht-rpc node (spec section j): the records a persistent node
// stores for others (announces, mutable and immutable values) and the client
// operations that put and find them. Peer handshakes and holepunching come
// with connections (net/connect, not here).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/crypto.h"
#include "net/dht_query.h"
#include "net/dht_rpc.h"
#include "net/dht_store.h"

namespace p2p::dht {

struct FoundPeer {
  PeerRecord peer{};
  Address from{};  // the DHT node that held the record
};

struct PutResult {
  bool ok = false;
  size_t nodes = 0;    // nodes that accepted
  uint64_t error = 0;  // the nodes' error when none accepted (SEQ_REUSED, SEQ_TOO_LOW, ...)
  std::string message{};
  std::vector<Address> accepted{};  // the nodes that accepted, closest first
  std::vector<Address> seen_as{};   // us as each of them saw us (the `to` of its answer)
};

struct MutableValue {
  MutableRecord record{};
  Address from{};
};

class HyperDht {
 public:
  // Installs the request handler on `node`; records are served only while the
  // node is persistent, as hyperdht does.
  HyperDht(Node& node, StoreLimits limits = {});
  ~HyperDht();
  HyperDht(const HyperDht&) = delete;
  HyperDht& operator=(const HyperDht&) = delete;

  Node& node() { return node_; }
  StoreStats store_stats() const;
  // PEER_HANDSHAKE and PEER_HOLEPUNCH go to this (net/dht_connect), whether or
  // not the node is persistent: a server is reachable directly either way.
  void set_peer_handler(RequestHandler handler) { peer_handler_ = std::move(handler); }
  // A server's record and where its announce came from, when we hold it.
  std::optional<RecordStore::Forward> forward(const Hash32& target) const;

  // Each peer as it is found (duplicates across nodes included), then `done`.
  void lookup(const Hash32& topic, std::function<void(const FoundPeer&)> on_peer,
              std::function<void(const QueryResult&)> done);
  void find_peer(const Key32& public_key, std::function<void(std::optional<FoundPeer>)> done);
  void announce(const Hash32& topic, const crypto::KeyPair& key_pair, std::vector<Address> relay_addresses,
                std::function<void(const PutResult&)> done);
  // Asks the nodes holding our record to drop it (signed, so only we can).
  void unannounce(const Hash32& topic, const crypto::KeyPair& key_pair, std::function<void(const PutResult&)> done);

  void immutable_put(ByteView value, std::function<void(const Hash32&, const PutResult&)> done);
  // The first value whose hash matches.
  void immutable_get(const Hash32& hash, std::function<void(std::optional<Bytes>)> done);
  void mutable_put(const crypto::KeyPair& key_pair, ByteView value, uint64_t seq,
                   std::function<void(const PutResult&)> done);
  // The highest verified sequence number at or above min_seq.
  void mutable_get(const Key32& public_key, uint64_t min_seq, std::function<void(std::optional<MutableValue>)> done);

 private:
  std::optional<Answer> on_request(const InboundRequest& req);
  std::optional<Answer> on_announce(const Request& req, const Address& from, const Hash32& id, uint64_t now);
  // A query whose closest replies each get `make_commit(reply)` sent with their token.
  void put_query(uint64_t query_command, const Hash32& target, std::optional<Bytes> query_value,
                 std::function<std::optional<OutboundRequest>(const Reply&)> make_commit,
                 std::function<void(const PutResult&)> done);

  Node& node_;
  std::unique_ptr<RecordStore> store_;
  uint64_t last_sweep_ = 0;
  RequestHandler peer_handler_;
};

// A topic from the command line: 64 hex characters as they are, anything
// else hashed (BLAKE2b-256 of its UTF-8 bytes).
Hash32 topic_from_text(std::string_view text);

}  // namespace p2p::dht
