// A B-tree key-value store in a core, byte-compatible with Hyperbee 2
// (spec c): every put or delete appends one block holding the entry and the
// copied-on-write path of tree nodes, so every version stays readable.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "core/bee_format.h"
#include "core/log.h"

namespace p2p {

// Documented limits: beyond them a clear error and nothing is written.
constexpr size_t kMaxBeeKeySize = 4096;
constexpr size_t kMaxBeeValueSize = 8 * 1024 * 1024;

struct BeeEntry {
  uint64_t seq = 0;  // the block that wrote this entry
  Bytes key;
  std::optional<Bytes> value;  // absent for a deletion (history)
};

struct BeeRange {
  std::optional<Bytes> gt, gte, lt, lte;
  bool reverse = false;
  int64_t limit = -1;  // -1: no limit
};

// One changed key between two versions: `newer` and/or `older` entry.
struct BeeChange {
  std::optional<BeeEntry> newer;
  std::optional<BeeEntry> older;
};

using EntryVisitor = std::function<bool(const BeeEntry&)>;  // false stops

class BeeState;
class BeeCache;

class Bee {
 public:
  // `core` must outlive the bee. `metadata` goes into the header block that
  // the first write appends (Hyperdrive sets it; a plain bee leaves it out).
  explicit Bee(Core& core, std::optional<bee::Metadata> metadata = std::nullopt);
  ~Bee();

  Core& core() { return core_; }
  // The version (core length); an empty bee is at version 1 like Hyperbee's.
  Result<uint64_t> version();

  // `at` reads an older version (0 = latest).
  Result<std::optional<BeeEntry>> get(ByteView key, uint64_t at = 0);
  Status put(ByteView key, ByteView value);
  // Hears the seq of every block that get and range read (repeats included).
  void set_block_observer(std::function<void(uint64_t seq)> observer) { observer_ = std::move(observer); }
  // False (and nothing written) when the key is absent.
  Result<bool> del(ByteView key);
  Status range(const BeeRange& range, const EntryVisitor& visit, uint64_t at = 0);
  // Changes from `older` to `newer`, in key order; equal subtrees are skipped.
  Status diff(uint64_t newer, uint64_t older, const std::function<bool(const BeeChange&)>& visit);
  // The entries written by blocks [from, to) (deletions have no value).
  Status history(uint64_t from, uint64_t to, bool reverse, const EntryVisitor& visit);

  // Many puts and deletes that see each other and land in one atomic append.
  // Holds the store's write lock until flushed or dropped (dropped = discarded).
  class Batch {
   public:
    ~Batch();
    Status put(ByteView key, ByteView value);
    Result<bool> del(ByteView key);
    Result<std::optional<BeeEntry>> get(ByteView key);
    size_t pending() const;
    Status flush();

   private:
    friend class Bee;
    explicit Batch(std::unique_ptr<BeeState> state);
    std::unique_ptr<BeeState> state_;
  };
  Result<std::unique_ptr<Batch>> batch();

 private:
  Core& core_;
  std::optional<bee::Metadata> metadata_;
  std::shared_ptr<BeeCache> cache_;  // decoded blocks, shared by every operation
  std::function<void(uint64_t)> observer_;
};

}  // namespace p2p
