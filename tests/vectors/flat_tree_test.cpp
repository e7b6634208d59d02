#include <catch2/catch.hpp>

#include "core/flat_tree.h"
#include "vectors.h"

using namespace p2p;

TEST_CASE("flat-tree vectors: every field of indices 0..40", "[vectors][flat]") {
  auto v = test::load_vector("flat-tree.json");
  REQUIRE(v["table"].size() == 41);
  for (const auto& row : v["table"]) {
    uint64_t i = row["index"];
    INFO("index " << i);
    CHECK(flat::depth(i) == row["depth"].get<uint64_t>());
    CHECK(flat::offset(i) == row["offset"].get<uint64_t>());
    CHECK(flat::parent(i) == row["parent"].get<uint64_t>());
    CHECK(flat::sibling(i) == row["sibling"].get<uint64_t>());
    uint64_t l = 0, r = 0;
    bool has = flat::children(i, l, r);
    CHECK(has == !row["children"].is_null());
    if (has) {
      CHECK(l == row["children"][0].get<uint64_t>());
      CHECK(r == row["children"][1].get<uint64_t>());
      CHECK(l == row["leftChild"].get<uint64_t>());
      CHECK(r == row["rightChild"].get<uint64_t>());
    } else {
      CHECK(row["leftChild"].get<int64_t>() == -1);
    }
    CHECK(flat::left_span(i) == row["leftSpan"].get<uint64_t>());
    CHECK(flat::right_span(i) == row["rightSpan"].get<uint64_t>());
    CHECK(flat::left_span(i) == row["spans"][0].get<uint64_t>());
    CHECK(flat::right_span(i) == row["spans"][1].get<uint64_t>());
    CHECK(flat::count(i) == row["count"].get<uint64_t>());
    CHECK(flat::count_leaves(i) == row["countLeaves"].get<uint64_t>());
  }
}

TEST_CASE("flat-tree vectors: fullRoots and index(depth, offset)", "[vectors][flat]") {
  auto v = test::load_vector("flat-tree.json");
  REQUIRE(v["fullRoots"].size() == 20);
  for (const auto& row : v["fullRoots"]) {
    INFO("length " << row["length"]);
    CHECK(flat::full_roots(row["head"].get<uint64_t>()) == row["roots"].get<std::vector<uint64_t>>());
  }
  for (const auto& row : v["indexFromDepthOffset"])
    CHECK(flat::index(row["depth"], row["offset"]) == row["index"].get<uint64_t>());
}
