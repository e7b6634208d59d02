// Replication over TCP on loopback, the p2p side of ../shared/bench/js/replicate.js:
// a `p2p seed` process serves a core of N blocks of SIZE bytes; this process
// downloads it in full into a fresh store, then (fresh store again) fetches
// 100 random blocks in parallel. Prints one JSON line.
//   replicate_bench P2P_BINARY N SIZE
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

#include "core/home.h"
#include "net/peer_client.h"
#include "net/remote.h"

using namespace p2p;
namespace fs = std::filesystem;

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void die(const Status& s) {
  std::cerr << "replicate_bench: " << s.message() << "\n";
  std::exit(1);
}

struct Reader {
  std::unique_ptr<storage::Store> store;
  std::unique_ptr<net::PeerClient> client;
  std::unique_ptr<Core> core;
};

Reader connect(const std::string& dir, const std::string& address, const Key32& key) {
  Reader r;
  fs::create_directories(dir);
  storage::LmdbOptions options;
  options.sync = std::getenv("BENCH_NOSYNC") == nullptr;
  auto store = storage::open_lmdb(dir, options);
  if (!store.ok()) die(store.status());
  r.store = std::move(*store);
  auto client = net::PeerClient::connect(address, crypto::random_key_pair());
  if (!client.ok()) die(client.status());
  r.client = std::move(*client);
  auto core = net::open_remote_core(*r.client, *r.store, key);
  if (!core.ok()) die(core.status());
  r.core = std::move(*core);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: replicate_bench P2P_BINARY N SIZE\n";
    return 2;
  }
  mallopt(M_MMAP_THRESHOLD, 64 << 20);  // as the p2p command does (tools/main.cpp)
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  crypto::init();
  std::string p2p = argv[1];
  uint64_t n = std::stoull(argv[2]), size = std::stoull(argv[3]);
  fs::path tmp = fs::temp_directory_path() / ("p2p-repl-bench-" + std::to_string(::getpid()));
  fs::create_directories(tmp);

  // The writer: N blocks in batches of 1000, like the JavaScript side.
  Key32 key;
  {
    auto home = Home::open({(tmp / "writer").string(), std::nullopt});
    if (!home.ok()) die(home.status());
    auto store = (*home)->writer();
    if (!store.ok()) die(store.status());
    auto core = (*store)->get("src");
    if (!core.ok()) die(core.status());
    std::mt19937_64 rng(1);
    Bytes pool(std::max<uint64_t>(size * 4, 4 << 20) + 4096);
    for (auto& b : pool) b = static_cast<uint8_t>(rng());
    for (uint64_t i = 0; i < n; i += 1000) {
      std::vector<ByteView> batch;
      for (uint64_t j = i; j < std::min(n, i + 1000); j++) {
        uint64_t o = (j * 4099) % (pool.size() - size);
        batch.emplace_back(pool.data() + o, size);
      }
      if (auto r = (*core)->append(batch); !r.ok()) die(r.status());
    }
    key = (*core)->key();
  }

  std::string cmd = p2p + " --home " + (tmp / "writer").string() + " seed --listen 127.0.0.1:0";
  FILE* seeder = ::popen(cmd.c_str(), "r");
  char line[512] = {0};
  if (!seeder || !std::fgets(line, sizeof line, seeder)) die(io_error("p2p seed did not start"));
  std::string first = line;
  std::string address = first.substr(first.rfind(' ') + 1);
  address.erase(address.find_last_not_of("\n") + 1);

  double t0 = now_ms();
  Reader full = connect((tmp / "full").string(), address, key);
  double connected = now_ms();
  if (Status s = full.client->remote(*full.core)->download(0, n); !s.ok()) die(s);
  double done = now_ms();
  if (Status s = full.core->verify(); !s.ok()) die(s);

  std::mt19937_64 rng(7);
  std::vector<uint64_t> picks;
  for (int i = 0; i < 100 && n > 0; i++) picks.push_back(rng() % n);
  double s0 = now_ms();
  Reader sparse = connect((tmp / "sparse").string(), address, key);
  if (Status s = sparse.client->remote(*sparse.core)->download(picks); !s.ok()) die(s);
  double s1 = now_ms();

  full = Reader{};
  sparse = Reader{};
  std::system(("pkill -INT -f '" + (tmp / "writer").string() + " seed'").c_str());
  ::pclose(seeder);
  fs::remove_all(tmp);
  double ms = done - t0;
  std::printf(
      "{\"bench\":\"replicate\",\"impl\":\"p2p\",\"params\":{\"N\":%llu,\"SIZE\":%llu},"
      "\"tcp_full\":{\"blocks\":%llu,\"bytes\":%llu,\"connect_ms\":%.2f,\"connect_to_done_ms\":%.2f,\"MB_per_s\":%.2f},"
      "\"tcp_sparse\":{\"blocks_parallel\":%zu,\"connect_to_done_ms\":%.2f}}\n",
      static_cast<unsigned long long>(n), static_cast<unsigned long long>(size), static_cast<unsigned long long>(n),
      static_cast<unsigned long long>(n * size), connected - t0, ms, n * size / 1e6 / (ms / 1000), picks.size(),
      s1 - s0);
  return 0;
}
