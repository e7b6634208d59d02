// The Hyperbee B-tree algorithms (spec c.2 - c.4), following hyperbee 2's
// node handling step for step so the blocks come out byte-identical:
// copy-on-write of the whole root-to-leaf path, T = 5 (split at 9 keys into
// 4 + median + 4), borrow or merge below 4 keys, deletions replaced by the
// neighbour from the fuller leaf side, and batches whose earlier blocks keep
// only the tree nodes no later block in the batch rewrote.
//
// Inside this file failures travel as exceptions (BeeError) so the
// algorithms read like the reference; every public entry point turns them
// back into a Status.
#include "core/bee.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_map>

namespace p2p {

namespace {

constexpr size_t kMaxChildren = 9;  // a node splits when it reaches 9 keys
constexpr size_t kMinKeys = 4;
constexpr size_t kMaxDepth = 64;    // far beyond any real tree; stops hostile cycles
// Small on purpose: blocks come from LMDB's map at memory speed, so the cache
// only has to keep the top of the tree decoded. Larger caches measured slower
// (dropping them churns the allocator) and cost resident memory on big imports.
// Keys are what binary searches need most, so more of them are kept.
constexpr size_t kCacheBlocks = 4096;
constexpr size_t kCacheKeys = 1 << 15;

struct BeeError {
  Status status;
};
[[noreturn]] void fail(Status s) { throw BeeError{std::move(s)}; }
void check(const Status& s) {
  if (!s.ok()) fail(s);
}
template <typename T>
T must(Result<T> r) {
  if (!r.ok()) fail(r.status());
  return std::move(*r);
}

int compare(ByteView a, ByteView b) {
  size_t n = std::min(a.size(), b.size());
  int c = n ? std::memcmp(a.data(), b.data(), n) : 0;
  if (c != 0) return c < 0 ? -1 : 1;
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

struct TreeNode;

// A decoded block. Pending blocks (written by an unflushed batch) keep their
// index as live pointers into the in-memory tree instead.
struct Block {
  uint64_t seq = 0;
  Bytes key;
  std::optional<Bytes> value;
  Bytes index;  // encoded; decoded into levels on first need
  std::optional<std::vector<bee::Level>> decoded;
  bool pending = false;
  std::vector<std::shared_ptr<struct Child>> pending_index;

  const std::vector<bee::Level>& levels() {
    if (!decoded) {
      auto l = bee::decode_index(index);
      if (!l.ok()) throw BeeError{error(l.status().code(), l.status().message() + " (block " + std::to_string(seq) + ")")};
      decoded = std::move(*l);
      index.clear();
      index.shrink_to_fit();
    }
    return *decoded;
  }

  bool has_key_seq(uint64_t s) {
    for (const auto& l : levels())
      for (uint64_t k : l.keys)
        if (k == s) return true;
    return false;
  }
  // A delete block carries no value and does not point at itself.
  bool is_deletion() { return !value && !has_key_seq(seq); }
};
using BlockPtr = std::shared_ptr<Block>;

using KeyPtr = std::shared_ptr<const Bytes>;

struct KeyRef {
  uint64_t seq = 0;
  KeyPtr key;  // the key's bytes, once loaded
};

struct Child {
  uint64_t seq = 0;
  uint64_t offset = 0;
  std::shared_ptr<TreeNode> node;  // loaded subtree, if any
};
using ChildPtr = std::shared_ptr<Child>;

struct TreeNode {
  BlockPtr block;  // the block this node was read from (null for a brand-new node)
  uint64_t offset = 0;
  std::vector<KeyRef> keys;
  std::vector<ChildPtr> children;
  bool changed = false;
};
using NodePtr = std::shared_ptr<TreeNode>;

NodePtr new_node(BlockPtr block) {
  auto n = std::make_shared<TreeNode>();
  n->block = std::move(block);
  n->changed = true;
  return n;
}

}  // namespace

// Decoded committed blocks, shared by every operation of a Bee.
class BeeCache {
 public:
  bool header_checked = false;

  BlockPtr find(uint64_t seq) {
    auto it = blocks_.find(seq);
    return it == blocks_.end() ? nullptr : it->second;
  }
  void add(const BlockPtr& b) {
    if (blocks_.size() >= kCacheBlocks) blocks_.clear();  // blocks never change: dropping is always safe
    blocks_[b->seq] = b;
  }
  KeyPtr find_key(uint64_t seq) {
    auto it = keys_.find(seq);
    return it == keys_.end() ? nullptr : it->second;
  }
  void add_key(uint64_t seq, const KeyPtr& k) {
    if (keys_.size() >= kCacheKeys) keys_.clear();
    keys_[seq] = k;
  }

