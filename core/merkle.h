// The Hypercore Merkle tree (spec a.2, a.4, a.5): node hashes, the tree hash
// and signable, appending, and proofs for blocks, tree nodes and upgrades.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/bytes.h"
#include "core/flat_tree.h"
#include "base/result.h"

namespace p2p::merkle {

struct Node {
  uint64_t index = 0;  // flat-tree index
  uint64_t size = 0;   // bytes of all blocks below
  Hash32 hash{};
  bool operator==(const Node&) const = default;
};

Node leaf_node(uint64_t block_index, ByteView data);
// Leaf nodes of consecutive blocks starting at `first_block`; large inputs are
// hashed on two threads (hashing is most of the cost of big files).
std::vector<Node> leaf_nodes(uint64_t first_block, std::span<const ByteView> blocks);
Node parent_node(uint64_t index, const Node& a, const Node& b);
Hash32 tree_hash(std::span<const Node> roots);
// TREE || manifest hash || tree hash || u64le length || u64le fork.
std::array<uint8_t, 112> signable(const Hash32& manifest_hash, const Hash32& tree_hash,
                                  uint64_t length, uint64_t fork);
// Number of blocks covered by a list of full roots.
uint64_t length_of_roots(std::span<const Node> roots);

// A tree being extended: starts from trusted roots, collects every node it adds.
class TreeBatch {
 public:
  explicit TreeBatch(std::vector<Node> roots = {});
  void append(ByteView block);
  // The same with the leaf already hashed (see leaf_nodes).
  void append_leaf(const Node& leaf);
  void append_root(const Node& node, flat::Iterator& ite);

  const std::vector<Node>& roots() const { return roots_; }
  const std::vector<Node>& added_nodes() const { return added_; }
  void clear_added_nodes() { added_.clear(); }
  uint64_t length() const { return length_; }
  uint64_t byte_length() const { return byte_length_; }
  Hash32 hash() const { return tree_hash(roots_); }

 private:
  std::vector<Node> roots_;
  std::vector<Node> added_;
  uint64_t length_ = 0;
  uint64_t byte_length_ = 0;
};

// Where proof generation reads trusted nodes from.
class NodeSource {
 public:
  virtual ~NodeSource() = default;
  virtual std::optional<Node> node(uint64_t index) = 0;
};

struct IndexRequest {
  uint64_t index = 0;  // block index for a block request, tree index for a hash request
  uint64_t nodes = 0;  // ancestor levels the requester lacks
};
struct UpgradeRequest {
  uint64_t start = 0;
  uint64_t length = 0;
};
// "Which block holds byte `bytes`?" (padding: bytes per block not counted).
struct SeekRequest {
  uint64_t bytes = 0;
  uint64_t padding = 0;
};
struct ProofRequest {
  std::optional<IndexRequest> block;
  std::optional<IndexRequest> hash;
  std::optional<SeekRequest> seek;
  std::optional<UpgradeRequest> upgrade;
};

struct BlockProof {
  uint64_t index = 0;
  Bytes value;
  std::vector<Node> nodes;
  // leaf_node(index, value), when the receiver hashed it already (never from
  // the wire): hashing a block while it is still in the CPU's cache is cheaper.
  std::optional<Node> leaf;
};
struct HashProof {
  uint64_t index = 0;
  std::vector<Node> nodes;
};
// The path from the subtree that holds the sought byte up to a node the
// verifier trusts or a block proof joins.
struct SeekProof {
  uint64_t bytes = 0;
  std::vector<Node> nodes;
};
struct UpgradeProof {
  uint64_t start = 0;
  uint64_t length = 0;
  std::vector<Node> nodes;
  std::vector<Node> additional_nodes;
  Bytes signature;
};
struct Proof {
  uint64_t fork = 0;
  std::optional<BlockProof> block;  // value left empty: the caller fills it from block storage
  std::optional<HashProof> hash;
  std::optional<SeekProof> seek;
  std::optional<UpgradeProof> upgrade;
};

// What a holder of a tree of `length` blocks answers to `request`.
Result<Proof> generate_proof(NodeSource& tree, uint64_t length, uint64_t fork, ByteView signature,
                             const ProofRequest& request);

// The outcome of checking an untrusted proof: the tree after the upgrade (when
// there is one) and every node the proof establishes. The caller still has to
// check the upgrade's signature over `tree` with the core's manifest.
struct VerifiedProof {
  TreeBatch tree;
  std::vector<Node> nodes;
  bool upgraded = false;
};
// `trusted_roots` describe the verifier's current tree; `trusted` answers for
// nodes it already holds (a block proof without upgrade must end at one).
Result<VerifiedProof> verify_proof(const Proof& proof, const std::vector<Node>& trusted_roots,
                                   NodeSource& trusted);

}  // namespace p2p::merkle
