// Connections by public key through the DHT, as hyperdht makes them
// (spec: udx-and-connect.md section 4): a server announces itself under
// H(public key) to the closest nodes, which become its relays; a client finds
// those with FIND_PEER and sends them a Noise IK handshake (PEER_HANDSHAKE),
// which they relay to the server and whose answer they relay back. Both ends
// then open a UDX stream to each other on the DHT's socket and start a
// secret stream from the handshake's keys. When neither end is reachable
// and they are not on one LAN, both holepunch (PEER_HOLEPUNCH through the
// relay, then probes: net/dht_nat.h); a random NAT of ours is punched from
// sockets opened for it (set_socket_opener). When one side names a blind
// relay (relayThrough), both also pair through it (RelayPairer): the first
// path that works carries the connection.
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
#include "net/dht_nat.h"
#include "net/noise.h"
#include "net/udp_demux.h"
#include "net/udx.h"

namespace p2p::dht {

// How a connection was made: the handshake went straight to the server
// (direct); or through a relay, the stream then straight to an address of the
// peer's that was reachable (relayed: an open peer, or one on our LAN); or
// through a relay, both NATs punched for the stream (holepunched); or the
// stream goes through a blind relay (blind_relay, "blind-relay").
enum class How { direct, relayed, holepunched, blind_relay };
const char* to_string(How how);

struct Established {
  std::unique_ptr<udx::Stream> stream;
  net::HandshakeResult handshake;  // tx, rx, hash, the remote public key
  bool initiator = false;          // we dialled
  Address remote{};                // where the stream goes
  How how = How::direct;
  bool relayed = false;            // how != direct: the handshake went through a relay
  // Stream bytes that come before the owner reads (the peer's first message
  // often beats the handshake's reply); it keeps filling until then.
  std::shared_ptr<Bytes> early_data;
};

// Where a stream paired through a blind relay goes: the relay's stream for
// us, at the relay's address.
struct RelayPath {
  uint32_t remote_id = 0;
  Address relay{};
};

// Pairs our end of a connection through a blind relay (net/relay_client.h):
// connects to `relay` by its key as `us`, asks it to pair `token` for our
// stream `stream_id` (`initiator`: we chose the relay), then calls `done`
// once, with the path or why not, never after the returned handle is gone.
// The handle keeps the connection to the relay: the stream holds it.
class RelayPairer {
 public:
  virtual ~RelayPairer() = default;
  virtual std::shared_ptr<void> pair(const crypto::KeyPair& us, const Key32& relay, const Hash32& token,
                                     bool initiator, uint32_t stream_id,
                                     std::function<void(Result<RelayPath>)> done) = 0;
};

class Connector {
 public:
  using OnConnection = std::function<void(Established)>;
  // Asked before a handshake from `remote` is answered; false refuses it
  // (the client hears ABORTED at once rather than waiting).
  using Admit = std::function<bool(const Key32& remote)>;
  // A whole dial: the handshake, then the path (holepunching included).
  static constexpr uint64_t kConnectTimeoutMs = 30'000;
  // hyperdht's HANDSHAKE_INITIAL_TIMEOUT and handshakeClearWait: a server waits
  // this long for a client that must come to it (or start punching), and
  // forgets a handshake this long after it ended.
  static constexpr uint64_t kHandshakeWaitMs = 10'000;
  static constexpr uint64_t kHandshakeClearMs = 10'000;
  // Holepunch state kept per listening key (hyperdht's holepunch slots).
  static constexpr size_t kMaxHandshakes = 256;
  // A blind relay must pair us within this (hyperdht's relay timeout).
  static constexpr uint64_t kRelayPairTimeoutMs = 15'000;

  // The streams' socket is `demux`'s: holepunch probes and the main socket's
  // own requests come through it.
  Connector(HyperDht& dht, udx::Mux& mux, UdpDemux& demux);
  ~Connector();
  Connector(const Connector&) = delete;
  Connector& operator=(const Connector&) = delete;

  // Accepts connections for `key_pair` and announces it (re-announced every
  // few minutes while listening). `done` hears the relays it announced to.
  void listen(const crypto::KeyPair& key_pair, OnConnection on_connection,
              std::function<void(const std::vector<Address>& relays)> done = nullptr, Admit admit = nullptr);
  void unlisten(const Key32& public_key);
  // Where punching a random NAT of ours gets its sockets (hyperdht's socket
  // pool; unset: such a NAT is not punched). `seed` fixes the random ports
  // for simulations (0: random).
  void set_socket_opener(std::function<std::unique_ptr<DatagramSocket>()> open, uint64_t seed = 0);
  // Blind relays: `pairer` pairs our streams through one (unset: a peer's
  // relayThrough is not followed); `relay_through` is ours, named in our
  // handshakes when our NAT is random (hyperswarm's default) or a dial asks.
  void set_relay(RelayPairer* pairer, std::optional<Key32> relay_through);

