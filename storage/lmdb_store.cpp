// The LMDB implementation of Store: one environment per home, one named
// database per table. LMDB serialises writers across processes with a robust
// mutex, so a writer killed mid-transaction leaves the last commit intact.
#include <fcntl.h>
#include <lmdb.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <cstring>

#include "storage/store.h"

namespace p2p::storage {

namespace {

MDB_val val(ByteView b) { return {b.size(), const_cast<uint8_t*>(b.data())}; }
ByteView view(const MDB_val& v) { return {static_cast<const uint8_t*>(v.mv_data), v.mv_size}; }

Status lmdb_status(int rc, const std::string& what) {
  if (rc == 0) return {};
  if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID)
    return corruption(what + ": the store is corrupted (" + mdb_strerror(rc) + ")");
  return io_error(what + ": " + mdb_strerror(rc));
}

int compare(ByteView a, ByteView b) {
  size_t n = std::min(a.size(), b.size());
  int c = n ? std::memcmp(a.data(), b.data(), n) : 0;
  if (c != 0) return c;
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

class LmdbStore;

// Pages of data.mdb this process has read stay in its resident set until it
// hands them back (LMDB does not expose its map's address). Counting the bytes
// of values read underestimates it (every get also touches LMDB's own branch
// pages and often a second table), so the resident file-backed size itself is
// checked every so many reads; above the bound the pages are handed back, and a
// long scan or a large import keeps a small resident set.
constexpr uint64_t kCheckEveryReads = 256;
constexpr uint64_t kMaxMappedResident = 24 * 1024 * 1024;

// File-backed resident bytes of this process (the third field of statm).
uint64_t resident_file_bytes() {
  int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  unsigned long size = 0, resident = 0, shared = 0;
  if (std::sscanf(buf, "%lu %lu %lu", &size, &resident, &shared) != 3) return 0;
  return static_cast<uint64_t>(shared) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

struct MappedSpan {
  void* map = nullptr;
  size_t map_size = 0;
  std::atomic<uint64_t> reads{0};  // reads may run on a helper thread

  void note() {
    if (++reads % kCheckEveryReads == 0 && resident_file_bytes() > kMaxMappedResident) release();
  }
  // The file-backed pages stay in the page cache and values handed out stay
  // valid (same addresses): touching them again just maps them back.
  void release() {
    if (map) ::madvise(map, map_size, MADV_DONTNEED);
  }
};

// Where LMDB mapped data.mdb, from /proc/self/maps (LMDB keeps the address to itself).
std::pair<void*, size_t> find_mapping(const std::string& data_file) {
  std::error_code ec;
  std::string want = std::filesystem::weakly_canonical(data_file, ec).string();
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    size_t slash = line.find('/');
    if (slash == std::string::npos || line.substr(slash) != want) continue;
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && hi > lo)
      return {reinterpret_cast<void*>(lo), hi - lo};
  }
  return {nullptr, 0};
}


class LmdbTxn : public WriteTxn {
 public:
  LmdbTxn(MDB_txn* txn, const std::array<MDB_dbi, kTableCount>& dbis, bool writable, MappedSpan& span)
      : txn_(txn), dbis_(dbis), writable_(writable), span_(span) {}
  ~LmdbTxn() override {
    if (txn_) mdb_txn_abort(txn_);
  }

  std::optional<ByteView> get(Table t, ByteView key) override {
    MDB_val k = val(key), v;
    int rc = mdb_get(txn_, dbi(t), &k, &v);
    if (rc == MDB_NOTFOUND) return std::nullopt;
    if (rc != 0) {
      remember(lmdb_status(rc, std::string("reading ") + table_name(t)));
      return std::nullopt;
    }
    span_.note();
    return view(v);
  }

  Status scan(Table t, ByteView from, ByteView to,
              const std::function<bool(ByteView, ByteView)>& visit) override {
    MDB_cursor* cur = nullptr;
    if (int rc = mdb_cursor_open(txn_, dbi(t), &cur)) return lmdb_status(rc, "opening a cursor");
    MDB_val k = val(from), v;
    int rc = from.empty() ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
      if (!to.empty() && compare(view(k), to) >= 0) break;
      span_.note();
      if (!visit(view(k), view(v))) break;
      rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) return lmdb_status(rc, std::string("scanning ") + table_name(t));
    return {};
  }

