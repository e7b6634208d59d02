// UDX: reliable, ordered, congestion-controlled byte streams over UDP, as
// libudx speaks them (spec: ../shared/spec/udx-and-connect.md sections 1-2).
// Streams share a UDP socket with the DHT: a Mux takes the datagrams that
// are UDX packets for one of its streams and leaves the rest. Time and the
// socket come through the DHT's Clock / DatagramSocket interfaces, so a
// simulated lossy network tests it deterministically.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/bytes.h"
#include "net/dht_messages.h"
#include "net/dht_transport.h"

namespace p2p::udx {

using dht::Address;

constexpr uint8_t kMagic = 0xff;
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderSize = 20;
enum Type : uint8_t { kData = 0x01, kEnd = 0x02, kSack = 0x04, kMessage = 0x08, kDestroy = 0x10, kHeartbeat = 0x20 };
// MTU: every path carries 1200-byte IP datagrams; larger ones (up to 1500
// and the link's MTU) are probed for, 32 bytes at a time, 3 losses ending it.
constexpr size_t kMtuBase = 1200, kMtuMax = 1500, kMtuStep = 32, kMtuMaxProbes = 3;
constexpr size_t kPacketOverhead = 48;  // IPv4 20 + UDP 8 + UDX 20
constexpr size_t kMaxPayload = kMtuBase - kPacketOverhead;  // 1152: what any path carries
constexpr uint32_t kDefaultWindow = 4 * 1024 * 1024;  // receive window we advertise
constexpr size_t kMaxSacks = 50;

struct Header {
  uint8_t type = 0;
  uint8_t data_offset = 0;
  uint32_t id = 0;  // the receiver's stream id
  uint32_t rwnd = 0;
  uint32_t seq = 0;
  uint32_t ack = 0;
};
void write_header(Bytes& out, const Header& h);
// nullopt unless >= 20 bytes with magic 0xff and version 1.
std::optional<Header> read_header(ByteView datagram);

class Stream;

// The streams on one socket. The owner of the socket passes every datagram
// to handle() first; what it does not take goes to the DHT.
class Mux {
 public:
  Mux(dht::Clock& clock, dht::DatagramSocket& socket);
  ~Mux();
  // True when the datagram was a UDX packet for one of our streams.
  bool handle(const Address& from, ByteView datagram);
  // A new stream with a random id not in use (ids are what peers address us by).
  std::unique_ptr<Stream> create_stream();
  dht::Clock& clock() { return clock_; }
  dht::DatagramSocket& socket() { return socket_; }
  // A packet here for a stream of `main`'s that is not connected yet moves
  // that stream here (Stream::attach) before it sees the packet: on a
  // holepunching socket of our own the peer may reach a stream made on the
  // main socket (libudx keeps one id space for all sockets of a process).
  void borrow_from(Mux* main) { borrow_from_ = main; }

 private:
  friend class Stream;
  // What a cleanly closed stream still needs to re-ACK the peer's END if our
  // last ACK was lost (libudx has no TIME_WAIT; without it the peer times out).
  struct Linger {
    Address remote;
    uint32_t remote_id = 0, seq = 0, ack = 0;
    uint64_t until = 0;
  };
  void release(const Stream& s);
  void linger(uint32_t id, const Linger& l);
  bool answer_lingering(const Address& from, const Header& h);

