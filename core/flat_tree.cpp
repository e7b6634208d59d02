#include "core/flat_tree.h"

#include <bit>

namespace p2p::flat {

uint64_t depth(uint64_t i) { return static_cast<uint64_t>(std::countr_one(i)); }

uint64_t offset(uint64_t i) {
  if ((i & 1) == 0) return i / 2;
  uint64_t d = depth(i);
  return (((i + 1) >> d) - 1) / 2;
}

uint64_t index(uint64_t d, uint64_t o) { return ((2 * o + 1) << d) - 1; }

uint64_t parent(uint64_t i) { return index(depth(i) + 1, offset(i) >> 1); }

uint64_t sibling(uint64_t i) { return index(depth(i), offset(i) ^ 1); }

bool children(uint64_t i, uint64_t& left, uint64_t& right) {
  if ((i & 1) == 0) return false;
  uint64_t d = depth(i), o = offset(i) * 2;
  left = index(d - 1, o);
  right = index(d - 1, o + 1);
  return true;
}

uint64_t left_span(uint64_t i) {
  if ((i & 1) == 0) return i;
  return offset(i) * (uint64_t{2} << depth(i));
}

uint64_t right_span(uint64_t i) {
  if ((i & 1) == 0) return i;
  return (offset(i) + 1) * (uint64_t{2} << depth(i)) - 2;
}

uint64_t count(uint64_t i) { return (uint64_t{2} << depth(i)) - 1; }

uint64_t count_leaves(uint64_t i) { return uint64_t{1} << depth(i); }

std::vector<uint64_t> full_roots(uint64_t head) {
  std::vector<uint64_t> roots;
  uint64_t n = head / 2, block = 0;
  while (n > 0) {
    uint64_t f = std::bit_floor(n);
    roots.push_back(2 * block + f - 1);
    block += f;
    n -= f;
  }
  return roots;
}

}  // namespace p2p::flat

namespace p2p::flat {

void Iterator::seek(uint64_t i) {
  index_ = i;
  if (i & 1) {
    offset_ = offset(i);
    factor_ = uint64_t{2} << depth(i);
  } else {
    offset_ = i / 2;
    factor_ = 2;
  }
}

bool Iterator::contains(uint64_t i) const {
  if (i > index_) return i < index_ + factor_ / 2;
  if (i < index_) return i + factor_ / 2 > index_;  // no unsigned underflow
  return true;
}

uint64_t Iterator::next() {
  offset_++;
  index_ += factor_;
  return index_;
}

uint64_t Iterator::prev() {
  if (offset_ == 0) return index_;
  offset_--;
  index_ -= factor_;
  return index_;
}

uint64_t Iterator::parent() {
  if (offset_ & 1) {
    index_ -= factor_ / 2;
    offset_ = (offset_ - 1) / 2;
  } else {
    index_ += factor_ / 2;
    offset_ /= 2;
  }
  factor_ *= 2;
  return index_;
}

uint64_t Iterator::left_child() {
  if (factor_ == 2) return index_;
  factor_ /= 2;
  index_ -= factor_ / 2;
  offset_ *= 2;
  return index_;
}

uint64_t Iterator::right_child() {
  if (factor_ == 2) return index_;
  factor_ /= 2;
  index_ += factor_ / 2;
  offset_ = 2 * offset_ + 1;
  return index_;
}

uint64_t Iterator::next_tree() {
  index_ = index_ + factor_ / 2 + 1;
  offset_ = index_ / 2;
  factor_ = 2;
  return index_;
}

bool Iterator::full_root(uint64_t head) {
  if (head <= index_ || (index_ & 1)) return false;
  while (head > index_ + factor_ + factor_ / 2) {
    index_ += factor_ / 2;
    factor_ *= 2;
    offset_ /= 2;
  }
  return true;
}

}  // namespace p2p::flat
