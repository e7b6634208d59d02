#include "core/merkle.h"

#include <cstring>
#include <thread>

#include "core/crypto.h"

namespace p2p::merkle {

namespace {

// Indices and lengths beyond JavaScript's safe integers cannot come from an
// honest peer and would overflow the iterator's arithmetic.
constexpr uint64_t kMaxTreeIndex = uint64_t{1} << 54;
// A path has at most one node per tree level.
constexpr size_t kMaxPathNodes = 64;

void put_u64le(uint8_t* out, uint64_t n) {
  for (int i = 0; i < 8; i++) out[i] = static_cast<uint8_t>(n >> (8 * i));
}

Status invalid_proof(const std::string& why) {
  return error(ErrorCode::verification, "invalid proof: " + why);
}

// Untrusted nodes consumed in a fixed order of expected indices. The optional
// `extra` node (a subtree root computed from a block proof) is handed out
// first when its index is asked for.
class NodeQueue {
 public:
  NodeQueue(const std::vector<Node>& nodes, std::optional<Node> extra)
      : nodes_(nodes), extra_(extra) {}
  size_t left() const { return nodes_.size() - i_ + (extra_ ? 1 : 0); }
  bool extra_consumed() const { return !extra_; }
  Result<Node> shift(uint64_t index) {
    if (extra_ && extra_->index == index) {
      Node n = *extra_;
      extra_.reset();
      return n;
    }
    if (i_ >= nodes_.size()) return invalid_proof("expected node " + std::to_string(index) + ", got none");
    const Node& n = nodes_[i_++];
    if (n.index != index)
      return invalid_proof("expected node " + std::to_string(index) + ", got " + std::to_string(n.index));
    return n;
  }

 private:
  const std::vector<Node>& nodes_;
  size_t i_ = 0;
  std::optional<Node> extra_;
};

}  // namespace

Node leaf_node(uint64_t block_index, ByteView data) {
  return {2 * block_index, data.size(), crypto::leaf_hash(data)};
}

Node parent_node(uint64_t index, const Node& a, const Node& b) {
  const Node& left = a.index < b.index ? a : b;
  const Node& right = a.index < b.index ? b : a;
  return {index, a.size + b.size, crypto::parent_hash(a.size + b.size, left.hash, right.hash)};
}

Hash32 tree_hash(std::span<const Node> roots) {
  Bytes pre;
  pre.reserve(1 + roots.size() * 48);
  pre.push_back(2);
  for (const Node& r : roots) {
    pre.insert(pre.end(), r.hash.begin(), r.hash.end());
    uint8_t n[16];
    put_u64le(n, r.index);
    put_u64le(n + 8, r.size);
    pre.insert(pre.end(), n, n + 16);
  }
  return crypto::hash({pre});
}

std::array<uint8_t, 112> signable(const Hash32& manifest_hash, const Hash32& tree_hash_value,
                                  uint64_t length, uint64_t fork) {
  std::array<uint8_t, 112> out;
  std::memcpy(out.data(), crypto::hypercore_ns().tree.data(), 32);
  std::memcpy(out.data() + 32, manifest_hash.data(), 32);
  std::memcpy(out.data() + 64, tree_hash_value.data(), 32);
  put_u64le(out.data() + 96, length);
  put_u64le(out.data() + 104, fork);
  return out;
}

uint64_t length_of_roots(std::span<const Node> roots) {
  if (roots.empty()) return 0;
  return flat::right_span(roots.back().index) / 2 + 1;
}

TreeBatch::TreeBatch(std::vector<Node> roots) : roots_(std::move(roots)) {
  length_ = length_of_roots(roots_);
  for (const Node& r : roots_) byte_length_ += r.size;
}

void TreeBatch::append(ByteView block) { append_leaf(leaf_node(length_, block)); }

void TreeBatch::append_leaf(const Node& leaf) {
  flat::Iterator ite(2 * length_);
  append_root(leaf, ite);
}

std::vector<Node> leaf_nodes(uint64_t first_block, std::span<const ByteView> blocks) {
  std::vector<Node> out(blocks.size());
  auto hash_range = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; i++) out[i] = leaf_node(first_block + i, blocks[i]);
  };
  size_t bytes = 0;
  for (ByteView b : blocks) bytes += b.size();
  if (bytes < (1u << 20) || blocks.size() < 2) {
    hash_range(0, blocks.size());
    return out;
  }
  // Split by bytes, not by count, so both threads get the same work.
  size_t half = 0, seen = 0;
  while (half < blocks.size() && seen < bytes / 2) seen += blocks[half++].size();
  std::thread other(hash_range, half, blocks.size());
  hash_range(0, half);
  other.join();
  return out;
}

