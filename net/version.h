// The net layer (DHT, UDX, secret streams, replication) lands with the
// replication and DHT issues; for now it only names the wire protocols spoken.
#pragma once

namespace p2p::net {

// Protomux protocol name of Hypercore replication (spec g).
constexpr const char* kHypercoreProtocol = "hypercore/alpha";
const char* library_version();

}  // namespace p2p::net
