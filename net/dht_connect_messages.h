// The hyperdht connection messages (spec j.3, hyperdht lib/messages.js):
// PEER_HANDSHAKE and PEER_HOLEPUNCH request values, the noisePayload both IK
// messages carry and the holepunchPayload inside the holepunch secretbox.
// Decoders take untrusted bytes: every length is bounded by the input and a
// malformed value yields nullopt. Trailing bytes are ignored, as c.decode does.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/bytes.h"
#include "net/dht_messages.h"
#include "net/dht_nat.h"

namespace p2p::dht {

// Who sent a PEER_HANDSHAKE / PEER_HOLEPUNCH (hyperdht router.js).
enum ConnectMode : uint64_t {
  kModeFromClient = 0,
  kModeFromServer = 1,
  kModeFromRelay = 2,
  kModeFromSecondRelay = 3,
  kModeReply = 4,
};

// The `error` of noisePayload and holepunchPayload (hyperdht constants ERROR).
enum ConnectError : uint64_t {
  kConnectErrorNone = 0,
  kConnectErrorAborted = 1,
  kConnectErrorVersionMismatch = 2,
  kConnectErrorTryLater = 3,
};

// The `firewall` fields hold dht::Firewall's numbers (dht_nat.h) as uints,
// so whatever a peer sends survives decoding.
constexpr uint64_t to_wire(Firewall f) { return static_cast<uint64_t>(f); }

// The only version hyperdht writes (payload, udx, secretStream, relayThrough).
constexpr uint64_t kConnectVersion = 1;

struct HandshakeMessage {
  uint64_t mode = kModeFromClient;
  Bytes noise{};  // an IK handshake message
  std::optional<Address> peer_address{};
  std::optional<Address> relay_address{};
  bool operator==(const HandshakeMessage&) const = default;
};
Bytes encode_handshake_message(const HandshakeMessage& m);
std::optional<HandshakeMessage> decode_handshake_message(ByteView b);

struct HolepunchMessage {
  uint64_t mode = kModeFromClient;
  uint64_t id = 0;  // the server's holepunch slot
  Bytes payload{};    // nonce(24) || secretbox(holepunchPayload)
  std::optional<Address> peer_address{};
  bool operator==(const HolepunchMessage&) const = default;
};
Bytes encode_holepunch_message(const HolepunchMessage& m);
std::optional<HolepunchMessage> decode_holepunch_message(ByteView b);

// compact-encoding's ipv6Address: 16 address bytes (network order), u16le port.
struct Ipv6Address {
  std::array<uint8_t, 16> ip{};
  uint16_t port = 0;
  bool operator==(const Ipv6Address&) const = default;
};

struct RelayInfo {
  Address relay_address;
  Address peer_address;  // the server as that relay sees it
  bool operator==(const RelayInfo&) const = default;
};

struct HolepunchInfo {
  uint64_t id = 0;
  std::vector<RelayInfo> relays;
  bool operator==(const HolepunchInfo&) const = default;
};

struct UdxInfo {
  uint64_t version = kConnectVersion;
  bool reusable_socket = false;
  uint64_t id = 0;  // the sender's UDX stream id
  uint64_t seq = 0;
  bool operator==(const UdxInfo&) const = default;
};

struct SecretStreamInfo {
  uint64_t version = kConnectVersion;
  bool operator==(const SecretStreamInfo&) const = default;
};

struct RelayThroughInfo {
  uint64_t version = kConnectVersion;
  uint64_t flags = 0;  // written, but hyperdht's decoder drops it
  Key32 public_key{};
  Hash32 token{};
  bool operator==(const RelayThroughInfo&) const = default;
};

// Encoders write the version fields as given (hyperdht always writes 1). A
// payload whose version is not 1 decodes to that version and defaults
// elsewhere, as hyperdht does, so the caller can answer VERSION_MISMATCH.
struct NoisePayload {
  uint64_t version = kConnectVersion;
  uint64_t error = kConnectErrorNone;
  uint64_t firewall = to_wire(Firewall::unknown);
  std::optional<HolepunchInfo> holepunch{};
  // Sent only when non-empty: absent and empty are the same on the wire.
  std::vector<Address> addresses4{};
  std::vector<Ipv6Address> addresses6{};
  std::optional<UdxInfo> udx{};
  std::optional<SecretStreamInfo> secret_stream{};
  std::optional<RelayThroughInfo> relay_through{};
  // Absent and empty differ on the wire.
  std::optional<std::vector<Address>> relay_addresses{};
  bool operator==(const NoisePayload&) const = default;
};
Bytes encode_noise_payload(const NoisePayload& p);
std::optional<NoisePayload> decode_noise_payload(ByteView b);

struct HolepunchPayload {
  uint64_t error = kConnectErrorNone;
  uint64_t firewall = to_wire(Firewall::unknown);
  uint64_t round = 0;
  bool connected = false;
  bool punching = false;
  std::optional<std::vector<Address>> addresses{};  // absent and empty differ
  std::optional<Address> remote_address{};
  std::optional<Hash32> token{};
  std::optional<Hash32> remote_token{};
  bool operator==(const HolepunchPayload&) const = default;
};
Bytes encode_holepunch_payload(const HolepunchPayload& p);
std::optional<HolepunchPayload> decode_holepunch_payload(ByteView b);

}  // namespace p2p::dht