  // The relays of a listening key (for announcing it on topics).
  std::vector<Address> relays(const Key32& public_key) const;

  // Dials `remote`. `relay_hints` (a peer record's relay addresses) are tried
  // before the FIND_PEER query's answers. A failure's message names
  // hyperdht's error where there is one (HOLEPUNCH_ABORTED, ...).
  // Blind relays for one dial: ours named when our NAT is random (the
  // default), always (a punch to this peer failed before), or none at all,
  // not even the server's (a dial to a relay itself).
  enum class RelayUse { when_random, always, never };
  void connect(const crypto::KeyPair& key_pair, const Key32& remote, std::vector<Address> relay_hints,
               std::function<void(Result<Established>)> done, RelayUse relay = RelayUse::when_random);
  bool has_relay() const { return relay_through_.has_value() && pairer_; }

 private:
  struct Server;
  struct Handshake;
  struct Dial;
  struct Sampling;
  struct PunchReply;
  using DialPtr = std::shared_ptr<Dial>;

  std::optional<Answer> on_peer_request(const InboundRequest& in);
  // server
  std::optional<Answer> on_handshake_as_server(Server& server, const InboundRequest& in, const HandshakeMessage& m);
  std::optional<size_t> free_handshake_slot(const Server& server) const;
  std::vector<RelayInfo> holepunch_relays(const Server& server) const;
  void start_server_path(const std::shared_ptr<Handshake>& hs, const NoisePayload& client, const Address& seen_as);
  bool on_first_packet(Handshake& hs, const Address& from);
  void emit(Handshake& hs, const Address& remote, How how);
  void abort_handshake(Handshake& hs);
  void forget_later(Handshake& hs);
  void on_holepunch_as_server(Server& server, const InboundRequest& in, const HolepunchMessage& m);
  void answer_holepunch(Handshake& hs, const Request& req, const Address& relay, const Address& client,
                        const HolepunchPayload& remote, bool from_our_relay, const Hash32& token);
  void reply_holepunch(const Request& req, const Address& relay, const Address& client, Bytes payload);
  void reply_abort(Handshake& hs, const Request& req, const Address& relay, const Address& client,
                   uint64_t error = kConnectErrorAborted);
  // relay
  std::optional<Answer> on_handshake_as_relay(const InboundRequest& in, const HandshakeMessage& m);
  void on_holepunch_as_relay(const InboundRequest& in, const HolepunchMessage& m);
  void announce_server(const Hash32& target);
  void report_relays(const Hash32& target, std::function<void(const std::vector<Address>&)> done);
  void schedule_reannounce();
  NoisePayload our_payload(uint32_t stream_id) const;
  std::vector<Address> local_addresses() const;
  // client
  void try_relay(const DialPtr& dial, const Address& relay);
  void on_reply(const DialPtr& dial, const Reply& reply, const HandshakeMessage& m);
  void choose_path(const DialPtr& dial);
  void try_lan(const DialPtr& dial, const Address& lan);
  void start_holepunch(const DialPtr& dial);
  void probe_round(const DialPtr& dial, bool retry);
  void after_probe(const DialPtr& dial, bool retry, const PunchReply& reply);
  void punch_round(const DialPtr& dial, const PunchReply& probe);
  void send_holepunch(const DialPtr& dial, const Address& peer, const Address& relay, const HolepunchPayload& payload,
                      std::function<void(const DialPtr&, const PunchReply&)> next);
  void abort_dial(const DialPtr& dial, const std::string& why);
  void connect_dial(const DialPtr& dial, const Address& to, How how, std::shared_ptr<PunchSocket> via = nullptr,
                    std::optional<uint32_t> remote_id = std::nullopt);
  std::optional<RelayThroughInfo> our_relay_through(bool force) const;
  void start_dial_relay(const DialPtr& dial);
  void start_server_relay(const std::shared_ptr<Handshake>& hs, const NoisePayload& client);
  void release_random(Dial& dial);
  // `final`: even while a blind relay may still pair the dial.
  void fail(const DialPtr& dial, const std::string& why, bool final = false);
  // the main socket's NAT, for a puncher
  std::unique_ptr<Holepuncher> make_puncher(bool initiator, uint64_t remote_firewall);
  void sample_pass(const std::shared_ptr<Sampling>& s);
  void sampling_over(const std::shared_ptr<Sampling>& s, NatAnalysis& nat);

  HyperDht& dht_;
  udx::Mux& mux_;
  UdpDemux& demux_;
  MainSocketRequests requests_;
  ProbeRouter probes_;  // before servers_ and dials: their punchers leave it as they go
  PunchShared punching_;  // the same
  RelayPairer* pairer_ = nullptr;
  std::optional<Key32> relay_through_;
  std::map<Hash32, std::unique_ptr<Server>> servers_;  // by H(public key)
  std::vector<std::weak_ptr<Dial>> dials_;
  Clock::TimerId reannounce_timer_ = 0;
};

}  // namespace p2p::dht
