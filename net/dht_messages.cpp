#include "net/dht_messages.h"

#include <algorithm>
#include <charconv>

#include "core/crypto.h"
#include "core/encoding.h"

namespace p2p::dht {

namespace {

// Packet flag bits (dht-rpc io.js). id and token sit at the same bits in both types.
constexpr uint64_t kFlagId = 1, kFlagToken = 2;
constexpr uint64_t kRequestInternal = 4, kRequestTarget = 8, kRequestValue = 16;
constexpr uint64_t kResponseCloserNodes = 4, kResponseError = 8, kResponseValue = 16;
// Announce flag bits (hyperdht messages.js).
constexpr uint64_t kAnnouncePeer = 1, kAnnounceRefresh = 2, kAnnounceSignature = 4, kAnnounceBump = 8;

constexpr size_t kMinPeerSize = 32 + 1;  // public key + an empty address array

}  // namespace

// --- compact-encoding helpers, shared with the other hyperdht codecs ---

uint64_t safe_uint(enc::Decoder& d) {
  uint64_t n = d.uint();
  if (n > kMaxSafeInteger) d.fail();
  return n;
}

uint64_t bounded_length(enc::Decoder& d, size_t min_element_size) {
  return d.array_length(std::min<uint64_t>(enc::kMaxArrayLength, d.remaining() / min_element_size));
}

void encode_address(enc::Encoder& e, const Address& a) { e.ipv4_address(a.ip, a.port); }

Address decode_address(enc::Decoder& d) {
  Address a;
  a.ip = d.fixed_array<4>();
  a.port = d.u16le();
  return a;
}

void encode_addresses(enc::Encoder& e, const std::vector<Address>& list) {
  e.uint(list.size());
  for (const auto& a : list) encode_address(e, a);
}

std::vector<Address> decode_addresses(enc::Decoder& d) {
  std::vector<Address> list(bounded_length(d, kAddressSize));
  for (auto& a : list) a = decode_address(d);
  return list;
}

namespace {

void encode_peer_to(enc::Encoder& e, const PeerRecord& p) {
  e.fixed(p.public_key);
  encode_addresses(e, p.relay_addresses);
}

PeerRecord decode_peer_from(enc::Decoder& d) {
  PeerRecord p;
  p.public_key = d.fixed_array<32>();
  p.relay_addresses = decode_addresses(d);
  return p;
}

template <typename T>
std::optional<T> checked(const enc::Decoder& d, T value) {
  // Trailing bytes are tolerated, as dht-rpc's decoders and compact-encoding's c.decode do.
  if (!d.ok()) return std::nullopt;
  return value;
}

// byte 0, flags, tid, to, [id], [token]: the prefix requests and responses share.
// `flags` carries the type-specific bits; id and token are added here.
template <typename Packet>
void encode_header(enc::Encoder& e, uint8_t type, uint64_t flags, const Packet& p) {
  e.u8(type);
  e.uint(flags | (p.id ? kFlagId : 0) | (p.token ? kFlagToken : 0));
  e.u16le(p.tid);
  encode_address(e, p.to);
  if (p.id) e.fixed(*p.id);
  if (p.token) e.fixed(*p.token);
}

// Returns the flags for the type-specific fields; a wrong byte 0 fails the decoder.
template <typename Packet>
uint64_t decode_header(enc::Decoder& d, uint8_t type, Packet& p) {
  if (d.u8() != type) d.fail();
  uint64_t flags = safe_uint(d);
  p.tid = d.u16le();
  p.to = decode_address(d);
  if (flags & kFlagId) p.id = d.fixed_array<32>();
  if (flags & kFlagToken) p.token = d.fixed_array<32>();
  return flags;
}

Signable concat(const Hash32& ns, const Hash32& hash) {
  Signable out;
  std::copy(ns.begin(), ns.end(), out.begin());
  std::copy(hash.begin(), hash.end(), out.begin() + 32);
  return out;
}

// Digits only (no sign, no spaces), the whole of `s`, at most `max`.
std::optional<uint32_t> parse_decimal(std::string_view s, uint32_t max) {
  uint32_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || n > max) return std::nullopt;
  return n;
}

}  // namespace

