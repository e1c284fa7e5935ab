// The pass engine of `vdisk acquire`: GNU ddrescue's algorithm (its manual,
// chapter "Algorithm") over a BlockDevice, filling a rescue destination in
// place and keeping a RescueMap that the caller saves as a ddrescue mapfile.
//
// Phases and passes, as the manual describes them:
//  - copying, over non-tried ('?') areas in clusters: pass 1 forward,
//    marking a failed cluster non-trimmed ('*') and skipping ahead by a skip
//    size that doubles on each error or slow read (reset by a good read) up
//    to its maximum; the skipped area stays non-tried. Pass 2 runs the other
//    way over what pass 1 skipped, also skipping. Pass 3 is a forward sweep
//    with skipping disabled. (ddrescue's two extra passes over areas skipped
//    for slowness are folded into pass 3.)
//  - trimming, one pass: for each non-trimmed block, read sector by sector
//    forwards from its leading edge until a sector fails, then backwards from
//    its trailing edge until one fails; the failed sectors become bad ('-'),
//    the rest of the block non-scraped ('/') without being read. An edge
//    already next to a bad sector is not trimmed again.
//  - scraping, one pass: every non-scraped block read forwards sector by
//    sector; failed sectors become bad.
//  - retrying, `retry_passes` passes over the bad sectors, one read each per
//    pass, the direction reversed after each pass.
// `reverse` reverses every direction. The engine starts each phase from the
// map's state, so a run resumed from a mapfile (ours or ddrescue's) never
// re-reads a finished area and goes on with what is left.
//
// The manual's rule for mapfiles and data: the map never claims more than
// the destination holds. Before every save the destination is synced.
//
// One pass on a healthy source (AcquireStream): while copying pass 1 reads
// the source forwards without a failure, each read is also handed, in
// order, to an AcquireStream that a consumer (copy_device: the writer of a
// non-raw DEST, the hashers) reads on other threads. The rescue destination
// (for a non-raw DEST, the working raw) is still written as always: it is
// what the mapfile describes, so a run killed at any moment resumes from it,
// and what the passes after a failure go on with, without reading the
// source twice. If pass 1 reads the whole source, the consumer has seen all
// of it and the caller finishes DEST from the stream (no second pass over
// the working raw); on the first failed or skipped read, or in a run that
// starts from a mapfile with any area other than non-tried, the stream is
// dropped and the caller converts the rescue file after the passes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "converters/stream_device.h"
#include "formats/core/block_device.h"
#include "views/ddrescue/ddrescue_map.h"

namespace vdisk {

// Where rescued bytes go: the rescue file (written in place, at the source's
// offsets). Called from the engine's thread only.
class RescueSink {
 public:
  virtual ~RescueSink() = default;
  virtual void write_at(uint64_t offset, const void* buf, size_t len) = 0;
  // Makes what was written durable (fdatasync) before the map says so.
  virtual void sync() = 0;
};

// Pass 1's reads as one ordered stream: a RawStream of the source's size
// that one consumer reads in order, from its first byte, on its own thread
// (copy_device with CopyOptions::readers = 1), while the engine feeds it.
// The bytes are copied once, from the engine's buffer into the consumer's.
// Thread-safe between one feeding thread and one reading thread.
class AcquireStream final : public RawStream {
 public:
  // `cancel` (may be null) is polled while either side waits.
  AcquireStream(uint64_t size, uint32_t sector_size, std::string label,
                const std::atomic<bool>* cancel);

  // The engine's side: hands on [offset, offset + len), which must start
  // where the previous feed ended (else the stream is dropped). Blocks until
  // the consumer has taken it all; returns false (and takes nothing more)
  // once the stream is dropped or the cancel flag is set.
  bool feed(uint64_t offset, const void* data, size_t len);
  // Ends the stream incomplete, from either side: the consumer's pending and
  // later reads throw Error(kInterrupted), feed() returns false. Idempotent.
  void drop();
  // Every byte of the source was fed (and so read by the consumer, or
  // waiting in its last read) and the stream was not dropped before that.
  bool complete() const;

 protected:
  // In order from 0 (require_in_order); waits for the engine's feeds.
  void do_read(uint64_t offset, void* buf, size_t len) const override;

 private:
  bool cancelled() const { return cancel_ && cancel_->load(); }

