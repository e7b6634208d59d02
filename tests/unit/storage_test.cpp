#include <catch2/catch.hpp>

#include <fstream>

#include "storage/files.h"
#include "storage/store.h"
#include "test_util.h"

using namespace p2p;
using storage::Table;

namespace {

storage::LmdbOptions small() {
  storage::LmdbOptions o;
  o.map_size = uint64_t{1} << 30;
  return o;
}

void exercise(storage::Store& store) {
  {
    auto w = store.write();
    REQUIRE(w.ok());
    REQUIRE((*w)->put(Table::blocks, as_bytes("b"), as_bytes("2")).ok());
    REQUIRE((*w)->put(Table::blocks, as_bytes("a"), as_bytes("1")).ok());
    REQUIRE((*w)->put(Table::blocks, as_bytes("c"), as_bytes("3")).ok());
    REQUIRE((*w)->put(Table::tree, as_bytes("a"), as_bytes("other table")).ok());
    // A transaction sees its own writes.
    CHECK(as_chars(*(*w)->get(Table::blocks, as_bytes("b"))) == "2");
    REQUIRE((*w)->commit().ok());
  }
  {
    auto w = store.write();
    REQUIRE((*w)->put(Table::blocks, as_bytes("d"), as_bytes("lost")).ok());
    // dropped without commit: aborted
  }
  auto r = store.read();
  REQUIRE(r.ok());
  CHECK_FALSE((*r)->get(Table::blocks, as_bytes("d")));
  CHECK(as_chars(*(*r)->get(Table::tree, as_bytes("a"))) == "other table");
  std::string seen;
  REQUIRE((*r)->scan(Table::blocks, as_bytes("a"), as_bytes("c"), [&](ByteView k, ByteView v) {
    seen += std::string(as_chars(k)) + "=" + std::string(as_chars(v)) + ";";
    return true;
  }).ok());
  CHECK(seen == "a=1;b=2;");
  seen.clear();
  REQUIRE((*r)->scan(Table::blocks, {}, {}, [&](ByteView k, ByteView) {
    seen += as_chars(k);
    return seen.size() < 2;
  }).ok());
  CHECK(seen == "ab");
  r->reset();

  auto w = store.write();
  REQUIRE((*w)->del(Table::blocks, as_bytes("a")).ok());
  REQUIRE((*w)->del(Table::blocks, as_bytes("missing")).ok());
  REQUIRE((*w)->commit().ok());
  auto r2 = store.read();
  CHECK_FALSE((*r2)->get(Table::blocks, as_bytes("a")));
}

}  // namespace

TEST_CASE("memory store: transactions, order, abort", "[storage]") {
  auto store = storage::open_memory();
  exercise(*store);
}

TEST_CASE("lmdb store: transactions, order, abort, reopen", "[storage]") {
  test::TempDir dir;
  {
    auto store = storage::open_lmdb(dir.path, small());
    REQUIRE(store.ok());
    exercise(**store);
  }
  auto again = storage::open_lmdb(dir.path, small());
  REQUIRE(again.ok());
  auto r = (*again)->read();
  CHECK(as_chars(*(*r)->get(Table::blocks, as_bytes("c"))) == "3");
}

TEST_CASE("lmdb store: a truncated data file is refused with a clear error", "[storage]") {
  test::TempDir dir;
  {
    auto store = storage::open_lmdb(dir.path, small());
    REQUIRE(store.ok());
    auto w = (*store)->write();
    for (int i = 0; i < 2000; i++)
      REQUIRE((*w)->put(Table::blocks, storage::pair_key(1, i), Bytes(1000, 1)).ok());
    REQUIRE((*w)->commit().ok());
  }
  std::filesystem::resize_file(dir.path + "/data.mdb", 64 * 1024);
  auto store = storage::open_lmdb(dir.path, small());
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == ErrorCode::corruption);
  CHECK_THAT(store.status().message(), Catch::Contains("truncated"));
}

TEST_CASE("pair keys sort like the numbers they hold", "[storage]") {
  CHECK(storage::pair_key(1, 255) < storage::pair_key(1, 256));
  CHECK(storage::pair_key(1, ~0ULL) < storage::pair_key(2, 0));
}

TEST_CASE("files: exclusive creation has one winner, reads are bounded", "[storage]") {
  test::TempDir dir;
  std::string path = dir.path + "/secret";
  auto first = storage::create_file_exclusive(path, as_bytes("one"));
  REQUIRE(first.ok());
  CHECK(*first);
  auto second = storage::create_file_exclusive(path, as_bytes("two"));
  REQUIRE(second.ok());
  CHECK_FALSE(*second);
  CHECK(as_chars(*storage::read_file(path, 100)) == "one");
  CHECK(std::filesystem::status(path).permissions() ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
  CHECK_FALSE(storage::read_file(path, 2).ok());
  CHECK(storage::read_file(dir.path + "/none", 10).status().is_not_found());
  REQUIRE(storage::replace_file(path, as_bytes("three")).ok());
  CHECK(as_chars(*storage::read_file(path, 100)) == "three");
  REQUIRE(storage::ensure_dir(dir.path + "/a/b/c").ok());
}
