#include <catch2/catch.hpp>

#include "core/corestore.h"
#include "core/crypto.h"
#include "core/home.h"
#include "core/identity.h"
#include "core/keys.h"
#include "core/manifest.h"
#include "test_util.h"

using namespace p2p;

namespace {
// Cheap Argon2id parameters keep the tests fast; the format records them.
const crypto::SealParams kFast{1, 8192};
}  // namespace

TEST_CASE("seal: round trip, wrong passphrase, damage", "[crypto][identity]") {
  Key32 secret = crypto::random_key();
  Bytes sealed = crypto::seal(secret, "correct horse", kFast);
  auto back = crypto::unseal(sealed, "correct horse");
  REQUIRE(back.ok());
  CHECK(Key32() != secret);
  CHECK(std::equal(back->begin(), back->end(), secret.begin()));

  auto wrong = crypto::unseal(sealed, "battery staple");
  CHECK(wrong.status().code() == ErrorCode::permission);
  CHECK_THAT(wrong.status().message(), Catch::Contains("wrong passphrase"));

  Bytes damaged = sealed;
  damaged.back() ^= 1;
  CHECK_FALSE(crypto::unseal(damaged, "correct horse").ok());
  CHECK(crypto::unseal(Bytes(10, 0), "x").status().code() == ErrorCode::corruption);
  for (size_t cut = 0; cut < sealed.size(); cut++)
    CHECK_FALSE(crypto::unseal(ByteView(sealed.data(), cut), "correct horse").ok());

  Bytes greedy = sealed;  // a hostile memory limit is refused before any work
  for (int i = 13; i < 21; i++) greedy[i] = 0xff;
  CHECK(crypto::unseal(greedy, "correct horse").status().code() == ErrorCode::corruption);
}

TEST_CASE("identity: export forms parse back", "[identity]") {
  Key32 key = crypto::random_key();
  CHECK(*identity::parse(identity::export_plain(key), std::nullopt) == key);
  CHECK(*identity::parse("  " + identity::export_plain(key) + "\n", std::nullopt) == key);
  std::string sealed = identity::export_sealed(key, "pw");
  CHECK(identity::is_sealed(sealed));
  CHECK(identity::parse(sealed, std::nullopt).status().code() == ErrorCode::permission);
  CHECK(*identity::parse(sealed, std::string("pw")) == key);
  CHECK(identity::parse(sealed, std::string("nope")).status().code() == ErrorCode::permission);
  CHECK(identity::parse("abc", std::nullopt).status().code() == ErrorCode::invalid_argument);
  CHECK_FALSE(identity::parse(std::string(identity::kSealedPrefix) + "zz", std::string("pw")).ok());
}

TEST_CASE("identity: derived key pairs are distinct and stable", "[identity]") {
  Key32 key{};
  key[0] = 9;
  auto a = identity::signing_key_pair(key), b = identity::noise_key_pair(key);
  CHECK(a.public_key != b.public_key);
  CHECK(identity::signing_key_pair(key).public_key == a.public_key);
  Hash32 ns = Corestore::child_namespace(kDefaultNamespace, "p2p");
  CHECK(Corestore::derive_key_pair(key, ns, "identity").public_key == a.public_key);
  // A user core named "identity" is a different key pair.
  CHECK(Corestore::derive_key_pair(key, kDefaultNamespace, "identity").public_key != a.public_key);
}

TEST_CASE("home: the first writer creates the identity once", "[identity][home]") {
  test::TempDir dir;
  ::setenv("P2P_MAP_SIZE_GB", "1", 1);
  auto home = Home::open({dir.path + "/home", std::nullopt});
  REQUIRE(home.ok());
  auto k1 = (*home)->primary_key();
  REQUIRE(k1.ok());
  CHECK((*home)->created_identity());
  auto again = Home::open({dir.path + "/home", std::nullopt});
  auto k2 = (*again)->primary_key();
  CHECK(*k2 == *k1);
  CHECK_FALSE((*again)->created_identity());

  auto store = (*home)->writer();
  REQUIRE(store.ok());
  auto core = (*store)->get("log");
  REQUIRE(core.ok());
  REQUIRE((*core)->append(as_bytes("x")).ok());
  // By name and by every key form.
  CHECK((*again)->open_core("log").ok());
  CHECK((*(*again)->open_core("log"))->writable());
  CHECK((*again)->open_core(to_hex((*core)->key())).ok());
  CHECK((*again)->open_core(keys::link((*core)->key())).ok());
  CHECK((*again)->open_core("pear://" + keys::to_z32((*core)->key())).ok());
  CHECK((*again)->open_core("p2p://not-a-key").status().code() == ErrorCode::invalid_argument);
  CHECK((*again)->open_core("nothing").status().is_not_found());
  auto list = (*again)->reader().list();
  REQUIRE(list.ok());
  REQUIRE(list->size() == 1);
  CHECK(list->at(0).name == "log");
  CHECK(list->at(0).length == 1);
}

TEST_CASE("keys: z-base-32 and the accepted forms", "[keys]") {
  Key32 key = crypto::random_key();
  std::string z = keys::to_z32(key);
  CHECK(z.size() == 52);
  CHECK(*keys::parse(z) == key);
  CHECK(*keys::parse(to_hex(key)) == key);
  CHECK(*keys::parse("p2p://" + z) == key);
  CHECK(*keys::parse("pear://" + z + "/some/path") == key);
  CHECK_FALSE(keys::parse(z.substr(1)));
  CHECK_FALSE(keys::parse(z.substr(0, 51) + "0"));  // '0' is not in the alphabet
  CHECK_FALSE(keys::parse(std::string(64, 'g')));
  CHECK(keys::looks_like_key(z));
  CHECK(keys::looks_like_key("p2p://x"));
  CHECK_FALSE(keys::looks_like_key("my-log"));
  for (size_t n = 0; n < 40; n++) {
    Bytes b(n, static_cast<uint8_t>(n * 37));
    CHECK(*keys::from_z32(keys::to_z32(b)) == b);
  }
}

TEST_CASE("base64 and UTF-8 checks", "[base]") {
  CHECK(to_base64(as_bytes("")) == "");
  CHECK(to_base64(as_bytes("f")) == "Zg==");
  CHECK(to_base64(as_bytes("fo")) == "Zm8=");
  CHECK(to_base64(as_bytes("foo")) == "Zm9v");
  CHECK(to_base64(as_bytes("foobar")) == "Zm9vYmFy");
  CHECK(is_valid_utf8(as_bytes("héllo ✓ 𝄞")));
  CHECK_FALSE(is_valid_utf8(Bytes{0xff}));
  CHECK_FALSE(is_valid_utf8(Bytes{0xc3}));              // truncated
  CHECK_FALSE(is_valid_utf8(Bytes{0xc0, 0x80}));        // overlong
  CHECK_FALSE(is_valid_utf8(Bytes{0xed, 0xa0, 0x80}));  // surrogate
}
