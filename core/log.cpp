#include "core/log.h"

#include <algorithm>
#include <cstring>
#include <deque>

#include "core/encoding.h"
#include "core/keys.h"
#include "core/log_format.h"

namespace p2p {

namespace detail {

Bytes encode_header(const Header& h) {
  enc::Encoder e;
  e.u8(kHeaderFormat);
  e.uint(h.local_id);
  e.buffer(h.manifest);
  e.uint(h.state.length);
  e.uint(h.state.byte_length);
  e.uint(h.state.fork);
  e.buffer(h.state.signature);
  return e.take();
}

Result<Header> decode_header(ByteView b, const std::string& label) {
  enc::Decoder d(b);
  Header h;
  if (d.u8() != kHeaderFormat) return corruption("core " + label + ": unknown header format");
  h.local_id = d.uint();
  h.manifest = to_bytes(d.buffer(64 * 1024));
  h.state.length = d.uint();
  h.state.byte_length = d.uint();
  h.state.fork = d.uint();
  h.state.signature = to_bytes(d.buffer(64 * 1024));
  Status s = d.finish("core " + label + " header");
  if (!s.ok()) return s;
  return h;
}

std::array<uint8_t, kTreeValueSize> encode_node(const merkle::Node& n) {
  std::array<uint8_t, kTreeValueSize> out;
  for (int i = 0; i < 8; i++) out[i] = static_cast<uint8_t>(n.size >> (8 * i));
  std::memcpy(out.data() + 8, n.hash.data(), 32);
  return out;
}

std::optional<merkle::Node> decode_node(uint64_t index, ByteView v) {
  if (v.size() != kTreeValueSize) return std::nullopt;
  merkle::Node n;
  n.index = index;
  for (int i = 0; i < 8; i++) n.size |= static_cast<uint64_t>(v[i]) << (8 * i);
  std::memcpy(n.hash.data(), v.data() + 8, 32);
  return n;
}

Result<uint64_t> allocate_local_id(storage::WriteTxn& txn) {
  uint64_t next = 1;
  if (auto v = txn.get(storage::Table::meta, as_bytes(kNextCoreId))) {
    enc::Decoder d(*v);
    next = d.u64le();
    if (!d.done()) return corruption("meta: damaged core counter");
  }
  enc::Encoder e;
  e.u64le(next + 1);
  P2P_TRY(txn.put(storage::Table::meta, as_bytes(kNextCoreId), e.bytes()));
  return next;
}

}  // namespace detail

using namespace detail;

Core::Core(storage::Store& store, Key32 key) : store_(store), key_(key) {
  discovery_key_ = crypto::discovery_key(key_);
}

Core::~Core() = default;

std::string Core::label() const { return keys::to_z32(key_).substr(0, 12); }

Result<std::unique_ptr<Core>> Core::open_writable(storage::Store& store, const crypto::KeyPair& kp) {
  return open_writable(store, kp, manifest::default_manifest(kp.public_key));
}

Result<std::unique_ptr<Core>> Core::open_writable(storage::Store& store, const crypto::KeyPair& kp,
                                                  const manifest::Manifest& m) {
  if (m.signers.empty() || m.signers[0].public_key != kp.public_key)
    return invalid_argument("the manifest's first signer must be the key pair that writes");
  Key32 key = manifest::hash(m);
  std::unique_ptr<Core> core(new Core(store, key));
  core->key_pair_ = kp;
  {
    auto txn = store.read();
    if (!txn.ok()) return txn.status();
    if ((*txn)->get(storage::Table::cores, key)) {
      P2P_TRY(core->load(**txn));
      return core;
    }
  }
  auto txn = store.write();
  if (!txn.ok()) return txn.status();
  if (!(*txn)->get(storage::Table::cores, key)) {  // still new inside the write lock
    auto id = allocate_local_id(**txn);
    if (!id.ok()) return id.status();
    Header h{*id, manifest::encode(m), {}};
    P2P_TRY((*txn)->put(storage::Table::cores, key, encode_header(h)));
  }
  P2P_TRY(core->load(**txn));
  P2P_TRY((*txn)->commit());
  return core;
}

Result<std::unique_ptr<Core>> Core::open_by_key(storage::Store& store, const Key32& key) {
  std::unique_ptr<Core> core(new Core(store, key));
  auto txn = store.read();
  if (!txn.ok()) return txn.status();
  if (!(*txn)->get(storage::Table::cores, key))
    return not_found("core " + keys::to_z32(key) + " is not in the local store");
  P2P_TRY(core->load(**txn));
  return core;
}

Status Core::load(storage::ReadTxn& txn) {
  auto raw = txn.get(storage::Table::cores, key_);
  if (!raw) return txn.status().ok() ? not_found("core " + label() + " is not in the local store") : txn.status();
  auto h = decode_header(*raw, label());
  if (!h.ok()) return h.status();
  auto m = manifest::decode(h->manifest);
  if (!m.ok()) return error(m.status().code(), "core " + label() + ": " + m.status().message());
  if (manifest::hash(*m) != key_) return corruption("core " + label() + ": stored manifest does not hash to the core key");
  local_id_ = h->local_id;
  auto roots = load_roots(txn, h->state.length);
  if (!roots.ok()) return roots.status();
  uint64_t bytes = 0;
  for (const auto& r : *roots) bytes += r.size;
  if (bytes != h->state.byte_length)
    return corruption("core " + label() + ": byte length in the header does not match the tree roots");
  if (h->state.length > 0) {
    Status s = manifest::verify(*m, key_, merkle::tree_hash(*roots), h->state.length, h->state.fork,
                                h->state.signature);
    if (!s.ok())
      return corruption("core " + label() + ": the signed header does not match the stored tree at length " +
                        std::to_string(h->state.length) + " (" + s.message() + ")");
  }
  manifest_ = std::move(*m);
  state_ = std::move(h->state);
  roots_ = std::move(*roots);
  stored_ = true;
  header_raw_ = to_bytes(*raw);
  return {};
}

Result<std::vector<merkle::Node>> Core::load_roots(storage::ReadTxn& txn, uint64_t length) {
  std::vector<merkle::Node> roots;
  for (uint64_t index : flat::full_roots(2 * length)) {
    auto v = txn.get(storage::Table::tree, storage::pair_key(local_id_, index));
    std::optional<merkle::Node> n = v ? decode_node(index, *v) : std::nullopt;
    if (!n) return corruption("core " + label() + ": tree root " + std::to_string(index) + " is missing or damaged");
    roots.push_back(*n);
  }
  return roots;
}

Status Core::refresh() {
  auto txn = store_.read();
  if (!txn.ok()) return txn.status();
  auto raw = (*txn)->get(storage::Table::cores, key_);
  if (!stored_ && !raw) return {};  // a replica still empty
  if (raw && stored_ && raw->size() == header_raw_.size() && std::equal(raw->begin(), raw->end(), header_raw_.begin()))
    return {};  // unchanged: nothing to reload or re-verify
  return load(**txn);
}

Result<std::unique_ptr<Core>> Core::open_replica(storage::Store& store, const Key32& key) {
  auto core = open_by_key(store, key);
  if (core.ok() || core.status().code() != ErrorCode::not_found) return core;
  return std::unique_ptr<Core>(new Core(store, key));
}

Result<uint64_t> Core::append(ByteView block) { return append(std::span<const ByteView>(&block, 1)); }

Result<uint64_t> Core::append(std::span<const ByteView> blocks) {
  auto w = writer();
  if (!w.ok()) return w.status();
  P2P_TRY((*w)->append(blocks));
  P2P_TRY((*w)->commit());
  return state_.length;
}

namespace {

// `label` is only called on failure: naming the core costs a z-base-32 encoding.
template <typename Label>
Result<ByteView> checked_block(storage::ReadTxn& txn, uint64_t id, uint64_t index, const Label& label) {
  auto block = txn.get(storage::Table::blocks, storage::pair_key(id, index));
  if (!block) {
    P2P_TRY(txn.status());
    return not_found("core " + label() + ": block " + std::to_string(index) +
                     " is not stored here (fetch it from a peer with --peer or --from)");
  }
  auto leaf = txn.get(storage::Table::tree, storage::pair_key(id, 2 * index));
  auto node = leaf ? decode_node(2 * index, *leaf) : std::nullopt;
  if (!node || node->size != block->size() || node->hash != crypto::leaf_hash(*block))
    return corruption("core " + label() + ": block " + std::to_string(index) +
                      " does not match its tree hash (the store is damaged)");
  return *block;
}

}  // namespace

Result<std::vector<ByteView>> CoreReader::get_range(uint64_t first, uint64_t count) {
  std::vector<ByteView> out;
  for (uint64_t i = 0; i < count; i++) {
    auto b = get(first + i);
    if (!b.ok()) return b.status();
    out.push_back(*b);
  }
  return out;
}

namespace {

template <typename Label>
Result<std::vector<ByteView>> checked_range(storage::ReadTxn& txn, uint64_t id, uint64_t first, uint64_t count,
                                            const Label& label) {
  std::vector<ByteView> blocks;
  std::vector<std::optional<merkle::Node>> stored;
  for (uint64_t i = first; i < first + count; i++) {
    auto block = txn.get(storage::Table::blocks, storage::pair_key(id, i));
    if (!block) {
      P2P_TRY(txn.status());
      return corruption("core " + label() + ": block " + std::to_string(i) + " is missing from the store");
    }
    auto leaf = txn.get(storage::Table::tree, storage::pair_key(id, 2 * i));
    blocks.push_back(*block);
    stored.push_back(leaf ? decode_node(2 * i, *leaf) : std::nullopt);
  }
  auto computed = merkle::leaf_nodes(first, blocks);
  for (size_t k = 0; k < blocks.size(); k++)
    if (!stored[k] || *stored[k] != computed[k])
      return corruption("core " + label() + ": block " + std::to_string(first + k) +
                        " does not match its tree hash (the store is damaged)");
  return blocks;
}

}  // namespace

class CoreReaderImpl : public CoreReader {
 public:
  CoreReaderImpl(Core& core, std::unique_ptr<storage::ReadTxn> txn, CoreState state)
      : core_(core), txn_(std::move(txn)), state_(std::move(state)) {}
  uint64_t length() const override { return state_.length; }
  Result<ByteView> get(uint64_t index) override {
    if (index >= state_.length)
      return not_found("block " + std::to_string(index) + " is beyond the length (" + std::to_string(state_.length) + ")");
    auto block = checked_block(*txn_, core_.local_id_, index, [this] { return core_.label(); });
    if (block.ok() || block.status().code() != ErrorCode::not_found || !core_.fetcher_) return block;
    auto fetched = core_.fetcher_->fetch(core_, index);
    if (!fetched.ok()) return fetched.status();
    fetched_.push_back(std::move(*fetched));  // a deque keeps earlier views valid
    return ByteView(fetched_.back());
  }
  Result<std::vector<ByteView>> get_range(uint64_t first, uint64_t count) override {
    if (first + count > state_.length || first + count < first)
      return not_found("blocks " + std::to_string(first) + ".." + std::to_string(first + count) +
                       " are beyond the length (" + std::to_string(state_.length) + ")");
    bool complete = true;
    for (uint64_t i = first; i < first + count && complete; i++) complete = has(i);
    if (complete || !core_.fetcher_)
      return checked_range(*txn_, core_.local_id_, first, count, [this] { return core_.label(); });
    // Some are on a peer: fetch the range in one go (this snapshot cannot
    // see them once stored, so the reader keeps the fetched copies).
    auto fetched = core_.fetcher_->fetch_range(core_, first, count);
    if (!fetched.ok()) return fetched.status();
    std::vector<ByteView> out;
    for (Bytes& b : *fetched) {
      fetched_.push_back(std::move(b));
      out.push_back(fetched_.back());
    }
    return out;
  }
  bool has(uint64_t index) override {
    return index < state_.length && txn_->get(storage::Table::blocks, storage::pair_key(core_.local_id_, index));
  }
  Result<merkle::Proof> proof(const merkle::ProofRequest& request) override {
    TxnNodes nodes(*txn_, core_.local_id_);
    auto p = merkle::generate_proof(nodes, state_.length, state_.fork, state_.signature, request);
    if (!p.ok()) return p.status();
    if (p->block) {
      auto block = txn_->get(storage::Table::blocks, storage::pair_key(core_.local_id_, p->block->index));
      if (!block) return not_found("block " + std::to_string(p->block->index) + " is not stored");
      p->block->value = to_bytes(*block);
    }
    return p;
  }