  const std::atomic<bool>* cancel_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool dropped_ = false;
  uint64_t fed_ = 0;                 // bytes fed so far
  mutable uint64_t read_pos_ = 0;    // where the consumer's next read starts
  mutable uint8_t* want_ = nullptr;  // the consumer's pending read, or null
  mutable size_t want_len_ = 0, got_ = 0;
};

// ddrescue's status screen, in numbers (its manual, chapter "Output").
struct AcquireStatus {
  // "copying", "trimming", "scraping", "retrying"; at the end "finished",
  // or "stopped" (interrupted, timed out).
  std::string phase;
  uint64_t pass = 0;
  uint64_t position = 0;  // where the last read started
  uint64_t size = 0;
  uint64_t rescued = 0, non_tried = 0, non_trimmed = 0, non_scraped = 0, bad = 0;
  size_t bad_areas = 0;        // blocks of '-'
  uint64_t read_errors = 0;    // failed reads in this run
  double current_rate = 0;     // bytes/s over the last second
  double average_rate = 0;     // bytes/s over the run
  double run_time = 0;         // seconds
  double since_good_read = 0;  // seconds since the last successful read
  // Seconds the non-tried, non-trimmed and non-scraped areas would take at
  // the average rate; negative when unknown (nothing read yet).
  double remaining = -1;
  double pct_rescued() const { return size ? 100.0 * double(rescued) / double(size) : 100.0; }
};

struct AcquireOptions {
  uint32_t sector_size = 512;              // -b: the unit of trimming, scraping and retries
  uint64_t cluster_size = 64 << 10;        // -c: bytes read at a time while copying
  uint64_t skip_initial = 64 << 10;        // -K INITIAL
  uint64_t skip_max = 0;                   // -K ,MAX; 0: 1% of the source, at most 1 GiB
  bool copy_pass[3] = {true, true, true};  // --cpass
  bool trim = true;                        // -N clears it
  bool scrape = true;                      // -n clears it
  int retry_passes = 0;                    // -r; -1: until all read or stopped
  bool reverse = false;                    // -R
  double timeout = 0;            // -T: seconds without a good read before giving up; 0 none
  double min_read_rate = 0;      // -a: bytes/s below which copying passes 1-2 skip ahead
  double save_interval = 30;     // seconds between mapfile saves
  double status_interval = 0.5;  // seconds between status callbacks
  const std::atomic<bool>* cancel = nullptr;
  // When set: pass 1's reads are fed to it while they succeed in order (see
  // the top of this file). The engine drops it at the first read error or
  // skip, when pass 1 ends short of the source's end, when the run ends
  // early, and at once when the map starts with anything but non-tried
  // areas, when pass 1 is not run, or with `reverse`.
  AcquireStream* stream = nullptr;
  // Saves the map (the caller writes the mapfile atomically). Called with
  // the sink synced, at least every save_interval, at every pass boundary,
  // and when the run ends, is interrupted, or fails.
  std::function<void(const ddrescue::RescueMap&)> save;
  // When set, called as each save starts (before the sink's sync); what it
  // returns is held until `save` has returned. The CLI holds off its signal
  // watchdog with it, so an interrupt never cuts a save.
  std::function<std::shared_ptr<void>()> save_scope;
  // The status, every status_interval and when a phase starts or ends.
  std::function<void(const AcquireStatus&)> status;
  // The clock (seconds, monotonic); tests replace it. Default: steady_clock.
  std::function<double()> now;
};

enum class AcquireEnd {
  kFinished,     // every pass ran (bad sectors may remain)
  kTimedOut,     // --timeout expired
  kInterrupted,  // *cancel was set; the map was saved
};

struct AcquireResult {
  AcquireEnd end = AcquireEnd::kFinished;
  AcquireStatus status;  // the last status
};

// Runs the passes over `src` into `dst`, updating `map` (its size must be
// src.size()). Only Error(kIo) from the source counts as a bad read; any
// other error (and every error of the sink or of `save`) saves the map when
// it can and is rethrown. Reads are aligned to the sector size and issued
// into a buffer aligned to 4 KiB, so an O_DIRECT source works.
AcquireResult acquire(const BlockDevice& src, RescueSink& dst, ddrescue::RescueMap& map,
                      const AcquireOptions& opts);

}  // namespace vdisk
