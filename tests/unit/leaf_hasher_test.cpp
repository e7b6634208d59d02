#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "core/leaf_hasher.h"

using namespace p2p;

namespace {

std::vector<Bytes> random_blocks(size_t n, size_t max_size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Bytes> blocks(n);
  for (Bytes& b : blocks) {
    b.resize(rng() % max_size);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
  }
  return blocks;
}

}  // namespace

TEST_CASE("leaf hasher: leaves come back in the order added, equal to leaf_node", "[merkle][hasher]") {
  merkle::LeafHasher hasher;
  for (int round = 0; round < 3; round++) {
    auto blocks = random_blocks(200, 70000, round);
    for (size_t i = 0; i < blocks.size(); i++) REQUIRE(hasher.add(1000 * round + i, blocks[i]) == i);
    std::vector<merkle::Node> leaves = hasher.take();
    REQUIRE(leaves.size() == blocks.size());
    for (size_t i = 0; i < blocks.size(); i++) CHECK(leaves[i] == merkle::leaf_node(1000 * round + i, blocks[i]));
  }
  CHECK(hasher.take().empty());
}

TEST_CASE("leaf hasher: several hashers at once, and one dropped with work queued", "[merkle][hasher]") {
  auto blocks = random_blocks(64, 1 << 17, 9);
  {
    merkle::LeafHasher dropped;  // its destructor waits: the blocks outlive its work
    for (size_t i = 0; i < blocks.size(); i++) dropped.add(i, blocks[i]);
  }
  merkle::LeafHasher a, b;
  for (size_t i = 0; i < blocks.size(); i++) {
    a.add(i, blocks[i]);
    b.add(i + 1, blocks[i]);
  }
  auto la = a.take(), lb = b.take();
  for (size_t i = 0; i < blocks.size(); i++) {
    CHECK(la[i] == merkle::leaf_node(i, blocks[i]));
    CHECK(lb[i] == merkle::leaf_node(i + 1, blocks[i]));
  }
}

TEST_CASE("a block proof is checked with the leaf the receiver hashed", "[merkle][proof][hasher]") {
  merkle::TreeBatch tree;
  std::vector<Bytes> blocks = random_blocks(8, 100, 3);
  struct Nodes : merkle::NodeSource {
    std::map<uint64_t, merkle::Node> all;
    std::optional<merkle::Node> node(uint64_t index) override {
      auto it = all.find(index);
      return it == all.end() ? std::nullopt : std::optional(it->second);
    }
  } nodes;
  for (const Bytes& b : blocks) tree.append(b);
  for (const merkle::Node& n : tree.added_nodes()) nodes.all[n.index] = n;
  auto proof = merkle::generate_proof(nodes, tree.length(), 0, {}, {merkle::IndexRequest{5, 3}, {}, {}, {}});
  REQUIRE(proof.ok());
  proof->block->value = blocks[5];
  Nodes trusted;
  for (const merkle::Node& r : tree.roots()) trusted.all[r.index] = r;
  proof->block->leaf = merkle::leaf_node(5, blocks[5]);
  CHECK(merkle::verify_proof(*proof, tree.roots(), trusted).ok());
  proof->block->leaf = merkle::leaf_node(5, blocks[4]);  // a leaf that is not this block's: the proof fails
  CHECK_FALSE(merkle::verify_proof(*proof, tree.roots(), trusted).ok());
}
