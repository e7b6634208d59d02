#include <catch2/catch.hpp>

#include "core/log.h"
#include "core/manifest.h"
#include "test_util.h"

using namespace p2p;

namespace {

storage::LmdbOptions small() {
  storage::LmdbOptions o;
  o.map_size = uint64_t{1} << 30;
  return o;
}

crypto::KeyPair fixed_key_pair(uint8_t seed_byte = 1) {
  Key32 seed;
  seed.fill(seed_byte);
  return crypto::key_pair_from_seed(seed);
}

}  // namespace

TEST_CASE("log: append, get, batch, byte length", "[log]") {
  auto store = storage::open_memory();
  auto core = Core::open_writable(*store, fixed_key_pair());
  REQUIRE(core.ok());
  auto& c = **core;
  CHECK(c.length() == 0);
  CHECK(*c.append(as_bytes("hello")) == 1);
  std::vector<Bytes> batch = {Bytes{1, 2}, Bytes{}, Bytes(1000, 9)};
  std::vector<ByteView> views(batch.begin(), batch.end());
  CHECK(*c.append(views) == 4);
  CHECK(c.byte_length() == 5 + 2 + 0 + 1000);
  CHECK(as_chars(*c.get(0)) == "hello");
  CHECK(c.get(2)->empty());
  CHECK(c.get(3)->size() == 1000);
  CHECK(c.get(4).status().is_not_found());
  CHECK(c.verify().ok());
  CHECK(manifest::verify(c.manifest(), c.key(), c.tree_hash(), c.length(), 0, c.signature()).ok());
  CHECK(*c.append(std::span<const ByteView>{}) == 4);  // empty batch: nothing
}

TEST_CASE("log: blocks beyond the limit are refused and nothing is written", "[log]") {
  auto store = storage::open_memory();
  auto core = Core::open_writable(*store, fixed_key_pair());
  Bytes big(kMaxBlockSize + 1);
  auto r = (*core)->append(big);
  CHECK(r.status().code() == ErrorCode::invalid_argument);
  CHECK((*core)->length() == 0);
}

TEST_CASE("log: a second handle sees appends made through the first (two processes)", "[log]") {
  test::TempDir dir;
  auto s1 = storage::open_lmdb(dir.path, small());
  auto s2 = storage::open_lmdb(dir.path, small());
  REQUIRE(s1.ok());
  REQUIRE(s2.ok());
  auto a = Core::open_writable(**s1, fixed_key_pair());
  auto b = Core::open_writable(**s2, fixed_key_pair());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE((*a)->append(as_bytes("from a")).ok());
  // b's cached state is stale; its append must start from the stored header.
  REQUIRE((*b)->append(as_bytes("from b")).ok());
  REQUIRE((*a)->append(as_bytes("a again")).ok());
  CHECK((*a)->length() == 3);
  REQUIRE((*b)->refresh().ok());
  CHECK((*b)->length() == 3);
  CHECK(as_chars(*(*b)->get(2)) == "a again");
  CHECK((*b)->verify().ok());

  auto reader = Core::open_by_key(**s2, (*a)->key());
  REQUIRE(reader.ok());
  CHECK_FALSE((*reader)->writable());
  CHECK((*reader)->append(as_bytes("x")).status().code() == ErrorCode::permission);
  CHECK(Core::open_by_key(**s2, Key32{}).status().is_not_found());
}

TEST_CASE("log: damaged blocks and tree nodes are reported with their index", "[log][corruption]") {
  auto store = storage::open_memory();
  auto core = Core::open_writable(*store, fixed_key_pair());
  for (int i = 0; i < 6; i++) REQUIRE((*core)->append(as_bytes("block " + std::to_string(i))).ok());

  // Find the core's local id through its first block key.
  uint64_t id = 0;
  {
    auto r = store->read();
    REQUIRE((*r)->scan(storage::Table::blocks, {}, {}, [&](ByteView k, ByteView) {
      for (int i = 0; i < 8; i++) id = id << 8 | k[i];
      return false;
    }).ok());
  }
  SECTION("a flipped byte in a block") {
    auto w = store->write();
    REQUIRE((*w)->put(storage::Table::blocks, storage::pair_key(id, 4), as_bytes("block X")).ok());
    REQUIRE((*w)->commit().ok());
    auto g = (*core)->get(4);
    CHECK(g.status().code() == ErrorCode::corruption);
    CHECK_THAT(g.status().message(), Catch::Contains("block 4"));
    auto v = (*core)->verify();
    CHECK_THAT(v.message(), Catch::Contains("block 4"));
    CHECK((*core)->get(3).ok());
  }
  SECTION("a flipped byte in an inner tree node") {
    auto w = store->write();
    Bytes bad(40, 0);
    REQUIRE((*w)->put(storage::Table::tree, storage::pair_key(id, 1), bad).ok());
    REQUIRE((*w)->commit().ok());
    CHECK_THAT((*core)->verify().message(), Catch::Contains("tree node 1"));
  }
  SECTION("a damaged root fails the signature check on open") {
    auto w = store->write();
    Bytes bad(40, 0);
    bad[0] = 8;
    REQUIRE((*w)->put(storage::Table::tree, storage::pair_key(id, 3), bad).ok());
    REQUIRE((*w)->commit().ok());
    auto reopened = Core::open_by_key(*store, (*core)->key());
    CHECK(reopened.status().code() == ErrorCode::corruption);
  }
}

TEST_CASE("log: proofs from a stored core verify at a fresh reader", "[log][proof]") {
  auto store = storage::open_memory();
  auto core = Core::open_writable(*store, fixed_key_pair());
  for (int i = 0; i < 11; i++) REQUIRE((*core)->append(as_bytes(std::string(i, 'x'))).ok());
  merkle::ProofRequest req;
  req.block = merkle::IndexRequest{7, 0};
  req.upgrade = merkle::UpgradeRequest{0, 11};
  auto proof = (*core)->proof(req);
  REQUIRE(proof.ok());

  struct Empty : merkle::NodeSource {
    std::optional<merkle::Node> node(uint64_t) override { return std::nullopt; }
  } none;
  auto v = merkle::verify_proof(*proof, {}, none);
  REQUIRE(v.ok());
  const auto& c = **core;
  CHECK(manifest::verify(c.manifest(), c.key(), v->tree.hash(), v->tree.length(), 0, proof->upgrade->signature).ok());
  Bytes forged = proof->upgrade->signature;
  forged[5] ^= 1;
  CHECK_FALSE(manifest::verify(c.manifest(), c.key(), v->tree.hash(), v->tree.length(), 0, forged).ok());
  CHECK_FALSE(manifest::verify(c.manifest(), c.key(), v->tree.hash(), v->tree.length() - 1, 0, proof->upgrade->signature).ok());
}