 private:
  std::unordered_map<uint64_t, BlockPtr> blocks_;
  std::unordered_map<uint64_t, KeyPtr> keys_;
};


// One operation's (or one batch's) view of the tree: where blocks come from,
// the version it reads, and the blocks it has written but not flushed.
class BeeState {
 public:
  BeeState(Core& core, BeeCache& cache, std::unique_ptr<CoreReader> reader,
           std::unique_ptr<CoreWriter> writer, uint64_t version, std::optional<bee::Metadata> metadata)
      : core_(core), cache_(cache), reader_(std::move(reader)), writer_(std::move(writer)),
        version_(version), metadata_(std::move(metadata)) {}

  // Pending blocks and their tree nodes point at each other: break the cycles.
  ~BeeState() { drop_pending(); }
  void drop_pending() {
    for (auto& [seq, b] : pending_) b->pending_index.clear();
    pending_.clear();
  }

  CoreReader& source() { return writer_ ? *writer_ : *reader_; }
  uint64_t committed_length() { return source().length(); }
  uint64_t next_seq() { return committed_length() + pending_.size(); }
  size_t pending() const { return pending_.size(); }

  // `keep` false: a scan reads each entry once; caching it would only evict hot blocks.
  // Reports every block a read touches (the hyperbee extension lists them for peers).
  void observe(const std::function<void(uint64_t)>* observer) { observer_ = observer; }

  BlockPtr block(uint64_t seq, bool keep = true) {
    if (observer_ && *observer_) (*observer_)(seq);
    if (seq >= committed_length()) {
      auto it = pending_.find(seq);
      if (it != pending_.end()) return it->second;
    }
    if (seq == 0 || seq >= read_limit())
      fail(corruption("hyperbee: a tree pointer names block " + std::to_string(seq) + ", outside the tree"));
    if (BlockPtr b = cache_.find(seq)) return b;
    auto raw = must(source().get(seq));
    auto node = bee::decode_node_raw(raw);
    if (!node.ok()) fail(error(node.status().code(), node.status().message() + " (block " + std::to_string(seq) + ")"));
    auto b = std::make_shared<Block>();
    b->seq = seq;
    b->key = std::move(node->key);
    b->value = std::move(node->value);
    b->index = std::move(node->index);
    if (keep) cache_.add(b);
    return b;
  }

  NodePtr tree_node(const BlockPtr& b, uint64_t offset) {
    if (b->pending) return b->pending_index.at(offset)->node;
    const auto& levels = b->levels();
    if (offset >= levels.size())
      fail(corruption("hyperbee: block " + std::to_string(b->seq) + " has no tree node " + std::to_string(offset)));
    const bee::Level& level = levels[offset];
    auto n = std::make_shared<TreeNode>();
    n->block = b;
    n->offset = offset;
    for (uint64_t k : level.keys) {
      if (k == 0 || k > b->seq) fail(corruption("hyperbee: block " + std::to_string(b->seq) + " names a later key"));
      n->keys.push_back({k, nullptr});
    }
    for (size_t i = 0; i + 1 < level.children.size(); i += 2) {
      uint64_t s = level.children[i], o = level.children[i + 1];
      // Pointers never name a later block. (Within one block any offset can
      // occur: batches compact their earlier blocks' indexes by swapping.)
      // A hostile cycle is stopped by the depth limit of every walk.
      if (s > b->seq) fail(corruption("hyperbee: block " + std::to_string(b->seq) + " points at a later block"));
      n->children.push_back(std::make_shared<Child>(Child{s, o, nullptr}));
    }
    if (!n->children.empty() && n->children.size() != n->keys.size() + 1)
      fail(corruption("hyperbee: block " + std::to_string(b->seq) + " has a node with a wrong number of children"));
    return n;
  }

  // The root at the state's version, or null for an empty tree.
  NodePtr root() {
    uint64_t v = version();
    if (v < 2) return nullptr;
    return tree_node(block(v - 1), 0);
  }

  uint64_t version() { return std::max<uint64_t>(1, version_ ? version_ : next_seq()); }

  const Bytes& key(TreeNode& node, size_t i) {
    KeyRef& k = node.keys[i];
    if (!k.key) k.key = key_of(k.seq);
    return *k.key;
  }

