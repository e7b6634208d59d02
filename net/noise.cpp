#include "net/noise.h"

#include <sodium.h>

#include <cstring>
#include <vector>

namespace p2p::net {

namespace {

using Hash64 = std::array<uint8_t, 64>;
constexpr size_t kKeySize = 32;
constexpr size_t kTagSize = crypto_aead_chacha20poly1305_ietf_ABYTES;
// noise-handshake's cipher refuses longer ciphertexts (Noise's message limit).
constexpr size_t kMaxCiphertext = 65535;

// A pattern's message tokens (the DH tokens name local then remote key).
enum class Token { e, s, ee, es, se, ss };

struct PatternSpec {
  const char* protocol;
  bool responder_static_preshared;  // IK's "<- s" pre-message
  std::vector<std::vector<Token>> messages;
};

const PatternSpec& spec_of(NoiseHandshake::Pattern pattern) {
  using enum Token;
  static const PatternSpec xx{"Noise_XX_Ed25519_ChaChaPoly_BLAKE2b", false, {{e}, {e, ee, s, es}, {s, se}}};
  static const PatternSpec ik{"Noise_IK_Ed25519_ChaChaPoly_BLAKE2b", true, {{e, es, s, ss}, {e, ee, se}}};
  return pattern == NoiseHandshake::Pattern::IK ? ik : xx;
}

Status too_short() { return error(ErrorCode::verification, "noise: message too short"); }

Hash64 blake2b512(std::initializer_list<ByteView> parts) { return crypto::hash64(parts); }

// HMAC over BLAKE2b-512 (block size 128), as noise-handshake's hmac.js.
Hash64 hmac(ByteView key, std::initializer_list<ByteView> data) {
  uint8_t k[128] = {0};
  if (key.size() > 128) {
    auto h = blake2b512({key});
    std::memcpy(k, h.data(), 64);
  } else {
    std::memcpy(k, key.data(), key.size());
  }
  uint8_t ipad[128], opad[128];
  for (int i = 0; i < 128; i++) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, 64);
  crypto_generichash_update(&st, ipad, 128);
  for (auto d : data) crypto_generichash_update(&st, d.data(), d.size());
  Hash64 inner;
  crypto_generichash_final(&st, inner.data(), 64);
  return blake2b512({ByteView(opad, 128), inner});
}

// HKDF with two outputs (RFC 5869 over HMAC-BLAKE2b-512).
std::pair<Hash64, Hash64> hkdf(ByteView chaining_key, ByteView input) {
  Hash64 prk = hmac(chaining_key, {input});
  const uint8_t one = 1, two = 2;
  Hash64 t1 = hmac(prk, {ByteView(&one, 1)});
  Hash64 t2 = hmac(prk, {t1, ByteView(&two, 1)});
  return {t1, t2};
}

}  // namespace

Result<Key32> ed25519_dh(const crypto::KeyPair& local, const Key32& remote_public) {
  uint8_t digest[64];
  crypto_hash_sha512(digest, local.secret_key.data(), 32);
  digest[0] &= 248;
  digest[31] &= 127;
  digest[31] |= 64;
  Key32 out;
  int rc = crypto_scalarmult_ed25519_noclamp(out.data(), digest, remote_public.data());
  sodium_memzero(digest, sizeof digest);
  if (rc != 0) return error(ErrorCode::verification, "noise: the peer's key is not a valid Ed25519 point");
  return out;
}

// Noise's SymmetricState plus the handshake keys.
struct NoiseHandshake::State {
  Hash64 h{}, ck{};
  Key32 k{};
  bool has_key = false;
  uint64_t n = 0;
  crypto::KeyPair s, e;
  Key32 rs{}, re{};

  void mix_hash(ByteView data) { h = blake2b512({h, data}); }

  Status mix_key(const Result<Key32>& dh) {
    if (!dh.ok()) return dh.status();
    auto [t1, t2] = hkdf(ck, *dh);
    ck = t1;
    std::memcpy(k.data(), t2.data(), kKeySize);
    has_key = true;
    n = 0;
    return {};
  }

  // A DH token: es means our ephemeral with their static for the initiator,
  // our static with their ephemeral for the responder; se the mirror image.
  Status mix_dh(Token t, bool initiator) {
    bool local_static = t == Token::ss || (t == Token::es && !initiator) || (t == Token::se && initiator);
    bool remote_static = t == Token::ss || (t == Token::es && initiator) || (t == Token::se && !initiator);
    return mix_key(ed25519_dh(local_static ? s : e, remote_static ? rs : re));
  }

  void nonce(uint8_t out[12]) const {
    std::memset(out, 0, 12);
    for (int i = 0; i < 8; i++) out[4 + i] = static_cast<uint8_t>(n >> (8 * i));
  }

