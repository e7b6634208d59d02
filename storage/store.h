// Persistence only: bytes in, bytes out. A Store holds a fixed set of tables
// (ordered byte-keyed maps) and hands out read and write transactions. A
// write transaction is atomic: after a crash either all its puts are there or
// none. Implementations: LMDB (one environment per home, shared by processes)
// and memory (unit tests).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/bytes.h"
#include "base/result.h"

namespace p2p::storage {

enum class Table : uint8_t {
  meta,    // counters and format version
  cores,   // core key -> core header
  names,   // namespace || name -> core key
  blocks,  // local core id (u64be) || block index (u64be) -> block bytes
  tree,    // local core id (u64be) || tree index (u64be) -> tree node
};
constexpr int kTableCount = 5;
const char* table_name(Table t);

class ReadTxn {
 public:
  virtual ~ReadTxn() = default;
  // The value, valid until the transaction ends; nullopt when absent. A
  // storage failure also yields nullopt and makes status() an error.
  virtual std::optional<ByteView> get(Table table, ByteView key) = 0;
  // Visits entries with from <= key < to in key order (an empty `to` means no
  // upper bound) until `visit` returns false.
  virtual Status scan(Table table, ByteView from, ByteView to,
                      const std::function<bool(ByteView key, ByteView value)>& visit) = 0;
  virtual Status status() const = 0;
};

class WriteTxn : public ReadTxn {
 public:
  virtual Status put(Table table, ByteView key, ByteView value) = 0;
  // A put whose key is expected to sort after every key in the table (as a
  // log's next block does); lets LMDB fill pages instead of splitting them.
  // Works like put() when the expectation is wrong.
  virtual Status put_last(Table table, ByteView key, ByteView value) { return put(table, key, value); }
  virtual Status del(Table table, ByteView key) = 0;
  // Makes every change durable at once. A transaction dropped without commit aborts.
  virtual Status commit() = 0;
};

class Store {
 public:
  virtual ~Store() = default;
  virtual Result<std::unique_ptr<ReadTxn>> read() = 0;
  // Write transactions are serialised across threads and processes.
  virtual Result<std::unique_ptr<WriteTxn>> write() = 0;
  // Whether one thread may write while others read (LMDB: yes; the in-memory
  // store of unit tests: no).
  virtual bool concurrent() const { return false; }
  // Lets go of memory-mapped pages this process has read (they stay in the
  // page cache): keeps a long streaming read from growing the resident set.
  virtual void release_mapped_pages() {}
  // Lets the kernel drop the store's clean cached pages (after a large
  // committed write): a streamed file does not fill the page cache.
  virtual void drop_cached_pages() {}

  // An advisory lock, across processes, on `name` (held until destroyed):
  // for multi-transaction writes that must not interleave, like one file's
  // content blocks.
  class Lock {
   public:
    virtual ~Lock() = default;
  };
  virtual Result<std::unique_ptr<Lock>> lock(std::string_view name) = 0;
};

struct LmdbOptions {
  uint64_t map_size = uint64_t{1} << 40;  // address space reserved; the file grows as needed
  bool sync = true;                       // fsync on commit (power-loss safety)
};

// Opens (creating if needed) the environment in `dir`. Detects a truncated
// data file before any page of it is touched.
Result<std::unique_ptr<Store>> open_lmdb(const std::string& dir, const LmdbOptions& options = {});
std::unique_ptr<Store> open_memory();

// u64 big-endian composite keys keep LMDB's order equal to the log's order.
std::array<uint8_t, 16> pair_key(uint64_t a, uint64_t b);

}  // namespace p2p::storage
