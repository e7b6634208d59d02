#include <catch2/catch.hpp>

#include "core/bee.h"
#include "core/crypto.h"
#include "vectors.h"

using namespace p2p;

namespace {

std::string raw_block(Core& core, uint64_t seq) { return to_hex(*core.get(seq)); }

}  // namespace

TEST_CASE("hyperbee vector: puts, a merging delete, an update", "[vectors][bee]") {
  auto v = test::load_vector("hyperbee.json");
  auto store = storage::open_memory();
  auto core = Core::open_writable(*store, crypto::key_pair_from_seed(test::key32(v["keyPair"]["seed"])));
  REQUIRE(core.ok());
  CHECK(to_hex((*core)->key()) == v["coreKey"]);
  Bee bee(**core);

  for (int i = 0; i < 20; i++) {
    char k[8], val[8];
    std::snprintf(k, sizeof k, "k%02d", i);
    std::snprintf(val, sizeof val, "v%02d", i);
    REQUIRE(bee.put(as_bytes(k), as_bytes(val)).ok());
  }
  REQUIRE((*core)->length() == v["lengthAfterPuts"].get<uint64_t>());
  for (const auto& b : v["afterPuts"]["blocks"]) {
    INFO("block " << b["seq"]);
    CHECK(raw_block(**core, b["seq"]) == b["raw"]);
  }

  auto deleted = bee.del(as_bytes("k07"));
  REQUIRE(deleted.ok());
  CHECK(*deleted);
  REQUIRE(bee.put(as_bytes("k03"), as_bytes("v03-updated")).ok());
  auto missing = bee.del(as_bytes("k99"));
  REQUIRE(missing.ok());
  CHECK_FALSE(*missing);
  REQUIRE((*core)->length() == v["lengthAfterEdits"].get<uint64_t>());
  for (const auto& b : v["afterEdits"]["blocks"]) {
    INFO("block " << b["seq"]);
    CHECK(raw_block(**core, b["seq"]) == b["raw"]);
  }

  for (const auto& [key, expected] : v["gets"].items()) {
    INFO("get " << key);
    auto got = bee.get(as_bytes(key));
    REQUIRE(got.ok());
    if (expected.is_null()) {
      CHECK_FALSE(got->has_value());
    } else {
      REQUIRE(got->has_value());
      CHECK((*got)->seq == expected["seq"].get<uint64_t>());
      CHECK(as_chars(*(*got)->value) == expected["value"].get<std::string>());
    }
  }
}

TEST_CASE("hyperbee vector: a batch flushed at once", "[vectors][bee]") {
  auto v = test::load_vector("hyperbee.json")["batchScenario"];
  auto store = storage::open_memory();
  auto seed = crypto::hash({as_bytes("holepunch-vectors/bee2")});
  auto core = Core::open_writable(*store, crypto::key_pair_from_seed(seed));
  CHECK(to_hex((*core)->key()) == v["coreKey"]);
  Bee bee(**core);
  auto batch = bee.batch();
  REQUIRE(batch.ok());
  REQUIRE((*batch)->put(as_bytes("a"), as_bytes("1")).ok());
  REQUIRE((*batch)->put(as_bytes("b"), as_bytes("2")).ok());
  REQUIRE((*batch)->put(as_bytes("c"), as_bytes("3")).ok());
  REQUIRE((*batch)->flush().ok());
  REQUIRE((*core)->length() == v["blocks"].size());
  for (const auto& b : v["blocks"]) {
    INFO("block " << b["seq"]);
    CHECK(raw_block(**core, b["seq"]) == b["raw"]);
  }
}
