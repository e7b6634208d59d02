// Flat-tree index arithmetic (spec a.1): an in-order numbering of a binary
// tree in which block i is leaf 2i and parents are odd. All functions are pure.
#pragma once

#include <cstdint>
#include <vector>

namespace p2p::flat {

uint64_t depth(uint64_t i);
uint64_t offset(uint64_t i);
uint64_t index(uint64_t depth, uint64_t offset);
uint64_t parent(uint64_t i);
uint64_t sibling(uint64_t i);
// Children of an odd index; a leaf has none (returns false).
bool children(uint64_t i, uint64_t& left, uint64_t& right);
uint64_t left_span(uint64_t i);
uint64_t right_span(uint64_t i);
uint64_t count(uint64_t i);
uint64_t count_leaves(uint64_t i);
// Root indices, left to right, of a tree whose leaves span [0, head) (head = 2 * length).
std::vector<uint64_t> full_roots(uint64_t head);

}  // namespace p2p::flat

namespace p2p::flat {

// A cursor over tree indices that tracks offset and factor (2^(depth+1)) so
// walking up, across and down costs a few additions.
class Iterator {
 public:
  explicit Iterator(uint64_t i = 0) { seek(i); }
  void seek(uint64_t i);
  uint64_t index() const { return index_; }
  uint64_t factor() const { return factor_; }
  bool is_left() const { return (offset_ & 1) == 0; }
  bool contains(uint64_t i) const;
  uint64_t next();
  uint64_t prev();
  uint64_t sibling() { return is_left() ? next() : prev(); }
  uint64_t parent();
  uint64_t left_child();
  uint64_t right_child();
  uint64_t next_tree();
  // Grow the current (leaf-started) subtree to the largest full root below `head`;
  // false when the iterator already reached `head` or sits on a parent.
  bool full_root(uint64_t head);

 private:
  uint64_t index_ = 0, offset_ = 0, factor_ = 2;
};

}  // namespace p2p::flat
