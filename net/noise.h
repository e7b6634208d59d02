// The Noise handshakes Hyperswarm uses (spec f.1): XX for secret streams
// (and the building blocks for hyperdht's IK), with Ed25519 keys doing the
// Diffie-Hellman, BLAKE2b-512 hashing and ChaCha20-Poly1305. Pure logic:
// bytes in, bytes out; no sockets.
#pragma once

#include <array>
#include <optional>

#include "base/bytes.h"
#include "base/result.h"
#include "core/crypto.h"

namespace p2p::net {

struct HandshakeResult {
  Key32 tx{};  // secretstream key for what we send
  Key32 rx{};  // ... and for what we receive
  std::array<uint8_t, 64> hash{};  // the handshake hash, which binds the session
  Key32 remote_public_key{};
};

// Noise_XX_Ed25519_ChaChaPoly_BLAKE2b with empty payloads and prologue.
//   -> e
//   <- e, ee, s, es
//   -> s, se
class NoiseXX {
 public:
  // `ephemeral_seed` makes the handshake reproducible (tests); normally random.
  NoiseXX(bool initiator, const crypto::KeyPair& static_key, std::optional<Key32> ephemeral_seed = std::nullopt);
  ~NoiseXX();

  // The next message to send (the initiator starts).
  Result<Bytes> write();
  // A message from the peer; a forged or malformed one is an error.
  Status read(ByteView message);
  bool done() const { return done_; }
  const HandshakeResult& result() const { return result_; }

 private:
  void finish();
  struct State;
  State* state_;
  bool initiator_;
  int step_ = 0;
  bool done_ = false;
  HandshakeResult result_;
};

// Ed25519 "Diffie-Hellman" as noise-curve-ed does it: the clamped scalar
// from SHA-512(seed) times the remote public point.
Result<Key32> ed25519_dh(const crypto::KeyPair& local, const Key32& remote_public);

}  // namespace p2p::net
