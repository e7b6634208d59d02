#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "core/merkle.h"

using namespace p2p;
using merkle::Node;

namespace {

// A whole tree kept in memory, plus the roots it had at every length.
struct MemoryTree : merkle::NodeSource {
  std::map<uint64_t, Node> nodes;
  std::vector<std::vector<Node>> roots_at{{}};
  std::vector<Bytes> blocks;

  explicit MemoryTree(size_t n) {
    merkle::TreeBatch batch;
    for (size_t i = 0; i < n; i++) {
      blocks.push_back(Bytes(i % 7 + 1, static_cast<uint8_t>(i)));
      batch.append(blocks.back());
      for (const Node& x : batch.added_nodes()) nodes[x.index] = x;
      batch.clear_added_nodes();
      roots_at.push_back(batch.roots());
    }
  }
  std::optional<Node> node(uint64_t index) override {
    auto it = nodes.find(index);
    if (it == nodes.end()) return std::nullopt;
    return it->second;
  }
};

// What a verifier that trusts a tree of `length` blocks holds: only nodes
// inside that tree.
struct PrefixTree : merkle::NodeSource {
  MemoryTree& full;
  uint64_t length;
  PrefixTree(MemoryTree& f, uint64_t l) : full(f), length(l) {}
  std::optional<Node> node(uint64_t index) override {
    if (length == 0 || flat::right_span(index) >= 2 * length) return std::nullopt;
    // Only nodes below one of the trusted roots are known.
    for (const Node& r : full.roots_at[length])
      if (flat::left_span(r.index) <= index && index <= flat::right_span(r.index)) return full.node(index);
    return std::nullopt;
  }
};

merkle::Proof make(MemoryTree& t, const merkle::ProofRequest& req) {
  auto p = merkle::generate_proof(t, t.blocks.size(), 0, Bytes{1, 2, 3}, req);
  INFO(p.status().message());
  REQUIRE(p.ok());
  if (p->block) p->block->value = t.blocks[p->block->index];
  return *p;
}

}  // namespace

TEST_CASE("block proofs with an upgrade verify from every earlier length", "[merkle][proof]") {
  for (size_t n : {1, 2, 3, 5, 8, 13, 21, 33}) {
    MemoryTree t(n);
    for (uint64_t have = 0; have < n; have++) {
      for (uint64_t block = have; block < n; block++) {
        INFO("n " << n << " have " << have << " block " << block);
        merkle::ProofRequest req;
        req.block = merkle::IndexRequest{block, 0};
        req.upgrade = merkle::UpgradeRequest{have, n - have};
        auto proof = make(t, req);
        PrefixTree trusted(t, have);
        auto v = merkle::verify_proof(proof, t.roots_at[have], trusted);
        INFO(v.status().message());
        REQUIRE(v.ok());
        CHECK(v->upgraded);
        CHECK(v->tree.roots() == t.roots_at[n]);
        CHECK(v->tree.length() == n);
      }
    }
  }
}

TEST_CASE("block proofs without an upgrade end at a node the verifier holds", "[merkle][proof]") {
  MemoryTree t(20);
  for (uint64_t block = 0; block < 20; block++) {
    // A verifier holding the whole tree except the leaf needs 0 levels; one
    // missing everything up to the root needs the full path.
    for (uint64_t levels : {0, 1, 2}) {
      merkle::ProofRequest req;
      req.block = merkle::IndexRequest{block, levels};
      auto p = merkle::generate_proof(t, 20, 0, {}, req);
      if (!p.ok()) continue;  // more levels than the root is above the leaf
      p->block->value = t.blocks[block];
      CHECK(p->block->nodes.size() == levels);
      auto v = merkle::verify_proof(*p, t.roots_at[20], t);
      INFO(v.status().message());
      CHECK(v.ok());
    }
  }
}

