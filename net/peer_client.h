// Fetching cores from one peer over TCP (`--peer HOST:PORT`): connect, attach
// a core, then update, fetch single blocks on demand (as a Core's
// BlockFetcher) or download ranges. Calls block, running the event loop
// until they finish or time out.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/log.h"
#include "net/connection.h"
#include "net/dht_runtime.h"
#include "net/session.h"

namespace p2p::net {

class PeerClient;

// One core replicated from the peer; verified blocks land in the local store.
class RemoteCore : public BlockFetcher {
 public:
  // Brings the local length up to the peer's (upgrade proof and signature
  // verified); returns the new length.
  Result<uint64_t> update();
  // One block, fetched and stored (Core's readers call this for missing blocks).
  Result<Bytes> fetch(Core& core, uint64_t index) override;
  // The missing ones of `count` blocks from `first`, requested together.
  Result<std::vector<Bytes>> fetch_range(Core& core, uint64_t first, uint64_t count) override;
  // Every block of [first, end) this replica lacks, pipelined; `progress`
  // hears the count done so far.
  Status download(uint64_t first, uint64_t end, const std::function<void(uint64_t done, uint64_t total)>& progress = {});
  // The same for any set of blocks (sparse reads, fetched in parallel).
  Status download(std::vector<uint64_t> indices,
                  const std::function<void(uint64_t done, uint64_t total)>& progress = {});
  uint64_t blocks_fetched() const { return session_->stats().blocks_received; }
  uint64_t bytes_fetched() const { return session_->stats().bytes_received; }
  uint64_t remote_length() const { return session_->remote_length(); }
  Core& core() { return session_->core(); }
  CoreSession& session() { return *session_; }

 private:
  friend class PeerClient;
  RemoteCore(PeerClient& client, CoreSession* session) : client_(client), session_(session) {}
  Status wait(const std::function<bool()>& done, const std::string& what);

  PeerClient& client_;
  CoreSession* session_;  // owned by the connection
  uint64_t missing_ = UINT64_MAX;  // last block the peer said it lacks
};

class PeerClient {
 public:
  // Seconds without progress before a wait gives up.
  static constexpr uint64_t kTimeoutMs = 30000;

  static Result<std::unique_ptr<PeerClient>> connect(const std::string& address, const crypto::KeyPair& key_pair);
  // Finds a peer for the core `key` through the DHT (its discovery key as
  // the topic) and connects by public key; not_found after `timeout_ms`
  // without one that holds it.
  static Result<std::unique_ptr<PeerClient>> connect_dht(dht::RuntimeOptions options, const Key32& key,
                                                         const crypto::KeyPair& key_pair, uint64_t timeout_ms);
  ~PeerClient();

  // Opens a channel for `core` and waits for the peer's first sync;
  // not_found when the peer does not serve it. The core fetches missing
  // blocks through the returned object until the client is gone.
  Result<RemoteCore*> attach(Core& core);
  const std::string& address() const { return address_; }
  // The attachment of `core`, if attached.
  RemoteCore* remote(const Core& core);
  uint64_t blocks_fetched() const;
  uint64_t bytes_fetched() const;

 private:
  friend class RemoteCore;
  PeerClient() = default;
  Status connection_status() const;

  void adopt(std::unique_ptr<Connection> conn);
  std::unique_ptr<uv_loop_t> own_loop_;
  std::unique_ptr<dht::Runtime> dht_;  // when found through the DHT: it owns the loop
  uv_loop_t* loop_ = nullptr;
  std::unique_ptr<Connection> conn_;
  std::string address_;
  Status closed_why_;
  bool closed_ = false;
  std::vector<std::unique_ptr<RemoteCore>> cores_;
};

}  // namespace p2p::net
