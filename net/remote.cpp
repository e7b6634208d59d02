#include "net/remote.h"

#include "net/bee_extension.h"

#include "core/identity.h"

namespace p2p::net {

Result<std::unique_ptr<Core>> open_remote_core(PeerClient& client, storage::Store& store, const Key32& key) {
  auto core = Core::open_replica(store, key);
  if (!core.ok()) return core.status();
  auto remote = client.attach(**core);
  if (!remote.ok()) return remote.status();
  auto length = (*remote)->update();
  if (!length.ok()) return length.status();
  if (!(*core)->has_manifest())
    return not_found("the peer " + client.address() + " has nothing of core " + (*core)->label());
  return core;
}

Result<std::unique_ptr<Drive>> open_remote_drive(PeerClient& client, storage::Store& store, const Key32& db_key) {
  auto db = open_remote_core(client, store, db_key);
  if (!db.ok()) return db.status();
  Key32 blobs_key = manifest::hash(Drive::blobs_manifest((*db)->manifest(), db_key));
  auto blobs = open_remote_core(client, store, blobs_key);
  if (!blobs.ok() && blobs.status().is_not_found()) {
    // A drive without files has no blobs yet: an empty local replica will do.
    blobs = Core::open_replica(store, blobs_key);
  }
  if (!blobs.ok()) return blobs.status();
  return Drive::from_cores(store, std::move(*db), std::move(*blobs));
}

Status download_drive(PeerClient& client, Drive& drive) {
  for (Core* core : {&drive.db(), &drive.blobs()}) {
    auto remote = client.remote(*core);
    if (!remote) continue;  // an empty blobs core nobody serves
    P2P_TRY(remote->download(0, core->length()));
  }
  return {};
}

crypto::KeyPair connection_key_pair(const std::optional<Key32>& primary_key) {
  return primary_key ? identity::noise_key_pair(*primary_key) : crypto::random_key_pair();
}

void prefetch_bee_get(PeerClient& client, Core& core, uint64_t at, ByteView key) {
  if (RemoteCore* remote = client.remote(core))
    net::prefetch_bee_get(remote->session(), at ? at : core.length(), key);
}

void prefetch_bee_range(PeerClient& client, Core& core, uint64_t at, const BeeRange& range) {
  if (RemoteCore* remote = client.remote(core))
    net::prefetch_bee_range(remote->session(), at ? at : core.length(), range);
}

}  // namespace p2p::net
