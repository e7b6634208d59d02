#include "net/udp_demux.h"

namespace p2p::dht {

UdpDemux::UdpDemux(DatagramSocket& socket) : socket_(socket), dht_view_(socket) {
  socket_.set_receiver([this](const Address& from, ByteView d) { on_datagram(from, d); });
}

UdpDemux::~UdpDemux() { socket_.set_receiver(nullptr); }

void UdpDemux::on_datagram(const Address& from, ByteView d) {
  if (d.size() == 1) {
    // hyperdht's holepunch probe (0x00); dht-rpc ignores datagrams this short anyway.
    if (probes_) probes_(from);
    return;
  }
  if (d.size() >= 2 && d[0] == 0xff && d[1] == 0x01 && streams_ && streams_(from, d)) return;
  if (dht_view_.receiver_) dht_view_.receiver_(from, d);
}

}  // namespace p2p::dht
