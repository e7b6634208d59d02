// Opening cores, bees' cores and drives that live on a peer: local replicas
// (kept in the store, so they work offline afterwards) that fetch missing
// blocks on demand, verified, through a PeerClient.
#pragma once

#include <memory>

#include "core/bee.h"
#include "core/drive.h"
#include "core/log.h"
#include "net/peer_client.h"

namespace p2p::net {

// A replica of `key` attached to `client` and updated to the peer's length.
// The client must outlive the core's reads.
Result<std::unique_ptr<Core>> open_remote_core(PeerClient& client, storage::Store& store, const Key32& key);
// A drive (db and blobs cores) read through `client`.
Result<std::unique_ptr<Drive>> open_remote_drive(PeerClient& client, storage::Store& store, const Key32& db_key);

// Before a get or range read of a bee replica attached to `client` (`at`: the
// version read, 0 = latest): asks the peer for the blocks it will read, so
// they arrive together (the hyperbee extension) instead of level by level.
void prefetch_bee_get(PeerClient& client, Core& core, uint64_t at, ByteView key);
void prefetch_bee_range(PeerClient& client, Core& core, uint64_t at, const BeeRange& range);
// Downloads every block of a drive's cores that is not stored yet, pipelined.
Status download_drive(PeerClient& client, Drive& drive);

// The Noise key pair a command connects with: the identity's when it has one,
// else a fresh one (reading must not create an identity).
crypto::KeyPair connection_key_pair(const std::optional<Key32>& primary_key);

}  // namespace p2p::net
