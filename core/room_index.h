// Which writer cores this home knows in each room, kept in the store's meta
// table so that `chat log` offline still merges every writer it has seen.
#pragma once

#include <span>
#include <vector>

#include "base/bytes.h"
#include "base/result.h"
#include "storage/store.h"

namespace p2p::room {

Result<std::vector<Key32>> known_writers(storage::Store& store, const Key32& room);
// Adds the ones not known yet, in one transaction.
Status remember_writers(storage::Store& store, const Key32& room, std::span<const Key32> writers);

}  // namespace p2p::room
