#include "formats/core/ordered_pool.h"

#include <algorithm>

namespace vdisk {

OrderedPool::OrderedPool(WorkFactory factory, Sink sink, unsigned threads)
    : factory_(std::move(factory)), sink_(std::move(sink)) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  max_inflight_ = threads * 4;
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { worker(); });
}

OrderedPool::~OrderedPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : threads_) t.join();
}

void OrderedPool::worker() {
  Work work;
  std::exception_ptr setup_error;
  try {
    work = factory_();
  } catch (...) {
    setup_error = std::current_exception();
  }
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_work_.wait(lock, [&] { return stop_ || !work_.empty(); });
      if (stop_) return;
      job = work_.front();
      work_.pop_front();
    }
    if (job->in.empty()) {
      job->out.clear();  // a marker: keeps its place in the order, no work
    } else if (setup_error) {
      job->error = setup_error;
    } else {
      try {
        work(job->in, job->out);
      } catch (...) {
        job->error = std::current_exception();
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      job->done = true;
    }
    cv_done_.notify_all();
  }
}

void OrderedPool::deliver(bool all) {
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (pending_.empty()) return;
      const bool must_wait = all || pending_.size() >= max_inflight_;
      if (!pending_.front()->done) {
        if (!must_wait) return;
        cv_done_.wait(lock, [&] { return pending_.front()->done; });
      }
      job = std::move(pending_.front());
      pending_.pop_front();
    }
    if (job->error) std::rethrow_exception(job->error);
    sink_(job->tag, job->in, job->out);
    job->done = false;
    spare_.push_back(std::move(job));
  }
}

void OrderedPool::submit(uint64_t tag, const uint8_t* data, size_t len) {
  std::unique_ptr<Job> job;
  if (!spare_.empty()) {
    job = std::move(spare_.back());
    spare_.pop_back();
  } else {
    job = std::make_unique<Job>();
  }
  job->tag = tag;
  job->in.assign(data, data + len);
  {
    std::lock_guard<std::mutex> lock(mu_);
    work_.push_back(job.get());
    pending_.push_back(std::move(job));
  }
  cv_work_.notify_one();
  deliver(false);
}

void OrderedPool::drain() {
  deliver(true);
}

}  // namespace vdisk
