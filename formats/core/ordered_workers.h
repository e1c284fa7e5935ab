// Work done on every core, results handed back in submission order: the
// compression pipeline of the writers that compress independent pieces
// (VMDK streamOptimized grains, gzip members, xz blocks, zstd frames). The
// writing thread submits jobs and consumes finished ones from the front, so
// the output order is the input order whatever the thread timing.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace vdisk {

class OrderedWorkers {
 public:
  // One unit of work; run() executes on a worker thread. A job that throws
  // has its exception rethrown to the submitting thread when it reaches the
  // front of the queue.
  struct Job {
    virtual ~Job() = default;
    virtual void run() = 0;

   private:
    friend class OrderedWorkers;
    bool done_ = false;
    std::exception_ptr error_;
  };
  // Receives each finished job, in submission order, on the submitting
  // thread; it may keep the job to reuse it.
  using Consumer = std::function<void(std::unique_ptr<Job>)>;

  // `threads` workers (0: one per core); at most threads * `inflight_per_thread`
  // jobs are queued or running at once, so memory is bounded.
  explicit OrderedWorkers(unsigned threads = 0, size_t inflight_per_thread = 4);
  // Stops the workers; jobs not yet consumed are dropped.
  ~OrderedWorkers();
  OrderedWorkers(const OrderedWorkers&) = delete;
  OrderedWorkers& operator=(const OrderedWorkers&) = delete;

  // Queues `job`, then hands every finished job at the front to `consume`;
  // while the queue is full it waits for the front job. One submitting thread.
  void submit(std::unique_ptr<Job> job, const Consumer& consume);
  // Waits for every queued job and hands each to `consume`, in order.
  void drain(const Consumer& consume);
  unsigned threads() const { return static_cast<unsigned>(threads_.size()); }

 private:
  void worker();
  void pop_finished(bool all, const Consumer& consume);

  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  std::deque<Job*> work_;
  std::deque<std::unique_ptr<Job>> pending_;
  std::vector<std::thread> threads_;
  size_t max_inflight_ = 8;
  bool stop_ = false;
};

}  // namespace vdisk
