// libsodium wrappers with the exact constructions Hypercore uses.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"

namespace p2p::crypto {

struct KeyPair {
  Key32 public_key{};
  std::array<uint8_t, 64> secret_key{};  // seed || public key, as libsodium keeps it
};

// Must run once before any other call; safe to call repeatedly.
void init();

KeyPair key_pair_from_seed(const Key32& seed);
KeyPair random_key_pair();
Signature64 sign(ByteView message, const KeyPair& kp);
bool verify(ByteView message, ByteView signature, const Key32& public_key);

void random_bytes(uint8_t* out, size_t n);
Key32 random_key();

// BLAKE2b-256 of the concatenation of `parts`, optionally keyed.
Hash32 hash(std::initializer_list<ByteView> parts, ByteView key = {});
// BLAKE2b-512, used by Noise.
std::array<uint8_t, 64> hash64(std::initializer_list<ByteView> parts);

// hypercore-crypto namespace(name, ids): ns = H(name); out[i] = H(ns || byte(ids[i])).
std::vector<Hash32> namespaces(std::string_view name, std::initializer_list<uint8_t> ids);

// Merkle tree node hashes (spec a.2).
Hash32 leaf_hash(ByteView data);
Hash32 parent_hash(uint64_t size, const Hash32& left, const Hash32& right);

// H("hypercore" ; key = core key).
Hash32 discovery_key(const Key32& key);

// Hypercore namespaces, computed once.
struct HypercoreNamespaces {
  Hash32 tree, replicate_initiator, replicate_responder, manifest, default_namespace,
      default_encryption;
};
const HypercoreNamespaces& hypercore_ns();
const Hash32& corestore_ns();

// Sealing a secret with a passphrase: Argon2id derives the key, XSalsa20-Poly1305
// (secretbox) seals. The sealed form carries salt and cost parameters.
struct SealParams {
  uint64_t ops_limit;
  size_t mem_limit;
};
SealParams default_seal_params();
Bytes seal(ByteView secret, std::string_view passphrase, SealParams params = default_seal_params());
// A wrong passphrase is ErrorCode::permission; a damaged blob is corruption.
Result<Bytes> unseal(ByteView sealed, std::string_view passphrase);

}  // namespace p2p::crypto