  Result<Bytes> encrypt_and_hash(ByteView plain) {
    Bytes out;
    if (!has_key) {
      out = to_bytes(plain);
    } else {
      if (plain.size() + kTagSize > kMaxCiphertext) return invalid_argument("noise: handshake payload too large");
      out.resize(plain.size() + kTagSize);
      uint8_t iv[12];
      nonce(iv);
      unsigned long long len = 0;
      crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &len, plain.data(), plain.size(), h.data(), h.size(),
                                                nullptr, iv, k.data());
      n++;
    }
    mix_hash(out);
    return out;
  }

  Result<Bytes> decrypt_and_hash(ByteView cipher) {
    Bytes out;
    if (!has_key) {
      out = to_bytes(cipher);
    } else {
      if (cipher.size() < kTagSize) return too_short();
      if (cipher.size() > kMaxCiphertext) return error(ErrorCode::verification, "noise: message too long");
      out.resize(cipher.size() - kTagSize);
      uint8_t iv[12];
      nonce(iv);
      unsigned long long len = 0;
      if (crypto_aead_chacha20poly1305_ietf_decrypt(out.data(), &len, nullptr, cipher.data(), cipher.size(), h.data(),
                                                    h.size(), iv, k.data()) != 0)
        return error(ErrorCode::verification, "noise: a handshake message failed authentication");
      n++;
    }
    mix_hash(cipher);
    return out;
  }

  // Split(): the transport keys, once the last message has passed.
  HandshakeResult split(bool initiator) const {
    auto [t1, t2] = hkdf(ck, {});
    HandshakeResult r;
    std::memcpy(r.tx.data(), (initiator ? t1 : t2).data(), kKeySize);
    std::memcpy(r.rx.data(), (initiator ? t2 : t1).data(), kKeySize);
    r.hash = h;
    r.remote_public_key = rs;
    return r;
  }
};

NoiseHandshake::NoiseHandshake(Pattern pattern, bool initiator, const crypto::KeyPair& static_key,
                               const std::optional<Key32>& remote_static, ByteView prologue,
                               const std::optional<Key32>& ephemeral_seed)
    : state_(std::make_unique<State>()), pattern_(pattern), initiator_(initiator) {
  crypto::init();
  State& st = *state_;
  const PatternSpec& spec = spec_of(pattern_);
  // h = protocol name zero-padded to HASHLEN; ck = h; MixHash(prologue);
  // then the pre-message keys.
  std::memcpy(st.h.data(), spec.protocol, std::strlen(spec.protocol));
  st.ck = st.h;
  st.mix_hash(prologue);
  st.s = static_key;
  st.e = ephemeral_seed ? crypto::key_pair_from_seed(*ephemeral_seed) : crypto::random_key_pair();
  if (spec.responder_static_preshared) {
    if (initiator_ && remote_static) st.rs = *remote_static;
    has_remote_static_ = !initiator_ || remote_static.has_value();
    st.mix_hash(initiator_ ? st.rs : st.s.public_key);
  }
}

NoiseHandshake::~NoiseHandshake() { sodium_memzero(state_.get(), sizeof(State)); }

const Key32& NoiseHandshake::remote_public_key() const { return state_->rs; }

// The initiator writes the even-numbered messages.
bool NoiseHandshake::our_turn() const { return !done_ && (step_ % 2 == 0) == initiator_; }

void NoiseHandshake::advance() {
  if (++step_ < spec_of(pattern_).messages.size()) return;
  result_ = state_->split(initiator_);
  done_ = true;
}

Result<Bytes> NoiseHandshake::write_message(ByteView payload) {
  if (!our_turn()) return invalid_argument("noise: not our turn to send");
  if (!has_remote_static_) return invalid_argument("noise: an IK initiator needs the responder's public key");
  State& st = *state_;
  Bytes msg;
  auto append = [&](ByteView b) { msg.insert(msg.end(), b.begin(), b.end()); };
  for (Token t : spec_of(pattern_).messages[step_]) {
    if (t == Token::e) {
      append(st.e.public_key);
      st.mix_hash(st.e.public_key);
    } else if (t == Token::s) {
      auto s = st.encrypt_and_hash(st.s.public_key);
      append(*s);  // a 32-byte key always fits
    } else {
      P2P_TRY(st.mix_dh(t, initiator_));
    }
  }
  auto sealed = st.encrypt_and_hash(payload);
  if (!sealed.ok()) return sealed.status();
  append(*sealed);
  advance();
  return msg;
}

Result<Bytes> NoiseHandshake::read_message(ByteView msg) {
  if (done_ || our_turn()) return invalid_argument("noise: not expecting a message now");
  State& st = *state_;
  auto take = [&](size_t n) {
    ByteView part = msg.first(n);
    msg = msg.subspan(n);
    return part;
  };
  for (Token t : spec_of(pattern_).messages[step_]) {
    if (t == Token::e) {
      if (msg.size() < kKeySize) return too_short();
      auto e = take(kKeySize);
      std::copy(e.begin(), e.end(), st.re.begin());
      st.mix_hash(st.re);
    } else if (t == Token::s) {
      size_t len = kKeySize + (st.has_key ? kTagSize : 0);
      if (msg.size() < len) return too_short();
      auto s = st.decrypt_and_hash(take(len));
      if (!s.ok()) return s.status();
      std::copy(s->begin(), s->end(), st.rs.begin());
    } else {
      P2P_TRY(st.mix_dh(t, initiator_));
    }
  }
  auto payload = st.decrypt_and_hash(msg);
  if (!payload.ok()) return payload.status();
  advance();
  return payload;
}

NoiseXX::NoiseXX(bool initiator, const crypto::KeyPair& static_key, std::optional<Key32> ephemeral_seed)
    : NoiseHandshake(Pattern::XX, initiator, static_key, std::nullopt, {}, ephemeral_seed) {}

Status NoiseXX::read(ByteView message) {
  auto payload = read_message(message);
  if (!payload.ok()) return payload.status();
  // secret-stream's handshake payloads are empty: anything else is not a peer of ours.
  if (!payload->empty()) return error(ErrorCode::verification, "noise: unexpected handshake payload");
  return {};
}

NoiseIK::NoiseIK(bool initiator, const crypto::KeyPair& static_key, std::optional<Key32> remote_static_public_key,
                 ByteView prologue, std::optional<Key32> ephemeral_seed)
    : NoiseHandshake(Pattern::IK, initiator, static_key, remote_static_public_key, prologue, ephemeral_seed) {}

}  // namespace p2p::net