  KeyPtr key_of(uint64_t seq) {
    if (observer_ && *observer_) (*observer_)(seq);
    if (seq < committed_length())
      if (KeyPtr k = cache_.find_key(seq)) return k;
    BlockPtr b = block(seq);
    auto k = std::make_shared<const Bytes>(b->key);
    if (!b->pending) cache_.add_key(seq, k);
    return k;
  }

  NodePtr child(TreeNode& node, size_t i) {
    Child& c = *node.children.at(i);
    if (!c.node) {
      BlockPtr b = node.block && c.seq == node.block->seq ? node.block : block(c.seq);
      c.node = tree_node(b, c.offset);
    }
    return c.node;
  }

  BeeEntry entry(const Block& b) { return {b.seq, b.key, b.value}; }

  // ---- reads ----------------------------------------------------------------

  std::optional<BeeEntry> get(ByteView key) {
    NodePtr node = root();
    for (size_t depth = 0; node; depth++) {
      if (depth > kMaxDepth) fail(corruption("hyperbee: the tree is deeper than possible"));
      // The block that wrote this node may itself be the entry we look for.
      if (node->block && !node->block->pending && equal(node->block->key, key)) {
        if (node->block->is_deletion()) return std::nullopt;
        return entry(*node->block);
      }
      size_t s = 0, e = node->keys.size();
      int c = 0;
      while (s < e) {
        size_t mid = (s + e) >> 1;
        c = compare(key, this->key(*node, mid));
        if (c == 0) return entry(*block(node->keys[mid].seq));
        if (c < 0) e = mid;
        else s = mid + 1;
      }
      if (node->children.empty()) return std::nullopt;
      node = child(*node, c < 0 ? e : s);
    }
    return std::nullopt;
  }

  NodePtr root_at(uint64_t v) {
    if (v < 2) return nullptr;
    return tree_node(block(v - 1), 0);
  }

  // Ordered iteration (hyperbee's RangeIterator): a stack of (node, slot)
  // where even slots are children and odd slots are keys.
  void range(const BeeRange& r, const EntryVisitor& visit) {
    struct Frame {
      NodePtr node;
      int64_t i;
    };
    std::vector<Frame> stack;
    const bool g_incl = !r.gt, l_incl = !r.lt;
    const std::optional<Bytes>& g_key = r.gt ? r.gt : r.gte;
    const std::optional<Bytes>& l_key = r.lt ? r.lt : r.lte;
    int64_t limit = r.limit;
    auto first_slot = [&](const TreeNode& n) { return r.reverse ? static_cast<int64_t>(n.keys.size()) << 1 : 0; };

    NodePtr node = root();
    if (!node) return;
    const bool incl = r.reverse ? l_incl : g_incl;
    const std::optional<Bytes>& start = r.reverse ? l_key : g_key;
    if (!start) {
      stack.push_back({node, first_slot(*node)});
    } else {
      for (size_t depth = 0;; depth++) {
        if (depth > kMaxDepth) fail(corruption("hyperbee: the tree is deeper than possible"));
        Frame f{node, first_slot(*node)};
        size_t s = 0, e = node->keys.size();
        int c = 0;
        bool found = false;
        while (s < e) {
          size_t mid = (s + e) >> 1;
          c = compare(*start, key(*node, mid));
          if (c == 0) {
            f.i = incl ? static_cast<int64_t>(mid) * 2 + 1 : static_cast<int64_t>(mid) * 2 + (r.reverse ? 0 : 2);
            stack.push_back(f);
            found = true;
            break;
          }
          if (c < 0) e = mid;
          else s = mid + 1;
        }
        if (found) break;
        size_t i = c < 0 ? e : s;
        f.i = 2 * static_cast<int64_t>(i) + (r.reverse ? -1 : 1);
        if (f.i >= 0 && f.i <= static_cast<int64_t>(node->keys.size()) << 1) stack.push_back(f);
        if (node->children.empty()) break;
        node = child(*node, i);
      }
    }

    const std::optional<Bytes>& end = r.reverse ? g_key : l_key;
    const bool end_incl = r.reverse ? g_incl : l_incl;
    while (!stack.empty() && (limit == -1 || limit > 0)) {
      if (stack.size() > kMaxDepth) fail(corruption("hyperbee: the tree is deeper than possible"));
      Frame& top = stack.back();
      const bool is_key = (top.i & 1) == 1;
      size_t n;
      if (r.reverse) {
        n = top.i < 0 ? top.node->keys.size() : static_cast<size_t>(top.i >> 1);
        top.i--;
      } else {
        n = static_cast<size_t>(top.i >> 1);
        top.i++;
      }
      if (!is_key) {
        if (top.node->children.empty()) continue;
        NodePtr next = child(*top.node, n);
        // Committed subtrees are dropped once entered, so a scan holds one path.
        if (top.node->block && !top.node->block->pending) top.node->children[n]->node.reset();
        stack.push_back({next, first_slot(*next)});
        continue;
      }
      if (n >= top.node->keys.size()) {
        stack.pop_back();
        continue;
      }
      BlockPtr b = block(top.node->keys[n].seq, false);
      if (end) {
        int c = compare(b->key, *end);
        if (c == 0 ? !end_incl : (r.reverse ? c < 0 : c > 0)) break;
      }
      if (limit > 0) limit--;
      if (!visit(entry(*b))) return;
    }
  }

