#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "core/bee.h"
#include "core/protobuf.h"

using namespace p2p;

namespace {

struct TestBee {
  std::unique_ptr<storage::Store> store = storage::open_memory();
  std::unique_ptr<Core> core;
  std::unique_ptr<Bee> bee;
  TestBee() {
    Key32 seed{};
    seed[0] = 7;
    core = std::move(*Core::open_writable(*store, crypto::key_pair_from_seed(seed)));
    bee = std::make_unique<Bee>(*core);
  }
};

std::string str(ByteView b) { return std::string(as_chars(b)); }

std::vector<std::string> keys_of(Bee& bee, const BeeRange& r, uint64_t at = 0) {
  std::vector<std::string> out;
  auto s = bee.range(r, [&](const BeeEntry& e) {
    out.push_back(str(e.key));
    return true;
  }, at);
  REQUIRE(s.ok());
  return out;
}

}  // namespace

TEST_CASE("bee: put, get, overwrite, delete, versions", "[bee]") {
  TestBee t;
  CHECK(*t.bee->version() == 1);
  CHECK_FALSE(t.bee->get(as_bytes("a"))->has_value());
  CHECK_FALSE(*t.bee->del(as_bytes("a")));  // nothing to delete: nothing written
  CHECK(t.core->length() == 0);
  REQUIRE(t.bee->put(as_bytes("a"), as_bytes("1")).ok());
  CHECK(t.core->length() == 2);  // header + entry
  REQUIRE(t.bee->put(as_bytes("a"), as_bytes("2")).ok());
  CHECK(str(*(*t.bee->get(as_bytes("a")))->value) == "2");
  CHECK(str(*(*t.bee->get(as_bytes("a"), 2))->value) == "1");  // checkout
  CHECK(*t.bee->del(as_bytes("a")));
  CHECK_FALSE(t.bee->get(as_bytes("a"))->has_value());
  CHECK(str(*(*t.bee->get(as_bytes("a"), 3))->value) == "2");
  CHECK(t.bee->get(as_bytes("a"), 99).status().is_not_found());
  REQUIRE(t.bee->put(as_bytes(""), as_bytes("empty key")).ok());
  CHECK(str(*(*t.bee->get(as_bytes("")))->value) == "empty key");
}

TEST_CASE("bee: limits refuse oversized keys and values, writing nothing", "[bee]") {
  TestBee t;
  Bytes big_key(kMaxBeeKeySize + 1, 'k'), big_value(kMaxBeeValueSize + 1, 'v');
  CHECK(t.bee->put(big_key, as_bytes("v")).code() == ErrorCode::invalid_argument);
  CHECK(t.bee->put(as_bytes("k"), big_value).code() == ErrorCode::invalid_argument);
  CHECK(t.core->length() == 0);
  CHECK(t.bee->put(Bytes(kMaxBeeKeySize, 'k'), Bytes(1000, 'v')).ok());
}

TEST_CASE("bee: range options", "[bee]") {
  TestBee t;
  auto batch = std::move(*t.bee->batch());
  for (int i = 0; i < 100; i++) {
    char k[8];
    std::snprintf(k, sizeof k, "k%03d", i);
    REQUIRE(batch->put(as_bytes(k), as_bytes("v")).ok());
  }
  REQUIRE(batch->flush().ok());
  CHECK(keys_of(*t.bee, {}).size() == 100);
  BeeRange r;
  r.gte = to_bytes(as_bytes("k010"));
  r.lt = to_bytes(as_bytes("k013"));
  CHECK(keys_of(*t.bee, r) == std::vector<std::string>{"k010", "k011", "k012"});
  r.reverse = true;
  CHECK(keys_of(*t.bee, r) == std::vector<std::string>{"k012", "k011", "k010"});
  BeeRange g;
  g.gt = to_bytes(as_bytes("k097"));
  CHECK(keys_of(*t.bee, g) == std::vector<std::string>{"k098", "k099"});
  BeeRange l;
  l.lte = to_bytes(as_bytes("k001"));
  l.limit = 1;
  CHECK(keys_of(*t.bee, l) == std::vector<std::string>{"k000"});
  l.reverse = true;
  CHECK(keys_of(*t.bee, l) == std::vector<std::string>{"k001"});
  BeeRange none;
  none.gt = to_bytes(as_bytes("z"));
  CHECK(keys_of(*t.bee, none).empty());
}

TEST_CASE("bee: a batch sees its own writes; dropped batches write nothing", "[bee]") {
  TestBee t;
  REQUIRE(t.bee->put(as_bytes("x"), as_bytes("0")).ok());
  {
    auto batch = std::move(*t.bee->batch());
    REQUIRE(batch->put(as_bytes("y"), as_bytes("1")).ok());
    CHECK(str(*(*batch->get(as_bytes("y")))->value) == "1");
    CHECK(*batch->del(as_bytes("x")));
    CHECK_FALSE(batch->get(as_bytes("x"))->has_value());
  }
  CHECK(t.core->length() == 2);
  CHECK(t.bee->get(as_bytes("x"))->has_value());
}

