// room_bench [N] [WRITERS]: N chat messages (default 100,000) from WRITERS
// writers (default 10) posting in rounds, each having seen a random part of
// the others' latest messages (so links and clocks look like a live room),
// written to a temporary LMDB store. Then a fresh RoomView over StoreLogs
// merges them all, timed, with the growth of the resident set during the
// merge; then one more message (an incremental update), one late message
// that sorts early (a full rerun), and a replay.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "core/room.h"

using namespace p2p;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

void must(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "room_bench: %s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

// A field of /proc/self/status in KiB.
uint64_t status_kib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1));
  return 0;
}

// Lets the peak resident set start again from the current one.
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

struct Writer {
  std::unique_ptr<Corestore> store;
  std::unique_ptr<Core> core;
  crypto::KeyPair identity;
  Key32 noise{};
  std::vector<uint64_t> clocks;  // of every message written (generation only)
  std::vector<uint64_t> seen;    // per other writer: how many of its messages it has seen
  std::vector<uint64_t> linked;  // per other writer: the length it last named
  std::vector<Bytes> pending;
};

void flush(Writer& w) {
  if (w.pending.empty()) return;
  std::vector<ByteView> views(w.pending.begin(), w.pending.end());
  auto r = w.core->append(views);
  must(r.status(), "append");
  w.pending.clear();
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t N = argc > 1 ? std::stoull(argv[1]) : 100000;
  const size_t W = argc > 2 ? std::stoul(argv[2]) : 10;
  crypto::init();
  std::mt19937_64 rng(5);
  std::string dir = std::filesystem::temp_directory_path() / ("room-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  storage::LmdbOptions options;
  options.map_size = uint64_t{8} << 30;
  auto opened = storage::open_lmdb(dir, options);
  must(opened.status(), "open store");
  auto store = std::move(*opened);

  room::RoomRef ref{room::open_room_key("bench"), true, "bench"};
  std::vector<Writer> writers(W);
  for (auto& w : writers) {
    w.store = std::make_unique<Corestore>(*store, crypto::random_key());
    auto core = room::own_writer(*w.store, ref);
    must(core.status(), "own writer");
    w.core = std::move(*core);
    w.identity = crypto::random_key_pair();
    w.noise = crypto::random_key();
    w.seen.assign(W, 0);
    w.linked.assign(W, 0);
  }

  // Generation: clocks and links as room::append would make them from what
  // each writer has seen, without merging (that is what is measured).
  auto t0 = Clock::now();
  uint64_t written = 0, links = 0;
  std::vector<size_t> order(W);
  for (size_t i = 0; i < W; i++) order[i] = i;
  while (written < N) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      if (written >= N) break;
      Writer& w = writers[i];
      // Mostly up to date; sometimes a writer lags behind another by a little.
      for (size_t j = 0; j < W; j++) {
        if (j == i) continue;
        uint64_t have = writers[j].clocks.size();
        uint64_t lag = rng() % 5 == 0 ? rng() % 4 : 0;
        w.seen[j] = std::max(w.seen[j], have > lag ? have - lag : 0);
      }
      room::Message m;
      m.kind = room::Kind::text;
      m.text = "message " + std::to_string(written) + " from writer " + std::to_string(i) + ", about this long";
      m.time_ms = 1733000000000 + written;
      uint64_t clock = w.clocks.empty() ? 0 : w.clocks.back();
      for (size_t j = 0; j < W; j++) {
        if (j == i || w.seen[j] == 0) continue;
        clock = std::max(clock, writers[j].clocks[w.seen[j] - 1]);
        if (w.seen[j] > w.linked[j]) {
          m.links.push_back({writers[j].core->key(), w.seen[j] - 1});
          w.linked[j] = w.seen[j];
        }
      }
      m.clock = clock + 1;
      if (w.clocks.empty()) {
        room::Message h;
        h.kind = room::Kind::hello;
        h.clock = m.clock;
        h.links = m.links;
        h.room = ref.key;
        h.identity = w.identity.public_key;
        h.noise_key = w.noise;
        h.proof = crypto::sign(room::hello_signable(ref.key, w.core->key(), w.noise), w.identity);
        w.pending.push_back(room::encode(h));
        w.clocks.push_back(h.clock);
        m.clock = h.clock + 1;
        m.links.clear();
      }
      links += m.links.size();
      w.pending.push_back(room::encode(m));
      w.clocks.push_back(m.clock);
      written++;
      if (w.pending.size() >= 1000) flush(w);
    }
  }
  for (auto& w : writers) flush(w);
  double write_ms = ms_since(t0);
  for (auto& w : writers) {
    w.clocks.clear();
    w.clocks.shrink_to_fit();
  }

  // The merge, from a fresh view.
  store->release_mapped_pages();
  uint64_t rss0 = status_kib("VmRSS"), anon0 = status_kib("RssAnon");
  reset_peak_rss();
  t0 = Clock::now();
  room::StoreLogs logs(*store);
  room::RoomView view(ref);
  for (auto& w : writers) view.add_writer(w.core->key());
  uint64_t entries = 0, late = 0;
  must(view.update(logs, [&](const room::Entry& e) {
    entries++;
    late += e.late;
  }), "update");
  double merge_ms = ms_since(t0);
  uint64_t peak = status_kib("VmHWM"), anon1 = status_kib("RssAnon");

  // One more message, as `chat send` would append it: an incremental update.
  t0 = Clock::now();
  room::Message m;
  m.text = "one more";
  auto appended = room::append(*writers[0].core, view, logs, writers[0].identity, writers[0].noise, m);
  must(appended.status(), "append");
  uint64_t more = 0;
  must(view.update(logs, [&](const room::Entry&) { more++; }), "update after append");
  double incremental_ms = ms_since(t0);

  // A message that sorts early (a writer coming back after being offline
  // for the whole history, with its clock still low): the merge reruns.
  t0 = Clock::now();
  Writer late_writer;
  late_writer.store = std::make_unique<Corestore>(*store, crypto::random_key());
  late_writer.core = std::move(*room::own_writer(*late_writer.store, ref));
  late_writer.identity = crypto::random_key_pair();
  room::RoomView offline(ref);
  m.text = "I was offline";
  must(room::append(*late_writer.core, offline, logs, late_writer.identity, late_writer.noise, m).status(), "late append");
  view.add_writer(late_writer.core->key());
  uint64_t rerun_late = 0, rerun_new = 0;
  must(view.update(logs, [&](const room::Entry& e) {
    rerun_new++;
    rerun_late += e.late;
  }), "update after late message");
  double rerun_ms = ms_since(t0);

  t0 = Clock::now();
  uint64_t replayed = 0;
  must(view.replay(logs, [&](const room::Entry&) { replayed++; }), "replay");
  double replay_ms = ms_since(t0);

  std::printf("room_bench: %llu messages from %zu writers (%.1f links per message), written in %.0f ms\n",
              (unsigned long long)N, W, double(links) / double(N), write_ms);
  std::printf("| step | entries | ms | note |\n|---|---|---|---|\n");
  std::printf("| merge everything, fresh view | %llu | %.0f | %.0f messages/s, %llu late |\n", (unsigned long long)entries,
              merge_ms, 1000.0 * double(entries) / merge_ms, (unsigned long long)late);
  std::printf("| append one + update | %llu | %.2f | incremental |\n", (unsigned long long)more, incremental_ms);
  std::printf("| a late writer joins, update | %llu | %.0f | full rerun, %llu late |\n", (unsigned long long)rerun_new,
              rerun_ms, (unsigned long long)rerun_late);
  std::printf("| replay | %llu | %.0f | |\n", (unsigned long long)replayed, replay_ms);
  std::printf("peak RSS increase during the merge: %.1f MB (heap after the merge: %+.1f MB; the rest is LMDB's mapped pages)\n",
              double(peak > rss0 ? peak - rss0 : 0) / 1024.0, (double(anon1) - double(anon0)) / 1024.0);
  std::printf("{\"bench\":\"room-merge\",\"impl\":\"p2p\",\"params\":{\"N\":%llu,\"WRITERS\":%zu},\"merge_ms\":%.1f,"
              "\"incremental_ms\":%.2f,\"rerun_ms\":%.1f,\"replay_ms\":%.1f,\"rss_increase_kb\":%llu}\n",
              (unsigned long long)N, W, merge_ms, incremental_ms, rerun_ms, replay_ms,
              (unsigned long long)(peak > rss0 ? peak - rss0 : 0));
  writers.clear();
  late_writer = Writer{};
  store.reset();
  std::filesystem::remove_all(dir);
  bool ok = entries == N + W && merge_ms < 2000;
  if (!ok) std::fprintf(stderr, "room_bench: expected %llu entries in under 2 s\n", (unsigned long long)(N + W));
  return ok ? 0 : 1;
}