  Status status() const override { return status_; }

  Status put(Table t, ByteView key, ByteView value) override {
    if (!writable_) return invalid_argument("put in a read transaction");
    MDB_val k = val(key), v = val(value);
    Status s = lmdb_status(mdb_put(txn_, dbi(t), &k, &v, 0), std::string("writing ") + table_name(t));
    remember(s);
    return s;
  }

  Status put_last(Table t, ByteView key, ByteView value) override {
    if (!writable_) return invalid_argument("put in a read transaction");
    MDB_val k = val(key), v = val(value);
    int rc = mdb_put(txn_, dbi(t), &k, &v, MDB_APPEND);
    if (rc == MDB_KEYEXIST) return put(t, key, value);  // not past the end after all
    Status s = lmdb_status(rc, std::string("writing ") + table_name(t));
    remember(s);
    return s;
  }

  Status del(Table t, ByteView key) override {
    if (!writable_) return invalid_argument("delete in a read transaction");
    MDB_val k = val(key);
    int rc = mdb_del(txn_, dbi(t), &k, nullptr);
    if (rc == MDB_NOTFOUND) return {};
    Status s = lmdb_status(rc, std::string("deleting from ") + table_name(t));
    remember(s);
    return s;
  }

  Status commit() override {
    if (!status_.ok()) return status_;
    int rc = mdb_txn_commit(txn_);
    txn_ = nullptr;
    return lmdb_status(rc, "committing");
  }

 private:
  MDB_dbi dbi(Table t) const { return dbis_[static_cast<size_t>(t)]; }
  void remember(const Status& s) {
    if (status_.ok() && !s.ok()) status_ = s;
  }
  MDB_txn* txn_;
  std::array<MDB_dbi, kTableCount> dbis_;
  bool writable_;
  MappedSpan& span_;
  Status status_;
};

class LmdbStore : public Store {
 public:
  ~LmdbStore() override {
    if (env_) mdb_env_close(env_);
  }

