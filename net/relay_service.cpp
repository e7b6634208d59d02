#include "net/relay_service.h"

#include <list>

#include "net/connection.h"
#include "net/udx_transport.h"

namespace p2p::net {

struct RelayService::Impl {
  dht::Runtime& rt;
  crypto::KeyPair key_pair;
  std::function<void(const RelayEvent&)> on_event;
  BlindRelay relay;
  std::list<std::unique_ptr<Connection>> connections;  // before `relay` goes: declared after it
  std::vector<Connection*> dead;
  dht::Clock::TimerId sweep = 0;

  Impl(dht::Runtime& r, const crypto::KeyPair& kp, std::function<void(const RelayEvent&)> events)
      : rt(r), key_pair(kp), on_event(std::move(events)), relay(r.streams()) {}

  void report(RelayEvent e) {
    if (on_event) on_event(e);
  }

  void accept(dht::Established&& e) {
    Key32 remote = e.handshake.remote_public_key;
    if (connections.size() >= kMaxConnections) return;  // the stream goes with `e`
    std::string address = e.remote.to_string();
    auto stream = std::make_unique<SecretStream>(e.initiator, e.handshake);
    connections.push_back(std::make_unique<Connection>(
        rt.loop(), udx_transport(std::move(e.stream), rt.node().clock(), std::move(e.early_data)), std::move(stream)));
    Connection* c = connections.back().get();
    // The channel opens at once; a client's open may come first, and waits.
    c->mux().hold_unmatched_opens(true);
    auto session = relay.accept(c->mux(), remote);
    if (!session.ok()) return c->close(session.status());
    c->sessions().push_back(std::move(*session));
    c->set_hooks({[this, remote, address] { report({.kind = RelayEvent::connected, .key = remote, .address = address}); },
                  [this, c, remote, address](const Status& why) {
                    report({.kind = RelayEvent::disconnected, .key = remote, .address = address,
                            .reason = why.ok() ? "" : why.message()});
                    dead.push_back(c);
                    schedule_sweep();
                  }});
    if (Status s = c->start(); !s.ok()) c->close(s);
  }

  // Closed connections go on a later turn of the loop (never inside their
  // own callbacks).
  void schedule_sweep() {
    if (sweep) return;
    sweep = rt.node().clock().start_timer(0, [this] {
      sweep = 0;
      auto gone = std::move(dead);
      dead.clear();
      connections.remove_if([&](const auto& c) { return std::find(gone.begin(), gone.end(), c.get()) != gone.end(); });
    });
  }
};

RelayService::RelayService(dht::Runtime& rt, const crypto::KeyPair& key_pair,
                           std::function<void(const RelayEvent&)> on_event)
    : impl_(std::make_unique<Impl>(rt, key_pair, std::move(on_event))) {
  Impl* m = impl_.get();
  m->relay.on_event = [m](BlindRelay::Event e, const Key32& token, uint64_t bytes) {
    m->report({.kind = e == BlindRelay::Event::paired ? RelayEvent::paired : RelayEvent::ended, .key = token, .bytes = bytes});
  };
  rt.connector().listen(key_pair, [m](dht::Established e) { m->accept(std::move(e)); });
}

RelayService::~RelayService() {
  impl_->rt.connector().unlisten(impl_->key_pair.public_key);
  impl_->rt.node().clock().cancel_timer(impl_->sweep);
  for (auto& c : impl_->connections) c->set_hooks({});
  impl_->connections.clear();
}

BlindRelay::Stats RelayService::stats() const { return impl_->relay.stats(); }
size_t RelayService::connections() const { return impl_->connections.size(); }

}  // namespace p2p::net
