// The DHT reaches the network and time only through these two interfaces, so
// tests can run a deterministic simulated network of hundreds of nodes in one
// process (drop, delay, reorder packets; advance time) and the real program
// runs them on libuv (net/dht_uv.h).
#pragma once

#include <cstdint>
#include <functional>

#include "base/bytes.h"
#include "net/dht_messages.h"

namespace p2p::dht {

class Clock {
 public:
  using TimerId = uint64_t;
  virtual ~Clock() = default;
  virtual uint64_t now_ms() const = 0;
  // One-shot; the callback runs on the loop thread. Ids are never 0.
  virtual TimerId start_timer(uint64_t delay_ms, std::function<void()> fn) = 0;
  // Cancelling an id that already fired (or 0) is a no-op.
  virtual void cancel_timer(TimerId id) = 0;
};

class DatagramSocket {
 public:
  using Receiver = std::function<void(const Address& from, ByteView datagram)>;
  virtual ~DatagramSocket() = default;
  // Best effort, like UDP: a datagram may be lost.
  virtual void send(const Address& to, ByteView datagram) = 0;
  // The same with the IP time-to-live set for this datagram only: holepunching
  // opens a NAT mapping with a probe that dies before the peer's NAT (TTL 5).
  // Sockets that cannot set it (the simulation) send it as usual.
  virtual void send_ttl(const Address& to, ByteView datagram, int ttl) {
    (void)ttl;
    send(to, datagram);
  }
  // The MTU of the link the OS would send to `to` over (IP datagram bytes),
  // 0 when unknown. UDX probes for larger packets only up to it.
  virtual size_t link_mtu(const Address& to) const {
    (void)to;
    return 0;
  }
  // Between cork() and uncork() a socket may hold datagrams back and send
  // them together (UDX bursts: one system call for many packets). Nests.
  virtual void cork() {}
  virtual void uncork() {}
  virtual Address local_address() const = 0;
  virtual void set_receiver(Receiver receiver) = 0;
};

}  // namespace p2p::dht
