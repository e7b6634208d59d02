// bee_bench N [SINGLE_N] [FLUSH]: the C++ side of ../shared/bench/js/bee-put-get.js,
// same workload and JSON fields: keys key-%08d in shuffled order, 64-byte
// values; single puts (own store), batched puts flushed every FLUSH, then
// after a reopen N/10 random gets, a full scan and 20 scans of 1000 keys.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "core/bee.h"
#include "core/corestore.h"

using namespace p2p;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

uint64_t du(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

void must(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "bee_bench: %s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

std::string key_of(uint64_t i) {
  char b[16];
  std::snprintf(b, sizeof b, "key-%08llu", static_cast<unsigned long long>(i));
  return b;
}

std::vector<uint64_t> order_of(uint64_t n, uint64_t seed) {
  std::vector<uint64_t> a(n);
  for (uint64_t i = 0; i < n; i++) a[i] = i;
  std::shuffle(a.begin(), a.end(), std::mt19937_64(seed));
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t N = argc > 1 ? std::stoull(argv[1]) : 100000;
  const uint64_t SINGLE_N = argc > 2 ? std::stoull(argv[2]) : N;
  const uint64_t FLUSH = argc > 3 ? std::stoull(argv[3]) : 1000;
  const uint64_t GETS = std::max<uint64_t>(1, N / 10);
  crypto::init();
  std::mt19937_64 rng(9);
  Bytes pool(1 << 20);
  for (auto& b : pool) b = static_cast<uint8_t>(rng());
  auto value_of = [&](uint64_t i) { return ByteView(pool.data() + (i * 131) % (pool.size() - 64), 64); };

  std::string base = std::filesystem::temp_directory_path() / ("bee-bench-" + std::to_string(getpid()));
  storage::LmdbOptions options;
  options.map_size = uint64_t{64} << 30;
  Key32 primary = crypto::random_key();
  std::printf("{\"bench\":\"bee-put-get\",\"impl\":\"p2p\",\"params\":{\"N\":%llu,\"SINGLE_N\":%llu,\"FLUSH\":%llu}",
              (unsigned long long)N, (unsigned long long)SINGLE_N, (unsigned long long)FLUSH);
  if (SINGLE_N > 0) {
    std::string dir = base + "-single";
    std::filesystem::create_directories(dir);
    auto store = std::move(*storage::open_lmdb(dir, options));
    Corestore cs(*store, primary);
    auto core = std::move(*cs.get("bee"));
    Bee bee(*core);
    auto order = order_of(SINGLE_N, 1);
    auto t0 = Clock::now();
    for (uint64_t i : order) must(bee.put(as_bytes(key_of(i)), value_of(i)), "put");
    double ms = ms_since(t0);
    std::printf(",\"put_single\":{\"count\":%llu,\"ms\":%.2f,\"ops_per_s\":%.0f,\"disk_bytes_per_key\":%.1f}",
                (unsigned long long)SINGLE_N, ms, SINGLE_N / (ms / 1000), double(du(dir)) / SINGLE_N);
    std::filesystem::remove_all(dir);
  }
  std::string dir = base + "-batch";
  std::filesystem::create_directories(dir);
  Key32 key{};
  {
    auto store = std::move(*storage::open_lmdb(dir, options));
    Corestore cs(*store, primary);
    auto core = std::move(*cs.get("bee"));
    key = core->key();
    Bee bee(*core);
    auto order = order_of(N, 2);
    auto t0 = Clock::now();
    std::unique_ptr<Bee::Batch> batch;
    for (uint64_t k = 0; k < N; k++) {
      if (!batch) batch = std::move(*bee.batch());
      must(batch->put(as_bytes(key_of(order[k])), value_of(order[k])), "batch put");
      if ((k + 1) % FLUSH == 0) {
        must(batch->flush(), "flush");
        batch.reset();
      }
    }
    if (batch) must(batch->flush(), "flush");
    double ms = ms_since(t0);
    std::printf(",\"put_batched\":{\"count\":%llu,\"ms\":%.2f,\"ops_per_s\":%.0f,\"core_length\":%llu}",
                (unsigned long long)N, ms, N / (ms / 1000), (unsigned long long)core->length());
  }
  std::printf(",\"disk\":{\"apparent_bytes\":%llu,\"bytes_per_key\":%.1f}", (unsigned long long)du(dir),
              double(du(dir)) / N);
  {
    auto store = std::move(*storage::open_lmdb(dir, options));
    auto core = std::move(*Core::open_by_key(*store, key));
    Bee bee(*core);
    std::mt19937_64 r(3);
    std::vector<double> lat;
    auto t0 = Clock::now();
    for (uint64_t k = 0; k < GETS; k++) {
      uint64_t i = r() % N;
      auto s = Clock::now();
      auto e = bee.get(as_bytes(key_of(i)));
      lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
      if (!e.ok() || !e->has_value() || (*e)->value->size() != 64) {
        std::fprintf(stderr, "missing %s\n", key_of(i).c_str());
        return 1;
      }
    }
    double ms = ms_since(t0);
    std::sort(lat.begin(), lat.end());
    std::printf(",\"get_random\":{\"count\":%llu,\"ms\":%.2f,\"ops_per_s\":%.0f,\"median_us\":%.1f}",
                (unsigned long long)GETS, ms, GETS / (ms / 1000), lat[lat.size() / 2]);

    uint64_t count = 0;
    Bytes prev;
    auto t1 = Clock::now();
    must(bee.range({}, [&](const BeeEntry& e) {
      if (count && !(prev < e.key)) std::exit(2);
      prev = e.key;
      count++;
      return true;
    }), "scan");
    double ms1 = ms_since(t1);
    if (count != N) return 3;
    std::printf(",\"scan_full\":{\"count\":%llu,\"ms\":%.2f,\"keys_per_s\":%.0f}", (unsigned long long)count, ms1,
                count / (ms1 / 1000));

    std::vector<double> times;
    for (int rep = 0; rep < 20; rep++) {
      uint64_t start = r() % (N > 1000 ? N - 1000 : 1);
      BeeRange range;
      range.gte = to_bytes(as_bytes(key_of(start)));
      range.limit = 1000;
      auto s = Clock::now();
      must(bee.range(range, [](const BeeEntry&) { return true; }), "range");
      times.push_back(ms_since(s));
    }
    std::sort(times.begin(), times.end());
    std::printf(",\"scan_range\":{\"len\":1000,\"reps\":20,\"median_ms\":%.3f}", times[10]);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  std::printf(",\"peak_rss_MB\":%.1f}\n", ru.ru_maxrss / 1024.0);
  std::filesystem::remove_all(dir);
  return 0;
}