 private:
  Core& core_;
  std::unique_ptr<storage::ReadTxn> txn_;
  CoreState state_;
  std::deque<Bytes> fetched_;
};

Result<std::vector<Bytes>> BlockFetcher::fetch_range(Core& core, uint64_t first, uint64_t count) {
  std::vector<Bytes> out;
  for (uint64_t i = first; i < first + count; i++) {
    auto b = fetch(core, i);
    if (!b.ok()) return b.status();
    out.push_back(std::move(*b));
  }
  return out;
}

Result<merkle::Proof> CoreReader::proof(const merkle::ProofRequest&) {
  return error(ErrorCode::unsupported, "this reader cannot make proofs");
}

class CoreWriterImpl : public CoreWriter {
 public:
  CoreWriterImpl(Core& core, std::unique_ptr<storage::WriteTxn> txn)
      : core_(core), txn_(std::move(txn)), batch_(core.roots_) {}
  uint64_t length() const override { return batch_.length(); }
  Result<ByteView> get(uint64_t index) override {
    if (index >= batch_.length())
      return not_found("block " + std::to_string(index) + " is beyond the length (" + std::to_string(length()) + ")");
    return checked_block(*txn_, core_.local_id_, index, [this] { return core_.label(); });
  }

  Status append(std::span<const ByteView> blocks) override {
    return append(blocks, merkle::leaf_nodes(batch_.length(), blocks));
  }

