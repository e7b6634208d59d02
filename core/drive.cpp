#include "core/drive.h"

#include <nlohmann/json.hpp>

#include <future>
#include <vector>

namespace p2p {

namespace {

// Sub-encoder prefix of Hyperdrive's file entries: "files" 0x00.
const std::string kFilesPrefix = std::string("files") + '\0';
// How many content blocks go into one committed transaction while streaming.
constexpr size_t kBlocksPerCommit = 128;
// Release mapped pages after this many bytes read (bounded resident memory).
constexpr uint64_t kReleaseEvery = 16 * 1024 * 1024;

// A batch of a streamed file: its bytes cut into blocks, with their leaves.
struct Batch {
  std::vector<uint8_t> buf = std::vector<uint8_t>(kBlobBlockSize * kBlocksPerCommit);
  size_t filled = 0;
  bool eof = false;
  Status status;
  std::vector<ByteView> blocks;
  std::vector<merkle::Node> leaves;
};

// Reads up to a batch from `source` (eof when it ends first) and hashes it.
void fill_batch(const ByteSource& source, Batch& b) {
  b.filled = 0;
  b.blocks.clear();
  while (b.filled < b.buf.size()) {
    auto n = source(b.buf.data() + b.filled, b.buf.size() - b.filled);
    if (!n.ok()) {
      b.status = n.status();
      return;
    }
    if (*n == 0) {
      b.eof = true;
      break;
    }
    b.filled += *n;
  }
  for (size_t off = 0; off < b.filled; off += kBlobBlockSize)
    b.blocks.emplace_back(b.buf.data() + off, std::min(kBlobBlockSize, b.filled - off));
  b.leaves = merkle::leaf_nodes(0, b.blocks);
}

Bytes db_key(std::string_view path) {
  Bytes k(kFilesPrefix.begin(), kFilesPrefix.end());
  k.insert(k.end(), path.begin(), path.end());
  return k;
}

std::string encode_entry(bool executable, const std::optional<std::string>& linkname, const std::optional<BlobId>& blob,
                         std::string_view metadata) {
  // Hyperdrive's JSON, field order included.
  std::string out = std::string("{\"executable\":") + (executable ? "true" : "false") + ",\"linkname\":";
  out += linkname ? nlohmann::json(*linkname).dump() : "null";
  out += ",\"blob\":";
  if (blob) {
    out += "{\"blockOffset\":" + std::to_string(blob->block_offset) + ",\"byteOffset\":" +
           std::to_string(blob->byte_offset) + ",\"blockLength\":" + std::to_string(blob->block_length) +
           ",\"byteLength\":" + std::to_string(blob->byte_length) + "}";
  } else {
    out += "null";
  }
  out += ",\"metadata\":" + std::string(metadata) + "}";
  return out;
}

Result<DriveEntry> decode_entry(const BeeEntry& e) {
  DriveEntry d;
  d.seq = e.seq;
  d.path = std::string(as_chars(e.key).substr(kFilesPrefix.size()));
  auto bad = [&](const char* why) { return corruption("drive entry " + d.path + ": " + why); };
  if (!e.value) return bad("has no value");
  auto j = nlohmann::ordered_json::parse(as_chars(*e.value), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("is not a JSON object");
  if (auto it = j.find("executable"); it != j.end() && it->is_boolean()) d.executable = it->get<bool>();
  if (auto it = j.find("linkname"); it != j.end() && it->is_string()) d.linkname = it->get<std::string>();
  if (auto it = j.find("blob"); it != j.end() && it->is_object()) {
    BlobId b;
    for (auto [field, target] : {std::pair{"blockOffset", &b.block_offset}, {"blockLength", &b.block_length},
                                  {"byteOffset", &b.byte_offset}, {"byteLength", &b.byte_length}}) {
      auto f = it->find(field);
      if (f == it->end() || !f->is_number_unsigned()) return bad("has a malformed blob pointer");
      *target = f->get<uint64_t>();
    }
    d.blob = b;
  }
  if (auto it = j.find("metadata"); it != j.end()) d.metadata = it->dump();
  return d;
}

Status check_metadata(std::string_view metadata) {
  auto j = nlohmann::json::parse(metadata, nullptr, false);
  if (j.is_discarded()) return invalid_argument("metadata must be JSON");
  return {};
}

}  // namespace

Result<std::string> normalize_drive_path(std::string_view name) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= name.size(); i++) {
    if (i < name.size() && name[i] != '/' && name[i] != '\\') continue;
    std::string_view part = name.substr(start, i - start);
    start = i + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return invalid_argument("the path '" + std::string(name) + "' climbs above the drive's root");
      parts.pop_back();
      continue;
    }
    if (part.find('\0') != std::string_view::npos) return invalid_argument("a path cannot contain a NUL byte");
    parts.push_back(part);
  }
  if (parts.empty()) return invalid_argument("'" + std::string(name) + "' names the drive's root, not a file");
  std::string out;
  for (auto p : parts) out += "/" + std::string(p);
  return out;
}