TEST_CASE("bee: history and diff", "[bee]") {
  TestBee t;
  REQUIRE(t.bee->put(as_bytes("a"), as_bytes("1")).ok());
  REQUIRE(t.bee->put(as_bytes("b"), as_bytes("2")).ok());
  uint64_t v1 = *t.bee->version();
  REQUIRE(t.bee->put(as_bytes("b"), as_bytes("3")).ok());
  REQUIRE(*t.bee->del(as_bytes("a")));
  REQUIRE(t.bee->put(as_bytes("c"), as_bytes("4")).ok());
  std::vector<std::string> h;
  REQUIRE(t.bee->history(1, 100, false, [&](const BeeEntry& e) {
    h.push_back(str(e.key) + (e.value ? "=" + str(*e.value) : " deleted"));
    return true;
  }).ok());
  CHECK(h == std::vector<std::string>{"a=1", "b=2", "b=3", "a deleted", "c=4"});
  std::vector<std::string> d;
  REQUIRE(t.bee->diff(*t.bee->version(), v1, [&](const BeeChange& c) {
    std::string k = str(c.newer ? c.newer->key : c.older->key);
    d.push_back((c.newer && c.older ? "~" : c.newer ? "+" : "-") + k);
    return true;
  }).ok());
  CHECK(d == std::vector<std::string>{"-a", "~b", "+c"});
}

TEST_CASE("bee: randomized model test against std::map", "[bee][model]") {
  TestBee t;
  std::mt19937_64 rng(20261121);
  std::map<std::string, std::string> model;
  std::map<uint64_t, std::map<std::string, std::string>> snapshots;  // version -> model
  auto random_key = [&] {
    std::string k = "key" + std::to_string(rng() % 2500);
    if (rng() % 10 == 0) k += std::string(1, static_cast<char>(rng() % 256));  // binary tail
    return k;
  };
  auto check_range = [&](const std::map<std::string, std::string>& m, uint64_t at) {
    BeeRange r;
    std::string lo = random_key(), hi = random_key();
    if (lo > hi) std::swap(lo, hi);
    bool incl_lo = rng() % 2, incl_hi = rng() % 2;
    (incl_lo ? r.gte : r.gt) = to_bytes(as_bytes(lo));
    (incl_hi ? r.lte : r.lt) = to_bytes(as_bytes(hi));
    r.reverse = rng() % 2;
    r.limit = rng() % 3 == 0 ? static_cast<int64_t>(rng() % 20) : -1;
    std::vector<std::string> expected;
    for (auto it = m.lower_bound(lo); it != m.end(); ++it) {
      if (!incl_lo && it->first == lo) continue;
      if (it->first > hi || (!incl_hi && it->first == hi)) break;
      expected.push_back(it->first);
    }
    if (r.reverse) std::reverse(expected.begin(), expected.end());
    if (r.limit >= 0 && expected.size() > static_cast<size_t>(r.limit)) expected.resize(r.limit);
    REQUIRE(keys_of(*t.bee, r, at) == expected);
  };

  const int kOps = 100000;
  int op = 0;
  while (op < kOps) {
    // Mostly single writes; sometimes a batch of several.
    bool batched = rng() % 20 == 0;
    std::unique_ptr<Bee::Batch> batch;
    if (batched) batch = std::move(*t.bee->batch());
    int n = batched ? 1 + static_cast<int>(rng() % 40) : 1;
    for (int i = 0; i < n && op < kOps; i++, op++) {
      std::string k = random_key();
      if (rng() % 3 != 0) {
        std::string v = "v" + std::to_string(rng());
        REQUIRE((batched ? batch->put(as_bytes(k), as_bytes(v)) : t.bee->put(as_bytes(k), as_bytes(v))).ok());
        model[k] = v;
      } else {
        auto found = batched ? batch->del(as_bytes(k)) : t.bee->del(as_bytes(k));
        INFO(found.status().message() << " op " << op << " batched " << batched);
        REQUIRE(found.ok());
        REQUIRE(*found == (model.erase(k) == 1));
      }
    }
    if (batched) REQUIRE(batch->flush().ok());
    uint64_t version = *t.bee->version();
    if (rng() % 200 == 0) snapshots[version] = model;

    switch (rng() % 8) {
      case 0: {  // get, present or not
        std::string k = random_key();
        auto got = t.bee->get(as_bytes(k));
        REQUIRE(got.ok());
        auto it = model.find(k);
        REQUIRE(got->has_value() == (it != model.end()));
        if (it != model.end()) REQUIRE(str(*(*got)->value) == it->second);
        break;
      }
      case 1:
        check_range(model, 0);
        break;
      case 2:
        if (!snapshots.empty()) {  // checkout: an older version reads as it was
          auto it = snapshots.begin();
          std::advance(it, rng() % snapshots.size());
          check_range(it->second, it->first);
          std::string k = random_key();
          auto got = t.bee->get(as_bytes(k), it->first);
          REQUIRE(got.ok());
          REQUIRE(got->has_value() == (it->second.count(k) == 1));
        }
        break;
      default:
        break;
    }
  }
  // Full scan at the end, and every snapshot in full.
  std::vector<std::string> all;
  REQUIRE(t.bee->range({}, [&](const BeeEntry& e) {
    all.push_back(str(e.key) + "=" + str(*e.value));
    return true;
  }).ok());
  std::vector<std::string> expected;
  for (auto& [k, v] : model) expected.push_back(k + "=" + v);
  REQUIRE(all == expected);
  for (auto& [version, snap] : snapshots) {
    size_t count = 0;
    REQUIRE(t.bee->range({}, [&](const BeeEntry& e) {
      REQUIRE(snap.at(str(e.key)) == str(*e.value));
      count++;
      return true;
    }, version).ok());
    REQUIRE(count == snap.size());
  }
  // Diff between two snapshots matches the models' difference.
  if (snapshots.size() >= 2) {
    auto older = snapshots.begin(), newer = std::prev(snapshots.end());
    std::map<std::string, char> want;
    for (auto& [k, v] : newer->second) {
      auto o = older->second.find(k);
      if (o == older->second.end()) want[k] = '+';
      else if (o->second != v) want[k] = '~';
    }
    for (auto& [k, v] : older->second)
      if (!newer->second.count(k)) want[k] = '-';
    std::map<std::string, char> got;
    REQUIRE(t.bee->diff(newer->first, older->first, [&](const BeeChange& c) {
      std::string k = str(c.newer ? c.newer->key : c.older->key);
      char kind = c.newer && c.older ? '~' : c.newer ? '+' : '-';
      // A key rewritten with the same value shows as a change of block, not of value.
      if (kind == '~' && str(*c.newer->value) == str(*c.older->value)) return true;
      got[k] = kind;
      return true;
    }).ok());
    REQUIRE(got == want);
  }
  INFO("ops " << kOps << ", versions " << *t.bee->version() << ", keys " << model.size());
  CHECK(t.core->verify().ok());
}

