#include "net/dht_runtime.h"

#include <netdb.h>
#include <uv.h>

#include <csignal>
#include <cstring>
#include <cstdio>
#include <fstream>

#include "net/dht_uv.h"
#include "net/relay_client.h"
#include "net/udp_demux.h"

namespace p2p::dht {

const std::vector<std::string> kDefaultBootstrap = {
    "88.99.3.86@node1.hyperdht.org:49737",
    "142.93.90.113@node2.hyperdht.org:49737",
    "138.68.147.8@node3.hyperdht.org:49737",
};

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view part = text.substr(start, comma - start);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (!part.empty()) out.emplace_back(part);
    start = comma + 1;
  }
  return out;
}

namespace {

std::optional<std::array<uint8_t, 4>> resolve_ipv4(const std::string& host) {
  if (auto ip = parse_ipv4(host)) return ip;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || !res) return std::nullopt;
  std::array<uint8_t, 4> ip{};
  std::memcpy(ip.data(), &reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr.s_addr, 4);
  freeaddrinfo(res);
  return ip;
}

}  // namespace

Result<std::vector<Address>> resolve_bootstrap(const std::vector<std::string>& entries) {
  std::vector<Address> out;
  for (const auto& entry : entries) {
    size_t colon = entry.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return invalid_argument("bootstrap node '" + entry + "' is not HOST:PORT");
    }
    std::string host = entry.substr(0, colon);
    if (size_t at = host.find('@'); at != std::string::npos) host = host.substr(0, at);  // the suggested IP
    auto port = parse_address("0.0.0.0:" + entry.substr(colon + 1));
    if (!port || port->port == 0) return invalid_argument("bootstrap node '" + entry + "' has no valid port");
    auto ip = resolve_ipv4(host);
    if (!ip) return invalid_argument("cannot resolve bootstrap host '" + host + "' to an IPv4 address");
    out.push_back(Address{*ip, port->port});
  }
  return out;
}

struct Runtime::Impl {
  uv_loop_t own_loop{};
  uv_loop_t* loop = &own_loop;
  std::unique_ptr<UvClock> clock;
  std::unique_ptr<UvUdpSocket> socket, client_socket;
  std::unique_ptr<UdpDemux> demux;
  std::unique_ptr<udx::Mux> streams;
  std::unique_ptr<Node> node;
  std::unique_ptr<HyperDht> dht;
  std::unique_ptr<Connector> connector;
  std::unique_ptr<net::RelayClient> relay_client;
  std::string nodes_file;
};

Runtime::Runtime() : impl_(std::make_unique<Impl>()) {}

Runtime::~Runtime() {
  save_nodes();
  if (impl_->connector) impl_->connector->set_relay(nullptr, std::nullopt);
  impl_->relay_client.reset();
  impl_->connector.reset();
  impl_->dht.reset();
  impl_->node.reset();
  impl_->streams.reset();
  impl_->demux.reset();
  impl_->socket.reset();
  impl_->client_socket.reset();
  impl_->clock.reset();
  if (impl_->loop == &impl_->own_loop) close_loop(impl_->loop);
}