  // Walks two versions side by side as streams of entries and subtrees,
  // skipping subtrees both share (same block and offset: same content).
  void diff(uint64_t newer, uint64_t older, const std::function<bool(const BeeChange&)>& visit) {
    struct Frame {
      NodePtr node;
      size_t slot = 0;  // leaves: keys only; inner nodes: child, key, child, ...
    };
    struct Side {
      std::vector<Frame> stack;
      // The next token: a subtree (child != null) or an entry seq.
      bool peek(ChildPtr& sub, uint64_t& seq) {
        while (!stack.empty()) {
          Frame& f = stack.back();
          const bool leaf = f.node->children.empty();
          size_t slots = leaf ? f.node->keys.size() : 2 * f.node->keys.size() + 1;
          if (f.slot >= slots) {
            stack.pop_back();
            continue;
          }
          if (leaf || f.slot % 2 == 1) {
            sub = nullptr;
            seq = f.node->keys[leaf ? f.slot : f.slot / 2].seq;
          } else {
            sub = f.node->children[f.slot / 2];
          }
          return true;
        }
        return false;
      }
      void advance() { stack.back().slot++; }
    };
    auto start = [&](Side& side, uint64_t v) {
      if (NodePtr r = root_at(v)) side.stack.push_back({r, 0});
    };
    Side a, b;
    start(a, newer);
    start(b, older);
    auto expand = [&](Side& side, const ChildPtr& sub) {
      if (side.stack.size() > kMaxDepth) fail(corruption("hyperbee: the tree is deeper than possible"));
      TreeNode& parent = *side.stack.back().node;
      NodePtr n = child(parent, side.stack.back().slot / 2);
      side.advance();
      side.stack.push_back({n, 0});
      static_cast<void>(sub);
    };
    for (;;) {
      ChildPtr sa, sb;
      uint64_t ea = 0, eb = 0;
      bool has_a = a.peek(sa, ea), has_b = b.peek(sb, eb);
      if (!has_a && !has_b) return;
      if (has_a && has_b && sa && sb && sa->seq == sb->seq && sa->offset == sb->offset) {
        a.advance();
        b.advance();
        continue;
      }
      if (has_a && sa) {
        expand(a, sa);
        if (has_b && sb) expand(b, sb);
        continue;
      }
      if (has_b && sb) {
        expand(b, sb);
        continue;
      }
      if (has_a && has_b && ea == eb) {  // the same block: unchanged
        a.advance();
        b.advance();
        continue;
      }
      BlockPtr ba = has_a ? block(ea) : nullptr, bb = has_b ? block(eb) : nullptr;
      int c = !has_a ? 1 : !has_b ? -1 : compare(ba->key, bb->key);
      BeeChange change;
      if (c <= 0) {
        change.newer = entry(*ba);
        a.advance();
      }
      if (c >= 0) {
        change.older = entry(*bb);
        b.advance();
      }
      if (!visit(change)) return;
    }
  }

  void history(uint64_t from, uint64_t to, bool reverse, const EntryVisitor& visit) {
    from = std::max<uint64_t>(from, 1);
    to = std::min(to, read_limit());
    for (uint64_t k = 0; from + k < to; k++) {
      BlockPtr b = block(reverse ? to - 1 - k : from + k);
      BeeEntry e = entry(*b);
      if (b->is_deletion()) e.value.reset();
      if (!visit(e)) return;
    }
  }

  // ---- writes ---------------------------------------------------------------

