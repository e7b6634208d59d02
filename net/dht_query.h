// An iterative Kademlia query as dht-rpc runs it: ask the closest known nodes,
// follow the closer nodes they name (up to `concurrency` requests at once),
// keep the k closest replies, tell referrers about nodes that timed out, then
// optionally "commit" (a second, token-bearing request) to each of the closest.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "net/dht_rpc.h"

namespace p2p::dht {

struct QueryResult {
  std::vector<Reply> closest{};  // up to k replies from persistent nodes, closest first
  size_t successes = 0, errors = 0;
  size_t commits_ok = 0;
  bool ok = true;
  std::string error{};
};

struct QuerySpec {
  bool internal = false;
  uint64_t command = 0;
  Hash32 target{};
  std::optional<Bytes> value{};
  size_t concurrency = 0;  // 0: the node's
  int retries = 5;
  // Every successful reply (error 0), as it arrives.
  std::function<void(const Reply&)> on_reply{};
  // After convergence, once per closest reply; call `done(ok)` when settled.
  std::function<void(const Reply&, std::function<void(bool)> done)> commit{};
  std::function<void(const QueryResult&)> on_done{};
};

class Query : public std::enable_shared_from_this<Query> {
 public:
  Query(Node& node, QuerySpec spec);
  void start();
  // Stops asking; on_done is not called.
  void cancel() { cancelled_ = true; }
  const QueryResult& result() const { return result_; }

 private:
  enum class Seen { queued, done, down };
  struct SeenEntry {
    Seen state = Seen::queued;
    std::vector<Address> referrers;
  };
  struct Candidate {
    Address address;
    Hash32 id;
  };

  bool is_closer(const Hash32& id) const;
  bool add_pending(const Address& addr, const Hash32& id, const std::optional<Address>& referrer);
  void add_from_table();
  void read_more();
  void visit(const Candidate& c);
  void on_reply(const Candidate& c, const Reply& r, bool cycled);
  void on_timeout(const Candidate& c, bool cycled);
  void push_closest(const Reply& r);
  void flush();
  void finish();

  Node& node_;
  QuerySpec spec_;
  QueryResult result_;
  std::map<Address, SeenEntry> seen_;
  std::vector<Candidate> pending_;  // a stack: the last added is asked first
  size_t inflight_ = 0, slow_ = 0;
  size_t concurrency_;
  bool from_table_ = false, committing_ = false, finished_ = false, cancelled_ = false;
  size_t commits_pending_ = 0;
};

}  // namespace p2p::dht
