// The Noise handshakes Hyperswarm uses (spec f.1, j.3): XX for secret streams
// and IK for hyperdht's PEER_HANDSHAKE, with Ed25519 keys doing the
// Diffie-Hellman, BLAKE2b-512 hashing and ChaCha20-Poly1305. Pure logic:
// bytes in, bytes out; no sockets.
#pragma once

#include <array>
#include <memory>
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

// What NoiseXX and NoiseIK share (noise-handshake's NoiseState): the
// symmetric state, the message tokens of a pattern, and Split() once the last
// message has passed. Each message carries a payload, encrypted whenever a key
// is set. A failed read or write leaves the handshake unusable.
class NoiseHandshake {
 public:
  enum class Pattern { XX, IK };

  NoiseHandshake(const NoiseHandshake&) = delete;
  NoiseHandshake& operator=(const NoiseHandshake&) = delete;

  bool done() const { return done_; }
  const HandshakeResult& result() const { return result_; }
  // The peer's static key as soon as it is known (before done()): an IK
  // responder learns it from message 1, in time to decide whether to answer.
  // All zeros until then.
  const Key32& remote_public_key() const;

 protected:
  // `remote_static` is the responder's key an IK initiator knows in advance.
  // `ephemeral_seed` makes the handshake reproducible (tests); normally random.
  NoiseHandshake(Pattern pattern, bool initiator, const crypto::KeyPair& static_key,
                 const std::optional<Key32>& remote_static, ByteView prologue,
                 const std::optional<Key32>& ephemeral_seed);
  ~NoiseHandshake();

  // The next message to send, carrying `payload`.
  Result<Bytes> write_message(ByteView payload);
  // A message from the peer: its decrypted payload. A forged or malformed
  // message is an error.
  Result<Bytes> read_message(ByteView message);

 private:
  bool our_turn() const;
  void advance();

  struct State;
  std::unique_ptr<State> state_;
  Pattern pattern_;
  bool initiator_;
  bool has_remote_static_ = true;  // false: an IK initiator was given no key
  size_t step_ = 0;
  bool done_ = false;
  HandshakeResult result_;
};

// Noise_XX_Ed25519_ChaChaPoly_BLAKE2b with empty payloads and prologue, as
// secret-stream runs it.
//   -> e
//   <- e, ee, s, es
//   -> s, se
class NoiseXX : public NoiseHandshake {
 public:
  NoiseXX(bool initiator, const crypto::KeyPair& static_key, std::optional<Key32> ephemeral_seed = std::nullopt);

  // The next message to send (the initiator starts).
  Result<Bytes> write() { return write_message({}); }
  // A message from the peer; one with a payload is refused too.
  Status read(ByteView message);
};

// Noise_IK_Ed25519_ChaChaPoly_BLAKE2b with payloads, as hyperdht's NoiseWrap
// runs it (prologue NS_PEER_HANDSHAKE, noisePayload in both messages). The
// initiator knows the responder's static key; the responder learns the
// initiator's from message 1 (remote_public_key()).
//   <- s  (pre-message)
//   -> e, es, s, ss
//   <- e, ee, se
class NoiseIK : public NoiseHandshake {
 public:
  // `remote_static_public_key` is required for the initiator and ignored for
  // the responder.
  NoiseIK(bool initiator, const crypto::KeyPair& static_key, std::optional<Key32> remote_static_public_key,
          ByteView prologue, std::optional<Key32> ephemeral_seed = std::nullopt);

  // The next message, carrying `payload` (the initiator starts).
  Result<Bytes> write(ByteView payload) { return write_message(payload); }
  // The peer's message: its decrypted payload.
  Result<Bytes> read(ByteView message) { return read_message(message); }
};

// Ed25519 "Diffie-Hellman" as noise-curve-ed does it: the clamped scalar
// from SHA-512(seed) times the remote public point.
Result<Key32> ed25519_dh(const crypto::KeyPair& local, const Key32& remote_public);

}  // namespace p2p::net