  void ensure_header() {
    if (committed_length() != 0 || !pending_.empty()) return;
    bee::Header h;
    h.metadata = metadata_;
    Bytes header = bee::encode_header(h);
    ByteView v(header);
    check(writer_->append(std::span<const ByteView>(&v, 1)));
  }

  void put(ByteView key, ByteView value) {
    ensure_header();
    NodePtr root = this->root();
    if (!root) root = new_node(nullptr);
    const uint64_t seq = next_seq();
    KeyRef target{seq, std::make_shared<const Bytes>(to_bytes(key))};

    std::vector<NodePtr> stack;
    NodePtr node = root;
    while (!node->children.empty()) {
      if (stack.size() > kMaxDepth) fail(corruption("hyperbee: the tree is deeper than possible"));
      stack.push_back(node);
      node->changed = true;
      size_t s = 0, e = node->keys.size();
      int c = 0;
      while (s < e) {
        size_t mid = (s + e) >> 1;
        c = compare(key, this->key(*node, mid));
        if (c == 0) {
          node->keys[mid] = target;
          return append(root, seq, key, value);
        }
        if (c < 0) e = mid;
        else s = mid + 1;
      }
      node = child(*node, c < 0 ? e : s);
    }

    bool needs_split = !insert_key(*node, target, nullptr);
    while (needs_split) {
      NodePtr parent;
      if (!stack.empty()) {
        parent = stack.back();
        stack.pop_back();
      }
      auto [median, right] = split(*node);
      if (parent) {
        needs_split = !insert_key(*parent, median, right);
        node = parent;
      } else {
        root = new_node(node->block);
        root->keys.push_back(median);
        root->children.push_back(std::make_shared<Child>(Child{0, 0, node}));
        root->children.push_back(std::make_shared<Child>(Child{0, 0, right}));
        needs_split = false;
      }
    }
    append(root, seq, key, value);
  }

  bool del(ByteView key) {
    ensure_header();
    NodePtr node = root();
    if (!node) return false;
    const uint64_t seq = next_seq();
    std::vector<NodePtr> stack;
    for (;;) {
      if (stack.size() > kMaxDepth) fail(corruption("hyperbee: the tree is deeper than possible"));
      stack.push_back(node);
      size_t s = 0, e = node->keys.size();
      int c = 0;
      while (s < e) {
        size_t mid = (s + e) >> 1;
        c = compare(key, this->key(*node, mid));
        if (c == 0) {
          if (!node->children.empty()) set_key_to_nearest_leaf(*node, mid, stack);
          else remove_key(*node, mid);
          // Marked late so a delete of a missing key rewrites nothing.
          for (auto& n : stack) n->changed = true;
          append(rebalance(stack), seq, key, std::nullopt);
          return true;
        }
        if (c < 0) e = mid;
        else s = mid + 1;
      }
      if (node->children.empty()) return false;
      node = child(*node, c < 0 ? e : s);
    }
  }

  // Whether a batch collects blocks in memory (true) or each write goes straight to the core.
  bool batching = false;

  Status flush() {
    std::vector<Bytes> blocks = to_blocks();
    std::vector<ByteView> views(blocks.begin(), blocks.end());
    P2P_TRY(writer_->append(views));
    drop_pending();
    return writer_->commit();
  }

  Status commit() { return writer_->commit(); }

 private:
  uint64_t read_limit() { return version_ ? std::min(version_, committed_length()) : committed_length(); }

  bool insert_key(TreeNode& node, const KeyRef& key, const NodePtr& right) {
    size_t s = 0, e = node.keys.size();
    int c = 0;
    const Bytes& k = *key.key;
    while (s < e) {
      size_t mid = (s + e) >> 1;
      c = compare(k, this->key(node, mid));
      if (c == 0) {
        node.changed = true;
        node.keys[mid] = key;
        return true;
      }
      if (c < 0) e = mid;
      else s = mid + 1;
    }
    size_t i = c < 0 ? e : s;
    node.keys.insert(node.keys.begin() + static_cast<ptrdiff_t>(i), key);
    if (right) node.children.insert(node.children.begin() + static_cast<ptrdiff_t>(i + 1), std::make_shared<Child>(Child{0, 0, right}));
    node.changed = true;
    return node.keys.size() < kMaxChildren;
  }