TEST_CASE("hyperbee extension messages: the reference's bytes, both ways", "[bee]") {
  // Encoded by hyperbee 2.27.3's lib/messages.js.
  bee::ExtensionMessage get;
  get.get = bee::ExtensionGet{1000001, to_bytes(as_bytes("key-0042"))};
  CHECK(to_hex(bee::encode_extension(get)) == "120e08c1843d12086b65792d30303432");
  bee::ExtensionMessage cache;
  cache.cache = bee::ExtensionCache{3, 1000001, {1000000, 3, 77, 500000}};
  CHECK(to_hex(bee::encode_extension(cache)) == "0a10080310c1843d1a08c0843d034da0c21e");
  bee::ExtensionMessage range;
  range.iterator = bee::ExtensionIterator{12, to_bytes(as_bytes("a")), std::nullopt, std::nullopt,
                                          to_bytes(as_bytes("m")), 0, true, {}};
  CHECK(to_hex(bee::encode_extension(range)) == "1a0c080c1201612a016d30003801");

  auto back = bee::decode_extension(*from_hex("0a10080310c1843d1a08c0843d034da0c21e"));
  REQUIRE(back.ok());
  REQUIRE(back->cache);
  CHECK(back->cache->blocks == std::vector<uint64_t>{1000000, 3, 77, 500000});
  auto it = bee::decode_extension(*from_hex("1a0c080c1201612a016d30003801"));
  REQUIRE(it.ok());
  REQUIRE(it->iterator);
  CHECK(it->iterator->version == 12);
  CHECK(it->iterator->reverse);
  CHECK(to_bytes(*it->iterator->lt) == to_bytes(as_bytes("m")));
  CHECK_FALSE(it->iterator->gt);

  // Truncated and oversized input is refused, never read past its end.
  CHECK_FALSE(bee::decode_extension(*from_hex("120e08c1843d1208")).ok());
  pb::Writer inner;
  std::vector<uint64_t> blocks(bee::kMaxExtensionBlocks + 1, 7);
  inner.packed_field(3, blocks);
  pb::Writer outer;
  outer.bytes_field(1, inner.bytes());
  CHECK_FALSE(bee::decode_extension(outer.bytes()).ok());
}
