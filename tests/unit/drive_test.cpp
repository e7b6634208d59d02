#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "core/app.h"
#include "core/drive.h"
#include "core/mirror.h"
#include "test_util.h"

using namespace p2p;

namespace {

struct TestDrive {
  std::unique_ptr<storage::Store> store = storage::open_memory();
  Corestore cs{*store, Key32{1}};
  std::unique_ptr<Drive> drive = std::move(*Drive::open_writable(cs, Corestore::child_namespace(kDefaultNamespace, "t")));
};

std::string read_all(Drive& d, const std::string& path, uint64_t at = 0) {
  auto e = d.entry(path, at);
  REQUIRE(e.ok());
  REQUIRE(e->has_value());
  std::string out;
  REQUIRE(d.read(**e, [&](ByteView b) {
    out += as_chars(b);
    return true;
  }).ok());
  return out;
}

void write(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

}  // namespace

TEST_CASE("drive: streaming put across many blocks, versions, delete", "[drive]") {
  TestDrive t;
  Bytes big(3 * kBlobBlockSize + 123);
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<uint8_t>(i * 31);
  REQUIRE(t.drive->put("/big", big).ok());
  auto e = *t.drive->entry("/big");
  REQUIRE(e);
  CHECK(e->blob->block_length == 4);
  CHECK(read_all(*t.drive, "/big") == std::string(as_chars(big)));
  uint64_t v1 = *t.drive->version();
  REQUIRE(t.drive->put("/big", as_bytes("small now")).ok());
  CHECK(read_all(*t.drive, "/big") == "small now");
  CHECK(read_all(*t.drive, "/big", v1).size() == big.size());  // checkout
  REQUIRE(t.drive->put("/empty", Bytes{}).ok());
  CHECK(read_all(*t.drive, "/empty").empty());
  CHECK(*t.drive->del("/big"));
  CHECK_FALSE(*t.drive->del("/big"));
  CHECK_FALSE(t.drive->entry("/big")->has_value());
}

TEST_CASE("drive: a streamed put of several commits, read in odd pieces; a failing source stores nothing", "[drive]") {
  TestDrive t;
  // Over two commits' worth (each holds 128 blocks of 64 KiB), so the next batch is
  // read and hashed while one commits.
  Bytes big(300 * kBlobBlockSize + 777);
  for (size_t i = 0; i < big.size(); i++) big[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
  size_t offset = 0, reads = 0;
  REQUIRE(t.drive->put("/big", [&](uint8_t* out, size_t n) -> Result<size_t> {
    size_t take = std::min({n, big.size() - offset, size_t{12345} + reads++ % 7});
    std::copy_n(big.data() + offset, take, out);
    offset += take;
    return take;
  }).ok());
  auto e = *t.drive->entry("/big");
  REQUIRE(e);
  CHECK(e->blob->block_length == 301);
  CHECK(e->blob->byte_length == big.size());
  CHECK(read_all(*t.drive, "/big") == std::string(as_chars(big)));

  size_t served = 0;
  Status s = t.drive->put("/broken", [&](uint8_t* out, size_t n) -> Result<size_t> {
    if (served >= 200 * kBlobBlockSize) return io_error("the disk went away");
    size_t take = std::min(n, size_t{1} << 20);
    std::fill_n(out, take, uint8_t{7});
    served += take;
    return take;
  });
  CHECK(s.code() == ErrorCode::io);
  CHECK(s.message().find("the disk went away") != std::string::npos);
  CHECK_FALSE(t.drive->entry("/broken")->has_value());
  CHECK(read_all(*t.drive, "/big") == std::string(as_chars(big)));
}

TEST_CASE("drive: listing, readdir, diff, put_many", "[drive]") {
  TestDrive t;
  std::vector<Drive::SmallFile> files = {
      {"/a.txt", to_bytes(as_bytes("a")), false, std::nullopt},
      {"/dir/b.txt", to_bytes(as_bytes("b")), true, std::nullopt},
      {"/dir/sub/c.txt", to_bytes(as_bytes("c")), false, std::nullopt},
      {"/link", {}, false, std::string("/a.txt")},
  };
  REQUIRE(t.drive->put_many(files).ok());
  CHECK(read_all(*t.drive, "/dir/b.txt") == "b");
  CHECK((*t.drive->entry("/dir/b.txt"))->executable);
  CHECK(*(*t.drive->entry("/link"))->linkname == "/a.txt");
  std::vector<std::string> all;
  REQUIRE(t.drive->list("/", [&](const DriveEntry& e) {
    all.push_back(e.path);
    return true;
  }).ok());
  CHECK(all == std::vector<std::string>{"/a.txt", "/dir/b.txt", "/dir/sub/c.txt", "/link"});
  std::vector<std::string> top;
  REQUIRE(t.drive->readdir("/", [&](const std::string& n, bool dir) {
    top.push_back(n + (dir ? "/" : ""));
    return true;
  }).ok());
  CHECK(top == std::vector<std::string>{"a.txt", "dir/", "link"});
  std::vector<std::string> inside;
  REQUIRE(t.drive->readdir("/dir", [&](const std::string& n, bool dir) {
    inside.push_back(n + (dir ? "/" : ""));
    return true;
  }).ok());
  CHECK(inside == std::vector<std::string>{"b.txt", "sub/"});

  uint64_t v = *t.drive->version();
  REQUIRE(t.drive->put("/a.txt", as_bytes("changed")).ok());
  REQUIRE(*t.drive->del("/link"));
  REQUIRE(t.drive->put("/new", as_bytes("n")).ok());
  std::vector<std::string> changes;
  REQUIRE(t.drive->diff(*t.drive->version(), v, [&](const DriveChange& c) {
    char op = c.newer && c.older ? '~' : c.newer ? '+' : '-';
    changes.push_back(op + (c.newer ? c.newer->path : c.older->path));
    return true;
  }).ok());
  CHECK(changes == std::vector<std::string>{"~/a.txt", "-/link", "+/new"});
  CHECK(t.drive->put("../escape", as_bytes("x")).code() == ErrorCode::invalid_argument);
}

TEST_CASE("mirror: a folder round trip, then nothing to do", "[drive][mirror]") {
  test::TempDir dir;
  std::filesystem::path src = dir.path + "/src", dst = dir.path + "/dst";
  write(src / "one.txt", "1");
  write(src / "deep/er/two.txt", "22");
  write(src / "skip.log", "ignored");
  std::filesystem::create_symlink("one.txt", src / "ln");
  TestDrive t;
  MirrorOptions o;
  o.ignore = {"*.log"};
  std::vector<std::string> seen;
  auto first = mirror_to_drive(src, *t.drive, "/", o, [&](const MirrorChange& c) { seen.push_back(c.op + c.path); });
  REQUIRE(first.ok());
  CHECK(first->added == 3);
  CHECK(seen == std::vector<std::string>{"+/deep/er/two.txt", "+/ln", "+/one.txt"});
  uint64_t v = *t.drive->version();
  auto again = mirror_to_drive(src, *t.drive, "/", o, [](const MirrorChange&) {});
  CHECK(again->unchanged == 3);
  CHECK(*t.drive->version() == v);  // unchanged files cost no writes

  auto out = mirror_to_folder(*t.drive, "/", dst, {}, [](const MirrorChange&) {});
  REQUIRE(out.ok());
  CHECK(out->added == 3);
  CHECK(std::filesystem::read_symlink(dst / "ln") == "one.txt");
  std::ifstream two(dst / "deep/er/two.txt");
  std::string text;
  two >> text;
  CHECK(text == "22");
  CHECK_FALSE(std::filesystem::exists(dst / "skip.log"));
}

TEST_CASE("apps: manifest validation and ignore patterns", "[app]") {
  test::TempDir dir;
  REQUIRE(app::init(dir.path + "/a", "web", "site").ok());
  auto m = app::read_manifest(dir.path + "/a");
  REQUIRE(m.ok());
  CHECK(m->main == "index.html");
  CHECK(app::init(dir.path + "/a", "web", "site").code() == ErrorCode::invalid_argument);
  CHECK(app::init(dir.path + "/b", "web", "bad name!").code() == ErrorCode::invalid_argument);
  write(dir.path + "/c/p2p.json", "{\"name\":\"c\",\"type\":\"robot\"}");
  CHECK(app::read_manifest(dir.path + "/c").status().code() == ErrorCode::invalid_argument);
  write(dir.path + "/d/p2p.json", "{\"name\":\"d\",\"main\":\"../../etc/passwd\"}");
  CHECK_FALSE(app::read_manifest(dir.path + "/d").ok());
  CHECK(ignored("/node_modules/x/y.js", {"node_modules"}));
  CHECK(ignored("/a/b.log", {"*.log"}));
  CHECK(ignored("/build/out", {"/build"}));
  CHECK_FALSE(ignored("/src/build.c", {"/build"}));
  CHECK_FALSE(ignored("/main.sh", {"*.log", ".git"}));
}
