#include "core/room_index.h"

#include <string_view>

namespace p2p::room {

namespace {

// meta: "room-writer/" || room key || writer key -> (empty)
Bytes writers_prefix(const Key32& room) {
  Bytes k = to_bytes(as_bytes(std::string_view("room-writer/")));
  k.insert(k.end(), room.begin(), room.end());
  return k;
}

}  // namespace

Result<std::vector<Key32>> known_writers(storage::Store& store, const Key32& room) {
  auto txn = store.read();
  if (!txn.ok()) return txn.status();
  Bytes from = writers_prefix(room);
  std::vector<Key32> out;
  Status s = (*txn)->scan(storage::Table::meta, from, {}, [&](ByteView key, ByteView) {
    // Keys sort by prefix: the first one outside it ends the room's writers.
    if (key.size() != from.size() + 32 || !std::equal(from.begin(), from.end(), key.begin())) return false;
    Key32 w;
    std::copy(key.end() - 32, key.end(), w.begin());
    out.push_back(w);
    return true;
  });
  if (!s.ok()) return s;
  return out;
}

Status remember_writers(storage::Store& store, const Key32& room, std::span<const Key32> writers) {
  if (writers.empty()) return {};
  auto txn = store.write();
  if (!txn.ok()) return txn.status();
  for (const Key32& w : writers) {
    Bytes k = writers_prefix(room);
    k.insert(k.end(), w.begin(), w.end());
    if ((*txn)->get(storage::Table::meta, k)) continue;
    P2P_TRY((*txn)->put(storage::Table::meta, k, {}));
  }
  return (*txn)->commit();
}

}  // namespace p2p::room
