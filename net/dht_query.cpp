#include "net/dht_query.h"

namespace p2p::dht {

Query::Query(Node& node, QuerySpec spec)
    : node_(node), spec_(std::move(spec)), concurrency_(spec_.concurrency ? spec_.concurrency : node.config_.concurrency) {}

void Query::start() {
  add_from_table();
  if (pending_.size() < node_.table_.k()) {
    for (const auto& a : node_.config_.bootstrap) add_pending(a, node_id(a), std::nullopt);
  }
  read_more();
}

bool Query::is_closer(const Hash32& id) const {
  return result_.closest.size() < node_.table_.k() || closer(spec_.target, id, *result_.closest.back().from_id);
}

bool Query::add_pending(const Address& addr, const Hash32& id, const std::optional<Address>& referrer) {
  bool is_closer_node = is_closer(id);
  auto it = seen_.find(addr);
  if (it != seen_.end()) {
    if (it->second.state == Seen::down) {
      if (referrer) node_.send_down_hint(*referrer, addr);
    } else if (it->second.state == Seen::queued && referrer) {
      it->second.referrers.push_back(*referrer);
    }
    return is_closer_node;
  }
  if (!is_closer_node) return false;
  SeenEntry entry;
  if (referrer) entry.referrers.push_back(*referrer);
  seen_.emplace(addr, std::move(entry));
  pending_.push_back(Candidate{addr, id});
  return true;
}

void Query::add_from_table() {
  size_t k = node_.table_.k();
  if (pending_.size() >= k) return;
  from_table_ = true;
  auto nodes = node_.table_.closest(spec_.target, k - pending_.size());
  // Pushed farthest first so the closest is asked first.
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) add_pending(it->address, it->id, std::nullopt);
}

void Query::read_more() {
  if (cancelled_ || committing_ || finished_) return;
  while (inflight_ < concurrency_ + slow_ && !pending_.empty()) {
    Candidate next = pending_.back();
    pending_.pop_back();
    if (!is_closer(next.id)) continue;
    visit(next);
  }
  if (!pending_.empty()) return;
  if (inflight_ == 0 || (slow_ == inflight_ && result_.closest.size() >= node_.table_.k())) {
    // Mostly failures from the nodes we started with: try the routing table too.
    if (!from_table_ && result_.successes < node_.table_.k() / 4) {
      add_from_table();
      if (!pending_.empty()) {
        read_more();
        return;
      }
    }
    flush();
  }
}

void Query::visit(const Candidate& c) {
  inflight_++;
  auto self = shared_from_this();
  auto cycled = std::make_shared<bool>(false);
  OutboundRequest req{.internal = spec_.internal, .command = spec_.command, .target = spec_.target, .value = spec_.value};
  node_.request(
      c.address, req,
      [self, c, cycled](const Reply* r) {
        if (r) self->on_reply(c, *r, *cycled);
        else self->on_timeout(c, *cycled);
      },
      spec_.retries,
      [self, cycled] {
        // A slow node does not hold the query back: allow one more in flight.
        if (*cycled || self->finished_) return;
        *cycled = true;
        self->slow_++;
        self->read_more();
      });
}

void Query::on_reply(const Candidate& c, const Reply& r, bool cycled) {
  inflight_--;
  if (cycled) slow_--;
  seen_[c.address].state = Seen::done;
  if (cancelled_ || committing_ || finished_) return;
  if (r.error == 0) result_.successes++;
  else result_.errors++;
  if (r.error == 0 && r.from_id && is_closer(*r.from_id)) push_closest(r);
  for (const auto& addr : r.closer_nodes) {
    Hash32 id = node_id(addr);
    if (id == node_.table_.id()) continue;
    if (!add_pending(addr, id, r.from)) break;
  }
  if (r.error == 0 && spec_.on_reply) spec_.on_reply(r);
  read_more();
}

void Query::on_timeout(const Candidate& c, bool cycled) {
  inflight_--;
  if (cycled) slow_--;
  SeenEntry& entry = seen_[c.address];
  entry.state = Seen::down;
  for (const auto& ref : entry.referrers) node_.send_down_hint(ref, c.address);
  entry.referrers.clear();
  result_.errors++;
  read_more();
}

void Query::push_closest(const Reply& r) {
  auto& list = result_.closest;
  auto pos = list.begin();
  while (pos != list.end() && closer(spec_.target, *pos->from_id, *r.from_id)) ++pos;
  if (pos != list.end() && *pos->from_id == *r.from_id) return;  // the same node twice
  list.insert(pos, r);
  if (list.size() > node_.table_.k()) list.pop_back();
}

void Query::flush() {
  if (committing_) return;
  committing_ = true;
  if (!spec_.commit) {
    finish();
    return;
  }
  if (result_.closest.empty()) {
    result_.ok = false;
    result_.error = "too few nodes responded";
    finish();
    return;
  }
  commits_pending_ = result_.closest.size();
  auto self = shared_from_this();
  for (const auto& reply : std::vector<Reply>(result_.closest)) {
    spec_.commit(reply, [self](bool ok) {
      if (ok) self->result_.commits_ok++;
      if (--self->commits_pending_ > 0) return;
      if (self->result_.commits_ok == 0) {
        self->result_.ok = false;
        self->result_.error = "no node accepted the request";
      }
      self->finish();
    });
  }
}

void Query::finish() {
  if (finished_) return;
  finished_ = true;
  auto self = shared_from_this();  // the node's reference goes below
  node_.query_finished(this);
  if (!cancelled_ && spec_.on_done) spec_.on_done(result_);
}

}  // namespace p2p::dht
