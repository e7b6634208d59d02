// A home folder opened for use: its store, its identity (created on first
// need) and its corestore. Every command starts here.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/corestore.h"
#include "storage/store.h"

namespace p2p {

struct HomeOptions {
  std::string path;                       // empty: storage::default_home()
  std::optional<std::string> passphrase;  // unlocks a sealed identity
};

class Home {
 public:
  static Result<std::unique_ptr<Home>> open(HomeOptions options);

  const std::string& path() const { return options_.path; }
  storage::Store& store() { return *store_; }

  // The primary key, creating a new identity when the home has none.
  Result<Key32> primary_key();
  // True once primary_key() created the identity in this process.
  bool created_identity() const { return created_identity_; }

  // A corestore that can write: loads (or creates) the identity.
  Result<Corestore*> writer();
  // A corestore that reads without needing the secret.
  Corestore& reader();

  // The core behind `p2p kv --db NAME`: JavaScript `store.get({ name: 'kv/' + NAME })`.
  static std::string kv_core_name(std::string_view db) { return "kv/" + std::string(db); }

  // The corestore namespace of `p2p drive --drive NAME`: JavaScript
  // `new Hyperdrive(store.namespace('drive/' + NAME))`.
  static Hash32 drive_namespace(std::string_view name) {
    return Corestore::child_namespace(kDefaultNamespace, "drive/" + std::string(name));
  }

  // "NAME|KEY": a key in any accepted form opens by key, anything else by name.
  Result<std::unique_ptr<Core>> open_core(std::string_view name_or_key);

  // The cores to share for "NAME|KEY": a core name, else a kv store (--db
  // NAME), else a drive (--drive NAME, db and blobs); a key, with its blobs
  // core when it is a drive's. not_found when nothing matches.
  Result<std::vector<Key32>> cores_to_share(std::string_view name_or_key);

 private:
  explicit Home(HomeOptions options) : options_(std::move(options)) {}
  HomeOptions options_;
  std::unique_ptr<storage::Store> store_;
  std::optional<Key32> primary_key_;
  std::unique_ptr<Corestore> writer_, reader_;
  bool created_identity_ = false;
};

}  // namespace p2p
