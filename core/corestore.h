// Named cores whose key pairs derive from one primary key exactly as
// Corestore 7 derives them (spec b), so a name here gives the same core key as
// JavaScript `store.get({ name })` with the same primary key.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/log.h"

namespace p2p {

constexpr size_t kMaxCoreNameLength = 1024;
extern const Hash32 kDefaultNamespace;  // 32 zero bytes

struct NamedCore {
  std::string name;  // empty for cores known only by key
  Key32 key{};
  uint64_t length = 0;
  uint64_t byte_length = 0;
  std::string problem;  // why the core could not be opened, if it could not
};

class Corestore {
 public:
  // Without a primary key the store can still read every core it holds.
  Corestore(storage::Store& store, std::optional<Key32> primary_key);

  // Corestore's namespace(): H(parent || utf8(name)).
  static Hash32 child_namespace(const Hash32& parent, std::string_view name);
  // seed = H(NS_CORESTORE || namespace || utf8(name) ; key = primary key).
  static crypto::KeyPair derive_key_pair(const Key32& primary_key, const Hash32& ns, std::string_view name);

  bool has_primary_key() const { return primary_key_.has_value(); }
  storage::Store& store() { return store_; }
  Result<crypto::KeyPair> key_pair(std::string_view name, const Hash32& ns = kDefaultNamespace) const;
  // The writable core `name`, created on first use (needs the primary key).
  Result<std::unique_ptr<Core>> get(std::string_view name, const Hash32& ns = kDefaultNamespace);
  // An existing core by name, writable when the primary key is known.
  Result<std::unique_ptr<Core>> open_name(std::string_view name, const Hash32& ns = kDefaultNamespace);
  // An existing core by key (read-only).
  Result<std::unique_ptr<Core>> open_key(const Key32& key);
  // Every core in the store, named ones (default namespace) first by name.
  Result<std::vector<NamedCore>> list();

 private:
  storage::Store& store_;
  std::optional<Key32> primary_key_;
};

}  // namespace p2p
