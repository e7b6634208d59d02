#include "net/secret_stream.h"

#include <sodium.h>

#include <cstring>

namespace p2p::net {

namespace {

constexpr size_t kHeaderMessageSize = 32 + crypto_secretstream_xchacha20poly1305_HEADERBYTES;

const std::vector<Hash32>& stream_namespaces() {  // initiator, responder, send
  static const std::vector<Hash32> ns = crypto::namespaces("hyperswarm/secret-stream", {0, 1, 2});
  return ns;
}

Hash32 stream_id(bool initiator, const std::array<uint8_t, 64>& handshake_hash) {
  return crypto::hash({stream_namespaces()[initiator ? 0 : 1]}, handshake_hash);
}

Status protocol_error(const std::string& what) { return error(ErrorCode::corruption, "secret stream: " + what); }

}  // namespace

struct SecretStream::Sodium {
  crypto_secretstream_xchacha20poly1305_state push{};
  crypto_secretstream_xchacha20poly1305_state pull{};
};

SecretStream::SecretStream(bool initiator, const crypto::KeyPair& static_key)
    : initiator_(initiator),
      noise_(std::make_unique<NoiseXX>(initiator, static_key)),
      sodium_(std::make_unique<Sodium>()) {}

SecretStream::SecretStream(bool initiator, const HandshakeResult& handshake)
    : initiator_(initiator), handshake_(handshake), sodium_(std::make_unique<Sodium>()) {
  crypto::init();
  write_header();
}

SecretStream::~SecretStream() {
  sodium_memzero(sodium_.get(), sizeof(Sodium));
  sodium_memzero(&handshake_, sizeof handshake_);
}

void SecretStream::write_frame(ByteView body) {
  size_t n = body.size();
  output_.push_back(static_cast<uint8_t>(n));
  output_.push_back(static_cast<uint8_t>(n >> 8));
  output_.push_back(static_cast<uint8_t>(n >> 16));
  output_.insert(output_.end(), body.begin(), body.end());
}

Status SecretStream::start() {
  if (!initiator_ || !noise_) return {};
  auto m = noise_->write();
  if (!m.ok()) return m.status();
  write_frame(*m);
  return {};
}

Status SecretStream::receive(ByteView bytes, const MessageHandler& on_message, const std::function<bool()>& pause) {
  // Parse straight from `bytes` when nothing is buffered (the common case).
  ByteView in = bytes;
  if (!input_.empty()) {
    input_.insert(input_.end(), bytes.begin(), bytes.end());
    in = input_;
  }
  size_t pos = 0;
  while (in.size() - pos >= 3 && !(pause && pause())) {
    size_t len = in[pos] | (in[pos + 1] << 8) | (static_cast<size_t>(in[pos + 2]) << 16);
    if (in.size() - pos - 3 < len) break;
    Status s = on_frame(in.subspan(pos + 3, len), on_message);
    if (!s.ok()) return s;
    pos += 3 + len;
  }
  if (in.data() == input_.data()) {
    input_.erase(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(pos));
  } else {
    input_.assign(in.begin() + static_cast<std::ptrdiff_t>(pos), in.end());
  }
  return {};
}

Status SecretStream::on_frame(ByteView body, const MessageHandler& on_message) {
  if (noise_ && !noise_->done()) {
    P2P_TRY(noise_->read(body));
    if (!noise_->done()) {  // our turn: answer
      auto reply = noise_->write();
      if (!reply.ok()) return reply.status();
      write_frame(*reply);
    }
    if (noise_->done()) P2P_TRY(finish_handshake());
    return {};
  }
  if (!header_received_) {
    if (body.size() != kHeaderMessageSize) return protocol_error("bad header message");
    Hash32 expected = stream_id(!initiator_, handshake_.hash);
    if (std::memcmp(body.data(), expected.data(), 32) != 0) return protocol_error("stream id mismatch");
    if (crypto_secretstream_xchacha20poly1305_init_pull(&sodium_->pull, body.data() + 32, handshake_.rx.data()) != 0)
      return protocol_error("bad secretstream header");
    header_received_ = true;
    return {};
  }
  if (body.size() < crypto_secretstream_xchacha20poly1305_ABYTES) return protocol_error("message too short");
  size_t plain_size = body.size() - crypto_secretstream_xchacha20poly1305_ABYTES;
  Bytes plain(plain_size);
  unsigned char tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(&sodium_->pull, plain.data(), nullptr, &tag, body.data(),
                                                 body.size(), nullptr, 0) != 0)
    return protocol_error("message failed authentication");
  if (plain.empty()) return {};  // keep-alive
  return on_message(plain);
}

Status SecretStream::finish_handshake() {
  handshake_ = noise_->result();
  write_header();
  for (const Bytes& p : pending_) P2P_TRY(encrypt(p));
  pending_.clear();
  return {};
}

// streamId(32) || secretstream header(24), keyed by our tx.
void SecretStream::write_header() {
  Bytes header(kHeaderMessageSize);
  Hash32 id = stream_id(initiator_, handshake_.hash);
  std::memcpy(header.data(), id.data(), 32);
  crypto_secretstream_xchacha20poly1305_init_push(&sodium_->push, header.data() + 32, handshake_.tx.data());
  write_frame(header);
  header_sent_ = true;
}

Status SecretStream::send(ByteView plaintext) {
  if (plaintext.size() + crypto_secretstream_xchacha20poly1305_ABYTES > kMaxFrame)
    return invalid_argument("message of " + std::to_string(plaintext.size()) + " bytes is too large for one frame");
  if (!header_sent_) {
    pending_.push_back(to_bytes(plaintext));
    return {};
  }
  return encrypt(plaintext);
}

Status SecretStream::encrypt(ByteView plaintext) {
  size_t body = plaintext.size() + crypto_secretstream_xchacha20poly1305_ABYTES;
  size_t at = output_.size();
  output_.resize(at + 3 + body);
  output_[at] = static_cast<uint8_t>(body);
  output_[at + 1] = static_cast<uint8_t>(body >> 8);
  output_[at + 2] = static_cast<uint8_t>(body >> 16);
  crypto_secretstream_xchacha20poly1305_push(&sodium_->push, output_.data() + at + 3, nullptr, plaintext.data(),
                                             plaintext.size(), nullptr, 0, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
  return {};
}

}  // namespace p2p::net