Result<std::string> normalize_drive_folder(std::string_view name) {
  auto p = normalize_drive_path(name);
  if (p.ok()) return p;
  if (p.status().message().find("root") != std::string::npos && p.status().message().find("climbs") == std::string::npos)
    return std::string("/");
  return p.status();
}

manifest::Manifest Drive::blobs_manifest(const manifest::Manifest& db, const Key32& db_key) {
  static const Hash32 kBlobsNs = crypto::namespaces("hyperdrive", {0})[0];
  manifest::Manifest m;
  m.version = db.version;
  m.allow_patch = db.allow_patch;
  m.quorum = db.quorum;
  for (const auto& s : db.signers) {
    manifest::Signer x = s;
    x.ns = crypto::hash({kBlobsNs, db_key, s.ns});
    m.signers.push_back(x);
  }
  return m;
}

Drive::Drive(storage::Store& store, std::unique_ptr<Core> db, std::unique_ptr<Core> blobs)
    : store_(store), db_(std::move(db)), blobs_(std::move(blobs)) {
  bee_ = std::make_unique<Bee>(*db_, bee::Metadata{});
}

Result<std::unique_ptr<Drive>> Drive::open_writable(Corestore& cs, const Hash32& ns) {
  auto db = cs.get("db", ns);
  if (!db.ok()) return db.status();
  auto kp = cs.key_pair("db", ns);
  if (!kp.ok()) return kp.status();
  auto blobs = Core::open_writable(cs.store(), *kp, blobs_manifest((*db)->manifest(), (*db)->key()));
  if (!blobs.ok()) return blobs.status();
  return std::unique_ptr<Drive>(new Drive(cs.store(), std::move(*db), std::move(*blobs)));
}

Result<std::unique_ptr<Drive>> Drive::open_by_key(storage::Store& store, const Key32& key) {
  auto db = Core::open_by_key(store, key);
  if (!db.ok()) return db.status();
  Key32 blobs_key = manifest::hash(blobs_manifest((*db)->manifest(), key));
  auto blobs = Core::open_by_key(store, blobs_key);
  if (!blobs.ok()) return blobs.status();
  return std::unique_ptr<Drive>(new Drive(store, std::move(*db), std::move(*blobs)));
}

Result<std::unique_ptr<Drive>> Drive::from_cores(storage::Store& store, std::unique_ptr<Core> db,
                                                std::unique_ptr<Core> blobs) {
  if (blobs->key() != manifest::hash(blobs_manifest(db->manifest(), db->key())))
    return invalid_argument("core " + blobs->label() + " is not the blobs core of drive " + db->label());
  return std::unique_ptr<Drive>(new Drive(store, std::move(db), std::move(blobs)));
}

Status Drive::put(std::string_view name, const ByteSource& source, bool executable, std::string_view metadata) {
  auto path = normalize_drive_path(name);
  if (!path.ok()) return path.status();
  P2P_TRY(check_metadata(metadata));
  // One file's blocks must be contiguous: no other writer may append between our commits.
  auto lock = store_.lock(to_hex(blobs_->key()));
  if (!lock.ok()) return lock.status();

  // Two batches in flight: while one commits (LMDB copies, writes and
  // fsyncs it), the next is read from the source and hashed on a thread.
  Batch batches[2];
  auto next = std::async(std::launch::async, fill_batch, std::cref(source), std::ref(batches[0]));
  std::optional<BlobId> blob;
  for (size_t turn = 0;; turn++) {
    Batch& batch = batches[turn % 2];
    next.get();
    if (!batch.status.ok()) return batch.status;
    if (!batch.eof) next = std::async(std::launch::async, fill_batch, std::cref(source), std::ref(batches[(turn + 1) % 2]));
    if (!batch.blocks.empty()) {
      auto w = blobs_->writer();
      if (!w.ok()) return w.status();
      if (!blob) blob = BlobId{(*w)->length(), 0, blobs_->byte_length(), 0};
      P2P_TRY((*w)->append(batch.blocks, batch.leaves));
      P2P_TRY((*w)->commit());
      // A big file's blocks are on disk now: let them leave the page cache
      // rather than push out everything else (and make the kernel find a
      // fresh page for every 4 KiB of it).
      if (turn > 0 || !batch.eof) store_.drop_cached_pages();
      blob->block_length += batch.blocks.size();
      blob->byte_length += batch.filled;
    }
    if (batch.eof) break;
  }
  // Hyperdrive stores an empty file as a zero-length blob at the current end.
  if (!blob) blob = BlobId{blobs_->length(), 0, blobs_->byte_length(), 0};
  std::string value = encode_entry(executable, std::nullopt, blob, metadata);
  return bee_->put(db_key(*path), as_bytes(value));
}

