// blind-relay 1.6.1 (spec: udx-and-connect.md section 6): peers that cannot
// reach each other both connect to a relay peer and ask it, on a protomux
// channel "blind-relay", to pair them under a token one of them chose; the
// relay makes a UDX stream for each and passes their packets through
// (udx::Stream::relay_to) without reading them: it sees only ciphertext.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>

#include "base/bytes.h"
#include "net/protomux.h"
#include "net/udx.h"

namespace p2p::net {

inline constexpr std::string_view kBlindRelayProtocol = "blind-relay";
enum RelayMessageType : uint64_t { kRelayPair = 0, kRelayUnpair = 1 };

// pair: bitfield(1) {isInitiator}, fixed32 token, uint stream id, uint seq.
struct RelayPair {
  bool initiator = false;  // the side that chose the relay and the token
  Key32 token{};
  uint64_t stream_id = 0;  // the sender's UDX stream (the relay's, in its answer)
  uint64_t seq = 0;
};
Bytes encode_relay_pair(const RelayPair& m);
std::optional<RelayPair> decode_relay_pair(ByteView b);
// unpair: bitfield(0), fixed32 token.
Bytes encode_relay_unpair(const Key32& token);
std::optional<Key32> decode_relay_unpair(ByteView b);

// The relay's side. Each connection's channel is a session; two pair
// requests with one token (one initiator, one not) become a pair of relay
// streams on `streams`, and each side hears the id of the stream to send to.
// A session that closes (or unpairs) ends its pairings; a pair ends when a
// peer resets its stream. Bounded: kMaxPendingPerSession open requests per
// session, kMaxPairs pairings in all. Connections (and so sessions) must go
// before the BlindRelay.
class BlindRelay {
 public:
  static constexpr size_t kMaxPendingPerSession = 64;
  static constexpr size_t kMaxPairs = 4096;

  struct Stats {
    uint64_t sessions = 0, pending = 0, relaying = 0, paired_total = 0;
  };
  enum class Event { paired, ended };
  // `bytes`: what the pair relayed (both ways), for `ended`.
  std::function<void(Event, const Key32& token, uint64_t bytes)> on_event;

  explicit BlindRelay(udx::Mux& streams);
  ~BlindRelay();
  BlindRelay(const BlindRelay&) = delete;
  BlindRelay& operator=(const BlindRelay&) = delete;

  // Opens the blind-relay channel on a connection whose peer is `remote`
  // (the channel id is the peer's key, as relay clients open it); the
  // handler belongs to the connection.
  Result<std::unique_ptr<ChannelHandler>> accept(Mux& mux, const Key32& remote);
  Stats stats() const;

 private:
  class Session;
  struct Side {
    Session* session = nullptr;
    uint32_t peer_stream = 0;
  };
  struct Pairing {
    Side side[2];  // [initiator]
    std::unique_ptr<udx::Stream> stream[2];
    bool paired = false;
  };
  void pair(Session& s, const RelayPair& m);
  void unpair(Session& s, const Key32& token);
  void session_closed(Session& s);
  void end(const Key32& token);

  udx::Mux& streams_;
  std::map<Key32, Pairing> pairings_;
  std::set<Session*> sessions_;
  uint64_t paired_total_ = 0;
};

}  // namespace p2p::net
