// A replication connection over TCP on a libuv loop: the socket, the secret
// stream on it and the protomux on that. A peer that breaks the protocol is
// disconnected with the reason; the loop and other connections go on.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "net/protomux.h"
#include "net/secret_stream.h"
#include "net/transport.h"

namespace p2p::net {

// Runs `loop` until `done()` holds or `timeout_ms` passes; false on timeout.
bool run_until(uv_loop_t* loop, const std::function<bool()>& done, uint64_t timeout_ms);

// "HOST:PORT" (an IPv4 address or a name; "[v6]:PORT" for IPv6).
Result<sockaddr_storage> parse_address(const std::string& host_port);
std::string format_address(const sockaddr_storage& addr);

class Connection {
 public:
  struct Hooks {
    std::function<void()> on_established;             // handshake done, mux ready
    std::function<void(const Status& why)> on_close;  // ok() for a clean end
  };
  // Pending output beyond this stops reading from the peer until it drains.
  static constexpr size_t kHighWater = 8 * 1024 * 1024;
  // Output is handed to the socket in pieces of about this size.
  static constexpr size_t kWriteChunk = 1024 * 1024;
  // An empty message goes out after this much outgoing silence, as
  // secret-stream's keep-alive does (hyperdht uses the same 5 s).
  static constexpr uint64_t kKeepAliveMs = 5000;
  // A peer silent this long is gone (live peers send keep-alives every 5 s).
  static constexpr uint64_t kIdleTimeoutMs = 120000;
  // Handshake must finish within this.
  static constexpr uint64_t kHandshakeTimeoutMs = 10000;

  // Takes an accepted or connecting TCP handle (allocated with new).
  Connection(uv_loop_t* loop, uv_tcp_t* tcp, bool initiator, const crypto::KeyPair& key_pair);
  // Any transport, and a secret stream (fresh, or started from a handshake
  // done elsewhere, as hyperdht's connections are).
  Connection(uv_loop_t* loop, std::unique_ptr<Transport> transport, std::unique_ptr<SecretStream> stream);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void set_hooks(Hooks hooks) { hooks_ = std::move(hooks); }
  // Starts reading (and the initiator's handshake).
  Status start();
  // Writes what the stream queued (messages sent outside a read callback).
  void flush_output() { flush(); }
  // Ends the connection; on_close hears `why`. Safe to call more than once.
  void close(const Status& why = {});

  bool established() const { return stream_->established() && !closed_; }
  bool closed() const { return closed_; }
  bool initiator() const { return stream_->initiator(); }
  const HandshakeResult& handshake() const { return stream_->handshake(); }
  Mux& mux() { return mux_; }
  std::string remote_address() const { return remote_address_; }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }
  // Owners attach per-connection state here (e.g. the sessions on it).
  std::vector<std::unique_ptr<ChannelHandler>>& sessions() { return sessions_; }

 private:
  void received(ByteView bytes);
  void drained();
  void flush();

  uv_loop_t* loop_;
  std::unique_ptr<Transport> transport_;
  uv_timer_t* timer_;
  std::unique_ptr<SecretStream> stream_;
  Mux mux_;
  Hooks hooks_;
  bool closed_ = false;
  bool reading_ = true;
  bool was_established_ = false;
  uint64_t last_write_ms_ = 0;
  uint64_t last_read_ms_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  std::string remote_address_;
  std::vector<std::unique_ptr<ChannelHandler>> sessions_;
};

// Connects to `address` and waits for the handshake (running the loop).
Result<std::unique_ptr<Connection>> connect(uv_loop_t* loop, const std::string& address,
                                            const crypto::KeyPair& key_pair, uint64_t timeout_ms);

}  // namespace p2p::net
