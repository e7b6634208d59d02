#include "core/crypto.h"

#include <sodium.h>

#include <cstring>
#include <stdexcept>

#include "core/encoding.h"

namespace p2p::crypto {

void init() {
  static const int rc = sodium_init();
  if (rc < 0) throw std::runtime_error("libsodium failed to initialise");
}

KeyPair key_pair_from_seed(const Key32& seed) {
  init();
  KeyPair kp;
  crypto_sign_seed_keypair(kp.public_key.data(), kp.secret_key.data(), seed.data());
  return kp;
}

KeyPair random_key_pair() { return key_pair_from_seed(random_key()); }

Signature64 sign(ByteView message, const KeyPair& kp) {
  Signature64 sig;
  crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(), kp.secret_key.data());
  return sig;
}

bool verify(ByteView message, ByteView signature, const Key32& public_key) {
  if (signature.size() != crypto_sign_BYTES) return false;
  return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                     public_key.data()) == 0;
}

void random_bytes(uint8_t* out, size_t n) {
  init();
  randombytes_buf(out, n);
}

Key32 random_key() {
  Key32 k;
  random_bytes(k.data(), k.size());
  return k;
}

Hash32 hash(std::initializer_list<ByteView> parts, ByteView key) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, key.empty() ? nullptr : key.data(), key.size(), 32);
  for (auto p : parts) crypto_generichash_update(&st, p.data(), p.size());
  Hash32 out;
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

std::array<uint8_t, 64> hash64(std::initializer_list<ByteView> parts) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 64);
  for (auto p : parts) crypto_generichash_update(&st, p.data(), p.size());
  std::array<uint8_t, 64> out;
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

std::vector<Hash32> namespaces(std::string_view name, std::initializer_list<uint8_t> ids) {
  Hash32 ns = hash({as_bytes(name)});
  std::vector<Hash32> out;
  for (uint8_t id : ids) out.push_back(hash({ns, ByteView(&id, 1)}));
  return out;
}

static void u64le(uint8_t* out, uint64_t n) {
  for (int i = 0; i < 8; i++) out[i] = static_cast<uint8_t>(n >> (8 * i));
}

Hash32 leaf_hash(ByteView data) {
  uint8_t prefix[9] = {0};
  u64le(prefix + 1, data.size());
  return hash({ByteView(prefix, 9), data});
}

Hash32 parent_hash(uint64_t size, const Hash32& left, const Hash32& right) {
  uint8_t prefix[9] = {1};
  u64le(prefix + 1, size);
  return hash({ByteView(prefix, 9), left, right});
}

Hash32 discovery_key(const Key32& key) { return hash({as_bytes("hypercore")}, key); }

const HypercoreNamespaces& hypercore_ns() {
  static const HypercoreNamespaces ns = [] {
    auto v = namespaces("hypercore", {0, 1, 2, 3, 4, 5});
    return HypercoreNamespaces{v[0], v[1], v[2], v[3], v[4], v[5]};
  }();
  return ns;
}

const Hash32& corestore_ns() {
  static const Hash32 ns = namespaces("corestore", {0})[0];
  return ns;
}

// Sealed layout: "p2ps" magic, u8 version 1, u64le opslimit, u64le memlimit,
// salt(16), nonce(24), secretbox(ciphertext + 16-byte MAC).
static constexpr uint8_t kSealMagic[4] = {'p', '2', 'p', 's'};
static constexpr size_t kSealHeader = 4 + 1 + 8 + 8 + crypto_pwhash_SALTBYTES + crypto_secretbox_NONCEBYTES;

SealParams default_seal_params() {
  return {crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE};
}

static bool derive_seal_key(uint8_t* key, std::string_view pass, const uint8_t* salt, SealParams p) {
  return crypto_pwhash(key, crypto_secretbox_KEYBYTES, pass.data(), pass.size(), salt, p.ops_limit,
                       p.mem_limit, crypto_pwhash_ALG_ARGON2ID13) == 0;
}

Bytes seal(ByteView secret, std::string_view passphrase, SealParams params) {
  init();
  enc::Encoder e;
  e.raw(ByteView(kSealMagic, 4));
  e.u8(1);
  e.u64le(params.ops_limit);
  e.u64le(params.mem_limit);
  uint8_t salt[crypto_pwhash_SALTBYTES], nonce[crypto_secretbox_NONCEBYTES];
  randombytes_buf(salt, sizeof salt);
  randombytes_buf(nonce, sizeof nonce);
  e.raw(ByteView(salt, sizeof salt));
  e.raw(ByteView(nonce, sizeof nonce));
  uint8_t key[crypto_secretbox_KEYBYTES];
  if (!derive_seal_key(key, passphrase, salt, params)) throw std::runtime_error("argon2id: out of memory");
  Bytes box(secret.size() + crypto_secretbox_MACBYTES);
  crypto_secretbox_easy(box.data(), secret.data(), secret.size(), nonce, key);
  sodium_memzero(key, sizeof key);
  e.raw(box);
  return e.take();
}

Result<Bytes> unseal(ByteView sealed, std::string_view passphrase) {
  init();
  if (sealed.size() < kSealHeader + crypto_secretbox_MACBYTES ||
      std::memcmp(sealed.data(), kSealMagic, 4) != 0 || sealed[4] != 1)
    return corruption("sealed secret: unknown or damaged format");
  enc::Decoder d(sealed.subspan(5));
  SealParams p{d.u64le(), static_cast<size_t>(d.u64le())};
  // Bound the cost a damaged or hostile file can make us pay.
  if (p.ops_limit < crypto_pwhash_OPSLIMIT_MIN || p.ops_limit > crypto_pwhash_OPSLIMIT_SENSITIVE ||
      p.mem_limit < crypto_pwhash_MEMLIMIT_MIN || p.mem_limit > crypto_pwhash_MEMLIMIT_SENSITIVE)
    return corruption("sealed secret: implausible Argon2id parameters");
  ByteView salt = d.fixed(crypto_pwhash_SALTBYTES);
  ByteView nonce = d.fixed(crypto_secretbox_NONCEBYTES);
  ByteView box = d.rest();
  uint8_t key[crypto_secretbox_KEYBYTES];
  if (!derive_seal_key(key, passphrase, salt.data(), p)) return io_error("argon2id: out of memory");
  Bytes out(box.size() - crypto_secretbox_MACBYTES);
  int rc = crypto_secretbox_open_easy(out.data(), box.data(), box.size(), nonce.data(), key);
  sodium_memzero(key, sizeof key);
  if (rc != 0) return error(ErrorCode::permission, "wrong passphrase (or the sealed secret is damaged)");
  return out;
}

}  // namespace p2p::crypto
