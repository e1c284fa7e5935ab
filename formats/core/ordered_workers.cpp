#include "formats/core/ordered_workers.h"

#include <algorithm>

namespace vdisk {

OrderedWorkers::OrderedWorkers(unsigned threads, size_t inflight_per_thread) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  max_inflight_ = std::max<size_t>(1, threads * inflight_per_thread);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { worker(); });
}

OrderedWorkers::~OrderedWorkers() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : threads_) t.join();
}

void OrderedWorkers::worker() {
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_work_.wait(lock, [&] { return stop_ || !work_.empty(); });
      if (stop_) return;
      job = work_.front();
      work_.pop_front();
    }
    try {
      job->run();
    } catch (...) {
      job->error_ = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      job->done_ = true;
    }
    cv_done_.notify_all();
  }
}

void OrderedWorkers::pop_finished(bool all, const Consumer& consume) {
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (pending_.empty()) return;
      if (!pending_.front()->done_) {
        if (!all && pending_.size() < max_inflight_) return;
        cv_done_.wait(lock, [&] { return pending_.front()->done_; });
      }
      job = std::move(pending_.front());
      pending_.pop_front();
    }
    if (job->error_) {
      std::exception_ptr e = job->error_;
      std::rethrow_exception(e);
    }
    job->done_ = false;
    consume(std::move(job));
  }
}

void OrderedWorkers::submit(std::unique_ptr<Job> job, const Consumer& consume) {
  job->done_ = false;
  job->error_ = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    work_.push_back(job.get());
    pending_.push_back(std::move(job));
  }
  cv_work_.notify_one();
  pop_finished(false, consume);
}

void OrderedWorkers::drain(const Consumer& consume) {
  pop_finished(true, consume);
}

}  // namespace vdisk
