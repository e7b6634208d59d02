// Block replies verified and stored on another thread (Core::block_batch),
// and a session downloading through it.
#include <catch2/catch.hpp>

#include <future>

#include "core/log.h"
#include "test_util.h"

using namespace p2p;

namespace {

struct Replica {
  test::TempDir dir;
  std::unique_ptr<storage::Store> store = std::move(*storage::open_lmdb(dir.path));
  std::unique_ptr<Core> core;
};

// A writer of `n` blocks and a replica that trusts its length (blocks not held yet).
struct Fixture {
  std::unique_ptr<storage::Store> writer_store = storage::open_memory();
  std::unique_ptr<Core> writer = std::move(*Core::open_writable(*writer_store, crypto::random_key_pair()));
  Replica replica;

  explicit Fixture(int n) {
    for (int i = 0; i < n; i++) REQUIRE(writer->append(as_bytes("block " + std::to_string(i))).ok());
    replica.core = std::move(*Core::open_replica(*replica.store, writer->key()));
    auto upgrade = writer->proof({std::nullopt, std::nullopt, std::nullopt, merkle::UpgradeRequest{0, writer->length()}});
    REQUIRE(upgrade.ok());
    REQUIRE(*replica.core->apply(*upgrade, manifest::encode(writer->manifest())));
  }
  merkle::Proof block_proof(uint64_t index) {
    auto nodes = replica.core->missing_nodes(index);
    REQUIRE(nodes.ok());
    auto proof = writer->proof({merkle::IndexRequest{index, *nodes}, std::nullopt, std::nullopt, std::nullopt});
    REQUIRE(proof.ok());
    return *proof;
  }
};

std::vector<Core::Incoming> incoming(const std::vector<merkle::Proof>& proofs) {
  static const std::optional<Bytes> no_manifest;
  std::vector<Core::Incoming> items;
  for (const merkle::Proof& p : proofs) items.push_back({&p, &no_manifest});
  return items;
}

}  // namespace

TEST_CASE("block batch: stored on another thread, as apply() would store it", "[core][replication]") {
  Fixture f(40);
  std::vector<merkle::Proof> proofs;
  for (uint64_t i : {3, 4, 5, 20, 39}) proofs.push_back(f.block_proof(i));
  proofs.push_back(f.block_proof(4));  // a duplicate stores nothing new
  auto batch = f.replica.core->block_batch(incoming(proofs));
  REQUIRE(batch);
  std::vector<bool> applied;
  auto outcome = std::async(std::launch::async, [&] { return batch->run(applied); }).get();
  REQUIRE(outcome == BlockBatch::Outcome::stored);
  CHECK(applied == std::vector<bool>{true, true, true, true, true, false});
  for (uint64_t i : {3, 4, 5, 20, 39}) CHECK(*f.replica.core->get(i) == to_bytes(as_bytes("block " + std::to_string(i))));
  CHECK_FALSE(*f.replica.core->has(6));
}

TEST_CASE("block batch: a bad block or a core that moved on stores nothing", "[core][replication]") {
  Fixture f(16);
  std::vector<bool> applied;
  SECTION("a tampered block") {
    std::vector<merkle::Proof> proofs{f.block_proof(1), f.block_proof(2)};
    proofs[1].block->value[0] ^= 1;
    auto batch = f.replica.core->block_batch(incoming(proofs));
    REQUIRE(batch);
    CHECK(batch->run(applied) == BlockBatch::Outcome::invalid);
    CHECK_FALSE(*f.replica.core->has(1));
    // apply() keeps the good one and names the bad one.
    Status s = f.replica.core->apply(incoming(proofs), applied);
    CHECK_FALSE(s.ok());
    CHECK(*f.replica.core->has(1));
    CHECK_FALSE(*f.replica.core->has(2));
  }
  SECTION("the replica was upgraded after the batch was made") {
    std::vector<merkle::Proof> proofs{f.block_proof(1)};
    auto batch = f.replica.core->block_batch(incoming(proofs));
    REQUIRE(batch);
    REQUIRE(f.writer->append(as_bytes("more")).ok());
    auto upgrade = f.writer->proof({std::nullopt, std::nullopt, std::nullopt, merkle::UpgradeRequest{16, 1}});
    REQUIRE(upgrade.ok());
    REQUIRE(*f.replica.core->apply(*upgrade, std::nullopt));
    CHECK(batch->run(applied) == BlockBatch::Outcome::stale);
    CHECK_FALSE(*f.replica.core->has(1));
  }
}

TEST_CASE("block batch: not for upgrades, new replicas or stores without concurrent writes", "[core][replication]") {
  Fixture f(8);
  std::vector<merkle::Proof> proofs{f.block_proof(1)};
  proofs[0].upgrade = merkle::UpgradeProof{};
  CHECK_FALSE(f.replica.core->block_batch(incoming(proofs)));

  auto fresh = std::move(*Core::open_replica(*f.replica.store, crypto::random_key_pair().public_key));
  proofs[0].upgrade.reset();
  CHECK_FALSE(fresh->block_batch(incoming(proofs)));

  auto memory = storage::open_memory();
  auto in_memory = std::move(*Core::open_writable(*memory, crypto::random_key_pair()));
  REQUIRE(in_memory->append(as_bytes("x")).ok());
  CHECK_FALSE(in_memory->block_batch(incoming(proofs)));
}