  std::pair<KeyRef, NodePtr> split(TreeNode& node) {
    size_t len = node.keys.size() >> 1;
    NodePtr right = new_node(node.block);
    while (right->keys.size() < len) {
      right->keys.push_back(node.keys.back());
      node.keys.pop_back();
    }
    std::reverse(right->keys.begin(), right->keys.end());
    key(node, node.keys.size() - 1);  // the median's bytes are compared in the parent
    KeyRef median = node.keys.back();
    node.keys.pop_back();
    if (!node.children.empty()) {
      while (right->children.size() < len + 1) {
        right->children.push_back(node.children.back());
        node.children.pop_back();
      }
      std::reverse(right->children.begin(), right->children.end());
    }
    node.changed = true;
    return {median, right};
  }

  void remove_key(TreeNode& node, size_t i) {
    node.keys.erase(node.keys.begin() + static_cast<ptrdiff_t>(i));
    if (!node.children.empty()) {
      node.children[i + 1]->seq = 0;  // freed
      node.children.erase(node.children.begin() + static_cast<ptrdiff_t>(i + 1));
    }
    node.changed = true;
  }

  size_t leaf_size(NodePtr node, bool go_left) {
    for (size_t depth = 0; !node->children.empty(); depth++) {
      if (depth > kMaxDepth) fail(corruption("hyperbee: the tree is deeper than possible"));
      node = child(*node, go_left ? 0 : node->children.size() - 1);
    }
    return node->keys.size();
  }

  void set_key_to_nearest_leaf(TreeNode& node, size_t i, std::vector<NodePtr>& stack) {
    NodePtr left = child(node, i), right = child(node, i + 1);
    size_t ls = leaf_size(left, false), rs = leaf_size(right, true);
    if (ls < rs) {  // fewer keys on the left: take the successor
      stack.push_back(right);
      while (!right->children.empty()) stack.push_back(right = right->children[0]->node);
      key(*right, 0);
      node.keys[i] = right->keys.front();
      right->keys.erase(right->keys.begin());
    } else {  // take the predecessor
      stack.push_back(left);
      while (!left->children.empty()) stack.push_back(left = left->children.back()->node);
      node.keys[i] = left->keys.back();
      left->keys.pop_back();
    }
  }

  NodePtr rebalance(std::vector<NodePtr>& stack) {
    NodePtr root = stack[0];
    while (stack.size() > 1) {
      NodePtr node = stack.back();
      stack.pop_back();
      NodePtr parent = stack.back();
      if (node->keys.size() >= kMinKeys) return root;

      size_t index = parent->children.size();
      for (size_t i = 0; i < parent->children.size(); i++)
        if (parent->children[i]->node == node) index = i;
      if (index == parent->children.size()) fail(corruption("hyperbee: bad parent while rebalancing"));
      NodePtr left = index ? child(*parent, index - 1) : nullptr;
      NodePtr right = index + 1 < parent->children.size() ? child(*parent, index + 1) : nullptr;

      if (left && left->keys.size() > kMinKeys) {  // borrow from the left sibling
        left->changed = true;
        node->keys.insert(node->keys.begin(), parent->keys[index - 1]);
        if (!left->children.empty()) {
          node->children.insert(node->children.begin(), left->children.back());
          left->children.pop_back();
        }
        parent->keys[index - 1] = left->keys.back();
        left->keys.pop_back();
        return root;
      }
      if (right && right->keys.size() > kMinKeys) {  // borrow from the right sibling
        right->changed = true;
        node->keys.push_back(parent->keys[index]);
        if (!right->children.empty()) {
          node->children.push_back(right->children.front());
          right->children.erase(right->children.begin());
        }
        parent->keys[index] = right->keys.front();
        right->keys.erase(right->keys.begin());
        return root;
      }
      if (left) {  // merge with a sibling, pulling the separator down
        index--;
        right = node;
      } else {
        left = node;
      }
      left->changed = true;
      left->keys.push_back(parent->keys[index]);
      left->keys.insert(left->keys.end(), right->keys.begin(), right->keys.end());
      left->children.insert(left->children.end(), right->children.begin(), right->children.end());
      remove_key(*parent, index);
    }
    if (root->keys.empty() && !root->children.empty()) return child(*root, 0);  // the tree shrank
    return root;
  }

  // Numbers the changed nodes depth-first into `index`; returns this node's offset.
  static uint64_t index_changes(TreeNode& node, std::vector<ChildPtr>& index, uint64_t seq) {
    uint64_t offset = index.size();
    index.push_back(nullptr);
    node.changed = false;
    for (auto& c : node.children) {
      if (!c->node || !c->node->changed) continue;
      c->seq = seq;
      c->offset = index_changes(*c->node, index, seq);
      index[c->offset] = c;
    }
    return offset;
  }

