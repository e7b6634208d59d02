// dht-rpc packets and the HyperDHT record formats (spec sections i and j).
// Decoders take untrusted datagrams: every length is bounded by the input and
// a malformed packet yields nullopt, never a partial value.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"

namespace p2p::enc {
class Encoder;
class Decoder;
}  // namespace p2p::enc

namespace p2p::dht {

// An IPv4 endpoint as compact-encoding's ipv4Address lays it out (4 bytes ip, u16le port).
struct Address {
  std::array<uint8_t, 4> ip{};
  uint16_t port = 0;

  std::string host() const;      // dotted quad
  std::string to_string() const;  // host:port
  bool operator==(const Address&) const = default;
  auto operator<=>(const Address&) const = default;
};
// "a.b.c.d:port" (an IPv4 literal); nullopt on anything else.
std::optional<Address> parse_address(std::string_view host_port);
std::optional<std::array<uint8_t, 4>> parse_ipv4(std::string_view host);

// --- compact-encoding helpers the hyperdht codecs share ---

// compact-encoding rejects a uint above Number.MAX_SAFE_INTEGER when decoding,
// so a packet carrying one is dropped by the reference and must be here too.
constexpr uint64_t kMaxSafeInteger = (uint64_t{1} << 53) - 1;
constexpr size_t kAddressSize = 6;

uint64_t safe_uint(enc::Decoder& d);
// An array count no larger than what the remaining bytes could hold, so a
// hostile count fails before anything is allocated.
uint64_t bounded_length(enc::Decoder& d, size_t min_element_size);
void encode_address(enc::Encoder& e, const Address& a);
Address decode_address(enc::Decoder& d);
void encode_addresses(enc::Encoder& e, const std::vector<Address>& list);
std::vector<Address> decode_addresses(enc::Decoder& d);

// A node's id: BLAKE2b-256 of its public ipv4Address encoding (6 bytes).
Hash32 node_id(const Address& address);

// Byte 0 of a datagram: type << 4 | version 3.
constexpr uint8_t kRequestByte = 0x03;
constexpr uint8_t kResponseByte = 0x13;

// dht-rpc internal commands (flag `internal` set).
enum InternalCommand : uint64_t { kPing = 0, kPingNat = 1, kFindNode = 2, kDownHint = 3, kDelayedPing = 4 };
// HyperDHT commands (not internal).
enum Command : uint64_t {
  kPeerHandshake = 0,
  kPeerHolepunch = 1,
  kFindPeer = 2,
  kLookup = 3,
  kAnnounce = 4,
  kUnannounce = 5,
  kMutablePut = 6,
  kMutableGet = 7,
  kImmutablePut = 8,
  kImmutableGet = 9,
  kPlugin = 10,
};
enum ErrorCode : uint64_t {
  kErrorNone = 0,
  kErrorUnknownCommand = 1,
  kErrorInvalidToken = 2,
  kErrorSeqReused = 16,
  kErrorSeqTooLow = 17,
};

struct Request {
  uint16_t tid = 0;
  Address to{};                    // the recipient as the sender sees it
  std::optional<Hash32> id{};      // sender's id (persistent nodes only)
  std::optional<Hash32> token{};   // a token the recipient gave the sender earlier
  bool internal = false;
  uint64_t command = 0;
  std::optional<Hash32> target{};
  std::optional<Bytes> value{};
};

struct Response {
  uint16_t tid = 0;
  Address to{};  // the requester's address as the responder saw it
  std::optional<Hash32> id{};
  std::optional<Hash32> token{};
  std::vector<Address> closer_nodes{};
  uint64_t error = 0;
  std::optional<Bytes> value{};
};

// Whole datagrams, byte 0 included. Trailing bytes after the last field are
// ignored, as dht-rpc does.
Bytes encode_request(const Request& r);
Bytes encode_response(const Response& r);
std::optional<Request> decode_request(ByteView datagram);
std::optional<Response> decode_response(ByteView datagram);

// --- HyperDHT values ---

// At most this many relay addresses are kept per record (as hyperdht does).
constexpr size_t kMaxRelayAddresses = 3;

struct PeerRecord {
  Key32 public_key{};
  std::vector<Address> relay_addresses;
  bool operator==(const PeerRecord&) const = default;
};
Bytes encode_peer(const PeerRecord& p);
std::optional<PeerRecord> decode_peer(ByteView b);

// The ANNOUNCE / UNANNOUNCE request value.
struct Announce {
  std::optional<PeerRecord> peer{};
  std::optional<Hash32> refresh{};
  std::optional<Signature64> signature{};
  uint64_t bump = 0;
};
Bytes encode_announce(const Announce& a);
std::optional<Announce> decode_announce(ByteView b);

// The LOOKUP reply value: peers as encoded records, then a bump (always written,
// optional when reading).
struct LookupReply {
  std::vector<PeerRecord> peers;
  uint64_t bump = 0;
};
// `encoded_peers` are encode_peer() outputs, stored that way by the record store.
Bytes encode_lookup_reply(const std::vector<ByteView>& encoded_peers, uint64_t bump);
std::optional<LookupReply> decode_lookup_reply(ByteView b);

struct MutablePut {
  Key32 public_key{};
  uint64_t seq = 0;
  Bytes value;
  Signature64 signature{};
};
Bytes encode_mutable_put(const MutablePut& m);
std::optional<MutablePut> decode_mutable_put(ByteView b);

// MUTABLE_GET reply, also how a node stores a mutable record.
struct MutableRecord {
  uint64_t seq = 0;
  Bytes value;
  Signature64 signature{};
};
Bytes encode_mutable_record(const MutableRecord& m);
std::optional<MutableRecord> decode_mutable_record(ByteView b);

// The 32-byte namespaces hyperdht signs under: hypercore-crypto
// namespace("hyperswarm/dht", [4, 5, 6, 0, 1, 10]).
struct Namespaces {
  Hash32 announce, unannounce, mutable_put, peer_handshake, peer_holepunch, plugin;
};
const Namespaces& namespaces();

using Signable = std::array<uint8_t, 64>;
// ns || H(target || node_id || token || encode_peer(peer) || refresh-or-empty).
// `ns` is namespaces().announce or .unannounce.
Signable announce_signable(const Hash32& ns, const Hash32& target, const Hash32& node_id,
                           const Hash32& token, const PeerRecord& peer,
                           const std::optional<Hash32>& refresh);
// NS_MUTABLE_PUT || H(uint seq || buffer value).
Signable mutable_signable(uint64_t seq, ByteView value);

}  // namespace p2p::dht
