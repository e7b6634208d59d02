// One UDP socket, several readers, as hyperdht shares it: UDX packets for a
// known stream go to the streams, 1-byte holepunch probes to whoever punches,
// everything else to the DHT node. The DHT node sees a DatagramSocket of its own.
#pragma once

#include <functional>

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
  // Returns true when it took the datagram (udx::Mux::handle).
  void set_stream_handler(std::function<bool(const Address&, ByteView)> handler) { streams_ = std::move(handler); }
  void set_probe_handler(std::function<void(const Address&)> handler) { probes_ = std::move(handler); }

 private:
  class View : public DatagramSocket {
   public:
    explicit View(DatagramSocket& s) : socket_(s) {}
    void send(const Address& to, ByteView d) override { socket_.send(to, d); }
    Address local_address() const override { return socket_.local_address(); }
    void set_receiver(Receiver r) override { receiver_ = std::move(r); }
    Receiver receiver_;

   private:
    DatagramSocket& socket_;
  };
  void on_datagram(const Address& from, ByteView d);

  DatagramSocket& socket_;
  View dht_view_;
  std::function<bool(const Address&, ByteView)> streams_;
  std::function<void(const Address&)> probes_;
};

}  // namespace p2p::dht