  static void update_children(TreeNode& node, uint64_t seq, const BlockPtr& block) {
    for (auto& c : node.children) {
      if (!c->node || c->seq != seq) continue;
      c->node->block = block;
      update_children(*c->node, seq, block);
    }
  }

  static Bytes deflate(const std::vector<ChildPtr>& index) {
    std::vector<bee::Level> levels;
    for (const auto& c : index) {
      bee::Level l;
      for (const auto& k : c->node->keys) l.keys.push_back(k.seq);
      for (const auto& ch : c->node->children) {
        l.children.push_back(ch->seq);
        l.children.push_back(ch->offset);
      }
      levels.push_back(std::move(l));
    }
    return bee::encode_index(levels);
  }

  void append(const NodePtr& root, uint64_t seq, ByteView key, std::optional<ByteView> value) {
    std::vector<ChildPtr> index;
    index_changes(*root, index, seq);
    index[0] = std::make_shared<Child>(Child{seq, 0, root});
    if (batching) {
      auto b = std::make_shared<Block>();
      b->seq = seq;
      b->key = to_bytes(key);
      if (value) b->value = to_bytes(*value);
      b->pending = true;
      b->pending_index = index;
      root->block = b;
      pending_[seq] = b;
      update_children(*root, seq, b);
      return;
    }
    Bytes block = bee::encode_node(deflate(index), key, value);
    ByteView v(block);
    check(writer_->append(std::span<const ByteView>(&v, 1)));
  }

  // The pending blocks as bytes. Earlier blocks keep only the nodes still
  // stamped with their own seq (later writes in the batch re-stamped the rest).
  std::vector<Bytes> to_blocks() {
    std::vector<Bytes> out;
    size_t i = 0;
    for (auto& [seq, b] : pending_) {
      auto& idx = b->pending_index;
      if (++i < pending_.size()) {
        idx[0] = nullptr;
        size_t j = 0;
        while (j < idx.size()) {
          if (idx[j] && idx[j]->seq == seq) {
            idx[j]->offset = j;
            j++;
            continue;
          }
          if (j == idx.size() - 1) {
            idx.pop_back();
          } else {
            idx[j] = idx.back();
            idx.pop_back();
          }
        }
      }
      out.push_back(bee::encode_node(deflate(idx), b->key, b->value ? std::optional<ByteView>(*b->value) : std::nullopt));
    }
    return out;
  }