  Status open(const std::string& dir, const LmdbOptions& options) {
    dir_ = dir;
    if (int rc = mdb_env_create(&env_)) return lmdb_status(rc, "creating the LMDB environment");
    mdb_env_set_maxdbs(env_, kTableCount + 4);
    mdb_env_set_mapsize(env_, options.map_size);
    mdb_env_set_maxreaders(env_, 256);
    unsigned flags = MDB_NOTLS | (options.sync ? 0 : MDB_NOSYNC);
    P2P_TRY(check_not_truncated(dir));
    if (int rc = mdb_env_open(env_, dir.c_str(), flags, 0600))
      return lmdb_status(rc, "opening the store in " + dir);
    int dead = 0;
    mdb_reader_check(env_, &dead);  // free slots of readers killed earlier
    std::tie(span_.map, span_.map_size) = find_mapping(dir + "/data.mdb");

    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_, nullptr, 0, &txn)) return lmdb_status(rc, "opening tables");
    for (int i = 0; i < kTableCount; i++) {
      if (int rc = mdb_dbi_open(txn, table_name(static_cast<Table>(i)), MDB_CREATE, &dbis_[i])) {
        mdb_txn_abort(txn);
        return lmdb_status(rc, "opening table " + std::string(table_name(static_cast<Table>(i))));
      }
    }
    return lmdb_status(mdb_txn_commit(txn), "creating tables");
  }

  bool concurrent() const override { return true; }

  void release_mapped_pages() override { span_.release(); }

  void drop_cached_pages() override {
    int fd = -1;
    if (mdb_env_get_fd(env_, &fd) == 0) ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  }

  Result<std::unique_ptr<Lock>> lock(std::string_view name) override {
    std::string dir = dir_ + "/locks";
    ::mkdir(dir.c_str(), 0700);
    std::string path = dir + "/" + std::string(name);
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return io_error("cannot open lock file " + path + ": " + std::strerror(errno));
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return io_error("cannot lock " + path + ": " + std::strerror(errno));
    }
    struct FileLock : Lock {
      int fd;
      explicit FileLock(int f) : fd(f) {}
      ~FileLock() override { ::close(fd); }  // closing releases the flock
    };
    return std::unique_ptr<Lock>(std::make_unique<FileLock>(fd));
  }

  Result<std::unique_ptr<ReadTxn>> read() override {
    auto t = begin(MDB_RDONLY);
    if (!t.ok()) return t.status();
    return std::unique_ptr<ReadTxn>(std::move(*t));
  }

  Result<std::unique_ptr<WriteTxn>> write() override {
    auto t = begin(0);
    if (!t.ok()) return t.status();
    return std::unique_ptr<WriteTxn>(std::move(*t));
  }

 private:
  Result<std::unique_ptr<LmdbTxn>> begin(unsigned flags) {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, flags, &txn);
    if (rc == MDB_MAP_RESIZED) {  // another process grew the map
      mdb_env_set_mapsize(env_, 0);
      rc = mdb_txn_begin(env_, nullptr, flags, &txn);
    }
    if (rc != 0) return lmdb_status(rc, "starting a transaction");
    return std::make_unique<LmdbTxn>(txn, dbis_, flags == 0, span_);
  }

  // A data file shorter than its own meta pages claim would fault (SIGBUS)
  // when LMDB touches the missing pages; refuse it with a clear error instead.
  static Status check_not_truncated(const std::string& dir) {
    std::string path = dir + "/data.mdb";
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 || st.st_size == 0) return {};
    auto bytes = read_meta(path);
    if (!bytes.ok()) return bytes.status();
    // Size the file only after reading the meta page: a writer in another
    // process writes its pages before the meta that counts them, so the file
    // seen now is at least that long unless it was really truncated.
    if (::stat(path.c_str(), &st) != 0) return io_error("cannot stat " + path);
    if (static_cast<uint64_t>(st.st_size) < *bytes)
      return corruption("the store's data file " + path + " is truncated (" + std::to_string(st.st_size) +
                        " bytes, needs " + std::to_string(*bytes) + ")");
    return {};
  }

  // The newest meta page's "last page" bound, in bytes (read through LMDB).
  static Result<uint64_t> read_meta(const std::string& path);

  MDB_env* env_ = nullptr;
  std::string dir_;
  MappedSpan span_;
  std::array<MDB_dbi, kTableCount> dbis_{};
};

}  // namespace

Result<uint64_t> LmdbStore::read_meta(const std::string& path) {
  // Use LMDB itself to read the meta pages: mdb_env_info on a read-only
  // environment opened without touching data pages.
  MDB_env* env = nullptr;
  if (mdb_env_create(&env) != 0) return io_error("cannot create LMDB environment");
  mdb_env_set_maxdbs(env, kTableCount + 4);
  int rc = mdb_env_open(env, path.c_str(), MDB_NOSUBDIR | MDB_RDONLY | MDB_NOLOCK, 0600);
  if (rc != 0) {
    mdb_env_close(env);
    return lmdb_status(rc, "reading the store's header in " + path);
  }
  MDB_envinfo info;
  MDB_stat st;
  mdb_env_info(env, &info);
  mdb_env_stat(env, &st);
  mdb_env_close(env);
  return (static_cast<uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
}

const char* table_name(Table t) {
  switch (t) {
    case Table::meta: return "meta";
    case Table::cores: return "cores";
    case Table::names: return "names";
    case Table::blocks: return "blocks";
    case Table::tree: return "tree";
  }
  return "?";
}

std::array<uint8_t, 16> pair_key(uint64_t a, uint64_t b) {
  std::array<uint8_t, 16> k;
  for (int i = 0; i < 8; i++) {
    k[i] = static_cast<uint8_t>(a >> (56 - 8 * i));
    k[8 + i] = static_cast<uint8_t>(b >> (56 - 8 * i));
  }
  return k;
}

Result<std::unique_ptr<Store>> open_lmdb(const std::string& dir, const LmdbOptions& options) {
  auto store = std::make_unique<LmdbStore>();
  P2P_TRY(store->open(dir, options));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace p2p::storage
