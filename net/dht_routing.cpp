#include "net/dht_routing.h"

#include <algorithm>
#include <bit>

namespace p2p::dht {

bool closer(const Hash32& target, const Hash32& a, const Hash32& b) {
  for (size_t i = 0; i < target.size(); i++) {
    if (a[i] == b[i]) continue;
    return (target[i] ^ a[i]) < (target[i] ^ b[i]);
  }
  return false;
}

RoutingTable::RoutingTable(const Hash32& id, size_t k) : id_(id), k_(k) {}

size_t RoutingTable::row_index(const Hash32& id) const {
  for (size_t i = 0; i < id.size(); i++) {
    uint8_t x = id[i] ^ id_[i];
    if (x != 0) return i * 8 + static_cast<size_t>(std::countl_zero(x));
  }
  return rows_.size() - 1;
}

RoutingTable::Added RoutingTable::add(const NodeEntry& node) {
  auto& row = rows_[row_index(node.id)];
  auto it = std::find_if(row.begin(), row.end(), [&](const NodeEntry& n) { return n.id == node.id; });
  if (it != row.end()) {
    *it = node;
    return Added::updated;
  }
  if (row.size() >= k_) return Added::row_full;
  row.push_back(node);
  size_++;
  return Added::inserted;
}

bool RoutingTable::remove(const Hash32& id) {
  auto& row = rows_[row_index(id)];
  auto it = std::find_if(row.begin(), row.end(), [&](const NodeEntry& n) { return n.id == id; });
  if (it == row.end()) return false;
  row.erase(it);
  size_--;
  return true;
}

NodeEntry* RoutingTable::get(const Hash32& id) {
  auto& row = rows_[row_index(id)];
  auto it = std::find_if(row.begin(), row.end(), [&](const NodeEntry& n) { return n.id == id; });
  return it == row.end() ? nullptr : &*it;
}

std::vector<NodeEntry> RoutingTable::closest(const Hash32& target, size_t k) const {
  // Rows form groups of strictly increasing distance to target: the row of
  // target's own prefix, then every longer prefix together, then each shorter
  // prefix in turn. Collect whole groups until k, then sort exactly.
  std::vector<NodeEntry> out;
  size_t d = row_index(target);
  auto take = [&](size_t r) { out.insert(out.end(), rows_[r].begin(), rows_[r].end()); };
  take(d);
  if (out.size() < k) {
    for (size_t r = d + 1; r < rows_.size(); r++) take(r);
  }
  for (size_t r = d; r-- > 0 && out.size() < k;) take(r);
  std::sort(out.begin(), out.end(), [&](const NodeEntry& a, const NodeEntry& b) { return closer(target, a.id, b.id); });
  if (out.size() > k) out.resize(k);
  return out;
}

std::vector<NodeEntry> RoutingTable::all() const {
  std::vector<NodeEntry> out;
  out.reserve(size_);
  for (const auto& row : rows_) out.insert(out.end(), row.begin(), row.end());
  return out;
}

const NodeEntry* RoutingTable::nth(size_t n) const {
  for (const auto& row : rows_) {
    if (n < row.size()) return &row[n];
    n -= row.size();
  }
  return nullptr;
}

}  // namespace p2p::dht
