#include "core/home.h"

#include "core/drive.h"

#include <cstdlib>

#include "core/identity.h"
#include "core/keys.h"
#include "storage/files.h"

namespace p2p {

namespace {

storage::LmdbOptions lmdb_options() {
  storage::LmdbOptions o;
  // Lets tests and small machines reserve less address space.
  if (const char* gb = std::getenv("P2P_MAP_SIZE_GB"); gb && *gb) o.map_size = std::strtoull(gb, nullptr, 10) << 30;
  return o;
}

}  // namespace

Result<std::unique_ptr<Home>> Home::open(HomeOptions options) {
  if (options.path.empty()) options.path = storage::default_home();
  std::unique_ptr<Home> home(new Home(std::move(options)));
  P2P_TRY(storage::ensure_dir(home->options_.path));
  auto store = storage::open_lmdb(home->options_.path, lmdb_options());
  if (!store.ok()) return store.status();
  home->store_ = std::move(*store);
  return home;
}

Result<Key32> Home::primary_key() {
  if (primary_key_) return *primary_key_;
  auto key = identity::load(options_.path, options_.passphrase);
  if (key.status().is_not_found()) {
    Key32 fresh = crypto::random_key();
    auto created = identity::create(options_.path, fresh, options_.passphrase);
    if (!created.ok()) return created.status();
    created_identity_ = *created;
    // Another process may have created one at the same moment: use whichever landed.
    key = identity::load(options_.path, options_.passphrase);
  }
  if (!key.ok()) return key.status();
  primary_key_ = *key;
  return *key;
}

Result<Corestore*> Home::writer() {
  if (!writer_) {
    auto key = primary_key();
    if (!key.ok()) return key.status();
    writer_ = std::make_unique<Corestore>(*store_, *key);
  }
  return writer_.get();
}

Corestore& Home::reader() {
  if (writer_) return *writer_;
  if (!reader_) {
    // Use the secret when it is at hand (so our own cores show as writable), never create it.
    auto key = identity::load(options_.path, options_.passphrase);
    reader_ = std::make_unique<Corestore>(*store_, key.ok() ? std::optional<Key32>(*key) : std::nullopt);
  }
  return *reader_;
}

Result<std::unique_ptr<Core>> Home::open_core(std::string_view name_or_key) {
  if (keys::looks_like_key(name_or_key)) {
    auto key = keys::parse(name_or_key);
    if (!key) return invalid_argument("'" + std::string(name_or_key) + "' is not a valid key; use " + keys::accepted_forms());
    return reader().open_key(*key);
  }
  return reader().open_name(name_or_key);
}

Result<std::vector<Key32>> Home::cores_to_share(std::string_view name_or_key) {
  std::vector<Key32> out;
  auto with_blobs = [&](const Core& core) {
    out.push_back(core.key());
    Key32 blobs = manifest::hash(Drive::blobs_manifest(core.manifest(), core.key()));
    if (Core::open_by_key(store(), blobs).ok()) out.push_back(blobs);
  };
  if (keys::looks_like_key(name_or_key)) {
    auto core = open_core(name_or_key);
    if (!core.ok()) return core.status();
    with_blobs(**core);
    return out;
  }
  std::string name(name_or_key);
  for (auto [core_name, ns] : {std::pair{name, kDefaultNamespace}, std::pair{kv_core_name(name), kDefaultNamespace},
                               std::pair{std::string("db"), drive_namespace(name)}}) {
    auto core = reader().open_name(core_name, ns);
    if (core.ok()) {
      with_blobs(**core);
      return out;
    }
    if (!core.status().is_not_found()) return core.status();
  }
  return not_found("nothing named '" + name + "' here: no core, kv store (--db) or drive (--drive) by that name");
}

}  // namespace p2p
