// core_bench N SIZE [SINGLE_N] [BATCH]: the C++ side of
// ../shared/bench/js/core-append.js, same workload and the same JSON fields.
// Batched appends of N blocks of SIZE bytes (each batch one committed
// transaction), single appends, reopen, sequential and random reads.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/corestore.h"
#include "storage/store.h"

using namespace p2p;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

uint64_t du(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

template <typename T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "core_bench: %s: %s\n", what, r.status().message().c_str());
    std::exit(1);
  }
  return std::move(*r);
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t N = argc > 1 ? std::stoull(argv[1]) : 100000;
  const size_t SIZE = argc > 2 ? std::stoull(argv[2]) : 1024;
  const uint64_t SINGLE_N = argc > 3 ? std::stoull(argv[3]) : std::min<uint64_t>(N, 10000);
  const uint64_t BATCH = argc > 4 ? std::stoull(argv[4]) : 1000;
  const uint64_t RANDOM_GETS = std::min<uint64_t>(10000, N);
  crypto::init();

  std::mt19937_64 rng(42);
  Bytes pool(std::max<size_t>(SIZE * 4, 4 << 20) + 4096);
  for (auto& b : pool) b = static_cast<uint8_t>(rng());
  auto block = [&](uint64_t i) { return ByteView(pool.data() + (i * 4099) % (pool.size() - SIZE), SIZE); };

  std::string base = std::filesystem::temp_directory_path() / ("core-bench-" + std::to_string(getpid()));
  std::string dir = base + "-batched", dir2 = base + "-single";
  std::filesystem::create_directories(dir);
  std::filesystem::create_directories(dir2);
  storage::LmdbOptions options;
  options.map_size = uint64_t{64} << 30;
  Key32 primary = crypto::random_key();
  Key32 key{};

  std::printf("{\"bench\":\"core-append\",\"impl\":\"p2p\",\"params\":{\"N\":%llu,\"SIZE\":%zu,\"SINGLE_N\":%llu,\"BATCH\":%llu}",
              (unsigned long long)N, SIZE, (unsigned long long)SINGLE_N, (unsigned long long)BATCH);
  {
    auto store = must(storage::open_lmdb(dir, options), "open");
    Corestore cs(*store, primary);
    auto core = must(cs.get("bench"), "core");
    key = core->key();
    auto t0 = Clock::now();
    std::vector<ByteView> batch;
    for (uint64_t i = 0; i < N; i += BATCH) {
      batch.clear();
      for (uint64_t j = i; j < std::min(N, i + BATCH); j++) batch.push_back(block(j));
      must(core->append(batch), "append");
    }
    double ms = ms_since(t0);
    std::printf(",\"append_batched\":{\"ms\":%.2f,\"blocks_per_s\":%.0f,\"MB_per_s\":%.2f}", ms, N / (ms / 1000),
                N * SIZE / 1048576.0 / (ms / 1000));
  }
  uint64_t disk = du(dir);
  std::printf(",\"disk\":{\"apparent_bytes\":%llu,\"apparent_bytes_per_block\":%.2f}", (unsigned long long)disk,
              double(disk) / N);
  {
    auto t0 = Clock::now();
    auto store = must(storage::open_lmdb(dir, options), "reopen");
    auto core = must(Core::open_by_key(*store, key), "reopen core");
    std::printf(",\"reopen_ms\":%.2f", ms_since(t0));
    if (core->length() != N) return 1;

    uint64_t bytes = 0;
    auto t1 = Clock::now();
    for (uint64_t i = 0; i < N; i++) bytes += must(core->get(i), "get").size();
    double ms1 = ms_since(t1);
    if (bytes != N * SIZE) return 1;
    std::printf(",\"read_seq_get\":{\"ms\":%.2f,\"blocks_per_s\":%.0f,\"MB_per_s\":%.2f}", ms1, N / (ms1 / 1000),
                bytes / 1048576.0 / (ms1 / 1000));

    std::vector<uint64_t> idx(RANDOM_GETS);
    for (auto& i : idx) i = rng() % N;
    std::vector<double> lat;
    auto t2 = Clock::now();
    for (uint64_t i : idx) {
      auto s = Clock::now();
      if (must(core->get(i), "get").size() != SIZE) return 1;
      lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
    }
    double ms2 = ms_since(t2);
    std::sort(lat.begin(), lat.end());
    std::printf(",\"random_get\":{\"count\":%llu,\"ms\":%.2f,\"gets_per_s\":%.0f,\"median_us\":%.2f}",
                (unsigned long long)RANDOM_GETS, ms2, RANDOM_GETS / (ms2 / 1000), lat[lat.size() / 2]);
  }
  {
    auto store = must(storage::open_lmdb(dir2, options), "open single");
    Corestore cs(*store, primary);
    auto core = must(cs.get("single"), "core");
    auto t0 = Clock::now();
    for (uint64_t i = 0; i < SINGLE_N; i++) must(core->append(block(i)), "append");
    double ms = ms_since(t0);
    std::printf(",\"append_single\":{\"count\":%llu,\"ms\":%.2f,\"blocks_per_s\":%.0f,\"disk_bytes_per_block\":%.2f}",
                (unsigned long long)SINGLE_N, ms, SINGLE_N / (ms / 1000), double(du(dir2)) / SINGLE_N);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  std::printf(",\"peak_rss_MB\":%.1f}\n", ru.ru_maxrss / 1024.0);
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(dir2);
  return 0;
}
