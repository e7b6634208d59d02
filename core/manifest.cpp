#include "core/manifest.h"

#include <cstring>
#include <set>

#include "core/encoding.h"
#include "core/merkle.h"

namespace p2p::manifest {

namespace {

constexpr uint64_t kFlagAllowPatch = 1, kFlagPrologue = 2, kFlagLinked = 4, kFlagUserData = 8;

}  // namespace

Manifest default_manifest(const Key32& public_key) {
  Manifest m;
  m.signers.push_back({0, crypto::hypercore_ns().default_namespace, public_key});
  return m;
}

Bytes encode(const Manifest& m) {
  enc::Encoder e;
  e.uint(m.version);
  uint64_t flags = (m.allow_patch ? kFlagAllowPatch : 0) | (m.prologue ? kFlagPrologue : 0) |
                   (m.linked ? kFlagLinked : 0) | (m.user_data ? kFlagUserData : 0);
  e.uint(flags);
  e.uint(m.hash_type);
  e.uint(m.quorum);
  e.uint(m.signers.size());
  for (const Signer& s : m.signers) {
    e.uint(s.signature_type);
    e.fixed(s.ns);
    e.fixed(s.public_key);
  }
  if (m.prologue) {
    e.fixed(m.prologue->hash);
    e.uint(m.prologue->length);
  }
  if (m.linked) {
    e.uint(m.linked->size());
    for (const Key32& k : *m.linked) e.fixed(k);
  }
  if (m.user_data) e.buffer(*m.user_data);
  return e.take();
}

Result<Manifest> decode(ByteView encoded) {
  enc::Decoder d(encoded);
  Manifest m;
  m.version = d.uint();
  if (d.ok() && m.version == 0) return error(ErrorCode::unsupported, "manifest: version 0 (legacy) manifests are not supported");
  if (m.version > 3) return corruption("manifest: unknown version " + std::to_string(m.version));
  uint64_t flags = d.uint();
  m.allow_patch = flags & kFlagAllowPatch;
  m.hash_type = d.uint();
  m.quorum = d.uint();
  uint64_t n = d.array_length(kMaxSigners);
  for (uint64_t i = 0; i < n && d.ok(); i++) {
    Signer s;
    s.signature_type = d.uint();
    s.ns = d.fixed_array<32>();
    s.public_key = d.fixed_array<32>();
    m.signers.push_back(s);
  }
  if (flags & kFlagPrologue) m.prologue = Prologue{d.fixed_array<32>(), d.uint()};
  if (flags & kFlagLinked) {
    uint64_t k = d.array_length(kMaxSigners);
    m.linked.emplace();
    for (uint64_t i = 0; i < k && d.ok(); i++) m.linked->push_back(d.fixed_array<32>());
  }
  if (flags & kFlagUserData) m.user_data = to_bytes(d.buffer(kMaxUserData));
  P2P_TRY(d.finish("manifest"));
  if (m.hash_type != 0) return error(ErrorCode::unsupported, "manifest: unknown hash type");
  for (const Signer& s : m.signers)
    if (s.signature_type != 0) return error(ErrorCode::unsupported, "manifest: unknown signature type");
  if (m.quorum > m.signers.size()) return corruption("manifest: quorum larger than the number of signers");
  return m;
}

Key32 hash(const Manifest& m) {
  Bytes e = encode(m);
  return crypto::hash({crypto::hypercore_ns().manifest, e});
}

Bytes encode_signature(uint64_t signer, const Signature64& sig) {
  enc::Encoder e;
  e.uint(1);  // one proof
  e.uint(signer);
  e.fixed(sig);
  e.uint(0);  // no patch
  e.uint(0);  // no patch nodes
  return e.take();
}

Status verify(const Manifest& m, const Key32& key, const Hash32& tree_hash, uint64_t length,
              uint64_t fork, ByteView signature) {
  auto bad = [](const std::string& why) { return error(ErrorCode::verification, "signature: " + why); };
  if (m.prologue && length == m.prologue->length) {
    if (tree_hash == m.prologue->hash) return {};
    return bad("tree hash does not match the prologue");
  }
  if (m.prologue && length < m.prologue->length) return bad("length is inside the prologue");
  auto signable = merkle::signable(key, tree_hash, length, fork);

  // A compat core (one signer whose key is the core key) stores the bare signature.
  if (signature.size() == 64 && m.signers.size() == 1 &&
      std::memcmp(m.signers[0].public_key.data(), key.data(), 32) == 0) {
    return crypto::verify(signable, signature, m.signers[0].public_key) ? Status{} : bad("does not verify");
  }

  enc::Decoder d(signature);
  uint64_t proofs = d.array_length(kMaxSigners);
  struct Proof {
    uint64_t signer;
    ByteView sig;
    uint64_t patch;
  };
  std::vector<Proof> list;
  for (uint64_t i = 0; i < proofs && d.ok(); i++) list.push_back({d.uint(), d.fixed(64), d.uint()});
  uint64_t patch_nodes = d.array_length(kMaxSigners);
  for (uint64_t i = 0; i < patch_nodes && d.ok(); i++) {
    d.uint();
    d.uint();
    d.fixed(32);
  }
  if (!d.done()) return bad("malformed signature container");
  uint64_t quorum = m.quorum;
  if (list.size() < quorum) return bad("fewer signatures than the quorum");
  std::set<uint64_t> seen;
  for (uint64_t i = 0; i < quorum; i++) {
    const Proof& p = list[i];
    if (p.signer >= m.signers.size() || !seen.insert(p.signer).second) return bad("unknown or repeated signer");
    if (p.patch != 0) return error(ErrorCode::unsupported, "signature: patched multisig is not supported yet");
    if (!crypto::verify(signable, p.sig, m.signers[p.signer].public_key)) return bad("does not verify");
  }
  return {};
}

}  // namespace p2p::manifest
