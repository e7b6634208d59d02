// The replication half of Core: what a replica holds, and storing data a
// peer proved (spec a.5). Every block, node and upgrade is verified against
// the Merkle tree and the signature before anything is written.
#include "core/encoding.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/log_format.h"

namespace p2p {

using namespace detail;

namespace {

// Checks a reply against the tree we trust (`roots`, and the nodes stored).
Result<merkle::VerifiedProof> verify_reply(const merkle::Proof& proof, uint64_t length,
                                           const std::vector<merkle::Node>& roots, merkle::NodeSource& trusted) {
  if (!proof.upgrade && proof.block && proof.block->index >= length)
    return error(ErrorCode::verification, "the peer sent block " + std::to_string(proof.block->index) +
                                              " beyond the signed length without an upgrade");
  if (proof.block && proof.block->value.size() > kMaxBlockSize)
    return error(ErrorCode::verification, "the peer sent a block larger than the limit");
  auto verified = merkle::verify_proof(proof, roots, trusted);
  if (!verified.ok()) return error(ErrorCode::verification, "bad proof: " + verified.status().message());
  return verified;
}

// Stores the nodes and the block a verified reply proves; true when the block is new here.
Result<bool> store_proven(storage::WriteTxn& w, uint64_t local_id, const merkle::Proof& proof,
                          const merkle::VerifiedProof& verified) {
  auto put_node = [&](const merkle::Node& n) -> Status {
    auto key = storage::pair_key(local_id, n.index);
    if (w.get(storage::Table::tree, key)) return {};
    return w.put(storage::Table::tree, key, encode_node(n));
  };
  for (const merkle::Node& n : verified.nodes) P2P_TRY(put_node(n));
  for (const merkle::Node& n : verified.tree.added_nodes()) P2P_TRY(put_node(n));
  if (!proof.block) return false;
  auto key = storage::pair_key(local_id, proof.block->index);
  if (w.get(storage::Table::blocks, key)) return false;
  P2P_TRY(w.put(storage::Table::blocks, key, proof.block->value));
  return true;
}

}  // namespace

Result<bool> Core::has(uint64_t index) {
  auto r = reader();
  if (!r.ok()) return r.status();
  return (*r)->has(index);
}

Result<uint64_t> Core::contiguous_length() {
  P2P_TRY(refresh());
  if (!stored_) return uint64_t{0};
  auto txn = store_.read();
  if (!txn.ok()) return txn.status();
  uint64_t next = 0;
  auto from = storage::pair_key(local_id_, 0);
  auto to = storage::pair_key(local_id_ + 1, 0);
  P2P_TRY((*txn)->scan(storage::Table::blocks, from, to, [&](ByteView key, ByteView) {
    enc::Decoder d(key.subspan(8));
    if (d.u64be() != next) return false;
    next++;
    return true;
  }));
  return std::min(next, state_.length);
}

Result<uint64_t> Core::missing_nodes(uint64_t block_index) {
  const uint64_t head = 2 * state_.length;
  flat::Iterator ite(2 * block_index);
  if (2 * block_index >= head) return uint64_t{0};  // not in the tree we trust: unknown
  auto txn = store_.read();
  if (!txn.ok()) return txn.status();
  TxnNodes nodes(**txn, local_id_);
  uint64_t count = 0;
  while (!ite.contains(head) && !(stored_ && nodes.node(ite.index()))) {
    if (++count >= 64) break;  // deeper than any tree: stop counting
    ite.parent();
  }
  return count;
}

Result<bool> Core::apply(const merkle::Proof& proof, const std::optional<Bytes>& manifest) {
  std::vector<bool> applied;
  Incoming item{&proof, &manifest};
  P2P_TRY(apply(std::span<const Incoming>(&item, 1), applied));
  return static_cast<bool>(applied[0]);
}

Status Core::apply(std::span<const Incoming> items, std::vector<bool>& applied) {
  applied.assign(items.size(), false);
  if (items.empty()) return {};
  // What the transaction changes in memory, to undo when it is abandoned.
  const CoreState saved_state = state_;
  const std::vector<merkle::Node> saved_roots = roots_;
  const bool saved_stored = stored_;
  const uint64_t saved_id = local_id_;
  auto undo = [&] {
    state_ = saved_state;
    roots_ = saved_roots;
    stored_ = saved_stored;
    local_id_ = saved_id;
  };
  {
    auto txn = store_.write();
    if (!txn.ok()) return txn.status();
    size_t i = 0;
    Status failed;
    for (; i < items.size(); i++) {
      auto r = apply_in(**txn, *items[i].proof, *items[i].manifest);
      if (!r.ok()) {
        failed = r.status();
        break;
      }
      applied[i] = *r;
    }
    if (failed.ok()) {
      Status s = (*txn)->commit();
      if (!s.ok()) undo();
      return s;
    }
    undo();
    if (items.size() == 1) return failed;
  }
  // One item was bad: keep the good ones before it, each on its own.
  applied.assign(items.size(), false);
  for (const Incoming& item : items) {
    auto r = apply(*item.proof, *item.manifest);
    if (!r.ok()) return r.status();
    applied[&item - items.data()] = *r;
  }
  return {};  // (not reached: the bad item fails above)
}

Result<bool> Core::apply_in(storage::WriteTxn& w, const merkle::Proof& proof, const std::optional<Bytes>& manifest_bytes) {
  if (auto raw = w.get(storage::Table::cores, key_)) {
    auto h = decode_header(*raw, label());
    if (!h.ok()) return h.status();
    if (!stored_ || h->state.length != state_.length || h->state.signature != state_.signature) P2P_TRY(load(w));
  } else {
    if (!manifest_bytes) return error(ErrorCode::verification, "the peer sent data before the core's manifest");
    auto m = manifest::decode(*manifest_bytes);
    if (!m.ok()) return error(ErrorCode::verification, "the peer sent a malformed manifest: " + m.status().message());
    if (manifest::hash(*m) != key_)
      return error(ErrorCode::verification, "the peer sent a manifest that does not hash to the core key");
    auto id = allocate_local_id(w);
    if (!id.ok()) return id.status();
    P2P_TRY(w.put(storage::Table::cores, key_, encode_header(Header{*id, manifest::encode(*m), {}})));
    P2P_TRY(load(w));
  }
  // Data for another fork, or an upgrade from a length we no longer have
  // (another peer upgraded us meanwhile): not wrong, just stale.
  if (proof.fork != state_.fork) return false;
  if (proof.upgrade && proof.upgrade->start != state_.length) return false;
  TxnNodes trusted(w, local_id_);
  auto verified = verify_reply(proof, state_.length, roots_, trusted);
  if (!verified.ok()) return verified.status();
  CoreState next = state_;
  if (verified->upgraded) {
    const merkle::TreeBatch& tree = verified->tree;
    Status s = manifest::verify(manifest_, key_, tree.hash(), tree.length(), proof.fork, proof.upgrade->signature);
    if (!s.ok()) return error(ErrorCode::verification, "bad signature on the upgrade: " + s.message());
    next = CoreState{tree.length(), tree.byte_length(), proof.fork, proof.upgrade->signature};
  }
  auto stored = store_proven(w, local_id_, proof, *verified);
  if (!stored.ok()) return stored.status();
  if (verified->upgraded) {
    P2P_TRY(w.put(storage::Table::cores, key_, encode_header(Header{local_id_, manifest::encode(manifest_), next})));
    state_ = std::move(next);
    roots_ = verified->tree.roots();
  }
  return verified->upgraded || *stored;
}

std::optional<BlockBatch> Core::block_batch(std::span<const Incoming> items) const {
  if (!stored_ || items.empty() || !store_.concurrent()) return std::nullopt;
  for (const Incoming& item : items)
    if (item.proof->upgrade) return std::nullopt;
  BlockBatch batch;
  batch.store_ = &store_;
  batch.key_ = key_;
  batch.label_ = label();
  batch.local_id_ = local_id_;
  batch.state_ = state_;
  batch.roots_ = roots_;
  for (const Incoming& item : items) batch.proofs_.push_back(item.proof);
  return batch;
}

BlockBatch::Outcome BlockBatch::run(std::vector<bool>& applied) {
  applied.assign(proofs_.size(), false);
  auto txn = store_->write();
  if (!txn.ok()) return Outcome::invalid;
  storage::WriteTxn& w = **txn;
  // The core as stored must still be the one the batch was made for.
  auto raw = w.get(storage::Table::cores, key_);
  if (!raw) return Outcome::stale;
  auto h = decode_header(*raw, label_);
  if (!h.ok() || h->local_id != local_id_ || h->state.length != state_.length ||
      h->state.fork != state_.fork || h->state.signature != state_.signature)
    return Outcome::stale;
  TxnNodes trusted(w, local_id_);
  for (size_t i = 0; i < proofs_.size(); i++) {
    const merkle::Proof& proof = *proofs_[i];
    if (proof.fork != state_.fork) continue;  // stale, not wrong
    auto verified = verify_reply(proof, state_.length, roots_, trusted);
    if (!verified.ok() || verified->upgraded) return Outcome::invalid;
    auto stored = store_proven(w, local_id_, proof, *verified);
    if (!stored.ok()) return Outcome::invalid;
    applied[i] = *stored;
  }
  if (!w.commit().ok()) return Outcome::invalid;
  return Outcome::stored;
}

}  // namespace p2p