Status Drive::put(std::string_view path, ByteView data, bool executable, std::string_view metadata) {
  size_t offset = 0;
  return put(path, [&](uint8_t* out, size_t n) -> Result<size_t> {
    size_t take = std::min(n, data.size() - offset);
    std::copy(data.begin() + static_cast<ptrdiff_t>(offset), data.begin() + static_cast<ptrdiff_t>(offset + take), out);
    offset += take;
    return take;
  }, executable, metadata);
}

Status Drive::put_many(const std::vector<SmallFile>& files) {
  if (files.empty()) return {};
  std::vector<std::string> paths;
  for (const auto& f : files) {
    auto p = normalize_drive_path(f.path);
    if (!p.ok()) return p.status();
    paths.push_back(*p);
  }
  auto lock = store_.lock(to_hex(blobs_->key()));
  if (!lock.ok()) return lock.status();
  std::vector<std::optional<BlobId>> ids(files.size());
  {
    auto w = blobs_->writer();
    if (!w.ok()) return w.status();
    uint64_t bytes = blobs_->byte_length();
    std::vector<ByteView> blocks;
    for (size_t i = 0; i < files.size(); i++) {
      if (files[i].linkname) continue;
      const Bytes& d = files[i].data;
      BlobId id{(*w)->length() + blocks.size(), 0, bytes, d.size()};
      for (size_t off = 0; off < d.size(); off += kBlobBlockSize)
        blocks.emplace_back(d.data() + off, std::min(kBlobBlockSize, d.size() - off));
      id.block_length = (*w)->length() + blocks.size() - id.block_offset;
      bytes += d.size();
      ids[i] = id;
    }
    P2P_TRY((*w)->append(blocks));
    P2P_TRY((*w)->commit());
  }
  auto batch = bee_->batch();
  if (!batch.ok()) return batch.status();
  for (size_t i = 0; i < files.size(); i++) {
    std::string value = files[i].linkname ? encode_entry(false, files[i].linkname, std::nullopt, "null")
                                          : encode_entry(files[i].executable, std::nullopt, ids[i], "null");
    P2P_TRY((*batch)->put(db_key(paths[i]), as_bytes(value)));
  }
  return (*batch)->flush();
}

Status Drive::symlink(std::string_view name, std::string_view target, std::string_view metadata) {
  auto path = normalize_drive_path(name);
  if (!path.ok()) return path.status();
  P2P_TRY(check_metadata(metadata));
  std::string value = encode_entry(false, std::string(target), std::nullopt, metadata);
  return bee_->put(db_key(*path), as_bytes(value));
}

Result<bool> Drive::del(std::string_view name) {
  auto path = normalize_drive_path(name);
  if (!path.ok()) return path.status();
  return bee_->del(db_key(*path));
}

Result<std::optional<DriveEntry>> Drive::entry(std::string_view name, uint64_t at) {
  auto path = normalize_drive_path(name);
  if (!path.ok()) return path.status();
  auto e = bee_->get(db_key(*path), at);
  if (!e.ok()) return e.status();
  if (!e->has_value()) return std::optional<DriveEntry>{};
  auto d = decode_entry(**e);
  if (!d.ok()) return d.status();
  return std::optional<DriveEntry>(std::move(*d));
}

