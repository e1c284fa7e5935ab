#include "cli/progress.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "formats/core/error.h"
#include "formats/core/json.h"

namespace vdisk::cli {

std::string format_rate(double bytes_per_s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%7.1f MiB/s", bytes_per_s / (1024.0 * 1024.0));
  return buf;
}

namespace {

// The rate without the padding, for the summary line.
std::string rate_text(double bytes_per_s) {
  std::string s = format_rate(bytes_per_s);
  return s.substr(s.find_first_not_of(' '));
}

std::string format_duration(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  auto t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

class StderrProgress final : public ProgressSink {
 public:
  StderrProgress(bool tty, bool json) : tty_(tty), json_(json) {}
  ~StderrProgress() override { stop_ticker(); }

  void begin(const std::string& phase, uint64_t total) override {
    stop_ticker();
    phase_ = phase;
    total_ = total;
    done_ = 0;
    start_ = last_ = std::chrono::steady_clock::now();
    active_ = true;
    if (json_) {
      json_line("start");
      // One line a second even while the engine waits on a slow stage.
      ticking_ = true;
      ticker_ = std::thread([this] {
        std::unique_lock<std::mutex> lock(tick_mu_);
        while (!tick_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return !ticking_; })) {
          json_line("running");
        }
      });
    } else if (tty_) {
      draw();
    }
  }

  void update(uint64_t done) override {
    done_ = done;
    if (json_ || !tty_) return;
    auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_).count() >= 0.1) {
      last_ = now;
      draw();
    }
  }

  void end() override {
    if (!active_) return;
    active_ = false;
    double secs = elapsed();
    if (json_) {
      stop_ticker();
      json_line("done");
      return;
    }
    if (tty_) {
      draw();
      std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "vdisk: %s: %s in %.2f s (%s)\n", phase_.c_str(),
                   human_size(done_).c_str(), secs,
                   rate_text(secs > 0 ? static_cast<double>(done_) / secs : 0).c_str());
    }
  }

 private:
  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  void draw() {
    double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
    double secs = elapsed();
    double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
    double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1;
    const int width = 30;
    int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(width - filled), ' ');
    // Fixed-width fields, and the rest of the line cleared (ESC [ K): a
    // shorter redraw leaves nothing of the previous one behind.
    std::fprintf(stderr, "\r%s [%s] %5.1f%%  %s  ETA %8s\033[K", phase_.c_str(), bar.c_str(),
                 frac * 100, format_rate(rate).c_str(), format_duration(eta).c_str());
    std::fflush(stderr);
  }
  void json_line(const char* state) {
    double secs = elapsed();
    double rate = secs > 0 ? static_cast<double>(done_) / secs : 0;
    double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : -1;
    Json j = Json::object();
    j.set("phase", phase_);
    j.set("state", state);
    j.set("bytes_done", done_.load());
    j.set("bytes_total", total_);
    j.set("rate_bytes_per_s", static_cast<uint64_t>(rate));
    j.set("eta_s",
          eta < 0 ? Json() : Json(static_cast<double>(static_cast<int64_t>(eta * 10)) / 10));
    j.set("elapsed_s", static_cast<double>(static_cast<int64_t>(secs * 1000)) / 1000);
    std::fprintf(stderr, "%s\n", j.dump().c_str());
    std::fflush(stderr);
  }

  void stop_ticker() {
    if (!ticker_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(tick_mu_);
      ticking_ = false;
    }
    tick_cv_.notify_all();
    ticker_.join();
  }

  bool tty_, json_;
  bool active_ = false;
  std::string phase_;
  uint64_t total_ = 0;
  std::atomic<uint64_t> done_{0};
  std::thread ticker_;
  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool ticking_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace

std::unique_ptr<ProgressSink> make_progress(bool enabled, bool json) {
  if (!enabled && !json) return nullptr;
  return std::make_unique<StderrProgress>(::isatty(2) != 0, json);
}

namespace {

Json acquire_json(const AcquireStatus& s) {
  auto tenths = [](double v) { return static_cast<double>(static_cast<int64_t>(v * 10)) / 10; };
  Json j = Json::object();
  j.set("phase", s.phase);
  j.set("pass", s.pass);
  j.set("state", s.phase == "finished" || s.phase == "stopped" ? "done" : "running");
  j.set("position", s.position);
  j.set("size", s.size);
  j.set("rescued", s.rescued);
  j.set("non_tried", s.non_tried);
  j.set("non_trimmed", s.non_trimmed);
  j.set("non_scraped", s.non_scraped);
  j.set("bad_sector", s.bad);
  j.set("bad_areas", static_cast<uint64_t>(s.bad_areas));
  j.set("read_errors", s.read_errors);
  j.set("current_rate_bytes_per_s", static_cast<uint64_t>(s.current_rate));
  j.set("average_rate_bytes_per_s", static_cast<uint64_t>(s.average_rate));
  j.set("pct_rescued", static_cast<double>(static_cast<int64_t>(s.pct_rescued() * 1000)) / 1000);
  j.set("run_time_s", tenths(s.run_time));
  j.set("remaining_s", s.remaining < 0 ? Json() : Json(tenths(s.remaining)));
  j.set("since_good_read_s", tenths(s.since_good_read));
  return j;
}

// ddrescue's fields in one line: phase and pass, then the sizes of each
// status, bad areas, read errors, rates, percentage, times.
std::string acquire_line(const AcquireStatus& s) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%s pass %llu: rescued %s (%.2f%%), non-tried %s, non-trimmed %s, non-scraped %s, "
                "bad %s in %zu areas, %llu read errors, %s now, %s average, run %s, left %s",
                s.phase.c_str(), static_cast<unsigned long long>(s.pass),
                human_size(s.rescued).c_str(), s.pct_rescued(), human_size(s.non_tried).c_str(),
                human_size(s.non_trimmed).c_str(), human_size(s.non_scraped).c_str(),
                human_size(s.bad).c_str(), s.bad_areas,
                static_cast<unsigned long long>(s.read_errors), rate_text(s.current_rate).c_str(),
                rate_text(s.average_rate).c_str(), format_duration(s.run_time).c_str(),
                format_duration(s.remaining).c_str());
  return buf;
}

}  // namespace

std::function<void(const AcquireStatus&)> make_acquire_status(bool enabled, bool json) {
  if (!enabled && !json) return {};
  if (json) {
    return [](const AcquireStatus& s) {
      std::fprintf(stderr, "%s\n", acquire_json(s).dump().c_str());
      std::fflush(stderr);
    };
  }
  const bool tty = ::isatty(2) != 0;
  auto last = std::make_shared<std::pair<std::string, uint64_t>>();
  return [tty, last](const AcquireStatus& s) {
    const bool changed = last->first != s.phase || last->second != s.pass;
    *last = {s.phase, s.pass};
    if (tty) {
      std::fprintf(stderr, "\r%s\033[K%s", acquire_line(s).c_str(),
                   s.phase == "finished" || s.phase == "stopped" ? "\n" : "");
    } else if (changed) {
      std::fprintf(stderr, "vdisk: %s\n", acquire_line(s).c_str());
    }
    std::fflush(stderr);
  };
}

}  // namespace vdisk::cli
