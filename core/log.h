// A Hypercore 11 compatible signed append-only log on a Store. Each append
// (one block or a batch) writes its blocks, the new tree nodes and the newly
// signed header in one transaction. Several processes may append to the same
// core: every write starts from the header stored at that moment.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "core/crypto.h"
#include "core/manifest.h"
#include "core/merkle.h"
#include "storage/store.h"

namespace p2p {

// Largest block we accept, from the user or the network.
constexpr size_t kMaxBlockSize = 16 * 1024 * 1024;

// A consistent view of one core for many reads: one storage read transaction.
class CoreReader {
 public:
  virtual ~CoreReader() = default;
  virtual uint64_t length() const = 0;
  // The block, checked against its leaf hash; the view lives as long as the reader.
  virtual Result<ByteView> get(uint64_t index) = 0;
  // `count` consecutive blocks, checked (in parallel when large).
  virtual Result<std::vector<ByteView>> get_range(uint64_t first, uint64_t count);
  // Whether block `index` is stored here (a replica may hold only some).
  virtual bool has(uint64_t index) { return index < length(); }
  // A proof as a replication peer would be sent (block values filled in).
  virtual Result<merkle::Proof> proof(const merkle::ProofRequest& request);
};

class Core;
class BlockBatch;

// Supplies blocks a replica lacks, from the network: verified and stored
// before they are returned. Installed on a Core by the replication layer.
class BlockFetcher {
 public:
  virtual ~BlockFetcher() = default;
  virtual Result<Bytes> fetch(Core& core, uint64_t index) = 0;
  // `count` blocks from `first` (a fetcher that can, asks for them all at once).
  virtual Result<std::vector<Bytes>> fetch_range(Core& core, uint64_t first, uint64_t count);
};

// One write transaction on a core: blocks appended through it are readable
// at once and become durable together, under one signature, at commit().
// Dropping it uncommitted leaves the core untouched.
class CoreWriter : public CoreReader {
 public:
  virtual Status append(std::span<const ByteView> blocks) = 0;
  // The same with each block's leaf already hashed (merkle::leaf_nodes, from
  // any first index: the writer numbers them), so a caller can hash the next
  // batch while this one commits.
  virtual Status append(std::span<const ByteView> blocks, std::span<const merkle::Node> leaves) = 0;
  virtual Status commit() = 0;
};

struct CoreState {
  uint64_t length = 0;
  uint64_t byte_length = 0;
  uint64_t fork = 0;
  Bytes signature;  // signature container over the tree at `length`
};

class Core {
 public:
  // Opens the core for `key_pair` (default manifest), creating it when new.
  static Result<std::unique_ptr<Core>> open_writable(storage::Store& store, const crypto::KeyPair& key_pair);
  // The same with an explicit manifest whose first signer is `key_pair`
  // (Hyperdrive's blobs core shares the db core's key pair this way).
  static Result<std::unique_ptr<Core>> open_writable(storage::Store& store, const crypto::KeyPair& key_pair,
                                                     const manifest::Manifest& manifest);
  // Opens a stored core by key, read-only; not_found when this store lacks it.
  static Result<std::unique_ptr<Core>> open_by_key(storage::Store& store, const Key32& key);
  // Opens a core to replicate from peers: the stored one, or an empty one
  // that is written on the first verified data (which must bring the manifest).
  static Result<std::unique_ptr<Core>> open_replica(storage::Store& store, const Key32& key);

  const Key32& key() const { return key_; }
  const Hash32& discovery_key() const { return discovery_key_; }
  const manifest::Manifest& manifest() const { return manifest_; }
  bool writable() const { return key_pair_.has_value(); }
  uint64_t length() const { return state_.length; }
  uint64_t byte_length() const { return state_.byte_length; }
  uint64_t fork() const { return state_.fork; }
  const Bytes& signature() const { return state_.signature; }
  // A short name for messages: the key's z-base-32 form, abbreviated.
  std::string label() const;

