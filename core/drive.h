// A file system in two cores, compatible with Hyperdrive 13 (spec d): a bee
// of entries keyed "files\0/path" with JSON values, and a blobs core of file
// contents in blocks of at most 64 KiB. Files stream in and out in blocks;
// none is ever held whole in memory.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/bee.h"
#include "core/corestore.h"

namespace p2p {

constexpr size_t kBlobBlockSize = 65536;

struct BlobId {
  uint64_t block_offset = 0;
  uint64_t block_length = 0;
  uint64_t byte_offset = 0;
  uint64_t byte_length = 0;
};

struct DriveEntry {
  std::string path;  // normalised, e.g. "/dir/file.txt"
  uint64_t seq = 0;  // the db block that wrote it
  bool executable = false;
  std::optional<std::string> linkname;
  std::optional<BlobId> blob;
  std::string metadata = "null";  // JSON text, as stored
  uint64_t size() const { return blob ? blob->byte_length : 0; }
};

struct DriveChange {
  std::optional<DriveEntry> newer, older;
};

// "dir/../a" -> "/a". Refuses paths that climb above the root, and "/" itself.
Result<std::string> normalize_drive_path(std::string_view name);
// A folder for listing: "/" stays "/", trailing slashes go.
Result<std::string> normalize_drive_folder(std::string_view name);

// Reads up to n bytes into buf; 0 at the end.
using ByteSource = std::function<Result<size_t>(uint8_t* buf, size_t n)>;
// Takes the next chunk of a file; false stops.
using ByteSink = std::function<bool(ByteView chunk)>;

class Drive {
 public:
  // The blobs core's manifest: the db manifest with every signer namespace
  // replaced by H(BLOBS || db key || namespace).
  static manifest::Manifest blobs_manifest(const manifest::Manifest& db, const Key32& db_key);
  // Your drive in corestore namespace `ns`: its db is the core named "db"
  // there (JavaScript: new Hyperdrive(store.namespace(...))), created on first use.
  static Result<std::unique_ptr<Drive>> open_writable(Corestore& corestore, const Hash32& ns);
  // A drive held in this store, by its db key; read-only.
  static Result<std::unique_ptr<Drive>> open_by_key(storage::Store& store, const Key32& db_key);
  // A drive over cores opened elsewhere (replicas fed by a peer).
  static Result<std::unique_ptr<Drive>> from_cores(storage::Store& store, std::unique_ptr<Core> db,
                                                   std::unique_ptr<Core> blobs);

  Core& db() { return *db_; }
  Core& blobs() { return *blobs_; }
  bool writable() const { return db_->writable(); }
  Result<uint64_t> version() { return bee_->version(); }

  // Streams `source` into the file, 8 MiB per commit. The source is called on
  // a helper thread (one call at a time) so that it reads ahead while the
  // previous batch commits.
  Status put(std::string_view path, const ByteSource& source, bool executable = false,
             std::string_view metadata = "null");
  Status put(std::string_view path, ByteView data, bool executable = false, std::string_view metadata = "null");
  Status symlink(std::string_view path, std::string_view target, std::string_view metadata = "null");

  // Many small files (or symlinks) at once: their contents in one content
  // transaction and their entries in one atomic batch of the db.
  struct SmallFile {
    std::string path;
    Bytes data;
    bool executable = false;
    std::optional<std::string> linkname;  // a symlink when set
  };
  Status put_many(const std::vector<SmallFile>& files);
  // False when there was nothing at `path`.
  Result<bool> del(std::string_view path);

  Result<std::optional<DriveEntry>> entry(std::string_view path, uint64_t at = 0);
  // Streams a file's contents; a symlink or an empty file yields nothing.
  Status read(const DriveEntry& entry, const ByteSink& sink);
  // Every entry under `folder` (recursive), in path order.
  Status list(std::string_view folder, const std::function<bool(const DriveEntry&)>& visit, uint64_t at = 0);
  // The names directly inside `folder`: files and sub-folders (is_dir), in order.
  Status readdir(std::string_view folder, const std::function<bool(const std::string& name, bool is_dir)>& visit,
                 uint64_t at = 0);
  Status diff(uint64_t newer, uint64_t older, const std::function<bool(const DriveChange&)>& visit);
  // How many files the drive holds at `at`, and their total bytes.
  Result<std::pair<uint64_t, uint64_t>> stats(uint64_t at = 0);

 private:
  Drive(storage::Store& store, std::unique_ptr<Core> db, std::unique_ptr<Core> blobs);
  storage::Store& store_;
  std::unique_ptr<Core> db_, blobs_;
  std::unique_ptr<Bee> bee_;
};

}  // namespace p2p
