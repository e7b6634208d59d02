// One UDP socket, several readers, as hyperdht shares it: UDX packets for a
// known stream go to the streams, 1-byte holepunch probes to whoever punches,
// answers to our own main-socket requests (below) to those, everything else
// to the DHT node. The DHT node sees a DatagramSocket of its own.
#pragma once

#include <functional>
#include <map>
#include <unordered_map>

#include "net/dht_rpc.h"
#include "net/dht_transport.h"

namespace p2p::dht {

class UdpDemux {
 public:
  explicit UdpDemux(DatagramSocket& socket);
  ~UdpDemux();
  UdpDemux(const UdpDemux&) = delete;
  UdpDemux& operator=(const UdpDemux&) = delete;

  // What the DHT node uses: sends go straight out; it receives what nobody else took.
  DatagramSocket& dht_socket() { return dht_view_; }
  DatagramSocket& raw() { return socket_; }
  // Sends on the main socket for others than the node (holepunch probes, our
  // own requests); like the node's, they are remembered (below). Receives nothing.
  DatagramSocket& outbound() { return outbound_; }
  // Returns true when it took the datagram (udx::Mux::handle).
  void set_stream_handler(std::function<bool(const Address&, ByteView)> handler) { streams_ = std::move(handler); }
  void set_probe_handler(std::function<void(const Address&)> handler) { probes_ = std::move(handler); }
  // Sees dht-rpc responses before the node; returns true when it took one.
  void set_response_handler(std::function<bool(const Address&, ByteView)> handler) { responses_ = std::move(handler); }

  // An adaptive node behind a NAT asks a few nodes (PING_NAT, from its client
  // socket) to answer to its main socket: answers that arrive show it is
  // reachable. But holepunching and relaying send from the main socket, and a
  // NAT lets in the answer of any node the main socket sent to lately, which
  // then proves nothing. While `firewalled()` holds (the node then asks
  // through its client socket, so responses at the main socket are PING_NAT
  // answers), responses from nodes the main socket sent to within
  // kContactMemoryMs are dropped: only strangers' answers count.
  static constexpr uint64_t kContactMemoryMs = 180'000;  // longer than NATs keep a UDP mapping
  void guard_reachability_check(Clock& clock, std::function<bool()> firewalled);

 private:
  class View : public DatagramSocket {
   public:
    View(UdpDemux& demux, DatagramSocket& s) : demux_(demux), socket_(s) {}
    void send(const Address& to, ByteView d) override {
      demux_.sent_to(to);
      socket_.send(to, d);
    }
    void send_ttl(const Address& to, ByteView d, int ttl) override {
      demux_.sent_to(to);
      socket_.send_ttl(to, d, ttl);
    }
    size_t link_mtu(const Address& to) const override { return socket_.link_mtu(to); }
    void cork() override { socket_.cork(); }
    void uncork() override { socket_.uncork(); }
    Address local_address() const override { return socket_.local_address(); }
    void set_receiver(Receiver r) override { receiver_ = std::move(r); }
    Receiver receiver_;

   private:
    UdpDemux& demux_;
    DatagramSocket& socket_;
  };
  void on_datagram(const Address& from, ByteView d);
  void sent_to(const Address& to);
  bool contacted_lately(const Address& from) const;

  static constexpr size_t kMaxContacts = 4096;
  DatagramSocket& socket_;
  View dht_view_, outbound_;
  std::function<bool(const Address&, ByteView)> streams_;
  std::function<void(const Address&)> probes_;
  std::function<bool(const Address&, ByteView)> responses_;
  Clock* clock_ = nullptr;
  std::function<bool()> firewalled_;
  std::map<Address, uint64_t> contacted_;  // when the main socket last sent there
};

// dht-rpc requests sent from the main socket itself. The node asks through
// its client socket while it is firewalled, but holepunching has to learn the
// main socket's own NAT mapping (pings to a few nodes, as hyperdht samples its
// puncher socket), keep it open towards the relays (PEER_HOLEPUNCH) and try a
// LAN address from it. Answers are matched by tid and sender and taken before
// the node sees them. At most kMaxPending requests at once.
class MainSocketRequests {
 public:
  using Callback = std::function<void(const Reply*)>;  // nullptr: no answer in time
  static constexpr size_t kMaxPending = 256;
  static constexpr uint64_t kTimeoutMs = 1000;  // per send, as dht-rpc

  MainSocketRequests(Clock& clock, UdpDemux& demux);
  ~MainSocketRequests();
  MainSocketRequests(const MainSocketRequests&) = delete;
  MainSocketRequests& operator=(const MainSocketRequests&) = delete;

  // Sent once plus `retries` times, 1 s apart; `cb` runs once, later (never
  // after this object is gone). False, and no callback, when too many are pending.
  bool request(const Address& to, const OutboundRequest& req, Callback cb, int retries = 0);
  bool ping(const Address& to, Callback cb, int retries = 0);

 private:
  struct Pending {
    Address to;
    Bytes packet;
    int sent = 0, retries = 0;
    uint64_t sent_at = 0;
    Clock::TimerId timer = 0;
    Callback cb;
  };
  bool on_response(const Address& from, ByteView datagram);
  void transmit(uint16_t tid);
  void on_timeout(uint16_t tid);

  Clock& clock_;
  UdpDemux& demux_;
  std::unordered_map<uint16_t, Pending> pending_;
  uint16_t next_tid_ = 0;
};

}  // namespace p2p::dht