void TreeBatch::append_root(const Node& node, flat::Iterator& ite) {
  length_ += ite.factor() / 2;
  byte_length_ += node.size;
  roots_.push_back(node);
  added_.push_back(node);
  // Merge the two last roots while they are siblings; `ite` follows the last root.
  while (roots_.size() > 1) {
    const Node& a = roots_[roots_.size() - 1];
    const Node& b = roots_[roots_.size() - 2];
    if (ite.sibling() != b.index) {
      ite.sibling();
      break;
    }
    Node merged = parent_node(ite.parent(), a, b);
    added_.push_back(merged);
    roots_.pop_back();
    roots_.pop_back();
    roots_.push_back(merged);
  }
}

// ---- proof generation ----------------------------------------------------------

namespace {

struct IndexedRequest {
  uint64_t tree_index;
  uint64_t nodes;
  bool has_value;
  uint64_t last_block;
};

class ProofBuilder {
 public:
  ProofBuilder(NodeSource& tree, uint64_t length) : tree_(tree), head_(2 * length) {}

  Result<Node> get(uint64_t index) {
    auto n = tree_.node(index);
    if (!n) return not_found("tree node " + std::to_string(index) + " is not stored");
    return *n;
  }
  Status push(std::vector<Node>& out, uint64_t index) {
    auto n = get(index);
    if (!n.ok()) return n.status();
    out.push_back(*n);
    return {};
  }

  // ---- seeking (which block holds a byte offset) ----

  static uint64_t unpadded_size(const Node& n, uint64_t padding) {
    return n.size - padding * flat::count_leaves(n.index);
  }

  // Bytes before the first block under `index`.
  Result<uint64_t> byte_offset(uint64_t index) {
    if (index & 1) index = flat::left_span(index);
    uint64_t offset = 0, covered = 0;
    for (uint64_t root : flat::full_roots(head_)) {
      auto r = get(root);
      if (!r.ok()) return r.status();
      covered += 2 * (root - covered + 1);
      if (index >= covered) {
        offset += r->size;
        continue;
      }
      flat::Iterator ite(root);
      for (size_t guard = 0; ite.index() != index; guard++) {
        if (guard >= kMaxPathNodes) return invalid_argument("byte offset walk does not end");
        if (index < ite.index()) {
          ite.left_child();
        } else {
          auto left = get(ite.left_child());
          if (!left.ok()) return left.status();
          offset += left->size;
          ite.sibling();
        }
      }
      return offset;
    }
    return invalid_argument("node " + std::to_string(index) + " is beyond the tree");
  }

  // The smallest stored subtree under `root` that starts at or holds byte `bytes` of it.
  Result<uint64_t> seek_in(uint64_t root, uint64_t bytes, uint64_t padding) {
    if (bytes == 0) return root;
    flat::Iterator ite(root);
    for (size_t guard = 0; ite.index() & 1; guard++) {
      if (guard >= kMaxPathNodes) return invalid_argument("seek does not end");
      auto left = tree_.node(ite.left_child());
      if (!left) {
        ite.parent();
        return ite.index();
      }
      uint64_t size = unpadded_size(*left, padding);
      if (size == bytes) return ite.index();
      if (size > bytes) continue;
      bytes -= size;
      ite.sibling();
    }
    return ite.index();
  }

  // Seeking from the start of a tree of head `head`.
  Result<uint64_t> seek_from_head(uint64_t head, uint64_t bytes, uint64_t padding) {
    for (uint64_t root : flat::full_roots(head)) {
      auto r = get(root);
      if (!r.ok()) return r.status();
      uint64_t size = unpadded_size(*r, padding);
      if (bytes == size) return root;
      if (bytes > size) {
        bytes -= size;
        continue;
      }
      return seek_in(root, bytes, padding);
    }
    return head;
  }

