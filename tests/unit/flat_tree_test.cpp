#include <catch2/catch.hpp>

#include "core/flat_tree.h"

using namespace p2p;

TEST_CASE("flat iterator agrees with the index functions", "[flat]") {
  for (uint64_t i = 0; i < 5000; i++) {
    flat::Iterator it(i);
    CHECK(it.index() == i);
    CHECK(it.factor() == (uint64_t{2} << flat::depth(i)));
    flat::Iterator p(i);
    CHECK(p.parent() == flat::parent(i));
    if (flat::offset(i) > 0 || flat::offset(i) % 2 == 0) {
      flat::Iterator s(i);
      CHECK(s.sibling() == flat::sibling(i));
    }
    uint64_t l, r;
    if (flat::children(i, l, r)) {
      flat::Iterator lc(i), rc(i);
      CHECK(lc.left_child() == l);
      CHECK(rc.right_child() == r);
      CHECK(flat::Iterator(i).contains(l));
      CHECK(flat::Iterator(i).contains(r));
      CHECK_FALSE(flat::Iterator(i).contains(flat::right_span(i) + 1));
      if (flat::left_span(i) > 0) CHECK_FALSE(flat::Iterator(i).contains(flat::left_span(i) - 1));
    }
  }
}

TEST_CASE("full roots cover exactly the leaves", "[flat]") {
  for (uint64_t n = 0; n < 3000; n++) {
    auto roots = flat::full_roots(2 * n);
    uint64_t covered = 0;
    uint64_t next_left = 0;
    for (uint64_t r : roots) {
      CHECK(flat::left_span(r) == next_left);
      next_left = flat::right_span(r) + 2;
      covered += flat::count_leaves(r);
    }
    CHECK(covered == n);
    // The iterator walk used by proofs finds the same roots.
    std::vector<uint64_t> walked;
    flat::Iterator it(0);
    for (; it.full_root(2 * n); it.next_tree()) walked.push_back(it.index());
    CHECK(walked == roots);
  }
}