// --- addresses ---

std::string Address::host() const {
  return std::to_string(ip[0]) + "." + std::to_string(ip[1]) + "." + std::to_string(ip[2]) + "." +
         std::to_string(ip[3]);
}

std::string Address::to_string() const { return host() + ":" + std::to_string(port); }

std::optional<std::array<uint8_t, 4>> parse_ipv4(std::string_view host) {
  std::array<uint8_t, 4> ip{};
  for (size_t i = 0; i < ip.size(); i++) {
    size_t dot = i + 1 < ip.size() ? host.find('.') : host.size();
    if (dot == std::string_view::npos) return std::nullopt;
    auto part = host.substr(0, dot);
    // No leading zeros: "010" would mean 8 to inet_aton and 10 to compact-encoding.
    if (part.size() > 1 && part[0] == '0') return std::nullopt;
    auto octet = parse_decimal(part, 255);
    if (!octet) return std::nullopt;
    ip[i] = static_cast<uint8_t>(*octet);
    host.remove_prefix(std::min(host.size(), dot + 1));
  }
  return ip;
}

std::optional<Address> parse_address(std::string_view host_port) {
  auto colon = host_port.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto ip = parse_ipv4(host_port.substr(0, colon));
  auto port = parse_decimal(host_port.substr(colon + 1), 65535);
  if (!ip || !port) return std::nullopt;
  return Address{*ip, static_cast<uint16_t>(*port)};
}

Hash32 node_id(const Address& address) {
  enc::Encoder e;
  encode_address(e, address);
  return crypto::hash({e.bytes()});
}

// --- dht-rpc packets ---

Bytes encode_request(const Request& r) {
  enc::Encoder e;
  encode_header(e, kRequestByte, (r.internal ? kRequestInternal : 0) | (r.target ? kRequestTarget : 0) |
                                     (r.value ? kRequestValue : 0),
                r);
  e.uint(r.command);
  if (r.target) e.fixed(*r.target);
  // An empty value is still sent (JS tests `if (value)`, and an empty Buffer is truthy).
  if (r.value) e.buffer(*r.value);
  return e.take();
}

Bytes encode_response(const Response& r) {
  enc::Encoder e;
  bool closer = !r.closer_nodes.empty();
  encode_header(e, kResponseByte, (closer ? kResponseCloserNodes : 0) | (r.error > 0 ? kResponseError : 0) |
                                      (r.value ? kResponseValue : 0),
                r);
  if (closer) encode_addresses(e, r.closer_nodes);
  if (r.error > 0) e.uint(r.error);
  if (r.value) e.buffer(*r.value);
  return e.take();
}

std::optional<Request> decode_request(ByteView datagram) {
  enc::Decoder d(datagram);
  Request r;
  uint64_t flags = decode_header(d, kRequestByte, r);
  r.internal = (flags & kRequestInternal) != 0;
  r.command = safe_uint(d);
  if (flags & kRequestTarget) r.target = d.fixed_array<32>();
  if (flags & kRequestValue) r.value = to_bytes(d.buffer());
  return checked(d, std::move(r));
}

std::optional<Response> decode_response(ByteView datagram) {
  enc::Decoder d(datagram);
  Response r;
  uint64_t flags = decode_header(d, kResponseByte, r);
  if (flags & kResponseCloserNodes) r.closer_nodes = decode_addresses(d);
  if (flags & kResponseError) r.error = safe_uint(d);
  if (flags & kResponseValue) r.value = to_bytes(d.buffer());
  return checked(d, std::move(r));
}

// --- HyperDHT values ---

Bytes encode_peer(const PeerRecord& p) {
  enc::Encoder e;
  encode_peer_to(e, p);
  return e.take();
}

std::optional<PeerRecord> decode_peer(ByteView b) {
  // Every relay address is kept: the announce signature covers them all, and
  // the record store applies kMaxRelayAddresses after verifying it.
  enc::Decoder d(b);
  auto p = decode_peer_from(d);
  return checked(d, std::move(p));
}

