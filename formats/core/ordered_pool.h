// Runs CPU-bound work (compression) on every core and hands the jobs back in
// the order they were submitted: the writers that compress on all cores but
// must write their output in guest order (streamOptimized VMDK grains, EWF
// chunks) share it.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace vdisk {

// `Job` is any default-constructible type holding a job's input and output;
// jobs are recycled (get()) so their buffers keep their capacity.
// Thread safety: get(), submit() and drain() are called from one thread (the
// writer's); `work` runs on the pool's threads.
template <class Job>
class OrderedPool {
 public:
  using Work = std::function<void(Job&)>;

  // Starts `threads` workers (0: one per core). Each calls `make_worker` once
  // and runs the function it returns on one job at a time, so per-thread
  // state (a compressor) lives in that function. At most `max_in_flight`
  // jobs (0: four per worker) are submitted and not yet consumed.
  OrderedPool(unsigned threads, size_t max_in_flight, std::function<Work()> make_worker) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    max_in_flight_ = max_in_flight ? max_in_flight : size_t{threads} * 4;
    for (unsigned i = 0; i < threads; ++i) {
      threads_.emplace_back([this, make_worker] { run(make_worker()); });
    }
  }

  // Stops the workers; jobs not consumed are dropped.
  ~OrderedPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_work_.notify_all();
    for (auto& t : threads_) t.join();
  }

  OrderedPool(const OrderedPool&) = delete;
  OrderedPool& operator=(const OrderedPool&) = delete;

  // A job to fill: a consumed one when there is one, else a new one.
  std::unique_ptr<Job> get() {
    if (spare_.empty()) return std::make_unique<Job>();
    std::unique_ptr<Job> j = std::move(spare_.back());
    spare_.pop_back();
    return j;
  }

  // Queues `job` for the workers, then passes every finished job at the
  // front of the queue, in submission order, to `consume(Job&)`; while
  // max_in_flight jobs are out it waits for the front one. An exception the
  // work threw for a job is rethrown here when that job's turn comes.
  template <class Consume>
  void submit(std::unique_ptr<Job> job, Consume&& consume) {
    auto e = std::make_unique<Entry>();
    e->job = std::move(job);
    {
      std::lock_guard<std::mutex> lock(mu_);
      work_.push_back(e.get());
      pending_.push_back(std::move(e));
    }
    cv_work_.notify_one();
    consume_front(false, consume);
  }

  // Waits for every submitted job and consumes them all, in order.
  template <class Consume>
  void drain(Consume&& consume) {
    consume_front(true, consume);
  }

 private:
  struct Entry {
    std::unique_ptr<Job> job;
    bool done = false;
    std::exception_ptr error;
  };

  void run(Work work) {
    for (;;) {
      Entry* e;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_work_.wait(lock, [&] { return stop_ || !work_.empty(); });
        if (stop_) return;
        e = work_.front();
        work_.pop_front();
      }
      try {
        work(*e->job);
      } catch (...) {
        e->error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        e->done = true;
      }
      cv_done_.notify_all();
    }
  }

  template <class Consume>
  void consume_front(bool all, Consume& consume) {
    for (;;) {
      std::unique_ptr<Entry> e;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (pending_.empty()) return;
        const bool must_wait = all || pending_.size() >= max_in_flight_;
        if (!pending_.front()->done) {
          if (!must_wait) return;
          cv_done_.wait(lock, [&] { return pending_.front()->done; });
        }
        e = std::move(pending_.front());
        pending_.pop_front();
      }
      if (e->error) std::rethrow_exception(e->error);
      consume(*e->job);
      spare_.push_back(std::move(e->job));
    }
  }

  size_t max_in_flight_ = 1;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  std::deque<Entry*> work_;
  std::deque<std::unique_ptr<Entry>> pending_;
  std::vector<std::unique_ptr<Job>> spare_;
  bool stop_ = false;
  std::vector<std::thread> threads_;  // last: started after the rest exists
};

}  // namespace vdisk
