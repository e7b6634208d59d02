// Hypercore 11 manifests (spec a.3) and the signature container that goes
// with them (a.4): a core's key is the hash of its manifest, and its signed
// roots verify against the manifest's signers.
#pragma once

#include <optional>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "core/crypto.h"

namespace p2p::manifest {

// Hard limits for untrusted manifests.
constexpr size_t kMaxSigners = 64;
constexpr size_t kMaxUserData = 4096;

struct Signer {
  uint64_t signature_type = 0;  // 0 = ed25519, the only one
  Hash32 ns{};
  Key32 public_key{};
};

struct Prologue {
  Hash32 hash{};
  uint64_t length = 0;
};

struct Manifest {
  uint64_t version = 1;
  bool allow_patch = false;
  uint64_t hash_type = 0;  // 0 = blake2b, the only one
  uint64_t quorum = 1;
  std::vector<Signer> signers;
  std::optional<Prologue> prologue;
  std::optional<std::vector<Key32>> linked;
  std::optional<Bytes> user_data;
};

// What Hypercore and Corestore use when only a key pair is given.
Manifest default_manifest(const Key32& public_key);
Bytes encode(const Manifest& m);
Result<Manifest> decode(ByteView encoded);
// The core key: H(MANIFEST || encoding).
Key32 hash(const Manifest& m);

// A multisig container with one signer's signature, as a v1 core stores it.
Bytes encode_signature(uint64_t signer, const Signature64& sig);
// Whether `signature` (the container) proves the tree `tree_hash` at
// (length, fork) for the core `key` with manifest `m`.
Status verify(const Manifest& m, const Key32& key, const Hash32& tree_hash, uint64_t length,
              uint64_t fork, ByteView signature);

}  // namespace p2p::manifest
