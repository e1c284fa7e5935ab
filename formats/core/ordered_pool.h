// Work on all cores, results in order. Writers that compress (streamOptimized
// VMDK grains, compressed qcow2 clusters) hand buffers to a pool of worker
// threads and must write the results in the order the buffers came; the pool
// does the first and guarantees the second, with a bounded number of buffers
// in flight (memory does not grow with the image).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace vdisk {

class OrderedPool {
 public:
  // What a worker does to one buffer: transform `in` into `out`. Each worker
  // thread calls the factory once and keeps the function it returns (so a
  // compressor's state is per thread).
  using Work = std::function<void(const std::vector<uint8_t>& in, std::vector<uint8_t>& out)>;
  using WorkFactory = std::function<Work()>;
  // Receives the results on the submitting thread, in submission order.
  using Sink = std::function<void(uint64_t tag, const std::vector<uint8_t>& in,
                                  const std::vector<uint8_t>& out)>;

  // `threads` workers (0: one per core); at most 4 buffers per worker are in
  // flight before submit() waits for the oldest.
  OrderedPool(WorkFactory factory, Sink sink, unsigned threads = 0);
  // Stops the workers; results not yet delivered are dropped.
  ~OrderedPool();
  OrderedPool(const OrderedPool&) = delete;
  OrderedPool& operator=(const OrderedPool&) = delete;

  // Queues a copy of [data, data + len) under `tag` (len 0: a marker that
  // reaches the sink in its place with an empty result, without work), then
  // delivers every
  // result that is ready at the front (waiting for the oldest when too many
  // are in flight). An exception from a worker or the sink is rethrown here
  // or from drain().
  void submit(uint64_t tag, const uint8_t* data, size_t len);
  // Delivers every outstanding result.
  void drain();

 private:
  struct Job {
    uint64_t tag = 0;
    std::vector<uint8_t> in, out;
    bool done = false;
    std::exception_ptr error;
  };
  void worker();
  void deliver(bool all);

  WorkFactory factory_;
  Sink sink_;
  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  std::deque<Job*> work_;
  std::deque<std::unique_ptr<Job>> pending_;
  std::vector<std::unique_ptr<Job>> spare_;
  std::vector<std::thread> threads_;
  size_t max_inflight_ = 8;
  bool stop_ = false;
};

}  // namespace vdisk