  // Seeking inside `root`, whose position the requester claims but we check.
  Result<uint64_t> seek_checked(uint64_t root, uint64_t bytes, uint64_t padding) {
    auto offset = byte_offset(root);
    if (!offset.ok()) return offset.status();
    uint64_t pad = padding * (flat::left_span(root) / 2);
    if (pad > *offset || *offset - pad > bytes) return invalid_argument("invalid seek");
    bytes -= *offset - pad;
    if (bytes == 0) return root;
    auto node = get(root);
    if (!node.ok()) return node.status();
    if (unpadded_size(*node, padding) <= bytes) return invalid_argument("invalid seek");
    return seek_in(root, bytes, padding);
  }

  // ---- proof paths ----

  // The seek's subtree root and the siblings from it up to (excluding) `root`.
  Status seek_path(uint64_t seek_root, uint64_t root) {
    have_seek_path = true;
    flat::Iterator ite(seek_root);
    P2P_TRY(push(seek_nodes, ite.index()));
    for (size_t guard = 0; ite.index() != root; guard++) {
      if (guard >= kMaxPathNodes) return invalid_argument("seek path does not reach its root");
      ite.sibling();
      P2P_TRY(push(seek_nodes, ite.index()));
      ite.parent();
    }
    return {};
  }

  // The path from the requested node up to (excluding) `root`: siblings
  // bottom-up; a sibling holding the seek's subtree is proven by the seek path.
  Status node_path(const std::optional<IndexedRequest>& node, bool seeking, uint64_t seek_root, uint64_t root) {
    if (!node) return seek_path(seek_root, root);
    have_node_path = true;
    flat::Iterator ite(node->tree_index);
    if (!node->has_value) P2P_TRY(push(node_nodes, ite.index()));
    for (size_t guard = 0; ite.index() != root; guard++) {
      if (guard >= kMaxPathNodes) return invalid_argument("proof path does not reach its root");
      ite.sibling();
      if (seeking && ite.contains(seek_root) && ite.index() != seek_root) {
        P2P_TRY(seek_path(seek_root, ite.index()));
      } else {
        P2P_TRY(push(node_nodes, ite.index()));
      }
      ite.parent();
    }
    return {};
  }

  // Roots and connecting nodes that bring a tree from `from` to `to` (tree
  // heads). The root holding `sub_tree` is proven by the node or seek path.
  Status upgrade_path(const std::optional<IndexedRequest>& node, bool seeking, uint64_t from, uint64_t to,
                      uint64_t sub_tree, std::vector<Node>& out) {
    auto proves_sub_tree = [&](const flat::Iterator& ite) {
      return (node || seeking) && !have_node_path && !have_seek_path && ite.contains(sub_tree);
    };
    bool started = from == 0;
    flat::Iterator ite(0);
    for (; ite.full_root(to); ite.next_tree()) {
      if (ite.index() + ite.factor() / 2 < from) continue;  // the requester has this root
      if (!started && ite.contains(from - 2)) {
        // Connect the requester's last root to this new root.
        started = true;
        uint64_t root = ite.index(), target = from - 2;
        ite.seek(target);
        for (size_t guard = 0; ite.index() != root; guard++) {
          if (guard >= kMaxPathNodes) return invalid_argument("upgrade path does not reach its root");
          ite.sibling();
          if (ite.index() > target) {
            if (proves_sub_tree(ite)) {
              P2P_TRY(node_path(node, seeking, sub_tree, ite.index()));
            } else {
              P2P_TRY(push(out, ite.index()));
            }
          }
          ite.parent();
        }
        continue;
      }
      started = true;
      if (proves_sub_tree(ite)) {
        P2P_TRY(node_path(node, seeking, sub_tree, ite.index()));
        continue;
      }
      P2P_TRY(push(out, ite.index()));
    }
    return {};
  }

  std::vector<Node> node_nodes, seek_nodes;
  bool have_node_path = false, have_seek_path = false;

 private:
  NodeSource& tree_;
  uint64_t head_;
};

}  // namespace