Status Drive::read(const DriveEntry& entry, const ByteSink& sink) {
  if (!entry.blob || entry.blob->block_length == 0) return {};
  auto r = blobs_->reader();
  if (!r.ok()) return r.status();
  const BlobId& b = *entry.blob;
  if (b.block_offset + b.block_length > (*r)->length())
    return not_found("the contents of " + entry.path + " are not in the local store");
  uint64_t since_release = 0, total = 0;
  static constexpr uint64_t kGroup = 32;  // blocks fetched and checked together (hashing on two threads)
  // Pipeline: the next group is read and checked while this one is written out. Only one
  // thread touches the read transaction at a time (the sink never does).
  CoreReader& reader = **r;
  auto fetch = [&reader, &b](uint64_t i) {
    return reader.get_range(b.block_offset + i, std::min(kGroup, b.block_length - i));
  };
  auto next = std::async(std::launch::async, fetch, uint64_t{0});
  for (uint64_t i = 0; i < b.block_length; i += kGroup) {
    auto blocks = next.get();
    if (!blocks.ok()) return blocks.status();
    if (i + kGroup < b.block_length) next = std::async(std::launch::async, fetch, i + kGroup);
    for (ByteView block : *blocks) {
      total += block.size();
      if (total > b.byte_length) return corruption(entry.path + ": its blocks hold more bytes than its entry says");
      if (!sink(block)) return {};
      since_release += block.size();
    }
    if (since_release >= kReleaseEvery) {
      store_.release_mapped_pages();
      since_release = 0;
    }
  }
  if (total != b.byte_length) return corruption(entry.path + ": its blocks hold fewer bytes than its entry says");
  return {};
}

Status Drive::list(std::string_view folder, const std::function<bool(const DriveEntry&)>& visit, uint64_t at) {
  auto f = normalize_drive_folder(folder);
  if (!f.ok()) return f.status();
  std::string base = *f == "/" ? "" : *f;
  BeeRange r;
  r.gt = db_key(base + "/");
  r.lt = db_key(base + "0");  // '0' sorts right after '/'
  Status inner;
  P2P_TRY(bee_->range(r, [&](const BeeEntry& e) {
    auto d = decode_entry(e);
    if (!d.ok()) {
      inner = d.status();
      return false;
    }
    return visit(*d);
  }, at));
  return inner;
}

Status Drive::readdir(std::string_view folder, const std::function<bool(const std::string&, bool)>& visit,
                      uint64_t at) {
  auto f = normalize_drive_folder(folder);
  if (!f.ok()) return f.status();
  std::string base = *f == "/" ? "" : *f;
  Bytes next_gt = db_key(base + "/");
  const Bytes end = db_key(base + "0");
  const size_t prefix = kFilesPrefix.size() + base.size() + 1;
  for (;;) {
    BeeRange r;
    r.gt = next_gt;
    r.lt = end;
    r.limit = 1;
    std::optional<Bytes> key;
    P2P_TRY(bee_->range(r, [&](const BeeEntry& e) {
      key = e.key;
      return false;
    }, at));
    if (!key) return {};
    std::string rest(as_chars(*key).substr(prefix));
    size_t slash = rest.find('/');
    bool is_dir = slash != std::string::npos;
    std::string name = rest.substr(0, slash);
    if (!visit(name, is_dir)) return {};
    // Skip the rest of a sub-folder in one seek.
    next_gt = is_dir ? db_key(base + "/" + name + "0") : *key;
  }
}

Result<std::pair<uint64_t, uint64_t>> Drive::stats(uint64_t at) {
  uint64_t files = 0, bytes = 0;
  P2P_TRY(list("/", [&](const DriveEntry& e) {
    files++;
    bytes += e.size();
    return true;
  }, at));
  return std::pair{files, bytes};
}

Status Drive::diff(uint64_t newer, uint64_t older, const std::function<bool(const DriveChange&)>& visit) {
  Status inner;
  P2P_TRY(bee_->diff(newer, older, [&](const BeeChange& c) {
    const Bytes& k = c.newer ? c.newer->key : c.older->key;
    if (k.size() < kFilesPrefix.size() || !std::equal(kFilesPrefix.begin(), kFilesPrefix.end(), k.begin())) return true;
    DriveChange d;
    for (auto [from, to] : {std::pair{&c.newer, &d.newer}, {&c.older, &d.older}}) {
      if (!*from) continue;
      auto e = decode_entry(**from);
      if (!e.ok()) {
        inner = e.status();
        return false;
      }
      *to = std::move(*e);
    }
    return visit(d);
  }));
  return inner;
}

}  // namespace p2p