  Core& core_;
  BeeCache& cache_;
  const std::function<void(uint64_t)>* observer_ = nullptr;
  std::unique_ptr<CoreReader> reader_;
  std::unique_ptr<CoreWriter> writer_;
  uint64_t version_;  // 0: the source's current length (plus pending)
  std::optional<bee::Metadata> metadata_;
  std::map<uint64_t, BlockPtr> pending_;
};

namespace {

Status run(const std::function<void()>& body) {
  try {
    body();
    return {};
  } catch (const BeeError& e) {
    return e.status;
  }
}

Status check_key(ByteView key) {
  if (key.size() > kMaxBeeKeySize)
    return invalid_argument("a key is at most " + std::to_string(kMaxBeeKeySize) + " bytes (this one is " +
                            std::to_string(key.size()) + ")");
  return {};
}

Status check_value(ByteView value) {
  if (value.size() > kMaxBeeValueSize)
    return invalid_argument("a value is at most " + std::to_string(kMaxBeeValueSize / (1024 * 1024)) +
                            " MiB (this one is " + std::to_string(value.size()) + " bytes)");
  return {};
}

}  // namespace

Bee::Bee(Core& core, std::optional<bee::Metadata> metadata)
    : core_(core), metadata_(std::move(metadata)), cache_(std::make_shared<BeeCache>()) {}

Bee::~Bee() = default;

namespace {

// Block 0 must be a Hyperbee header; it never changes, so one check per process is enough.
Status check_header(CoreReader& reader, BeeCache& cache) {
  if (reader.length() == 0 || cache.header_checked) return {};
  auto header = reader.get(0);
  if (!header.ok()) return header.status();
  auto h = bee::decode_header(*header);
  if (!h.ok()) return h.status();
  cache.header_checked = true;
  return {};
}

Result<std::unique_ptr<BeeState>> open_reader(Core& core, BeeCache& cache, uint64_t at) {
  auto reader = core.reader();
  if (!reader.ok()) return reader.status();
  uint64_t length = (*reader)->length();
  if (at > std::max<uint64_t>(length, 1))
    return not_found("version " + std::to_string(at) + " does not exist yet (the latest is " +
                     std::to_string(std::max<uint64_t>(length, 1)) + ")");
  P2P_TRY(check_header(**reader, cache));
  return std::make_unique<BeeState>(core, cache, std::move(*reader), nullptr, at, std::nullopt);
}

Result<std::unique_ptr<BeeState>> open_writer(Core& core, BeeCache& cache, const std::optional<bee::Metadata>& metadata) {
  auto writer = core.writer();
  if (!writer.ok()) return writer.status();
  P2P_TRY(check_header(**writer, cache));
  return std::make_unique<BeeState>(core, cache, nullptr, std::move(*writer), 0, metadata);
}

}  // namespace

Result<uint64_t> Bee::version() {
  auto reader = core_.reader();
  if (!reader.ok()) return reader.status();
  return std::max<uint64_t>(1, (*reader)->length());
}

Result<std::optional<BeeEntry>> Bee::get(ByteView key, uint64_t at) {
  P2P_TRY(check_key(key));
  auto state = open_reader(core_, *cache_, at);
  if (!state.ok()) return state.status();
  (*state)->observe(&observer_);
  std::optional<BeeEntry> out;
  P2P_TRY(run([&] { out = (*state)->get(key); }));
  return out;
}

Status Bee::put(ByteView key, ByteView value) {
  P2P_TRY(check_key(key));
  P2P_TRY(check_value(value));
  auto state = open_writer(core_, *cache_, metadata_);
  if (!state.ok()) return state.status();
  P2P_TRY(run([&] { (*state)->put(key, value); }));
  return (*state)->commit();
}

Result<bool> Bee::del(ByteView key) {
  P2P_TRY(check_key(key));
  auto state = open_writer(core_, *cache_, metadata_);
  if (!state.ok()) return state.status();
  bool found = false;
  P2P_TRY(run([&] { found = (*state)->del(key); }));
  if (found) P2P_TRY((*state)->commit());
  return found;
}

Status Bee::range(const BeeRange& r, const EntryVisitor& visit, uint64_t at) {
  auto state = open_reader(core_, *cache_, at);
  if (!state.ok()) return state.status();
  (*state)->observe(&observer_);
  return run([&] { (*state)->range(r, visit); });
}

Status Bee::diff(uint64_t newer, uint64_t older, const std::function<bool(const BeeChange&)>& visit) {
  auto state = open_reader(core_, *cache_, std::max(newer, older));
  if (!state.ok()) return state.status();
  return run([&] { (*state)->diff(newer, older, visit); });
}

Status Bee::history(uint64_t from, uint64_t to, bool reverse, const EntryVisitor& visit) {
  auto state = open_reader(core_, *cache_, 0);
  if (!state.ok()) return state.status();
  return run([&] { (*state)->history(from, to, reverse, visit); });
}

Result<std::unique_ptr<Bee::Batch>> Bee::batch() {
  auto state = open_writer(core_, *cache_, metadata_);
  if (!state.ok()) return state.status();
  (*state)->batching = true;
  return std::unique_ptr<Batch>(new Batch(std::move(*state)));
}

Bee::Batch::Batch(std::unique_ptr<BeeState> state) : state_(std::move(state)) {}
Bee::Batch::~Batch() = default;

Status Bee::Batch::put(ByteView key, ByteView value) {
  if (!state_) return invalid_argument("this batch was already flushed");
  P2P_TRY(check_key(key));
  P2P_TRY(check_value(value));
  return run([&] { state_->put(key, value); });
}

Result<bool> Bee::Batch::del(ByteView key) {
  if (!state_) return invalid_argument("this batch was already flushed");
  P2P_TRY(check_key(key));
  bool found = false;
  P2P_TRY(run([&] { found = state_->del(key); }));
  return found;
}

Result<std::optional<BeeEntry>> Bee::Batch::get(ByteView key) {
  if (!state_) return invalid_argument("this batch was already flushed");
  std::optional<BeeEntry> out;
  P2P_TRY(run([&] { out = state_->get(key); }));
  return out;
}

size_t Bee::Batch::pending() const { return state_ ? state_->pending() : 0; }

Status Bee::Batch::flush() {
  if (!state_) return invalid_argument("this batch was already flushed");
  Status s = run([&] { check(state_->flush()); });
  state_.reset();
  return s;
}

}  // namespace p2p