  // Appends and commits; returns the new length.
  Result<uint64_t> append(ByteView block);
  Result<uint64_t> append(std::span<const ByteView> blocks);
  // The block, checked against its stored leaf hash.
  Result<Bytes> get(uint64_t index);
  // Reads and read-modify-append cycles (a B-tree put) that must see one state.
  Result<std::unique_ptr<CoreReader>> reader();
  // Holds the store's write lock until committed or dropped.
  Result<std::unique_ptr<CoreWriter>> writer();
  // Re-reads the header (another process may have appended).
  Status refresh();

  std::vector<merkle::Node> roots();
  Hash32 tree_hash();
  Result<merkle::Node> tree_node(uint64_t index);
  // Rehashes every block and node and checks the signature over the roots.
  Status verify();
  // A proof as a replication peer would be sent (block values filled in).
  Result<merkle::Proof> proof(const merkle::ProofRequest& request);

  // ---- replication -----------------------------------------------------
  // False for a replica that has not received its manifest yet.
  bool has_manifest() const { return stored_; }
  // Whether block `index` is stored (a replica may hold only some).
  Result<bool> has(uint64_t index);
  // How many blocks from 0 on are stored without a gap.
  Result<uint64_t> contiguous_length();
  // Tree levels above leaf `2 * index` that a proof must bring (spec a.5):
  // the count of ancestors walked before reaching a stored node.
  Result<uint64_t> missing_nodes(uint64_t block_index);
  // Checks untrusted data from a peer (Merkle proof, upgrade signature, the
  // manifest against the key) and stores what it proves, in one
  // transaction. False when it brought nothing new or no longer applies
  // (our length moved on); an error when the data is invalid.
  Result<bool> apply(const merkle::Proof& proof, const std::optional<Bytes>& manifest);
  // The same for many replies in one transaction (one commit per batch of
  // downloaded blocks). On an invalid item the ones before it are still
  // stored, and the error names it; `applied[i]` tells which brought news.
  struct Incoming {
    const merkle::Proof* proof;
    const std::optional<Bytes>* manifest;
  };
  Status apply(std::span<const Incoming> items, std::vector<bool>& applied);
  // The same batch as a job another thread can run while this one goes on
  // receiving, when it can only add blocks and nodes (no upgrade, the core
  // stored here already). The job does not touch this Core; the items must
  // outlive it. nullopt: use apply().
  std::optional<BlockBatch> block_batch(std::span<const Incoming> items) const;
  // Blocks a reader lacks are asked from here (null: none).
  void set_fetcher(BlockFetcher* fetcher) { fetcher_ = fetcher; }
  BlockFetcher* fetcher() const { return fetcher_; }

  ~Core();

 private:
  Core(storage::Store& store, Key32 key);
  Status load(storage::ReadTxn& txn);
  Result<std::vector<merkle::Node>> load_roots(storage::ReadTxn& txn, uint64_t length);
  Result<bool> apply_in(storage::WriteTxn& txn, const merkle::Proof& proof, const std::optional<Bytes>& manifest);

  friend class CoreWriterImpl;
  friend class CoreReaderImpl;
  storage::Store& store_;
  Key32 key_;
  Hash32 discovery_key_{};
  manifest::Manifest manifest_;
  std::optional<crypto::KeyPair> key_pair_;
  uint64_t local_id_ = 0;
  bool stored_ = false;  // the header exists in the store
  Bytes header_raw_;     // the stored header last loaded (refresh() skips an unchanged one)
  BlockFetcher* fetcher_ = nullptr;
  CoreState state_;
  std::vector<merkle::Node> roots_;
};

// Block replies verified and stored in one transaction on any thread (see
// Core::block_batch): it touches the store and the replies only.
class BlockBatch {
 public:
  // stored: committed, `applied[i]` tells which brought a new block. stale:
  // the stored core changed meanwhile; invalid: an item failed to verify or
  // the store failed. Both store nothing: Core::apply sorts them out and
  // names the bad item.
  enum class Outcome { stored, stale, invalid };
  Outcome run(std::vector<bool>& applied);

 private:
  friend class Core;
  storage::Store* store_ = nullptr;
  Key32 key_{};
  std::string label_;
  uint64_t local_id_ = 0;
  CoreState state_;
  std::vector<merkle::Node> roots_;
  std::vector<const merkle::Proof*> proofs_;
};

}  // namespace p2p