Bytes encode_announce(const Announce& a) {
  enc::Encoder e;
  e.uint((a.peer ? kAnnouncePeer : 0) | (a.refresh ? kAnnounceRefresh : 0) | (a.signature ? kAnnounceSignature : 0) |
         (a.bump ? kAnnounceBump : 0));
  if (a.peer) encode_peer_to(e, *a.peer);
  if (a.refresh) e.fixed(*a.refresh);
  if (a.signature) e.fixed(*a.signature);
  if (a.bump) e.uint(a.bump);
  return e.take();
}

std::optional<Announce> decode_announce(ByteView b) {
  enc::Decoder d(b);
  Announce a;
  uint64_t flags = safe_uint(d);
  if (flags & kAnnouncePeer) a.peer = decode_peer_from(d);
  if (flags & kAnnounceRefresh) a.refresh = d.fixed_array<32>();
  if (flags & kAnnounceSignature) a.signature = d.fixed_array<64>();
  if (flags & kAnnounceBump) a.bump = safe_uint(d);
  return checked(d, std::move(a));
}

Bytes encode_lookup_reply(const std::vector<ByteView>& encoded_peers, uint64_t bump) {
  enc::Encoder e;
  e.uint(encoded_peers.size());
  for (auto p : encoded_peers) e.raw(p);
  e.uint(bump);
  return e.take();
}

std::optional<LookupReply> decode_lookup_reply(ByteView b) {
  enc::Decoder d(b);
  LookupReply r;
  r.peers.resize(bounded_length(d, kMinPeerSize));
  for (auto& p : r.peers) p = decode_peer_from(d);
  // Older nodes end the reply after the peers.
  if (d.remaining() > 0) r.bump = safe_uint(d);
  return checked(d, std::move(r));
}

Bytes encode_mutable_put(const MutablePut& m) {
  enc::Encoder e;
  e.fixed(m.public_key);
  e.uint(m.seq);
  e.buffer(m.value);
  e.fixed(m.signature);
  return e.take();
}

std::optional<MutablePut> decode_mutable_put(ByteView b) {
  enc::Decoder d(b);
  MutablePut m;
  m.public_key = d.fixed_array<32>();
  m.seq = safe_uint(d);
  m.value = to_bytes(d.buffer());
  m.signature = d.fixed_array<64>();
  return checked(d, std::move(m));
}

Bytes encode_mutable_record(const MutableRecord& m) {
  enc::Encoder e;
  e.uint(m.seq);
  e.buffer(m.value);
  e.fixed(m.signature);
  return e.take();
}

std::optional<MutableRecord> decode_mutable_record(ByteView b) {
  enc::Decoder d(b);
  MutableRecord m;
  m.seq = safe_uint(d);
  m.value = to_bytes(d.buffer());
  m.signature = d.fixed_array<64>();
  return checked(d, std::move(m));
}

// --- signatures ---

const Namespaces& namespaces() {
  static const Namespaces ns = [] {
    auto v = crypto::namespaces("hyperswarm/dht", {4, 5, 6, 0, 1, 10});
    return Namespaces{v[0], v[1], v[2], v[3], v[4], v[5]};
  }();
  return ns;
}

Signable announce_signable(const Hash32& ns, const Hash32& target, const Hash32& node_id, const Hash32& token,
                           const PeerRecord& peer, const std::optional<Hash32>& refresh) {
  Bytes peer_bytes = encode_peer(peer);
  ByteView refresh_bytes = refresh ? ByteView(*refresh) : ByteView();
  return concat(ns, crypto::hash({target, node_id, token, peer_bytes, refresh_bytes}));
}

Signable mutable_signable(uint64_t seq, ByteView value) {
  enc::Encoder e;
  e.uint(seq);
  e.buffer(value);
  return concat(namespaces().mutable_put, crypto::hash({e.bytes()}));
}

}  // namespace p2p::dht
