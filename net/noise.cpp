#include "net/noise.h"

#include <sodium.h>

#include <cstring>

namespace p2p::net {

namespace {

using Hash64 = std::array<uint8_t, 64>;
constexpr const char* kProtocolXX = "Noise_XX_Ed25519_ChaChaPoly_BLAKE2b";

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
struct NoiseXX::State {
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
    std::memcpy(k.data(), t2.data(), 32);
    has_key = true;
    n = 0;
    return {};
  }

  void nonce(uint8_t out[12]) const {
    std::memset(out, 0, 12);
    for (int i = 0; i < 8; i++) out[4 + i] = static_cast<uint8_t>(n >> (8 * i));
  }

  Bytes encrypt_and_hash(ByteView plain) {
    Bytes out;
    if (!has_key) {
      out = to_bytes(plain);
    } else {
      out.resize(plain.size() + crypto_aead_chacha20poly1305_ietf_ABYTES);
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
      if (cipher.size() < crypto_aead_chacha20poly1305_ietf_ABYTES)
        return error(ErrorCode::verification, "noise: message too short");
      out.resize(cipher.size() - crypto_aead_chacha20poly1305_ietf_ABYTES);
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
};

NoiseXX::NoiseXX(bool initiator, const crypto::KeyPair& static_key, std::optional<Key32> ephemeral_seed)
    : state_(new State), initiator_(initiator) {
  crypto::init();
  // h = protocol name zero-padded to HASHLEN; ck = h; MixHash(prologue = empty).
  std::memcpy(state_->h.data(), kProtocolXX, std::strlen(kProtocolXX));
  state_->ck = state_->h;
  state_->mix_hash({});
  state_->s = static_key;
  state_->e = ephemeral_seed ? crypto::key_pair_from_seed(*ephemeral_seed) : crypto::random_key_pair();
}

NoiseXX::~NoiseXX() {
  sodium_memzero(state_, sizeof *state_);
  delete state_;
}

// Split(): the transport keys, once the third message has passed.
void NoiseXX::finish() {
  auto [t1, t2] = hkdf(state_->ck, {});
  std::memcpy(result_.tx.data(), (initiator_ ? t1 : t2).data(), 32);
  std::memcpy(result_.rx.data(), (initiator_ ? t2 : t1).data(), 32);
  result_.hash = state_->h;
  result_.remote_public_key = state_->rs;
  done_ = true;
}

Result<Bytes> NoiseXX::write() {
  State& st = *state_;
  Bytes msg;
  auto append = [&](const Bytes& b) { msg.insert(msg.end(), b.begin(), b.end()); };
  if (initiator_ && step_ == 0) {  // -> e
    msg.assign(st.e.public_key.begin(), st.e.public_key.end());
    st.mix_hash(st.e.public_key);
  } else if (!initiator_ && step_ == 1) {  // <- e, ee, s, es
    msg.assign(st.e.public_key.begin(), st.e.public_key.end());
    st.mix_hash(st.e.public_key);
    P2P_TRY(st.mix_key(ed25519_dh(st.e, st.re)));
    append(st.encrypt_and_hash(st.s.public_key));
    P2P_TRY(st.mix_key(ed25519_dh(st.s, st.re)));
  } else if (initiator_ && step_ == 2) {  // -> s, se
    append(st.encrypt_and_hash(st.s.public_key));
    P2P_TRY(st.mix_key(ed25519_dh(st.s, st.re)));
  } else {
    return invalid_argument("noise: not our turn to send");
  }
  append(st.encrypt_and_hash({}));  // the (empty) payload
  step_++;
  if (step_ == 3) finish();
  return msg;
}

Status NoiseXX::read(ByteView msg) {
  State& st = *state_;
  auto take_key = [&](Key32& out) -> Status {
    if (msg.size() < 32) return error(ErrorCode::verification, "noise: message too short");
    std::copy(msg.begin(), msg.begin() + 32, out.begin());
    msg = msg.subspan(32);
    return {};
  };
  if (!initiator_ && step_ == 0) {  // -> e
    if (msg.size() != 32) return error(ErrorCode::verification, "noise: the first message must be 32 bytes");
    P2P_TRY(take_key(st.re));
    st.mix_hash(st.re);
  } else if (initiator_ && step_ == 1) {  // <- e, ee, s, es
    if (msg.size() != 96) return error(ErrorCode::verification, "noise: the second message must be 96 bytes");
    P2P_TRY(take_key(st.re));
    st.mix_hash(st.re);
    P2P_TRY(st.mix_key(ed25519_dh(st.e, st.re)));
    auto s = st.decrypt_and_hash(msg.subspan(0, 48));
    if (!s.ok()) return s.status();
    std::copy(s->begin(), s->end(), st.rs.begin());
    msg = msg.subspan(48);
    P2P_TRY(st.mix_key(ed25519_dh(st.e, st.rs)));
  } else if (!initiator_ && step_ == 2) {  // -> s, se
    if (msg.size() != 64) return error(ErrorCode::verification, "noise: the third message must be 64 bytes");
    auto s = st.decrypt_and_hash(msg.subspan(0, 48));
    if (!s.ok()) return s.status();
    std::copy(s->begin(), s->end(), st.rs.begin());
    msg = msg.subspan(48);
    P2P_TRY(st.mix_key(ed25519_dh(st.e, st.rs)));
  } else {
    return invalid_argument("noise: not expecting a message now");
  }
  auto payload = st.decrypt_and_hash(msg);
  if (!payload.ok()) return payload.status();
  step_++;
  if (step_ == 3) finish();
  return {};
}

}  // namespace p2p::net