TEST_CASE("upgrade-only proofs bring any length to the latest", "[merkle][proof]") {
  MemoryTree t(40);
  for (uint64_t have = 0; have < 40; have++) {
    for (uint64_t to = have + 1; to <= 40; to += 3) {
      merkle::ProofRequest req;
      req.upgrade = merkle::UpgradeRequest{have, to - have};
      auto proof = make(t, req);
      PrefixTree trusted(t, have);
      auto v = merkle::verify_proof(proof, t.roots_at[have], trusted);
      INFO("have " << have << " to " << to << ": " << v.status().message());
      REQUIRE(v.ok());
      // additional nodes carry the verifier on to the sender's full length
      CHECK(v->tree.roots() == t.roots_at[40]);
    }
  }
}

TEST_CASE("tampered proofs are rejected", "[merkle][proof]") {
  MemoryTree t(13);
  merkle::ProofRequest req;
  req.block = merkle::IndexRequest{5, 0};
  req.upgrade = merkle::UpgradeRequest{4, 9};
  PrefixTree trusted(t, 4);
  auto good = make(t, req);
  REQUIRE(merkle::verify_proof(good, t.roots_at[4], trusted).ok());

  SECTION("a changed value gives a different tree") {
    auto p = good;
    p.block->value[0] ^= 1;
    auto v = merkle::verify_proof(p, t.roots_at[4], trusted);
    // The tree hash changes, so the caller's signature check fails.
    REQUIRE(v.ok());
    CHECK(v->tree.roots() != t.roots_at[13]);
  }
  SECTION("a missing node") {
    auto p = good;
    p.block->nodes.pop_back();
    CHECK_FALSE(merkle::verify_proof(p, t.roots_at[4], trusted).ok());
  }
  SECTION("a node at the wrong index") {
    auto p = good;
    p.upgrade->nodes[0].index += 2;
    CHECK_FALSE(merkle::verify_proof(p, t.roots_at[4], trusted).ok());
  }
  SECTION("an upgrade that does not start at our length") {
    auto p = good;
    p.upgrade->start = 3;
    CHECK_FALSE(merkle::verify_proof(p, t.roots_at[4], trusted).ok());
  }
  SECTION("absurd indices and lengths") {
    auto p = good;
    p.upgrade->length = ~0ULL / 2;
    CHECK_FALSE(merkle::verify_proof(p, t.roots_at[4], trusted).ok());
    auto q = good;
    q.block->index = ~0ULL;
    CHECK_FALSE(merkle::verify_proof(q, t.roots_at[4], trusted).ok());
    auto r = good;
    r.block->nodes.assign(100, r.block->nodes[0]);
    CHECK_FALSE(merkle::verify_proof(r, t.roots_at[4], trusted).ok());
  }
  SECTION("a block proof without upgrade must hash to a held node") {
    merkle::ProofRequest plain;
    plain.block = merkle::IndexRequest{2, 2};
    auto p = merkle::generate_proof(t, 13, 0, {}, plain);
    REQUIRE(p.ok());
    p->block->value = t.blocks[2];
    p->block->value.push_back(0);
    CHECK_FALSE(merkle::verify_proof(*p, t.roots_at[13], t).ok());
  }
}

TEST_CASE("proof requests out of range are refused", "[merkle][proof]") {
  MemoryTree t(5);
  merkle::ProofRequest r1;
  r1.block = merkle::IndexRequest{5, 0};
  CHECK_FALSE(merkle::generate_proof(t, 5, 0, {}, r1).ok());
  merkle::ProofRequest r2;
  r2.upgrade = merkle::UpgradeRequest{2, 10};
  CHECK_FALSE(merkle::generate_proof(t, 5, 0, {}, r2).ok());
  merkle::ProofRequest r3;
  r3.block = merkle::IndexRequest{1, 60};
  CHECK_FALSE(merkle::generate_proof(t, 5, 0, {}, r3).ok());
  merkle::ProofRequest r4;
  r4.upgrade = merkle::UpgradeRequest{~0ULL, 1};
  CHECK_FALSE(merkle::generate_proof(t, 5, 0, {}, r4).ok());
  CHECK_FALSE(merkle::generate_proof(t, 0, 0, {}, r1).ok());
}
