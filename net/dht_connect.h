// Connections by public key through the DHT, as hyperdht makes them
// (spec: udx-and-connect.md section 4): a server announces itself under
// H(public key) to the closest nodes, which become its relays; a client finds
// those with FIND_PEER and sends them a Noise IK handshake (PEER_HANDSHAKE),
// which they relay to the server and whose answer they relay back. Both ends
// then open a UDX stream to each other on the DHT's socket and start a
// secret stream from the handshake's keys. Holepunching and blind relays are
// not here yet: this reaches servers that are reachable (open firewall, LAN,
// loopback), which the handshake payload says.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "core/crypto.h"
#include "net/dht_connect_messages.h"
#include "net/hyperdht.h"
#include "net/noise.h"
#include "net/udx.h"

namespace p2p::dht {

struct Established {
  std::unique_ptr<udx::Stream> stream;
  net::HandshakeResult handshake;  // tx, rx, hash, the remote public key
  bool initiator = false;          // we dialled
  Address remote{};                // where the stream goes (may change once the peer's first packet comes)
  bool relayed = false;            // the handshake went through a relay
  // Stream bytes that come before the owner reads (the peer's first message
  // often beats the handshake's reply); it keeps filling until then.
  std::shared_ptr<Bytes> early_data;
};

class Connector {
 public:
  using OnConnection = std::function<void(Established)>;
  // Asked before a handshake from `remote` is answered; false refuses it
  // (the client hears ABORTED at once rather than waiting).
  using Admit = std::function<bool(const Key32& remote)>;
  static constexpr uint64_t kConnectTimeoutMs = 20'000;

  Connector(HyperDht& dht, udx::Mux& mux);
  ~Connector();
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // Accepts connections for `key_pair` and announces it (re-announced every
  // few minutes while listening). `done` hears the relays it announced to.
  void listen(const crypto::KeyPair& key_pair, OnConnection on_connection,
              std::function<void(const std::vector<Address>& relays)> done = nullptr, Admit admit = nullptr);
  void unlisten(const Key32& public_key);
  // The relays of a listening key (for announcing it on topics).
  std::vector<Address> relays(const Key32& public_key) const;

  // Dials `remote`. `relay_hints` (a peer record's relay addresses) are tried
  // before the FIND_PEER query's answers.
  void connect(const crypto::KeyPair& key_pair, const Key32& remote, std::vector<Address> relay_hints,
               std::function<void(Result<Established>)> done);

 private:
  struct Server;
  struct Dial;
  std::optional<Answer> on_peer_request(const InboundRequest& in);
  std::optional<Answer> on_handshake_as_server(Server& server, const InboundRequest& in, const HandshakeMessage& m);
  std::optional<Answer> on_handshake_as_relay(const InboundRequest& in, const HandshakeMessage& m);
  void announce_server(const Hash32& target);
  void report_relays(const Hash32& target, std::function<void(const std::vector<Address>&)> done);
  void schedule_reannounce();
  NoisePayload our_payload(uint32_t stream_id) const;
  void try_relay(const std::shared_ptr<Dial>& dial, const Address& relay);
  void finish_dial(const std::shared_ptr<Dial>& dial, const Reply& reply, const HandshakeMessage& m);

  HyperDht& dht_;
  udx::Mux& mux_;
  std::map<Hash32, std::unique_ptr<Server>> servers_;  // by H(public key)
  Clock::TimerId reannounce_timer_ = 0;
};

}  // namespace p2p::dht
