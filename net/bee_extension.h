// The "hyperbee" extension on a replication channel, as hyperbee's
// lib/extension.js speaks it: a reader names the get or range it is about to
// walk, the peer answers with the blocks that walk reads, and the reader
// downloads them in parallel instead of one tree level at a time.
#pragma once

#include "core/bee.h"
#include "net/session.h"

namespace p2p::net {

// Answers the peer's get and range questions with the blocks they read (the
// ones held here), and downloads the blocks a peer's answer names. Sessions
// whose core is no bee ignore the questions.
void use_bee_extension(CoreSession& session);

// Asks the peer which blocks `get(key)` at `version` reads; the answer's blocks
// are fetched while the reader waits for its first block.
void prefetch_bee_get(CoreSession& session, uint64_t version, ByteView key);
// The same for a range read (the first batch of its blocks).
void prefetch_bee_range(CoreSession& session, uint64_t version, const BeeRange& range);

}  // namespace p2p::net
