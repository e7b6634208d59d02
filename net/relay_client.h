// The peers' side of a blind relay (blind-relay's Client, as hyperdht's
// connect.js and server.js use it): a connection to the relay by its key,
// the blind-relay channel on it (its id our public key), one pair request.
#pragma once

#include "net/dht_connect.h"

struct uv_loop_s;

namespace p2p::net {

class RelayClient : public dht::RelayPairer {
 public:
  RelayClient(uv_loop_s* loop, dht::Connector& connector, dht::Clock& clock);
  ~RelayClient() override;
  // The pairing ends (its connection closes) when the handle goes; that
  // may happen inside `done`. Each pairing has a connection of its own.
  std::shared_ptr<void> pair(const crypto::KeyPair& us, const Key32& relay, const Hash32& token, bool initiator,
                             uint32_t stream_id, std::function<void(Result<dht::RelayPath>)> done) override;

 private:
  struct Pairing;
  uv_loop_s* loop_;
  dht::Connector& connector_;
  dht::Clock& clock_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace p2p::net
