// A process the integration tests drive, kill and check.
//   append_worker loop  HOME NAME            append "block-<index>" in random batches forever,
//                                            printing "acked <length>" after every commit
//   append_worker tagged HOME NAME TAG COUNT append TAG-0 .. TAG-(COUNT-1) in random batches
//   append_worker check HOME NAME            verify the core; print "length N" and, per tag,
//                                            "tag T count C" (exit 1 on any inconsistency)
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unistd.h>

#include "core/home.h"

using namespace p2p;

namespace {

int die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "append_worker: %s: %s\n", what.c_str(), s.message().c_str());
  return 1;
}

Status append_batch(Core& core, const std::vector<std::string>& blocks) {
  std::vector<ByteView> views;
  for (const auto& b : blocks) views.push_back(as_bytes(b));
  return core.append(views).status();
}

int loop(Core& core) {
  std::mt19937 rng(static_cast<unsigned>(getpid()));
  for (uint64_t round = 0; round < 100000000; round++) {
    std::vector<std::string> blocks;
    size_t n = 1 + rng() % 50;
    for (size_t i = 0; i < n; i++) blocks.push_back("block-" + std::to_string(core.length() + i));
    if (Status s = append_batch(core, blocks); !s.ok()) return die("append", s);
    std::printf("acked %llu\n", static_cast<unsigned long long>(core.length()));
    std::fflush(stdout);
  }
  return 0;
}

int tagged(Core& core, const std::string& tag, uint64_t count) {
  std::mt19937 rng(static_cast<unsigned>(getpid()));
  uint64_t next = 0;
  while (next < count) {
    std::vector<std::string> blocks;
    uint64_t n = std::min<uint64_t>(1 + rng() % 8, count - next);
    for (uint64_t i = 0; i < n; i++) blocks.push_back(tag + "-" + std::to_string(next + i));
    if (Status s = append_batch(core, blocks); !s.ok()) return die("append", s);
    next += n;
  }
  std::printf("acked %s %llu\n", tag.c_str(), static_cast<unsigned long long>(next));
  return 0;
}

int check(Core& core) {
  if (Status s = core.verify(); !s.ok()) return die("verify", s);
  std::map<std::string, std::set<uint64_t>> seen;
  for (uint64_t i = 0; i < core.length(); i++) {
    auto b = core.get(i);
    if (!b.ok()) return die("get " + std::to_string(i), b.status());
    std::string text(as_chars(*b));
    auto dash = text.rfind('-');
    if (dash == std::string::npos) return die("block " + std::to_string(i), corruption("unexpected content"));
    std::string tag = text.substr(0, dash);
    uint64_t n = std::stoull(text.substr(dash + 1));
    if (tag == "block" && n != i) return die("block " + std::to_string(i), corruption("holds " + text));
    if (!seen[tag].insert(n).second) return die("block " + std::to_string(i), corruption("duplicate " + text));
  }
  std::printf("length %llu\n", static_cast<unsigned long long>(core.length()));
  for (const auto& [tag, numbers] : seen) {
    // Each writer's blocks are numbered 0..count-1 with no gaps.
    if (*numbers.rbegin() + 1 != numbers.size()) return die("tag " + tag, corruption("has gaps"));
    std::printf("tag %s count %zu\n", tag.c_str(), numbers.size());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: append_worker loop|tagged|check HOME NAME [TAG COUNT]\n");
    return 2;
  }
  std::string mode = argv[1];
  crypto::init();
  auto home = Home::open({argv[2], std::nullopt});
  if (!home.ok()) return die("open home", home.status());
  if (mode == "check") {
    auto core = (*home)->open_core(argv[3]);
    if (!core.ok()) return die("open", core.status());
    return check(**core);
  }
  auto store = (*home)->writer();
  if (!store.ok()) return die("identity", store.status());
  auto core = (*store)->get(argv[3]);
  if (!core.ok()) return die("open", core.status());
  if (mode == "loop") return loop(**core);
  if (mode == "tagged" && argc == 6) return tagged(**core, argv[4], std::stoull(argv[5]));
  std::fprintf(stderr, "append_worker: unknown mode %s\n", mode.c_str());
  return 2;
}