Result<Proof> generate_proof(NodeSource& tree, uint64_t length, uint64_t fork, ByteView signature,
                             const ProofRequest& req) {
  if (req.block && req.hash) return invalid_argument("a request asks for a block or a hash, not both");
  std::optional<IndexedRequest> node;
  if (req.block) {
    if (req.block->index >= length) return not_found("block " + std::to_string(req.block->index) + " is beyond the length");
    node = IndexedRequest{2 * req.block->index, req.block->nodes, true, req.block->index};
  } else if (req.hash) {
    if (req.hash->index >= kMaxTreeIndex) return invalid_argument("tree index out of range");
    node = IndexedRequest{req.hash->index, req.hash->nodes, false, flat::right_span(req.hash->index) / 2};
  }
  if (length == 0) return not_found("the core is empty");

  const uint64_t head = 2 * length;
  const uint64_t from = req.upgrade ? 2 * req.upgrade->start : 0;
  const uint64_t to = req.upgrade ? from + 2 * req.upgrade->length : head;
  if (req.upgrade && (req.upgrade->start >= kMaxTreeIndex || req.upgrade->length >= kMaxTreeIndex))
    return invalid_argument("invalid upgrade");
  if (from >= to || to > head) return invalid_argument("invalid upgrade");
  if (node && flat::right_span(node->tree_index) >= head) return not_found("requested node is beyond the length");
  if (req.seek && req.upgrade && node && node->tree_index >= from)
    return invalid_argument("a seek cannot be combined with a block or hash request above the upgrade's start");
  const bool seeking = req.seek.has_value();

  ProofBuilder b(tree, length);
  Proof proof;
  proof.fork = fork;
  uint64_t sub_tree = head;

  if (node && (!req.upgrade || node->last_block < req.upgrade->start)) {
    // The requester trusts a tree that covers the node: prove it up to its first missing ancestor.
    flat::Iterator ite(node->tree_index);
    for (uint64_t i = 0; i < node->nodes; i++) {
      if (i >= kMaxPathNodes) return invalid_argument("too many nodes requested");
      ite.parent();
      if (ite.contains(to)) return invalid_argument("requested nodes are out of bounds");
    }
    sub_tree = ite.index();
    uint64_t seek_root = head;
    if (seeking) {
      auto r = b.seek_checked(sub_tree, req.seek->bytes, req.seek->padding);
      if (!r.ok()) return r.status();
      seek_root = *r;
    }
    P2P_TRY(b.node_path(node, seeking, seek_root, sub_tree));
  } else if ((node || seeking) && req.upgrade) {
    if (seeking) {
      auto r = b.seek_from_head(to, req.seek->bytes, req.seek->padding);
      if (!r.ok()) return r.status();
      sub_tree = *r;
    } else {
      sub_tree = node->tree_index;
    }
  }

  if (req.upgrade) {
    UpgradeProof up;
    up.start = req.upgrade->start;
    up.length = req.upgrade->length;
    up.signature = to_bytes(signature);
    P2P_TRY(b.upgrade_path(node, seeking, from, to, sub_tree, up.nodes));
    if (head > to) P2P_TRY(b.upgrade_path(std::nullopt, false, to, head, head, up.additional_nodes));
    proof.upgrade = std::move(up);
  }

  if (node) {
    if (!b.have_node_path) return invalid_argument("invalid block request");
    if (req.block)
      proof.block = BlockProof{req.block->index, {}, std::move(b.node_nodes), std::nullopt};
    else
      proof.hash = HashProof{req.hash->index, std::move(b.node_nodes)};
  }
  if (b.have_seek_path) proof.seek = SeekProof{req.seek->bytes, std::move(b.seek_nodes)};
  return proof;
}

// ---- proof verification --------------------------------------------------------

