#include "core/corestore.h"

#include <map>


namespace p2p {

const Hash32 kDefaultNamespace{};

namespace {

Bytes name_key(const Hash32& ns, std::string_view name) {
  Bytes k(ns.begin(), ns.end());
  k.insert(k.end(), name.begin(), name.end());
  return k;
}

Status check_name(std::string_view name) {
  if (name.empty()) return invalid_argument("a core name cannot be empty");
  if (name.size() > kMaxCoreNameLength)
    return invalid_argument("a core name is at most " + std::to_string(kMaxCoreNameLength) + " bytes");
  return {};
}

}  // namespace

Corestore::Corestore(storage::Store& store, std::optional<Key32> primary_key)
    : store_(store), primary_key_(primary_key) {}

Hash32 Corestore::child_namespace(const Hash32& parent, std::string_view name) {
  return crypto::hash({parent, as_bytes(name)});
}

crypto::KeyPair Corestore::derive_key_pair(const Key32& primary_key, const Hash32& ns, std::string_view name) {
  Key32 seed = crypto::hash({crypto::corestore_ns(), ns, as_bytes(name)}, primary_key);
  return crypto::key_pair_from_seed(seed);
}

Result<crypto::KeyPair> Corestore::key_pair(std::string_view name, const Hash32& ns) const {
  if (!primary_key_) return error(ErrorCode::permission, "the identity's primary key is not available");
  return derive_key_pair(*primary_key_, ns, name);
}

Result<std::unique_ptr<Core>> Corestore::get(std::string_view name, const Hash32& ns) {
  P2P_TRY(check_name(name));
  auto kp = key_pair(name, ns);
  if (!kp.ok()) return kp.status();
  auto core = Core::open_writable(store_, *kp);
  if (!core.ok()) return core.status();
  Bytes k = name_key(ns, name);
  auto txn = store_.read();
  if (!txn.ok()) return txn.status();
  if (!(*txn)->get(storage::Table::names, k)) {
    txn->reset();
    auto w = store_.write();
    if (!w.ok()) return w.status();
    P2P_TRY((*w)->put(storage::Table::names, k, (*core)->key()));
    P2P_TRY((*w)->commit());
  }
  return core;
}

Result<std::unique_ptr<Core>> Corestore::open_name(std::string_view name, const Hash32& ns) {
  P2P_TRY(check_name(name));
  Key32 key{};
  {
    auto txn = store_.read();
    if (!txn.ok()) return txn.status();
    auto v = (*txn)->get(storage::Table::names, name_key(ns, name));
    if (!v || v->size() != 32) return not_found("no core named '" + std::string(name) + "' in this store");
    std::copy(v->begin(), v->end(), key.begin());
  }
  if (primary_key_) {
    auto kp = derive_key_pair(*primary_key_, ns, name);
    if (manifest::hash(manifest::default_manifest(kp.public_key)) == key) return Core::open_writable(store_, kp);
  }
  return Core::open_by_key(store_, key);
}

Result<std::unique_ptr<Core>> Corestore::open_key(const Key32& key) { return Core::open_by_key(store_, key); }

Result<std::vector<NamedCore>> Corestore::list() {
  auto txn = store_.read();
  if (!txn.ok()) return txn.status();
  std::map<Key32, std::string> names;
  P2P_TRY((*txn)->scan(storage::Table::names, kDefaultNamespace, {}, [&](ByteView k, ByteView v) {
    if (k.size() < 32 || !std::equal(k.begin(), k.begin() + 32, kDefaultNamespace.begin())) return false;
    if (v.size() == 32) {
      Key32 key;
      std::copy(v.begin(), v.end(), key.begin());
      names[key] = std::string(as_chars(k.subspan(32)));
    }
    return true;
  }));
  std::vector<Key32> all;
  P2P_TRY((*txn)->scan(storage::Table::cores, {}, {}, [&](ByteView k, ByteView) {
    if (k.size() == 32) std::copy(k.begin(), k.end(), all.emplace_back().begin());
    return true;
  }));
  txn->reset();
  std::vector<NamedCore> out;
  for (const Key32& key : all) {
    NamedCore c;
    c.key = key;
    if (auto it = names.find(key); it != names.end()) c.name = it->second;
    auto core = Core::open_by_key(store_, key);
    if (core.ok()) {
      c.length = (*core)->length();
      c.byte_length = (*core)->byte_length();
    } else {
      c.problem = core.status().message();
    }
    out.push_back(std::move(c));
  }
  std::stable_sort(out.begin(), out.end(), [](const NamedCore& a, const NamedCore& b) {
    if (a.name.empty() != b.name.empty()) return !a.name.empty();
    return a.name < b.name;
  });
  return out;
}

}  // namespace p2p