namespace {

std::vector<Address> load_nodes(const std::string& path) {
  std::vector<Address> out;
  std::ifstream in(path);
  std::string line;
  while (out.size() < 64 && std::getline(in, line)) {
    if (auto a = parse_address(line)) out.push_back(*a);
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Runtime>> Runtime::open(RuntimeOptions options) {
  std::unique_ptr<Runtime> rt(new Runtime());
  Impl& m = *rt->impl_;
  if (options.loop) m.loop = options.loop;
  else uv_loop_init(&m.own_loop);
  auto socket = UvUdpSocket::bind(m.loop, options.bind_host, options.port);
  if (!socket.ok()) return socket.status();
  m.socket = std::move(socket.value());
  if (options.adaptive) {
    auto client = UvUdpSocket::bind(m.loop, options.bind_host, 0);
    if (!client.ok()) return client.status();
    m.client_socket = std::move(client.value());
  }
  m.clock = std::make_unique<UvClock>(m.loop);
  m.nodes_file = options.nodes_file;

  NodeConfig config;
  config.bootstrap = std::move(options.bootstrap);
  config.public_address = options.public_address;
  config.adaptive = options.adaptive && !options.public_address;
  if (config.public_address && config.public_address->port == 0) config.public_address->port = m.socket->local_address().port;
  if (!m.nodes_file.empty()) {
    for (const auto& a : load_nodes(m.nodes_file)) {
      if (!config.public_address || a != *config.public_address) config.known_nodes.push_back(a);
    }
  }
  m.demux = std::make_unique<UdpDemux>(*m.socket);
  m.streams = std::make_unique<udx::Mux>(*m.clock, *m.socket);
  m.demux->set_stream_handler([mux = m.streams.get()](const Address& from, ByteView d) { return mux->handle(from, d); });
  m.node = std::make_unique<Node>(*m.clock, m.demux->dht_socket(), std::move(config), m.client_socket.get());
  // Holepunching sends from the main socket; an adaptive node must not take
  // the answers its NAT then lets in for proof that it is reachable.
  if (m.client_socket) m.demux->guard_reachability_check(*m.clock, [node = m.node.get()] { return node->firewalled(); });
  m.dht = std::make_unique<HyperDht>(*m.node, options.limits);
  // Every node relays handshakes for the servers whose records it holds.
  m.connector = std::make_unique<Connector>(*m.dht, *m.streams, *m.demux);
  // Punching a random NAT of ours takes sockets of its own (up to 256, on any free port).
  m.connector->set_socket_opener([loop = m.loop, host = options.bind_host]() -> std::unique_ptr<DatagramSocket> {
    auto s = UvUdpSocket::bind(loop, host, 0);
    if (!s.ok()) return nullptr;
    return std::move(s.value());
  });
  // A peer's blind relay is followed (and ours named, once set).
  m.relay_client = std::make_unique<net::RelayClient>(m.loop, *m.connector, *m.clock);
  m.connector->set_relay(m.relay_client.get(), std::nullopt);
  return rt;
}

Node& Runtime::node() { return *impl_->node; }
udx::Mux& Runtime::streams() { return *impl_->streams; }
uv_loop_s* Runtime::loop() { return impl_->loop; }

Connector& Runtime::connector() { return *impl_->connector; }

void Runtime::set_relay_through(std::optional<Key32> relay) {
  impl_->connector->set_relay(impl_->relay_client.get(), relay);
}
HyperDht& Runtime::dht() { return *impl_->dht; }
Address Runtime::local_address() const { return impl_->socket->local_address(); }

Runtime::Stop Runtime::run_until(const std::function<bool()>& done, uint64_t timeout_ms) {
  struct Flags {
    bool signalled = false, timed_out = false;
  } flags;
  uv_signal_t sigint{}, sigterm{};
  uv_timer_t timer{};
  auto on_signal = [](uv_signal_t* s, int) { static_cast<Flags*>(s->data)->signalled = true; };
  for (auto* s : {&sigint, &sigterm}) {
    uv_signal_init(impl_->loop, s);
    s->data = &flags;
  }
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_timer_init(impl_->loop, &timer);
  timer.data = &flags;
  if (timeout_ms > 0) {
    uv_timer_start(&timer, [](uv_timer_t* t) { static_cast<Flags*>(t->data)->timed_out = true; }, timeout_ms, 0);
  }
  while (!done() && !flags.signalled && !flags.timed_out) uv_run(impl_->loop, UV_RUN_ONCE);
  for (auto* h : {reinterpret_cast<uv_handle_t*>(&sigint), reinterpret_cast<uv_handle_t*>(&sigterm),
                  reinterpret_cast<uv_handle_t*>(&timer)}) {
    uv_close(h, nullptr);
  }
  uv_run(impl_->loop, UV_RUN_NOWAIT);
  if (flags.signalled) return Stop::signal;
  if (flags.timed_out && !done()) return Stop::timeout;
  return Stop::done;
}

void Runtime::save_nodes() {
  if (impl_->nodes_file.empty() || !impl_->node) return;
  auto nodes = impl_->node->known_addresses(64);
  if (nodes.empty()) return;
  std::string tmp = impl_->nodes_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& a : nodes) out << a.to_string() << "\n";
    if (!out) return;
  }
  std::rename(tmp.c_str(), impl_->nodes_file.c_str());
}

}  // namespace p2p::dht
