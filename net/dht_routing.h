// Kademlia routing table as kademlia-routing-table keeps it: one row per
// length of the id prefix shared with the local id, at most k nodes a row.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "base/bytes.h"
#include "net/dht_messages.h"

namespace p2p::dht {

struct NodeEntry {
  Hash32 id{};
  Address address;
  uint64_t added = 0;   // tick it was added
  uint64_t pinged = 0;  // tick we last contacted it
  uint64_t seen = 0;    // tick we last heard from it
  uint64_t sampled = 0;  // tick its view of our address was last counted
  uint32_t down_hints = 0;
};

// True when a is closer to target than b (XOR metric).
bool closer(const Hash32& target, const Hash32& a, const Hash32& b);

class RoutingTable {
 public:
  explicit RoutingTable(const Hash32& id, size_t k = 20);

  const Hash32& id() const { return id_; }
  size_t k() const { return k_; }
  size_t size() const { return size_; }

  enum class Added { inserted, updated, row_full };
  Added add(const NodeEntry& node);
  bool remove(const Hash32& id);
  NodeEntry* get(const Hash32& id);
  // The row a full add() would have gone to.
  std::vector<NodeEntry>& row_of(const Hash32& id) { return rows_[row_index(id)]; }

  // Up to `k` nodes, closest to target first.
  std::vector<NodeEntry> closest(const Hash32& target, size_t k) const;
  std::vector<NodeEntry> all() const;
  // The n-th node in row order (n < size()), for random picks.
  const NodeEntry* nth(size_t n) const;

 private:
  size_t row_index(const Hash32& id) const;
  Hash32 id_;
  size_t k_;
  size_t size_ = 0;
  std::array<std::vector<NodeEntry>, 256> rows_;
};

}  // namespace p2p::dht
