// The encrypted, message-framed stream @hyperswarm/secret-stream speaks
// (spec f.2): u24le-framed Noise XX handshake (or one done beforehand, as
// hyperdht's IK), one header message each way, then libsodium secretstream
// messages. Sans I/O: raw bytes go in through receive(), bytes to write
// collect in output(); the transport moves them.
#pragma once

#include <functional>
#include <memory>

#include "base/bytes.h"
#include "base/result.h"
#include "net/noise.h"

namespace p2p::net {

// Largest frame body the u24le length allows.
constexpr size_t kMaxFrame = (1u << 24) - 1;

class SecretStream {
 public:
  using MessageHandler = std::function<Status(ByteView plaintext)>;

  SecretStream(bool initiator, const crypto::KeyPair& static_key);
  // Starts from a completed handshake (hyperdht's IK, udx-and-connect 4.6):
  // no Noise messages; our header frame is queued at once.
  SecretStream(bool initiator, const HandshakeResult& handshake);
  ~SecretStream();
  SecretStream(const SecretStream&) = delete;
  SecretStream& operator=(const SecretStream&) = delete;

  bool initiator() const { return initiator_; }
  // True once the handshake finished and both headers were exchanged.
  bool established() const { return header_received_; }
  // Valid once the handshake is done.
  const HandshakeResult& handshake() const { return handshake_; }

  // Queues the first handshake message (the initiator speaks first); nothing
  // to do for a stream built from a completed handshake.
  Status start();
  // Raw bytes from the peer. Each complete plaintext message goes to
  // `on_message` (empty keep-alives are dropped). An error means the peer
  // broke the protocol: the connection must be closed.
  // When `pause` turns true between messages, the rest stays buffered until
  // the next call (which may pass no new bytes).
  Status receive(ByteView bytes, const MessageHandler& on_message, const std::function<bool()>& pause = {});
  bool has_input() const { return !input_.empty(); }
  // Encrypts one message (queued until the handshake is done). An empty
  // message is a keep-alive.
  Status send(ByteView plaintext);

  // Bytes waiting to be written to the socket; the transport takes them.
  // `spare` (emptied) becomes the next output buffer, so its memory is reused.
  Bytes take_output(Bytes spare = {}) {
    Bytes out = std::move(output_);
    spare.clear();
    output_ = std::move(spare);
    return out;
  }
  bool has_output() const { return !output_.empty(); }
  size_t output_size() const { return output_.size(); }

 private:
  Status on_frame(ByteView body, const MessageHandler& on_message);
  void write_frame(ByteView body);
  Status finish_handshake();
  void write_header();
  Status encrypt(ByteView plaintext);

  struct Sodium;
  bool initiator_;
  std::unique_ptr<NoiseXX> noise_;  // null once started from a completed handshake
  HandshakeResult handshake_;
  std::unique_ptr<Sodium> sodium_;
  bool header_sent_ = false;
  bool header_received_ = false;
  Bytes input_;     // unparsed bytes of a partial frame
  Bytes output_;    // framed bytes to write
  std::vector<Bytes> pending_;  // plaintexts sent before the handshake ended
};

}  // namespace p2p::net
