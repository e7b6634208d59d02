// A replication Connection's transport over a UDX stream (connections made
// through the DHT), and a plain message channel over the same for pipes.
#pragma once

#include <functional>
#include <memory>

#include "net/secret_stream.h"
#include "net/transport.h"
#include "net/udx.h"

namespace p2p::net {

// `early` collects what the stream receives until the transport starts
// (delivered first).
std::unique_ptr<Transport> udx_transport(std::unique_ptr<udx::Stream> stream, dht::Clock& clock,
                                         std::shared_ptr<Bytes> early = nullptr);

// Encrypted messages over a transport, without protomux: what `p2p swarm
// join --pipe` carries (each message a chunk of the byte stream, as a
// JavaScript hyperswarm connection's write() / 'data').
class MessageChannel {
 public:
  struct Handlers {
    std::function<void(ByteView)> on_message;
    std::function<void()> on_end;                      // the peer finished writing
    std::function<void(const Status& why)> on_close;   // ok(): clean
  };
  MessageChannel(std::unique_ptr<Transport> transport, std::unique_ptr<SecretStream> stream);
  ~MessageChannel();
  Status start(Handlers handlers);
  Status send(ByteView message);
  // Our side is done writing (after what was sent).
  void end();
  size_t pending() const { return transport_->pending(); }
  // Both headers exchanged: the peer is really there.
  bool established() const { return stream_->established(); }
  void close();

 private:
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<SecretStream> stream_;
  Handlers handlers_;
  bool closed_ = false;
  void flush();
};

}  // namespace p2p::net
