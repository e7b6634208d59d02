#include "core/leaf_hasher.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace p2p::merkle {

struct LeafHasher::State {
  std::mutex mutex;
  std::condition_variable done_cv;
  std::vector<Node> leaves;
  size_t queued = 0, done = 0;
};

namespace {

struct Job {
  std::shared_ptr<LeafHasher::State> state;
  size_t slot;
  uint64_t index;
  ByteView value;
};

// One thread for the process: hashing is a small share of a download, so one
// helper takes it off the thread that reads the network.
class Worker {
 public:
  static Worker* get() {
    static Worker* worker = std::thread::hardware_concurrency() > 1 ? new Worker : nullptr;  // lives until exit
    return worker;
  }
  void push(Job job) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }

 private:
  Worker() { std::thread([this] { run(); }).detach(); }
  [[noreturn]] void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !jobs_.empty(); });
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      Node leaf = leaf_node(job.index, job.value);
      std::lock_guard lock(job.state->mutex);
      job.state->leaves[job.slot] = leaf;
      if (++job.state->done == job.state->queued) job.state->done_cv.notify_all();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
};

}  // namespace

LeafHasher::LeafHasher() : state_(std::make_shared<State>()) {}

LeafHasher::~LeafHasher() { take(); }

size_t LeafHasher::add(uint64_t index, ByteView value) {
  Worker* worker = Worker::get();
  std::lock_guard lock(state_->mutex);
  size_t slot = state_->leaves.size();
  if (!worker) {
    state_->leaves.push_back(leaf_node(index, value));
    return slot;
  }
  state_->leaves.emplace_back();
  state_->queued++;
  worker->push({state_, slot, index, value});
  return slot;
}

std::vector<Node> LeafHasher::take() {
  std::unique_lock lock(state_->mutex);
  state_->done_cv.wait(lock, [&] { return state_->done == state_->queued; });
  std::vector<Node> out = std::move(state_->leaves);
  state_->leaves.clear();
  state_->queued = state_->done = 0;
  return out;
}

}  // namespace p2p::merkle
