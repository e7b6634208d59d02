#include "net/dht_connect_messages.h"

#include "core/encoding.h"

namespace p2p::dht {

namespace {

// Flag bits, in hyperdht messages.js's field order.
constexpr uint64_t kHandshakePeerAddress = 1, kHandshakeRelayAddress = 2;
constexpr uint64_t kHolepunchPeerAddress = 1;
constexpr uint64_t kNoiseHolepunch = 1, kNoiseAddresses4 = 2, kNoiseAddresses6 = 4, kNoiseUdx = 8,
                   kNoiseSecretStream = 16, kNoiseRelayThrough = 32, kNoiseRelayAddresses = 64;
constexpr uint64_t kPunchConnected = 1, kPunchPunching = 2, kPunchAddresses = 4, kPunchRemoteAddress = 8,
                   kPunchToken = 16, kPunchRemoteToken = 32;
constexpr uint64_t kUdxReusableSocket = 1;

constexpr size_t kIpv6AddressSize = 18;
constexpr size_t kRelayInfoSize = 2 * kAddressSize;

template <typename T>
std::optional<T> checked(const enc::Decoder& d, T value) {
  if (!d.ok()) return std::nullopt;
  return value;
}

uint64_t flag_if(bool present, uint64_t bit) { return present ? bit : 0; }

void encode_optional_address(enc::Encoder& e, const std::optional<Address>& a) {
  if (a) encode_address(e, *a);
}

std::optional<Address> decode_address_if(enc::Decoder& d, bool present) {
  if (!present) return std::nullopt;
  return decode_address(d);
}

std::optional<Hash32> decode_hash_if(enc::Decoder& d, bool present) {
  if (!present) return std::nullopt;
  return d.fixed_array<32>();
}

// --- noisePayload parts ---

void encode_holepunch_info(enc::Encoder& e, const HolepunchInfo& h) {
  e.uint(h.id);
  e.uint(h.relays.size());
  for (const auto& r : h.relays) {
    encode_address(e, r.relay_address);
    encode_address(e, r.peer_address);
  }
}

HolepunchInfo decode_holepunch_info(enc::Decoder& d) {
  HolepunchInfo h;
  h.id = safe_uint(d);
  h.relays.resize(bounded_length(d, kRelayInfoSize));
  for (auto& r : h.relays) {
    r.relay_address = decode_address(d);
    r.peer_address = decode_address(d);
  }
  return h;
}

void encode_ipv6_addresses(enc::Encoder& e, const std::vector<Ipv6Address>& list) {
  e.uint(list.size());
  for (const auto& a : list) {
    e.fixed(a.ip);
    e.u16le(a.port);
  }
}

std::vector<Ipv6Address> decode_ipv6_addresses(enc::Decoder& d) {
  std::vector<Ipv6Address> list(bounded_length(d, kIpv6AddressSize));
  for (auto& a : list) {
    a.ip = d.fixed_array<16>();
    a.port = d.u16le();
  }
  return list;
}

void encode_udx_info(enc::Encoder& e, const UdxInfo& u) {
  e.uint(u.version);
  e.uint(flag_if(u.reusable_socket, kUdxReusableSocket));
  e.uint(u.id);
  e.uint(u.seq);
}

UdxInfo decode_udx_info(enc::Decoder& d) {
  UdxInfo u;
  u.version = safe_uint(d);
  u.reusable_socket = (safe_uint(d) & kUdxReusableSocket) != 0;
  u.id = safe_uint(d);
  u.seq = safe_uint(d);
  return u;
}

void encode_relay_through(enc::Encoder& e, const RelayThroughInfo& r) {
  e.uint(r.version);
  e.uint(r.flags);
  e.fixed(r.public_key);
  e.fixed(r.token);
}

RelayThroughInfo decode_relay_through(enc::Decoder& d) {
  RelayThroughInfo r;
  r.version = safe_uint(d);
  r.flags = safe_uint(d);
  r.public_key = d.fixed_array<32>();
  r.token = d.fixed_array<32>();
  return r;
}

}  // namespace

// --- PEER_HANDSHAKE / PEER_HOLEPUNCH values ---

Bytes encode_handshake_message(const HandshakeMessage& m) {
  enc::Encoder e;
  e.uint(flag_if(m.peer_address.has_value(), kHandshakePeerAddress) |
         flag_if(m.relay_address.has_value(), kHandshakeRelayAddress));
  e.uint(m.mode);
  e.buffer(m.noise);
  encode_optional_address(e, m.peer_address);
  encode_optional_address(e, m.relay_address);
  return e.take();
}

std::optional<HandshakeMessage> decode_handshake_message(ByteView b) {
  enc::Decoder d(b);
  HandshakeMessage m;
  uint64_t flags = safe_uint(d);
  m.mode = safe_uint(d);
  m.noise = to_bytes(d.buffer());
  m.peer_address = decode_address_if(d, flags & kHandshakePeerAddress);
  m.relay_address = decode_address_if(d, flags & kHandshakeRelayAddress);
  return checked(d, std::move(m));
}

Bytes encode_holepunch_message(const HolepunchMessage& m) {
  enc::Encoder e;
  e.uint(flag_if(m.peer_address.has_value(), kHolepunchPeerAddress));
  e.uint(m.mode);
  e.uint(m.id);
  e.buffer(m.payload);
  encode_optional_address(e, m.peer_address);
  return e.take();
}

std::optional<HolepunchMessage> decode_holepunch_message(ByteView b) {
  enc::Decoder d(b);
  HolepunchMessage m;
  uint64_t flags = safe_uint(d);
  m.mode = safe_uint(d);
  m.id = safe_uint(d);
  m.payload = to_bytes(d.buffer());
  m.peer_address = decode_address_if(d, flags & kHolepunchPeerAddress);
  return checked(d, std::move(m));
}

// --- noisePayload ---

Bytes encode_noise_payload(const NoisePayload& p) {
  enc::Encoder e;
  e.uint(p.version);
  e.uint(flag_if(p.holepunch.has_value(), kNoiseHolepunch) | flag_if(!p.addresses4.empty(), kNoiseAddresses4) |
         flag_if(!p.addresses6.empty(), kNoiseAddresses6) | flag_if(p.udx.has_value(), kNoiseUdx) |
         flag_if(p.secret_stream.has_value(), kNoiseSecretStream) |
         flag_if(p.relay_through.has_value(), kNoiseRelayThrough) |
         flag_if(p.relay_addresses.has_value(), kNoiseRelayAddresses));
  e.uint(p.error);
  e.uint(p.firewall);
  if (p.holepunch) encode_holepunch_info(e, *p.holepunch);
  if (!p.addresses4.empty()) encode_addresses(e, p.addresses4);
  if (!p.addresses6.empty()) encode_ipv6_addresses(e, p.addresses6);
  if (p.udx) encode_udx_info(e, *p.udx);
  if (p.secret_stream) e.uint(p.secret_stream->version);
  if (p.relay_through) encode_relay_through(e, *p.relay_through);
  if (p.relay_addresses) encode_addresses(e, *p.relay_addresses);
  return e.take();
}

std::optional<NoisePayload> decode_noise_payload(ByteView b) {
  enc::Decoder d(b);
  NoisePayload p;
  p.version = safe_uint(d);
  if (p.version != kConnectVersion) return checked(d, std::move(p));  // the rest is another format
  uint64_t flags = safe_uint(d);
  p.error = safe_uint(d);
  p.firewall = safe_uint(d);
  if (flags & kNoiseHolepunch) p.holepunch = decode_holepunch_info(d);
  if (flags & kNoiseAddresses4) p.addresses4 = decode_addresses(d);
  if (flags & kNoiseAddresses6) p.addresses6 = decode_ipv6_addresses(d);
  if (flags & kNoiseUdx) p.udx = decode_udx_info(d);
  if (flags & kNoiseSecretStream) p.secret_stream = SecretStreamInfo{safe_uint(d)};
  if (flags & kNoiseRelayThrough) p.relay_through = decode_relay_through(d);
  if (flags & kNoiseRelayAddresses) p.relay_addresses = decode_addresses(d);
  return checked(d, std::move(p));
}

// --- holepunchPayload ---

Bytes encode_holepunch_payload(const HolepunchPayload& p) {
  enc::Encoder e;
  e.uint(flag_if(p.connected, kPunchConnected) | flag_if(p.punching, kPunchPunching) |
         flag_if(p.addresses.has_value(), kPunchAddresses) |
         flag_if(p.remote_address.has_value(), kPunchRemoteAddress) | flag_if(p.token.has_value(), kPunchToken) |
         flag_if(p.remote_token.has_value(), kPunchRemoteToken));
  e.uint(p.error);
  e.uint(p.firewall);
  e.uint(p.round);
  if (p.addresses) encode_addresses(e, *p.addresses);
  encode_optional_address(e, p.remote_address);
  if (p.token) e.fixed(*p.token);
  if (p.remote_token) e.fixed(*p.remote_token);
  return e.take();
}

std::optional<HolepunchPayload> decode_holepunch_payload(ByteView b) {
  enc::Decoder d(b);
  HolepunchPayload p;
  uint64_t flags = safe_uint(d);
  p.error = safe_uint(d);
  p.firewall = safe_uint(d);
  p.round = safe_uint(d);
  p.connected = (flags & kPunchConnected) != 0;
  p.punching = (flags & kPunchPunching) != 0;
  if (flags & kPunchAddresses) p.addresses = decode_addresses(d);
  p.remote_address = decode_address_if(d, flags & kPunchRemoteAddress);
  p.token = decode_hash_if(d, flags & kPunchToken);
  p.remote_token = decode_hash_if(d, flags & kPunchRemoteToken);
  return checked(d, std::move(p));
}

}  // namespace p2p::dht