namespace {

Status check_nodes(const std::vector<Node>& nodes) {
  if (nodes.size() > kMaxPathNodes) return invalid_proof("too many nodes");
  for (const Node& n : nodes)
    if (n.index >= kMaxTreeIndex) return invalid_proof("node index out of range");
  return {};
}

// Hash an untrusted seek, block or hash proof up to the subtree root it implies.
Result<std::optional<Node>> verify_tree(const Proof& proof, std::vector<Node>& nodes) {
  std::optional<Node> root;
  if (proof.seek && !proof.seek->nodes.empty()) {
    // The seek path joins the block path (or stands alone) as one subtree root.
    const std::vector<Node>& path = proof.seek->nodes;
    P2P_TRY(check_nodes(path));
    flat::Iterator ite(path[0].index);
    NodeQueue q(path, std::nullopt);
    auto first = q.shift(ite.index());
    if (!first.ok()) return first.status();
    root = *first;
    nodes.push_back(*root);
    while (q.left() > 0) {
      auto sib = q.shift(ite.sibling());
      if (!sib.ok()) return sib.status();
      root = parent_node(ite.parent(), *root, *sib);
      nodes.push_back(*sib);
      nodes.push_back(*root);
    }
  }
  if (!proof.block && !proof.hash) return root;
  const std::vector<Node>& path = proof.block ? proof.block->nodes : proof.hash->nodes;
  P2P_TRY(check_nodes(path));
  uint64_t start = proof.block ? 2 * proof.block->index : proof.hash->index;
  if ((proof.block && proof.block->index >= kMaxTreeIndex / 2) || start >= kMaxTreeIndex)
    return invalid_proof("index out of range");

  flat::Iterator ite(start);
  NodeQueue q(path, root);
  Node top;
  if (proof.block) {
    top = proof.block->leaf ? *proof.block->leaf : leaf_node(proof.block->index, proof.block->value);
  } else {
    auto first = q.shift(ite.index());
    if (!first.ok()) return first.status();
    top = *first;
  }
  nodes.push_back(top);
  while (q.left() > 0) {
    auto sib = q.shift(ite.sibling());
    if (!sib.ok()) return sib.status();
    top = parent_node(ite.parent(), top, *sib);
    nodes.push_back(*sib);
    nodes.push_back(top);
  }
  return std::optional<Node>{top};
}

// Apply an upgrade's roots to `batch`; true when the block root was used.
Result<bool> verify_upgrade(const UpgradeProof& up, std::optional<Node> block_root, TreeBatch& batch) {
  P2P_TRY(check_nodes(up.nodes));
  P2P_TRY(check_nodes(up.additional_nodes));
  if (up.start != batch.length()) return invalid_proof("upgrade does not start at our length");
  if (up.length == 0 || up.length >= kMaxTreeIndex / 2 || up.start >= kMaxTreeIndex / 2)
    return invalid_proof("upgrade length out of range");

  NodeQueue q(up.nodes, block_root);
  const std::vector<Node> held = batch.roots();
  bool grow = !held.empty();
  size_t i = 0;
  const uint64_t to = 2 * (up.start + up.length);
  flat::Iterator ite(0);
  for (; ite.full_root(to); ite.next_tree()) {
    if (i < held.size() && held[i].index == ite.index()) {
      i++;
      continue;
    }
    if (grow) {
      grow = false;
      uint64_t root = ite.index();
      if (i < held.size()) {
        ite.seek(batch.roots().back().index);
        for (size_t guard = 0; ite.index() != root; guard++) {
          if (guard >= kMaxPathNodes) return invalid_proof("upgrade does not connect");
          auto n = q.shift(ite.sibling());
          if (!n.ok()) return n.status();
          batch.append_root(*n, ite);
        }
        continue;
      }
    }
    auto n = q.shift(ite.index());
    if (!n.ok()) return n.status();
    batch.append_root(*n, ite);
  }

  // Additional nodes extend the tree to the sender's own length.
  const auto& extra = up.additional_nodes;
  if (batch.roots().empty()) return invalid_proof("upgrade has no roots");
  ite.seek(batch.roots().back().index);
  size_t k = 0;
  while (k < extra.size() && extra[k].index == ite.sibling()) batch.append_root(extra[k++], ite);
  while (k < extra.size()) {
    const Node& n = extra[k++];
    for (size_t guard = 0; n.index != ite.index(); guard++) {
      if (ite.factor() == 2 || guard >= kMaxPathNodes)
        return invalid_proof("unexpected additional node " + std::to_string(n.index));
      ite.left_child();
    }
    batch.append_root(n, ite);
    ite.sibling();
  }
  return q.extra_consumed();
}

}  // namespace

Result<VerifiedProof> verify_proof(const Proof& proof, const std::vector<Node>& trusted_roots,
                                   NodeSource& trusted) {
  VerifiedProof out{TreeBatch(trusted_roots), {}, false};
  auto unverified = verify_tree(proof, out.nodes);
  if (!unverified.ok()) return unverified.status();
  std::optional<Node> root = *unverified;
  if (proof.upgrade) {
    auto used = verify_upgrade(*proof.upgrade, root, out.tree);
    if (!used.ok()) return used.status();
    out.upgraded = true;
    if (*used) root.reset();
  }
  if (root) {
    auto held = trusted.node(root->index);
    if (!held) return invalid_proof("the proof ends at node " + std::to_string(root->index) + ", which we do not hold");
    if (held->hash != root->hash) return invalid_proof("checksum mismatch at node " + std::to_string(root->index));
  }
  return out;
}

}  // namespace p2p::merkle