  dht::Clock& clock_;
  dht::DatagramSocket& socket_;
  Mux* borrow_from_ = nullptr;
  std::unordered_map<uint32_t, Stream*> streams_;
  std::unordered_map<uint32_t, Linger> lingering_;
};

struct StreamStats {
  uint64_t packets_sent = 0, packets_received = 0, retransmits = 0, bytes_sent = 0, bytes_received = 0;
  uint64_t srtt_ms = 0, rto_ms = 0;
  uint32_t cwnd = 0;  // packets
  uint32_t mtu = 0;   // IP datagram bytes of a full packet
};

class Stream {
 public:
  ~Stream();  // a connected stream that was not closed sends DESTROY
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  uint32_t id() const { return id_; }
  // Points the stream at the peer's stream. Packets that arrived before are
  // processed (their ACK deferred until now), as libudx does.
  void connect(const Address& remote, uint32_t remote_id);
  // Moves a connected stream to another path (libudx's change_remote, used
  // when a relayed connection gets a direct one): its packets now go out on
  // `mux`'s socket (same clock) to `remote`, addressed to `remote_id`, and
  // sequence and ack state carry on. What the peer has not acknowledged is
  // sent again on the new path; the MTU search starts over (packets already
  // sent larger than 1200 bytes keep their size). on_remote_changed is called
  // once the peer has acknowledged everything sent before the move. False
  // (nothing changes) when the stream is not connected or is closed, or
  // `mux` runs on another clock or has a stream with this id.
  bool change_remote(Mux& mux, const Address& remote, uint32_t remote_id);
  // Moves a stream that is not connected yet to `mux`'s socket (same clock),
  // where connect() will point it; false when it is connected or closed, or
  // `mux` runs on another clock or has a stream with this id.
  bool attach(Mux& mux);
  Mux& mux() const { return *mux_; }
  // Keeps `owner` until the stream is gone (or let go): whatever keeps its
  // Mux and socket (a socket of its own, opened for holepunching), or its
  // path (a connection to the blind relay it goes through).
  void hold(std::shared_ptr<void> owner) { owners_.push_back(std::move(owner)); }
  void let_go(const void* owner) {
    std::erase_if(owners_, [owner](const auto& o) { return o.get() == owner; });
  }
  bool connected() const { return connected_; }
  const Address& remote() const { return remote_; }

  // A blind relay's end of a pair (libudx's relay_to): packets for this
  // stream from its peer (the first address they come from, the peer's
  // stream being `peer_id`) go on unread to `destination`'s peer, only the
  // id rewritten, out of `destination`'s socket; nothing is acknowledged or
  // kept. Set on both streams of a pair, each pointing at the other; a
  // DESTROY that passes closes both (on_close). Neither may outlive the
  // other; destroying one closes both and tells both peers.
  void relay_to(Stream& destination, uint32_t peer_id);
  bool relaying() const { return relay_ != nullptr; }

  // Called for the first packet of this stream from an address it is not
  // connected to (or before connect); return false to drop it. hyperdht
  // uses it to learn where the peer is.
  std::function<bool(const Address& from)> on_firewall;
  std::function<void(ByteView bytes)> on_data;  // in order, each byte once
  std::function<void()> on_end;                 // the peer finished writing
  // The stream is finished: empty after a clean END both ways, else why
  // (peer reset, timed out). Nothing is called after it.
  std::function<void(const std::string& error)> on_close;
  // Unreliable datagrams (MESSAGE packets) from the peer.
  std::function<void(ByteView message)> on_message;
  // After change_remote: the peer has everything sent on the old path.
  std::function<void()> on_remote_changed;

  // Queues bytes; they go out as the window allows.
  void write(ByteView bytes);
  // Half-close after everything written so far.
  void end();
  // Abort: one DESTROY packet, then closed (on_close is not called).
  void destroy();
  // An unreliable datagram (never retransmitted).
  void send_message(ByteView message);
  // The most we buffer for the peer (advertised as rwnd); default kDefaultWindow.
  void set_receive_window(uint32_t bytes);

  // Bytes written but not yet acknowledged (backpressure for writers).
  size_t buffered() const;
  bool closed() const { return closed_; }
  const StreamStats& stats() const { return stats_; }

 private:
  friend class Mux;
  struct State;
  Stream(Mux& mux, uint32_t id);
  void on_packet(const Address& from, const Header& h, ByteView body);
  void move_to(Mux& mux);
  void relay_packet(const Address& from, const Header& h, ByteView datagram);
  void end_relay(bool notify_self);

  std::vector<std::shared_ptr<void>> owners_;  // first: they go last, after the destructor's DESTROY
  Mux* mux_;
  uint32_t id_;
  uint32_t remote_id_ = 0;
  Address remote_{};
  bool connected_ = false, closed_ = false;
  Stream* relay_ = nullptr;          // relay_to's destination
  bool relay_peer_known_ = false;    // remote_ is the peer's address
  uint32_t relay_seq_ = 0;           // past the peer's highest seq, for a DESTROY it accepts
  StreamStats stats_;
  std::unique_ptr<State> state_;
};

}  // namespace p2p::udx