  Status append(std::span<const ByteView> blocks, std::span<const merkle::Node> leaves) override {
    if (leaves.size() != blocks.size()) return invalid_argument("one leaf per block is needed");
    for (size_t i = 0; i < blocks.size(); i++) {
      P2P_TRY(check_size(blocks[i]));
      if (leaves[i].size != blocks[i].size()) return invalid_argument("a leaf does not match its block");
    }
    for (size_t i = 0; i < blocks.size(); i++) {
      merkle::Node leaf = leaves[i];
      leaf.index = 2 * batch_.length();
      P2P_TRY(txn_->put_last(storage::Table::blocks, storage::pair_key(core_.local_id_, batch_.length()), blocks[i]));
      batch_.append_leaf(leaf);
    }
    // Nodes go in sorted so most of them land past the table's end (page fill, not split).
    std::vector<merkle::Node> added = batch_.added_nodes();
    batch_.clear_added_nodes();
    std::sort(added.begin(), added.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
    for (const merkle::Node& n : added)
      P2P_TRY(txn_->put_last(storage::Table::tree, storage::pair_key(core_.local_id_, n.index), encode_node(n)));
    return {};
  }

  Status commit() override {
    if (!txn_) return invalid_argument("this write was already committed");
    const CoreState& old = core_.state_;
    if (batch_.length() == old.length) {  // nothing appended: nothing to sign
      txn_.reset();
      return {};
    }
    CoreState next{batch_.length(), batch_.byte_length(), old.fork, {}};
    auto signable = merkle::signable(core_.key_, batch_.hash(), next.length, next.fork);
    next.signature = manifest::encode_signature(0, crypto::sign(signable, *core_.key_pair_));
    Header h{core_.local_id_, manifest::encode(core_.manifest_), next};
    P2P_TRY(txn_->put(storage::Table::cores, core_.key_, encode_header(h)));
    P2P_TRY(txn_->commit());
    txn_.reset();
    core_.state_ = std::move(next);
    core_.roots_ = batch_.roots();
    return {};
  }

 private:
  static Status check_size(ByteView b) {
    if (b.size() <= kMaxBlockSize) return {};
    return invalid_argument("a block is " + std::to_string(b.size()) + " bytes; the limit is " +
                            std::to_string(kMaxBlockSize));
  }

  Core& core_;
  std::unique_ptr<storage::WriteTxn> txn_;
  merkle::TreeBatch batch_;
};

Result<std::unique_ptr<CoreReader>> Core::reader() {
  auto txn = store_.read();
  if (!txn.ok()) return txn.status();
  auto raw = (*txn)->get(storage::Table::cores, key_);
  if (!raw && !stored_) return std::unique_ptr<CoreReader>(new CoreReaderImpl(*this, std::move(*txn), {}));
  auto h = raw ? decode_header(*raw, label()) : Result<Header>(not_found("core " + label() + " vanished"));
  if (!h.ok()) return h.status();
  if (h->state.length != state_.length || h->state.signature != state_.signature) P2P_TRY(load(**txn));
  return std::unique_ptr<CoreReader>(new CoreReaderImpl(*this, std::move(*txn), state_));
}

Result<std::unique_ptr<CoreWriter>> Core::writer() {
  if (!key_pair_) return error(ErrorCode::permission, "core " + label() + " is read-only here (no secret key)");
  auto txn = store_.write();
  if (!txn.ok()) return txn.status();
  storage::WriteTxn& w = **txn;
  // Start from the stored header: another process may have appended since we read it.
  auto raw = w.get(storage::Table::cores, key_);
  auto stored = raw ? decode_header(*raw, label()) : Result<Header>(not_found("core " + label() + " vanished"));
  if (!stored.ok()) return stored.status();
  if (stored->state.length != state_.length || stored->state.fork != state_.fork ||
      stored->state.signature != state_.signature)
    P2P_TRY(load(w));
  return std::unique_ptr<CoreWriter>(new CoreWriterImpl(*this, std::move(*txn)));
}

Result<Bytes> Core::get(uint64_t index) {
  if (index >= state_.length) P2P_TRY(refresh());
  auto r = reader();
  if (!r.ok()) return r.status();
  auto block = (*r)->get(index);
  if (!block.ok()) return block.status();
  return to_bytes(*block);
}

std::vector<merkle::Node> Core::roots() { return roots_; }

Hash32 Core::tree_hash() { return merkle::tree_hash(roots_); }

Result<merkle::Node> Core::tree_node(uint64_t index) {
  auto txn = store_.read();
  if (!txn.ok()) return txn.status();
  TxnNodes nodes(**txn, local_id_);
  auto n = nodes.node(index);
  if (!n) return not_found("tree node " + std::to_string(index) + " is not stored");
  return *n;
}

Status Core::verify() {
  auto txn = store_.read();
  if (!txn.ok()) return txn.status();
  P2P_TRY(load(**txn));
  TxnNodes stored(**txn, local_id_);
  merkle::TreeBatch batch;
  for (uint64_t i = 0; i < state_.length; i++) {
    auto block = (*txn)->get(storage::Table::blocks, storage::pair_key(local_id_, i));
    if (!block) return corruption("core " + label() + ": block " + std::to_string(i) + " is missing");
    batch.append(*block);
    for (const merkle::Node& n : batch.added_nodes()) {
      auto s = stored.node(n.index);
      if (!s || *s != n) {
        std::string what = n.index == 2 * i ? "block " + std::to_string(i) : "tree node " + std::to_string(n.index);
        return corruption("core " + label() + ": " + what + " fails verification (the store is damaged)");
      }
    }
    batch.clear_added_nodes();
  }
  if (batch.roots() != roots_) return corruption("core " + label() + ": the tree roots do not match the blocks");
  return {};  // load() already checked the signature over these roots
}

Result<merkle::Proof> Core::proof(const merkle::ProofRequest& request) {
  auto r = reader();
  if (!r.ok()) return r.status();
  return (*r)->proof(request);
}

}  // namespace p2p
