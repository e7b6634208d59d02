// The byte stream a replication Connection runs over: a TCP socket (--peer,
// --listen) or a UDX stream found through the DHT. Reads arrive through
// handlers; writes are queued and counted until the transport has sent them.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "base/bytes.h"
#include "base/result.h"

struct uv_tcp_s;

namespace p2p::net {

class Transport {
 public:
  struct Handlers {
    std::function<void(ByteView)> on_data{};
    std::function<void(const Status& why)> on_end{};  // ok(): the peer ended cleanly
    std::function<void()> on_drain{};                  // pending() fell well below what paused us
    // The peer finished writing but still reads; unset: treated as on_end(ok).
    std::function<void()> on_peer_end{};
  };
  virtual ~Transport() = default;
  virtual Status start(Handlers handlers) = 0;
  virtual void write(Bytes data) = 0;
  // Bytes handed to write() and not yet out of our hands.
  virtual size_t pending() const = 0;
  // Stop / restart delivering reads (backpressure).
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  // Our side is done writing, after what was written (a half-close).
  virtual void end() {}
  // No handler is called after this.
  virtual void close() = 0;
  virtual std::string remote_address() const = 0;
  // A buffer already written, emptied, for the next output (saves page faults).
  virtual Bytes take_spare() { return {}; }
};

// Takes an accepted or connected TCP handle (allocated with new).
std::unique_ptr<Transport> tcp_transport(uv_tcp_s* tcp);

}  // namespace p2p::net
