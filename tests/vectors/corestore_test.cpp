#include <catch2/catch.hpp>

#include "core/corestore.h"
#include "core/manifest.h"
#include "vectors.h"

using namespace p2p;

TEST_CASE("corestore vector: named cores derive from the primary key", "[vectors][corestore]") {
  auto v = test::load_vector("corestore.json");
  Key32 primary = test::key32(v["primaryKey"]);
  CHECK(to_hex(crypto::corestore_ns()) == v["NS_CORESTORE"]);
  auto store = storage::open_memory();
  Corestore cs(*store, primary);
  for (const auto& [name, e] : v["names"].items()) {
    INFO("name " << name);
    auto kp = Corestore::derive_key_pair(primary, kDefaultNamespace, name);
    CHECK(to_hex(crypto::key_pair_from_seed(test::key32(e["derivedSeed"])).public_key) == e["publicKey"]);
    CHECK(to_hex(kp.public_key) == e["publicKey"]);
    CHECK(to_hex(manifest::encode(manifest::default_manifest(kp.public_key))) == e["manifestEncoded"]);
    auto core = cs.get(name);
    REQUIRE(core.ok());
    CHECK(to_hex((*core)->key()) == e["key"]);
    CHECK(to_hex((*core)->discovery_key()) == e["discoveryKey"]);
  }
}

TEST_CASE("corestore vector: nested namespaces", "[vectors][corestore]") {
  auto v = test::load_vector("corestore.json");
  Key32 primary = test::key32(v["primaryKey"]);
  auto& one = v["namespaced"]["namespace(\"my-app\")"];
  Hash32 ns = Corestore::child_namespace(kDefaultNamespace, "my-app");
  CHECK(to_hex(ns) == one["namespace"]);
  auto kp = Corestore::derive_key_pair(primary, ns, "a");
  CHECK(to_hex(kp.public_key) == one["name a publicKey"]);
  CHECK(to_hex(manifest::hash(manifest::default_manifest(kp.public_key))) == one["key"]);

  auto& two = v["namespaced"]["namespace(\"my-app\").namespace(\"sub\")"];
  Hash32 sub = Corestore::child_namespace(ns, "sub");
  CHECK(to_hex(sub) == two["namespace"]);
  CHECK(to_hex(Corestore::derive_key_pair(primary, sub, "a").public_key) == two["name a publicKey"]);
}
