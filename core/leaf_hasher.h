// Leaf hashes of received blocks, computed on a helper thread shared by the
// process while the caller goes on decrypting and parsing: a downloader queues
// each big block as it arrives (still in the CPU's cache) and collects the
// hashes when it verifies the batch.
#pragma once

#include <memory>
#include <vector>

#include "base/bytes.h"
#include "core/merkle.h"

namespace p2p::merkle {

class LeafHasher {
 public:
  LeafHasher();
  ~LeafHasher();  // waits for what it queued: the blocks' bytes may go after that
  LeafHasher(const LeafHasher&) = delete;
  LeafHasher& operator=(const LeafHasher&) = delete;

  // Queues leaf_node(index, value); `value` must stay valid until take() or
  // the destructor. Returns the leaf's position in take()'s result.
  size_t add(uint64_t index, ByteView value);
  // Waits for every queued leaf and returns them in the order added.
  std::vector<Node> take();

  struct State;  // shared with the helper thread's queued work

 private:
  std::shared_ptr<State> state_;
};

}  // namespace p2p::merkle
