// The DHT's clock and UDP socket on a libuv loop.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "net/dht_transport.h"

struct uv_loop_s;

namespace p2p::dht {

// Runs the loop until the handles being closed are closed (a close may free
// what closes more: a timer holding a socket), a bounded number of rounds,
// then closes it.
void close_loop(uv_loop_s* loop);

class UvClock : public Clock {
 public:
  explicit UvClock(uv_loop_s* loop);
  ~UvClock() override;
  uint64_t now_ms() const override;
  TimerId start_timer(uint64_t delay_ms, std::function<void()> fn) override;
  void cancel_timer(TimerId id) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class UvUdpSocket : public DatagramSocket {
 public:
  // Binds host:port (port 0: any free port).
  static Result<std::unique_ptr<UvUdpSocket>> bind(uv_loop_s* loop, const std::string& host, uint16_t port);
  ~UvUdpSocket() override;
  void send(const Address& to, ByteView datagram) override;
  void send_ttl(const Address& to, ByteView datagram, int ttl) override;
  size_t link_mtu(const Address& to) const override;
  void cork() override;
  void uncork() override;
  Address local_address() const override;
  void set_receiver(Receiver receiver) override;

 private:
  UvUdpSocket();
  void send_now(const Address& to, ByteView datagram);
  struct Impl;
  static void read_ready(Impl& impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2p::dht
