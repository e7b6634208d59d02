// The in-memory Store for unit tests: same interface and atomicity (a write
// transaction buffers its changes and applies them on commit), no files.
#include <map>

#include "storage/store.h"

namespace p2p::storage {

namespace {

using Map = std::map<Bytes, Bytes>;
using Tables = std::array<Map, kTableCount>;

class MemoryTxn : public WriteTxn {
 public:
  MemoryTxn(Tables& tables, bool writable) : tables_(tables), writable_(writable) {}

  std::optional<ByteView> get(Table t, ByteView key) override {
    Bytes k = to_bytes(key);
    auto& pending = pending_[idx(t)];
    if (auto it = pending.find(k); it != pending.end()) {
      if (!it->second) return std::nullopt;
      return ByteView(*it->second);
    }
    auto& m = tables_[idx(t)];
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return ByteView(it->second);
  }

  Status scan(Table t, ByteView from, ByteView to,
              const std::function<bool(ByteView, ByteView)>& visit) override {
    // Merge committed entries with this transaction's pending changes.
    std::map<Bytes, Bytes> merged(tables_[idx(t)].lower_bound(to_bytes(from)), tables_[idx(t)].end());
    for (auto& [k, v] : pending_[idx(t)]) {
      if (v) merged[k] = *v;
      else merged.erase(k);
    }
    Bytes end = to_bytes(to);
    for (auto it = merged.lower_bound(to_bytes(from)); it != merged.end(); ++it) {
      if (!end.empty() && it->first >= end) break;
      if (!visit(it->first, it->second)) break;
    }
    return {};
  }

  Status status() const override { return {}; }

  Status put(Table t, ByteView key, ByteView value) override {
    if (!writable_) return invalid_argument("put in a read transaction");
    pending_[idx(t)][to_bytes(key)] = to_bytes(value);
    return {};
  }

  Status del(Table t, ByteView key) override {
    if (!writable_) return invalid_argument("delete in a read transaction");
    pending_[idx(t)][to_bytes(key)] = std::nullopt;
    return {};
  }

  Status commit() override {
    for (int i = 0; i < kTableCount; i++) {
      for (auto& [k, v] : pending_[i]) {
        if (v) tables_[i][k] = *v;
        else tables_[i].erase(k);
      }
      pending_[i].clear();
    }
    return {};
  }

 private:
  static size_t idx(Table t) { return static_cast<size_t>(t); }
  Tables& tables_;
  bool writable_;
  std::array<std::map<Bytes, std::optional<Bytes>>, kTableCount> pending_;
};

class MemoryStore : public Store {
 public:
  Result<std::unique_ptr<ReadTxn>> read() override {
    return std::unique_ptr<ReadTxn>(std::make_unique<MemoryTxn>(tables_, false));
  }
  Result<std::unique_ptr<Lock>> lock(std::string_view) override {
    return std::unique_ptr<Lock>(std::make_unique<Lock>());  // one process: nothing to exclude
  }
  Result<std::unique_ptr<WriteTxn>> write() override {
    return std::unique_ptr<WriteTxn>(std::make_unique<MemoryTxn>(tables_, true));
  }

 private:
  Tables tables_;
};

}  // namespace

std::unique_ptr<Store> open_memory() { return std::make_unique<MemoryStore>(); }

}  // namespace p2p::storage
